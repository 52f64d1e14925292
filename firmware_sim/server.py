"""Serve a Device over a port: pseudo-terminal master, TCP listener, or a pyserial URL.

The loop only moves bytes: read what arrived (paced to the baud rate if one is set), hand it to
``Device.feed``, queue the answer, write it (paced too). Output is queued, never a blocking
write, so the device keeps reading while the host is slow to read: the line cannot deadlock.

Ports (``read(limit, timeout) -> bytes | None``; None means "the client went away"):

* PtyPort: ``os.openpty``; both ends set raw (``tty.setraw``); the simulator closes its copy of
  the slave so a read on the master fails with EIO whenever no client holds the slave open.
  EIO therefore means "client closed": the session ends and the simulator waits for the next
  client (or exits with ``--exit-on-close``). The slave path is printed on stdout.
* TcpPort: listens on host:port (port 0 picks one), prints ``socket://host:port``, serves one
  client at a time (pyserial's socket:// connects to it).
* url_port: any pyserial URL or device path opened with pyserial (a real UART, a
  socket:// server elsewhere).

Pacing: with ``baud`` > 0 each direction carries at most baud/10 bytes per second (8N1: ten bit
times per byte), independently (full duplex); reads and writes go in slices of about 2 ms. The
pacing clock may lag real time by up to SLACK (20 ms): bytes that "arrived" while the loop was
busy are in the UART's receive FIFO, as on a board with DMA, so loop latency does not slow the
line; an idle line can therefore deliver at most 20 ms worth of bytes early.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import sys
import threading
import time
import tty
from collections import deque

from edgelearn.errors import EdgelearnError
from edgelearn.link import framing
from firmware_sim.device import Device

SLACK = 0.020   # seconds the pacing clock may lag (receive FIFO / DMA ring of a board)


class PortError(EdgelearnError):
    """The port to serve cannot be opened (or failed while serving): one line with the reason."""


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


class PtyPort:
    def __init__(self) -> None:
        try:
            self.master, slave = os.openpty()
        except OSError as exc:
            raise PortError(f"cannot open a pseudo-terminal: {_reason(exc)}") from None
        self.path = os.ttyname(slave)
        tty.setraw(self.master)
        tty.setraw(slave)
        os.close(slave)
        os.set_blocking(self.master, False)
        self.connected = False
        self.announce = self.path

    def read(self, limit: int, timeout: float) -> bytes | None:
        try:
            r, _, _ = select.select([self.master], [], [], timeout)
        except InterruptedError:
            return b""
        if not r:
            self.connected = True   # select timed out without EIO: a client holds the slave
            return b""
        try:
            data = os.read(self.master, limit)
        except BlockingIOError:
            return b""
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            if self.connected:
                self.connected = False
                return None
            time.sleep(min(timeout, 0.02))  # nobody has the slave open yet
            return b""
        self.connected = True
        return data

    def write(self, data: bytes) -> int:
        try:
            return os.write(self.master, data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            if exc.errno == errno.EIO:
                return len(data)   # no client: the bytes are lost, as on a real line
            raise

    def close(self) -> None:
        os.close(self.master)


class TcpPort:
    def __init__(self, host: str, port: int) -> None:
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.server.bind((host, port))
            self.server.listen(1)
        except (OSError, UnicodeError) as exc:    # in use, not ours, unknown host, bad name
            self.server.close()
            reason = _reason(exc) if isinstance(exc, OSError) else "invalid host name"
            raise PortError(f"cannot listen on {host[:80]}:{port}: {reason}") from None
        h, p = self.server.getsockname()
        self.announce = f"socket://{h}:{p}"
        self.conn: socket.socket | None = None

    def read(self, limit: int, timeout: float) -> bytes | None:
        if self.conn is None:
            r, _, _ = select.select([self.server], [], [], timeout)
            if r:
                self.conn, _ = self.server.accept()
                self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.conn.setblocking(False)
            return b""
        try:
            r, _, _ = select.select([self.conn], [], [], timeout)
        except InterruptedError:
            return b""
        if not r:
            return b""
        try:
            data = self.conn.recv(limit)
        except BlockingIOError:
            return b""
        except OSError:
            data = b""
        if not data:
            self.conn.close()
            self.conn = None
            return None
        return data

    def write(self, data: bytes) -> int:
        if self.conn is None:
            return len(data)
        try:
            return self.conn.send(data)
        except BlockingIOError:
            return 0
        except OSError:
            return len(data)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.server.close()


class TransportPort:
    """Server port over a byte pipe with ``read(timeout)``/``write``/``close`` and ``url``: a
    UART opened with pyserial, or the device end of an in-process pipe
    (tests/_inprocess_board.py)."""

    def __init__(self, transport) -> None:
        self.t = transport
        self.announce = transport.url

    def read(self, limit: int, timeout: float) -> bytes | None:
        return self.t.read(timeout)

    def write(self, data: bytes) -> int:
        self.t.write(data)
        return len(data)

    def close(self) -> None:
        self.t.close()


class UartPort:
    """A device path or pyserial URL served as the board's UART (pyserial directly: the
    device side has its own line driver, not the host's transports)."""

    def __init__(self, url: str) -> None:
        import serial
        try:
            self.port = serial.serial_for_url(url, timeout=0, write_timeout=10)
        except (serial.SerialException, ValueError, OSError) as exc:
            text = str(exc).strip()
            reason = text.splitlines()[0] if text else type(exc).__name__
            raise PortError(f"cannot open {url[:80]!r}: {reason}") from None
        self.announce = url

    def read(self, limit: int, timeout: float) -> bytes | None:
        self.port.timeout = timeout
        return self.port.read(limit)

    def write(self, data: bytes) -> int:
        return self.port.write(data) or 0

    def close(self) -> None:
        self.port.close()


