"""HEPParams: the learning settings of real-valued hEP, with the memory-cost protocol.

``extra_state_bytes(n_in, n_out, fixed=True)`` (edgelearn.rules.base.StateBytes) is the learning
state hEP needs on one n_out x n_in layer of the head: one 32-bit accumulator per weight and per
bias (float32, or int32 when ``fixed``) plus one 32-bit relaxing state per unit (per sample).
It equals the summed nbytes of :meth:`HEPParams.init_state` (tested). The whole head also holds
the one-hot target (n_out values): see memory.hep_memory_bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from edgelearn.errors import ParameterError


class HEPLayerState(NamedTuple):
    """acc_w [n_out, n_in], acc_b [n_out]: the accumulators; z [n_out]: the relaxing state."""

    acc_w: np.ndarray
    acc_b: np.ndarray
    z: np.ndarray


@dataclass(frozen=True)
class HEPParams:
    """amplitude: oscillation amplitude b (units of the cross-entropy nudge, > 0);
    nudges: distinct nudge values (>= 2); lr: SGD step size (> 0)."""

    amplitude: float = 0.5
    nudges: int = 6
    lr: float = 0.05

    def __post_init__(self) -> None:
        if not (self.amplitude > 0 and np.isfinite(self.amplitude)):
            raise ParameterError(f"HEPParams.amplitude must be > 0, got {self.amplitude}")
        if int(self.nudges) < 2:
            raise ParameterError(f"HEPParams.nudges must be >= 2, got {self.nudges}")
        if not (self.lr > 0 and np.isfinite(self.lr)):
            raise ParameterError(f"HEPParams.lr must be > 0, got {self.lr}")

    def init_state(self, n_in: int, n_out: int, fixed: bool = True) -> HEPLayerState:
        dt = np.int32 if fixed else np.float32
        return HEPLayerState(np.zeros((n_out, n_in), dt), np.zeros(n_out, dt), np.zeros(n_out, dt))

    def extra_state_bytes(self, n_in: int, n_out: int, fixed: bool = True) -> int:
        if int(n_in) < 1 or int(n_out) < 1:
            raise ParameterError(f"HEPParams.extra_state_bytes needs n_in, n_out >= 1, got "
                                 f"{n_in}, {n_out}")
        return 4 * (int(n_in) * int(n_out) + 2 * int(n_out))
