"""Byte pipes to a device, opened by URL (L3; the only module family that imports pyserial).

    /dev/ttyACM0, COM3, socket://host:port, loop://, rfc2217://...   pyserial serial_for_url
    sim  or  sim?profile=... or sim://?profile=cortex-m4-256k&ram=256KiB&flash=1MiB&baud=115200&flash_file=F
         start ``python -m firmware_sim --pty`` and open the slave path it prints
         (``impl=c``: the C firmware's host build with the same options)
    qemu  or  qemu?machine=mps2-an385&ram=262144&flash=1048576
         build the C firmware for Cortex-M3 (mps2-an385) or Cortex-M4F (mps2-an386) with that
         RAM arena and flash (bytes), start qemu-system-arm with UART0 on a local TCP port and
         connect to it; closing the link ends QEMU, reset_device() is QEMU's system_reset
    faulty:<inner-url>?rate=1e-3&seed=1&kinds=drop,flip,dup,insert&reset_at=N
         any of the above wrapped in byte-level fault injection (faults.py); query keys that
         are not fault options are handed back to the inner URL (e.g. sim options)

A :class:`Transport` has ``write(bytes)``, ``read(timeout) -> bytes`` (b"" when nothing came),
``close()`` and, where the far end can be power-cycled, ``reset_device()``. Options for the
pyserial URL handlers travel in the URL itself (e.g. ``socket://127.0.0.1:7000``); baudrate
is the ``baudrate`` argument (ignored by pty, socket and loop).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from urllib.parse import parse_qsl, urlencode

import serial

from edgelearn.errors import LinkError
from edgelearn.link.pipe import Transport

READ_CHUNK = 65536
# seconds a simulator or QEMU may take to come up (a Python start with numpy takes seconds on
# a loaded machine); a process that exits is reported at once
STARTUP_TIMEOUT = 60.0


class SerialTransport(Transport):
    """A pyserial port (any object from serial_for_url)."""

    def __init__(self, port, url: str = "") -> None:
        self.port = port
        self.url = url or getattr(port, "portstr", "") or "serial"
        self._timeout = None

    def write(self, data: bytes) -> None:
        try:
            self.port.write(data)
        except serial.SerialTimeoutException:
            raise LinkError(f"write to {self.url} timed out after {self.port.write_timeout} s "
                            f"(device not reading?)") from None
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"write to {self.url} failed: {exc}") from None

    def read(self, timeout: float) -> bytes:
        # a few fixed timeouts: changing it reconfigures a real port (tcsetattr)
        t = 0 if timeout <= 0 else 0.002 if timeout < 0.01 else 0.01 if timeout < 0.05 else 0.05
        try:
            if t != self._timeout:
                self.port.timeout = self._timeout = t
            data = self.port.read(min(max(1, self.port.in_waiting), READ_CHUNK))
            if data:
                more = self.port.in_waiting
                if more:
                    data += self.port.read(min(more, READ_CHUNK))
            return data
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"read from {self.url} failed: {exc}") from None

    def close(self) -> None:
        try:
            self.port.close()
        except (serial.SerialException, OSError):
            pass


def open_serial(url: str, baudrate: int = 115200, write_timeout: float = 10.0) -> SerialTransport:
    """Open ``url`` with pyserial's serial_for_url; errors become one-line LinkErrors."""
    try:
        port = serial.serial_for_url(url, baudrate=baudrate, timeout=0.05,
                                     write_timeout=write_timeout)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise LinkError(f"cannot open {url!r}: {exc}") from None
    return SerialTransport(port, url)


class CrossedTransport(Transport):
    """One end of an in-process pipe pair built from two pyserial loop:// ports."""

    def __init__(self, tx, rx, url: str) -> None:
        self.tx, self.rx, self.url = SerialTransport(tx, url), SerialTransport(rx, url), url

    def write(self, data: bytes) -> None:
        self.tx.write(data)

    def read(self, timeout: float) -> bytes:
        return self.rx.read(timeout)

    def close(self) -> None:
        self.tx.close()
        self.rx.close()


