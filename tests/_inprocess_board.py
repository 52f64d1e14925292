"""Run a simulated board inside the current process (tests, benchmarks).

``InProcessBoard(kind="loop")`` builds a Device, connects it to the host through two crossed
pyserial ``loop://`` ports (``kind="socketpair"``: a Unix socket pair, much faster) and serves
it with the normal Server loop in a daemon thread. ``board.host`` is the host's Transport;
``board.reset()`` power-cycles the device from any thread (as SIGUSR1 does for a process).

``test_image(...)`` builds a small random integer network's device image for link tests.
"""

from __future__ import annotations

import socket
import threading

import numpy as np

from edgelearn.link.transport import Transport, loop_pair
from firmware_sim.device import Device
from firmware_sim.server import Server, TransportPort


class SocketTransport(Transport):
    """One end of a socket.socketpair (in-process, fast)."""

    def __init__(self, sock: socket.socket, url: str = "socketpair") -> None:
        self.sock, self.url = sock, url
        self.sock.settimeout(0.05)

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, timeout: float) -> bytes:
        self.sock.settimeout(max(timeout, 1e-4))
        try:
            return self.sock.recv(65536)
        except (TimeoutError, socket.timeout, BlockingIOError):
            return b""
        except OSError:
            return b""

    def close(self) -> None:
        self.sock.close()


class InProcessBoard:
    def __init__(self, kind: str = "loop", baud: int = 0, **device_kw) -> None:
        self.device = Device(baud=baud, log=device_kw.pop("log", lambda s: None), **device_kw)
        if kind == "loop":
            self.host, dev_end = loop_pair()
        elif kind == "socketpair":
            a, b = socket.socketpair()
            self.host, dev_end = SocketTransport(a), SocketTransport(b)
        else:
            raise ValueError(f"kind must be loop or socketpair, got {kind!r}")
        self.host.reset_device = self.reset
        self.server = Server(self.device, TransportPort(dev_end), baud=baud)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def reset(self) -> None:
        self.server.request_reset()

    def close(self) -> None:
        self.server.request_stop()
        self.thread.join(5)
        self.host.close()
        self.server.port.close()

    def __enter__(self) -> "InProcessBoard":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def test_qnetwork(n_in: int = 40, n_hidden: int = 32, n_out: int = 10, seed: int = 0,
                  readout: bool = False):
    """A random two-layer integer network that spikes at moderate rates on 20 % input."""
    from edgelearn.kernels.lif_fixed import QLayer, QNetwork
    rng = np.random.default_rng(seed)

    def layer(name, a, b, spiking=True):
        return QLayer(name=name, weight=rng.integers(-40, 64, (b, a)),
                      alpha=np.full(b, 3000), beta=np.full(b, 3500),
                      threshold=np.full(b, 200), spiking=spiking)

    return QNetwork(layers=(layer("hidden", n_in, n_hidden),
                            layer("out", n_hidden, n_out, spiking=not readout)), name="linktest")


def test_image(**kw) -> bytes:
    from edgelearn.kernels.image import to_image
    return to_image(test_qnetwork(**kw))


test_image.__test__ = False      # not a pytest test
test_qnetwork.__test__ = False
