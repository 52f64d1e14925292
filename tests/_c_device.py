"""Test helper: the C firmware's host build as a process on a TCP socket, and a minimal
protocol-v2 requester (one request in flight) that speaks raw frames (edgelearn.link.framing)."""

from __future__ import annotations

import contextlib
import signal
import socket
import struct
import subprocess
import time
import zlib

from edgelearn.kernels import cbuild
from edgelearn.link import framing
from edgelearn.link.framing import Frame, StreamDecoder
from tests._hang import HANG_SECONDS

V2 = 2
BUSY, NAK, ERROR = 0x7D, 0x7E, 0x7F


class CDevice:
    """``with CDevice(ram=..., flash=...) as dev: dev.request(type, payload)``; with ``url``
    (e.g. "qemu") the board is opened through edgelearn.link.transport instead."""

    def __init__(self, *args: str, ram: int = 262144, flash: int = 1 << 20,
                 flash_file: str | None = None, url: str | None = None) -> None:
        self.dec = StreamDecoder(4096)
        self.seq = 0
        self.frames: list[Frame] = []
        self.stale: set[int] = set()     # sequence numbers whose late answers are dropped
        self.transport = self.proc = None
        if url is not None:
            from edgelearn.link.transport import open_transport
            self.transport = open_transport(url)
            return
        cmd = [str(cbuild.build("device")), "--port", "socket-server://127.0.0.1:0",
               "--ram", str(ram), "--flash", str(flash), *args]
        if flash_file:
            cmd += ["--flash-file", flash_file]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        url = self.proc.stdout.readline().strip()
        if not url.startswith("socket://"):
            err = self.proc.stderr.read()
            raise RuntimeError(f"C device did not start: {url!r} {err}")
        host, port = url[len("socket://"):].rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)

    def __enter__(self) -> "CDevice":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> str:
        if self.transport is not None:
            self.transport.close()
            return ""
        self.sock.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err

    @property
    def alive(self) -> bool:
        return (self.transport.proc if self.transport else self.proc).poll() is None

    def send(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)
        else:
            self.sock.sendall(data)

    def _recv(self, timeout: float) -> bytes:
        if self.transport is not None:
            return self.transport.read(min(timeout, 0.05))
        self.sock.settimeout(timeout)
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the C device closed the line")
        return data

    def frame(self, mtype: int, payload: bytes = b"", seq: int | None = None,
              version: int = V2) -> bytes:
        if seq is None:
            seq, self.seq = self.seq, (self.seq + 1) & 0xFF
        self.stale.discard(seq & 0xFF)       # reused: its answer is wanted again
        return framing.encode_frame(Frame(mtype, seq & 0xFF, payload, version=version))

    def receive(self, timeout: float = HANG_SECONDS, skip_busy: bool = True) -> Frame:
        """The next frame from the device (BUSY keep-alives skipped)."""
        end = time.monotonic() + timeout
        while True:
            while self.frames:
                f = self.frames.pop(0)
                if f.seq in self.stale and f.type != BUSY:
                    self.stale.discard(f.seq)
                    continue
                if not (skip_busy and f.type == BUSY):
                    return f
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame from the C device")
            data = self._recv(left)
            self.frames += [f for f in self.dec.feed(data) if isinstance(f, Frame)]

    def request(self, mtype: int, payload: bytes = b"", version: int = V2) -> Frame:
        self.send(self.frame(mtype, payload, version=version))
        return self.receive()

    def hello(self, max_payload: int = 1024, window: int = 8) -> Frame:
        return self.request(0x01, struct.pack("<HB", max_payload, window))

    def upload(self, image: bytes, chunk: int = 1000) -> Frame:
        r = self.request(0x10, struct.pack("<II", len(image), zlib.crc32(image)))
        assert r.type == 0x90, error_text(r)
        for i in range(0, len(image), chunk):
            r = self.request(0x11, image[i:i + chunk])
            assert r.type == 0x91, error_text(r)
        return self.request(0x12)

    def read_all(self, begin: int, read: int, begin_payload: bytes = b"") -> bytes:
        """PULL_BEGIN/PULL_READ or BLOB_GET/BLOB_READ: the whole snapshot, CRC checked."""
        r = self.request(begin, begin_payload)
        assert r.type == begin | 0x80, error_text(r)
        n, crc = struct.unpack("<II", r.payload)
        out = b""
        while len(out) < n:
            rr = self.request(read, struct.pack("<IH", len(out), min(900, n - len(out))))
            assert rr.type == read | 0x80, error_text(rr)
            out += rr.payload[4:]
        assert zlib.crc32(out) == crc
        return out

    def power_cycle(self, patience: float = HANG_SECONDS) -> None:
        """Reset the board, then wait until it answers as a rebooted board does: an ERROR to a
        PING (NO_SESSION), left for the caller to receive. The reset is asynchronous (a signal,
        QEMU's monitor) and late on a loaded machine: a PING answered normally came before it
        took effect, one lost during the reboot got no answer; either is sent again."""
        if self.transport is not None:
            self.transport.reset_device()
        else:
            self.proc.send_signal(signal.SIGUSR1)
        end = time.monotonic() + patience
        unanswered: set[int] = set()
        while time.monotonic() < end:
            unanswered.add(self.seq)
            self.send(self.frame(0x30))
            try:
                f = self.receive(timeout=1.0)
            except TimeoutError:
                continue
            unanswered.discard(f.seq)
            if f.type == ERROR:
                self.frames.insert(0, f)
                self.stale |= unanswered         # a late answer to those is not the caller's
                return
            time.sleep(0.05)
        raise TimeoutError(f"the board did not answer as rebooted {patience:.0f} s after a "
                           f"power cycle")


