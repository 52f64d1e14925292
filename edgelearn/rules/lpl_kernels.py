"""One interface over the two implementations of the fixed-point LPL step (TFLM style).

* ``reference``: :func:`edgelearn.rules.lpl_rate.step_codes`, the readable specification
  (docs/learning-rules.md section 3), bound to a weight matrix and a state;
* ``optimised``: :class:`edgelearn.rules.lpl_rate_fast.LPLRateFast`, the same integers with
  preallocated buffers, block-hashed PRNG words and event-driven updates (no covariance state).

:func:`bind` returns either behind the same methods: ``step(pre, post, rng, shift, stats,
spikes) -> (rng, FixedStats | None, ran)`` updating the bound int8 weights and state in place
(``w_changed`` says whether a weight moved), ``flush()`` (write working copies back into the
state arrays) and ``reload()`` (after an outside write). Both run on the shared vectors
(tests/vectors/, tests/test_lpl_kernels.py).
"""

from __future__ import annotations

import numpy as np

from edgelearn.errors import ParameterError
from edgelearn.fixed import RngState
from edgelearn.rules import lpl_rate
from edgelearn.rules.base import FixedStats
from edgelearn.rules.lpl_codes import Codes, State
from edgelearn.rules.lpl_rate_fast import LPLRateFast

IMPLEMENTATIONS = ("reference", "optimised")


class ReferenceLPL:
    """:func:`lpl_rate.step_codes` bound to ``weight`` and ``state`` (both written in place)."""

    def __init__(self, codes: Codes, weight: np.ndarray, state: State) -> None:
        self.codes, self.w, self.state = codes, weight, state
        self.w_changed = False

    def step(self, pre: np.ndarray, post: np.ndarray, rng: RngState, shift: int = 0,
             stats: bool = False, spikes: bool = False
             ) -> tuple[RngState, FixedStats | None, bool]:
        w, st, rng, s = lpl_rate.step_codes(
            self.w, np.asarray(pre, np.int64) << shift, np.asarray(post, np.int64) << shift,
            self.state, self.codes, rng)
        self.w_changed = s.n_changed > 0
        if self.w_changed:
            self.w[...] = w
        for dst, src in zip(self.state, st):
            if dst.size:
                dst[...] = src
        return rng, (s if stats else None), not s.skipped

    def flush(self) -> None:
        """Nothing to write back: the state arrays are updated every step."""

    def reload(self) -> None:
        """Nothing cached: the next step reads the arrays."""


def bind(codes: Codes, weight: np.ndarray, state: State, impl: str = "optimised"):
    """The LPL step of ``impl`` bound to ``weight`` and ``state``. The optimised step has no
    covariance state; for a block with decorrelation it is the reference step."""
    if impl not in IMPLEMENTATIONS:
        raise ParameterError(f"LPL implementation must be one of {IMPLEMENTATIONS}, got "
                             f"{impl!r}")
    if impl == "optimised" and not codes.decorr:
        return LPLRateFast(codes, weight, state, write_back=False)
    return ReferenceLPL(codes, weight, state)