def url_port(url: str) -> UartPort:
    """Serve a device path or pyserial URL (a real UART, a socket:// server elsewhere)."""
    return UartPort(url)


BUSY_AFTER = 0.010       # a request running this long gets a BUSY keep-alive (docs/protocol.md)
BUSY_EVERY = 0.025       # and another at least this often until its reply


class Server:
    """Moves bytes between a port and a Device, with optional baud pacing and reset injection.

    The I/O loop (``run``) reads and writes the port; a worker thread feeds the received bytes
    to the device in order, so the loop keeps the line serviced while a long request executes
    and sends the BUSY keep-alives of docs/protocol.md section 3. The transmit queue is bounded
    (``tx_limit`` bytes): a frame that would overflow it is dropped, as a UART transmit ring
    would, and the host recovers it by retransmission (one log line per burst of drops).
    """

    def __init__(self, device: Device, port, baud: int = 0, exit_on_close: bool = False,
                 reset_after_bytes: int = 0) -> None:
        if baud < 0:
            raise ValueError(f"baud must be >= 0, got {baud}")
        self.device, self.port, self.baud = device, port, int(baud)
        self.exit_on_close = exit_on_close
        self.reset_after_bytes = int(reset_after_bytes)
        self.rx_bytes = 0
        self.out = bytearray()
        self.tx_limit = 4 * device.window * framing.max_wire_len(device.max_payload) + 4096
        self.tx_dropped = 0
        self._dropping = False
        self.stop = False
        self.reset_requested = False
        self._inbox: deque = deque()
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._busy_seq: tuple[int, float] | None = None
        self._busy_last = 0.0

    def request_reset(self, *_args) -> None:
        self.reset_requested = True

    def request_stop(self, *_args) -> None:
        self.stop = True

    # -- the worker: the device's execution, in arrival order ----------------------------------
    def _queue(self, item) -> None:
        with self._work:
            self._inbox.append(item)
            self._work.notify()

    def _emit(self, data: bytes) -> None:
        """Append to the bounded transmit queue (drop what does not fit)."""
        if not data:
            return
        with self._lock:
            if len(self.out) + len(data) > self.tx_limit:
                self.tx_dropped += 1
                if not self._dropping:
                    self._dropping = True
                    self.device.log(f"transmit queue full ({self.tx_limit} B): dropping frames "
                                    f"until the host reads")
                return
            self._dropping = False
            self.out += data

    def _worker(self) -> None:
        while True:
            with self._work:
                while not self._inbox and not self.stop:
                    self._work.wait(0.05)
                if self.stop and not self._inbox:
                    return
                item = self._inbox.popleft()
            if item == "reset":
                self.device.reboot()
                with self._lock:
                    self.out.clear()
            elif item == "closed":
                self.device.session = False
                self.device.decoder.reset()
                with self._lock:
                    self.out.clear()
            else:
                try:
                    reply = self.device.feed(item)
                except Exception as exc:   # pragma: no cover - the device answers everything
                    self.device.log(f"device failed on received bytes: {exc!r}")
                    reply = b""
                self._emit(reply)

    def _keepalive(self) -> None:
        ex = self.device.executing
        if ex is None:
            return
        seq, t0 = ex
        now = time.monotonic()
        if now - t0 < BUSY_AFTER:
            return
        if self._busy_seq != ex or now - self._busy_last >= BUSY_EVERY:
            self._busy_seq, self._busy_last = ex, now
            self._emit(self.device.busy_frame(seq, int((now - t0) * 1000)))

    # -- the I/O loop ----------------------------------------------------------------------------
    def run(self) -> None:
        worker = threading.Thread(target=self._worker, daemon=True)
        worker.start()
        try:
            self._loop()
        finally:
            self.stop = True
            with self._work:
                self._work.notify()
            worker.join(5)

    def _loop(self) -> None:
        byte_time = 10.0 / self.baud if self.baud else 0.0
        quantum = max(1, int(0.002 / byte_time)) if byte_time else 65536
        rx_free = tx_free = time.monotonic()
        while not self.stop:
            if self.reset_requested:
                self.reset_requested = False
                self._queue("reset")
            self._keepalive()
            now = time.monotonic()
            with self._lock:
                pending = bytes(self.out[:quantum]) if self.out and now >= tx_free else b""
            if pending:
                n = self.port.write(pending)
                with self._lock:
                    del self.out[:n]
                if byte_time:
                    tx_free = max(now - SLACK, tx_free) + n * byte_time
            now = time.monotonic()
            if now < rx_free:
                time.sleep(min(rx_free - now, 0.002))
                continue
            with self._lock:
                waiting = bool(self.out)
            busy = self.device.executing is not None or bool(self._inbox)
            wait = 0.0 if waiting else (0.002 if (byte_time or busy) else 0.05)
            data = self.port.read(quantum, wait)
            if data is None:                 # the client closed the line
                self._queue("closed")
                if self.exit_on_close:
                    return
                continue
            if not data:
                continue
            if byte_time:
                rx_free = max(now - SLACK, rx_free) + len(data) * byte_time
            if self.reset_after_bytes and self.rx_bytes < self.reset_after_bytes \
                    <= self.rx_bytes + len(data):
                cut = self.reset_after_bytes - self.rx_bytes
                self._queue(bytes(data[:cut]))
                self._queue("reset")
                self.device.log(f"injected reset after {self.reset_after_bytes} received bytes")
                self.rx_bytes += cut
                data = data[cut:]
            self.rx_bytes += len(data)
            if data:
                self._queue(bytes(data))


def install_signals(server: Server) -> None:
    signal.signal(signal.SIGUSR1, server.request_reset)
    signal.signal(signal.SIGTERM, server.request_stop)
    signal.signal(signal.SIGINT, server.request_stop)


def announce(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