def loop_pair() -> tuple[CrossedTransport, CrossedTransport]:
    """(host end, device end) of an in-process link made of two pyserial ``loop://`` ports.

    A single loop:// port echoes to itself; crossing two gives each side its own direction.
    """
    a = serial.serial_for_url("loop://", timeout=0.05, write_timeout=10.0)
    b = serial.serial_for_url("loop://", timeout=0.05, write_timeout=10.0)
    return CrossedTransport(a, b, "loop://"), CrossedTransport(b, a, "loop://")


class SimTransport(Transport):
    """A firmware_sim child process on a pseudo-terminal; closing the link ends the process.

    The simulator's own log (its stderr) goes to a temporary file instead of the terminal, so
    the host's output stays its own; :meth:`log_tail` returns its last line (shown when the
    simulator does not start)."""

    def __init__(self, args: list[str], startup_timeout: float = STARTUP_TIMEOUT) -> None:
        cmd = [sys.executable, "-m", "firmware_sim", "--pty", "--exit-on-close", *args]
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     stderr=self.log, text=True)
        line = self._first_line(startup_timeout)
        if not line.startswith("/"):
            self._stop(keep_log=True)
            tail = self.log_tail()
            self.log.close()
            raise LinkError(f"firmware_sim did not start ({tail or line}); command: "
                            f"{' '.join(cmd)}")
        self.slave = line
        self.url = f"sim:{line}"
        self.inner = open_serial(line)

    def _first_line(self, timeout: float) -> str:
        import selectors
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sel.select(0.1):
                return self.proc.stdout.readline().strip()
            if self.proc.poll() is not None:
                return f"<firmware_sim exited with code {self.proc.returncode}>"
        return "<timeout>"

    def log_tail(self, limit: int = 4096) -> str:
        """The last line the simulator wrote on its stderr ('' if none)."""
        try:
            size = self.log.seek(0, os.SEEK_END)
            self.log.seek(max(0, size - limit))
            text = self.log.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""
        return text.splitlines()[-1][:300] if text else ""

    def write(self, data: bytes) -> None:
        self.inner.write(data)

    def read(self, timeout: float) -> bytes:
        return self.inner.read(timeout)

    def reset_device(self) -> None:
        """Power-cycle the simulated board (SIGUSR1: RAM and session lost, flash kept)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGUSR1)

    def _stop(self, keep_log: bool = False) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        if not keep_log:
            self.log.close()

    def close(self) -> None:
        if getattr(self, "inner", None) is not None:
            self.inner.close()
        self._stop()


QEMU_MACHINES = {"mps2-an385": "device-cm3", "mps2-an386": "device-cm4f"}
QEMU_OPTS = {"machine", "ram", "flash"}


class QemuTransport(Transport):
    """The C firmware (firmware/) on qemu-system-arm, UART0 on a TCP chardev (``nodelay``:
    without it every reply waits for delayed TCP acknowledgements)."""

    def __init__(self, machine: str = "mps2-an385", ram: int = 262144, flash: int = 1 << 20,
                 startup_timeout: float = STARTUP_TIMEOUT) -> None:
        import shutil
        import socket
        import tempfile

        from edgelearn.kernels import cbuild

        if machine not in QEMU_MACHINES:
            raise LinkError(f"unknown QEMU machine {machine!r}; known: "
                            f"{', '.join(QEMU_MACHINES)}")
        if not shutil.which("qemu-system-arm"):
            raise LinkError("qemu-system-arm is not installed (apt-get install qemu-system-arm)")
        try:
            elf = cbuild.build(QEMU_MACHINES[machine], defines={"EL_RAM": int(ram),
                                                                "EL_FLASH": int(flash)})
        except cbuild.BuildError as exc:
            raise LinkError(str(exc)) from None
        with socket.socket() as probe:              # a free local port for the chardev
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self._tmp = tempfile.TemporaryDirectory(prefix="edgelearn-qemu-")
        self.monitor = os.path.join(self._tmp.name, "monitor.sock")
        cmd = ["qemu-system-arm", "-M", machine, "-nographic", "-monitor",
               f"unix:{self.monitor},server=on,wait=off", "-serial",
               f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on", "-kernel", str(elf)]
        self._log = open(os.path.join(self._tmp.name, "qemu.log"), "w+b")   # never a full pipe
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        self.url = f"qemu:{machine}@127.0.0.1:{port}"
        deadline = time.monotonic() + startup_timeout
        while True:
            try:
                self.inner = open_serial(f"socket://127.0.0.1:{port}")
                break
            except LinkError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self._log.seek(0)
                    err = self._log.read().decode(errors="replace").strip()[:200] \
                        if self.proc.poll() is not None else "timeout"
                    self.close()
                    raise LinkError(f"QEMU did not start: {err}; command: {' '.join(cmd)}") \
                        from None
                time.sleep(0.05)

    def write(self, data: bytes) -> None:
        self.inner.write(data)

    def read(self, timeout: float) -> bytes:
        return self.inner.read(timeout)

    def reset_device(self) -> None:
        """Power-cycle the emulated board (QEMU system_reset: RAM lost, flash kept)."""
        import socket
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(self.monitor)
            s.sendall(b"system_reset\n")
            time.sleep(0.1)

    def close(self) -> None:
        if getattr(self, "inner", None) is not None:
            self.inner.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        self._tmp.cleanup()


def open_qemu(query: dict[str, str]) -> QemuTransport:
    unknown = set(query) - QEMU_OPTS
    if unknown:
        raise LinkError(f"unknown qemu option {sorted(unknown)[0]!r}; known: "
                        f"{', '.join(sorted(QEMU_OPTS))}")
    try:
        ram = int(query.get("ram", 262144))
        flash = int(query.get("flash", 1 << 20))
    except ValueError:
        raise LinkError("qemu ram and flash are byte counts, e.g. ram=262144") from None
    return QemuTransport(query.get("machine", "mps2-an385"), ram, flash)


_SIM_OPTS = {"profile", "ram", "flash", "baud", "flash_file", "max_payload", "window", "seed",
             "protocol_version", "reset_after_bytes", "impl"}


def _split_query(rest: str) -> tuple[str, dict[str, str]]:
    base, _, query = rest.partition("?")
    return base, dict(parse_qsl(query, keep_blank_values=True))


def open_sim(query: dict[str, str]) -> SimTransport:
    args: list[str] = []
    for key, value in query.items():
        if key not in _SIM_OPTS:
            raise LinkError(f"unknown sim option {key!r}; known: {', '.join(sorted(_SIM_OPTS))}")
        args += [f"--{key.replace('_', '-')}", value]
    return SimTransport(args)


def open_transport(url: str, baudrate: int = 115200) -> Transport:
    """Open a transport by URL (see the module docstring for the schemes)."""
    if url.startswith("faulty:"):
        from edgelearn.link.faults import FaultConfig, FaultyTransport
        rest = url[len("faulty:"):]
        if rest.startswith("//"):
            rest = rest[2:]
        inner_url, query = _split_query(rest)
        cfg = FaultConfig.from_query(query)
        left = {k: v for k, v in query.items() if k not in FaultConfig.KEYS}
        if left:
            inner_url += "?" + urlencode(left)
        return FaultyTransport(open_transport(inner_url, baudrate), cfg)
    if url == "sim" or url.startswith(("sim:", "sim?")):
        _, query = _split_query(url)
        return open_sim(query)
    if url == "qemu" or url.startswith(("qemu:", "qemu?")):
        _, query = _split_query(url)
        return open_qemu(query)
    return open_serial(url, baudrate)
