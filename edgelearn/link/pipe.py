"""The byte-pipe interface every transport implements (L3, no I/O here).

``Transport.write(data)`` sends all of ``data``; ``read(timeout)`` returns the bytes that
arrived within ``timeout`` seconds (b"" if none); ``close()``; ``reset_device()`` power-cycles
the device where the transport can (a simulator). The concrete pipes are in
edgelearn.link.transport (pyserial ports, loop pairs, a simulator process) and
edgelearn.link.faults (fault injection around any pipe).
"""

from __future__ import annotations

import abc

from edgelearn.errors import LinkError


class Transport(abc.ABC):
    """Interface of every byte pipe (see module docstring)."""

    url = ""

    @abc.abstractmethod
    def write(self, data: bytes) -> None:
        """Send all of ``data`` (raises LinkError if the line is gone or stuck)."""

    @abc.abstractmethod
    def read(self, timeout: float) -> bytes:
        """Bytes that arrived within ``timeout`` seconds (b"" if none)."""

    def close(self) -> None:
        pass

    def reset_device(self) -> None:
        raise LinkError(f"transport {self.url!r} cannot reset its device")

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