def error_of(f: Frame) -> tuple[int, int, int, int, str]:
    """(code, request type, arg0, arg1, text) of an ERROR frame."""
    assert f.type == ERROR, f"expected ERROR, got 0x{f.type:02x}"
    code, req, a0, a1 = struct.unpack_from("<BBII", f.payload)
    return code, req, a0, a1, f.payload[10:].decode("utf-8")


def error_text(f: Frame) -> str:
    return str(error_of(f)) if f.type == ERROR else f"0x{f.type:02x}"


class CBoard:
    """The C host build as a process on TCP, for tests written against a board Transport
    (like tests._inprocess_board.InProcessBoard): ``.host`` is the host's Transport and
    ``reset()`` power-cycles the board (SIGUSR1); ``recipe="device-asan"`` runs the build with
    AddressSanitizer and UBSan (any finding ends the process)."""

    def __init__(self, ram: int = 262144, flash: int = 1 << 20, *args: str,
                 recipe: str = "device") -> None:
        from edgelearn.link.transport import open_transport

        cmd = [str(cbuild.build(recipe)), "--port", "socket-server://127.0.0.1:0",
               "--ram", str(ram), "--flash", str(flash), *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        url = self.proc.stdout.readline().strip()
        if not url.startswith("socket://"):
            raise RuntimeError(f"C device did not start: {url!r} {self.proc.stderr.read()}")
        self.host = open_transport(url)
        self.host.reset_device = self.reset

    def reset(self) -> None:
        self.proc.send_signal(signal.SIGUSR1)
        time.sleep(0.1)

    def __enter__(self) -> "CBoard":
        return self

    def __exit__(self, *exc) -> None:
        self.host.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


BOARD_IMPLS = ["python", "c"]


def make_board(impl: str, ram: int, flash: int):
    """A board for link tests: the Python device in process, or the C firmware's host build
    (both expose ``.host`` and ``reset()`` and are context managers)."""
    if impl == "c":
        return CBoard(ram, flash)
    from tests._inprocess_board import InProcessBoard
    return InProcessBoard("socketpair", ram=ram, flash=flash)


@contextlib.contextmanager
def board_client(impl: str, ram: int = 256 * 1024, flash: int = 512 * 1024):
    """A link Client of a fresh board of ``impl`` (make_board), with ``.impl`` set; the board
    closes when the block ends."""
    from edgelearn.link.client import Client
    with make_board(impl, ram, flash) as b:
        c = Client(b.host)
        c.impl = impl
        yield c
