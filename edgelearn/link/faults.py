"""Byte-level fault injection for any transport (what real serial lines do to bytes).

Each byte passing through a :class:`FaultyTransport` (both directions, independently) suffers a
fault with probability ``rate``; the kind is drawn uniformly from ``kinds``:

    drop    the byte is lost                          (overrun, lost sync)
    flip    one random bit of the byte is inverted    (noise)
    dup     the byte is delivered twice               (bounce, retransmitting modem)
    insert  a random byte is inserted before it       (glitch on an idle line)

``reset_at=N`` power-cycles the device (``inner.reset_device()`` or the ``on_reset`` callback)
once the host has written N bytes, i.e. in the middle of whatever is being sent. All draws
come from ``numpy.random.default_rng(seed)``, so a run is reproducible for a given seed and
chunking of the traffic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from edgelearn.errors import LinkError
from edgelearn.link.pipe import Transport

KINDS = ("drop", "flip", "dup", "insert")


@dataclass(frozen=True)
class FaultConfig:
    """Fault rates. rate: probability per byte (0..0.5); kinds: subset of KINDS;
    seed: PRNG seed; reset_at: host bytes written before a device reset (0: never);
    directions: 'both', 'tx' (host -> device only) or 'rx' (device -> host only)."""

    rate: float = 0.0
    seed: int = 0
    kinds: tuple[str, ...] = KINDS
    reset_at: int = 0
    directions: str = "both"

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 0.5:
            raise LinkError(f"fault rate must be in [0, 0.5], got {self.rate}")
        kinds = tuple(self.kinds)
        bad = [k for k in kinds if k not in KINDS]
        if bad or not kinds:
            raise LinkError(f"fault kinds must be a non-empty subset of {KINDS}, got {kinds}")
        object.__setattr__(self, "kinds", kinds)
        if self.directions not in ("both", "tx", "rx"):
            raise LinkError(f"fault directions must be both, tx or rx, got {self.directions!r}")
        if self.reset_at < 0:
            raise LinkError(f"reset_at must be >= 0 bytes, got {self.reset_at}")

    KEYS = ("rate", "seed", "kinds", "reset_at", "directions")

    @classmethod
    def from_query(cls, query: dict[str, str]) -> "FaultConfig":
        """Build from URL query values (strings); unknown keys are the caller's business."""
        try:
            return cls(rate=float(query.get("rate", 0.0)), seed=int(query.get("seed", 0)),
                       kinds=tuple(k for k in query.get("kinds", ",".join(KINDS)).split(",")
                                   if k),
                       reset_at=int(query.get("reset_at", 0)),
                       directions=query.get("directions", "both"))
        except ValueError as exc:
            raise LinkError(f"bad fault option in URL: {exc}") from None


def corrupt(data: bytes, rate: float, kinds: tuple[str, ...], rng: np.random.Generator
            ) -> tuple[bytes, int]:
    """Apply faults to ``data``; returns (new bytes, number of faults)."""
    if rate <= 0 or not data:
        return bytes(data), 0
    hits = np.flatnonzero(rng.random(len(data)) < rate)
    if hits.size == 0:
        return bytes(data), 0
    out = bytearray()
    prev = 0
    for i in hits:
        out += data[prev:i]
        kind = kinds[int(rng.integers(len(kinds)))]
        b = data[i]
        if kind == "flip":
            out.append(b ^ (1 << int(rng.integers(8))))
        elif kind == "dup":
            out += bytes((b, b))
        elif kind == "insert":
            out += bytes((int(rng.integers(256)), b))
        # drop: nothing
        prev = i + 1
    out += data[prev:]
    return bytes(out), int(hits.size)


class FaultyTransport(Transport):
    """Wrap ``inner`` and damage bytes in both directions (see the module docstring)."""

    def __init__(self, inner: Transport, config: FaultConfig,
                 on_reset: Callable[[], None] | None = None) -> None:
        self.inner, self.config = inner, config
        self.url = f"faulty:{inner.url}"
        self.rng = np.random.default_rng(config.seed)
        self.on_reset = on_reset
        self.written = 0
        self.faults_tx = self.faults_rx = 0
        self.resets = 0

    def write(self, data: bytes) -> None:
        cfg = self.config
        if cfg.reset_at and self.written < cfg.reset_at <= self.written + len(data):
            cut = cfg.reset_at - self.written
            self._send(data[:cut])
            self.written += cut
            self.reset_device()
            data = data[cut:]
        self._send(data)
        self.written += len(data)

    def _send(self, data: bytes) -> None:
        if self.config.directions in ("both", "tx"):
            data, n = corrupt(data, self.config.rate, self.config.kinds, self.rng)
            self.faults_tx += n
        if data:
            self.inner.write(data)

    def read(self, timeout: float) -> bytes:
        data = self.inner.read(timeout)
        if data and self.config.directions in ("both", "rx"):
            data, n = corrupt(data, self.config.rate, self.config.kinds, self.rng)
            self.faults_rx += n
        return data

    def reset_device(self) -> None:
        self.resets += 1
        if self.on_reset is not None:
            self.on_reset()
        else:
            self.inner.reset_device()

    def close(self) -> None:
        self.inner.close()
