"""What every deployment target offers the adaptation loop.

A target holds one deployed model (an integer SNN plus, optionally, an hEP head) and runs it one
sample at a time. The loop only ever talks to this interface, so host, simulated board, serial
board and substrate are interchangeable.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from edgelearn.errors import TargetError


@dataclass
class SampleResult:
    """The outcome of one sample: predicted class, class scores, hidden spike counts."""

    prediction: int
    scores: np.ndarray
    features: np.ndarray | None = None
    spikes: int = 0


@dataclass
class Telemetry:
    steps: int = 0
    spikes: int = 0
    lpl_updates: int = 0
    hep_updates: int = 0
    arena_high_water: int = 0
    arena_size: int = 0
    extra: dict = field(default_factory=dict)


class Target(ABC):
    """A deployed model that predicts, learns, and reports."""

    name: str = "target"
    #: what the target can do: subset of {"lpl", "hep", "pull"}
    capabilities: frozenset = frozenset()
    #: the memory plan it was deployed with (edgelearn.adapt.session.make_target sets it)
    plan = None

    @abstractmethod
    def infer(self, x: np.ndarray) -> SampleResult:
        """Run one sample ``x`` [T, n_in] (integer counts); LPL learns during it if enabled."""

    def teach(self, label: int) -> None:
        """Supervised update (hEP) from the last sample's features and its label."""
        raise TargetError(f"target '{self.name}' cannot learn from labels")

    def set_learning(self, lpl: bool, hep: bool) -> None:
        """Switch the on-device rules on or off."""
        if lpl or hep:
            raise TargetError(f"target '{self.name}' has no on-device learning")

    @abstractmethod
    def get_weights(self) -> dict[str, np.ndarray]:
        """Everything learning can change, by name (int8 layer weights, head arrays)."""

    @abstractmethod
    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`get_weights` returned (rollback, resume)."""

    @abstractmethod
    def telemetry(self) -> Telemetry:
        """Counters and the arena high-water mark."""

    def close(self) -> None:
        """Release the device (processes, ports)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
