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
* url_port: any pyserial URL or device path through edgelearn.link.transport (a real UART, a
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
import time
import tty

from firmware_sim.device import Device

SLACK = 0.020   # seconds the pacing clock may lag (receive FIFO / DMA ring of a board)


class PtyPort:
    def __init__(self) -> None:
        self.master, slave = os.openpty()
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
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind((host, port))
        self.server.listen(1)
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
    """Server port over an edgelearn Transport: a pyserial URL or an in-process pipe end."""

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


def url_port(url: str) -> TransportPort:
    """Serve a device path or pyserial URL (opened through edgelearn.link.transport)."""
    from edgelearn.link.transport import open_transport
    return TransportPort(open_transport(url))


class Server:
    """Moves bytes between a port and a Device, with optional baud pacing and reset injection."""

    def __init__(self, device: Device, port, baud: int = 0, exit_on_close: bool = False,
                 reset_after_bytes: int = 0) -> None:
        self.device, self.port, self.baud = device, port, int(baud)
        self.exit_on_close = exit_on_close
        self.reset_after_bytes = int(reset_after_bytes)
        self.rx_bytes = 0
        self.out = bytearray()
        self.stop = False
        self.reset_requested = False

    def request_reset(self, *_args) -> None:
        self.reset_requested = True

    def request_stop(self, *_args) -> None:
        self.stop = True

    def run(self) -> None:
        byte_time = 10.0 / self.baud if self.baud else 0.0
        quantum = max(1, int(0.002 / byte_time)) if byte_time else 65536
        rx_free = tx_free = time.monotonic()
        while not self.stop:
            if self.reset_requested:
                self.reset_requested = False
                self.device.reboot()
                self.out.clear()
            now = time.monotonic()
            if self.out and now >= tx_free:
                n = self.port.write(bytes(self.out[:quantum]))
                del self.out[:n]
                if byte_time:
                    tx_free = max(now - SLACK, tx_free) + n * byte_time
            now = time.monotonic()
            if now < rx_free:
                time.sleep(min(rx_free - now, 0.002))
                continue
            wait = 0.0 if self.out else (0.002 if byte_time else 0.05)
            data = self.port.read(quantum, wait)
            if data is None:                 # the client closed the line
                self.device.session = False
                self.device.decoder.reset()
                self.out.clear()
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
                self.out += self.device.feed(data[:cut])
                self.device.reboot()
                self.out.clear()
                self.device.log(f"injected reset after {self.reset_after_bytes} received bytes")
                self.rx_bytes += cut
                data = data[cut:]
            self.rx_bytes += len(data)
            self.out += self.device.feed(data)


def install_signals(server: Server) -> None:
    signal.signal(signal.SIGUSR1, server.request_reset)
    signal.signal(signal.SIGTERM, server.request_stop)
    signal.signal(signal.SIGINT, server.request_stop)


def announce(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
