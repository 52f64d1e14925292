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

A block with a learning epoch (``codes.epoch_log2`` = e > 0) binds :class:`EpochLPL` around
either: it sums the time steps' activities in the state's epoch arrays and runs the inner step
once every 2^e calls on the sums shifted by ``shift - e`` (the epoch means in Q.act_frac).
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


class EpochLPL:
    """The learning epoch around an inner step (k = 2^e, e = codes.epoch_log2 > 0): per call

        epoch_pre += pre;  epoch_post += post;  epoch_steps += 1
        if epoch_steps == k:  inner.step(epoch_pre, epoch_post, rng, shift - e, spikes=False)
                              (pre, post = sum << (shift - e) = the epoch means in Q.A, exact);
                              epoch_pre = epoch_post = 0, epoch_steps = 0

    The sums live in the state's arrays (int32; written every call, so pull/restore sees them
    at any point). PRNG words are drawn only when the inner step runs; ``ran`` is True only
    then (and not in warm-up). The caller promises what the inner step does: int activities
    whose epoch means << A fit int16 (they do when every pre << shift does)."""

    def __init__(self, codes: Codes, inner, state: State) -> None:
        self.inner, self.state = inner, state
        self.e = int(codes.epoch_log2)
        self.k = 1 << self.e
        self.acc_pre, self.acc_post = state.epoch_pre, state.epoch_post
        self.n_arr = state.epoch_steps
        self.w_changed = False
        self.n = int(self.n_arr[0])

    def step(self, pre: np.ndarray, post: np.ndarray, rng: RngState, shift: int = 0,
             stats: bool = False, spikes: bool = False
             ) -> tuple[RngState, FixedStats | None, bool]:
        np.add(self.acc_pre, pre, out=self.acc_pre, casting="unsafe")
        np.add(self.acc_post, post, out=self.acc_post, casting="unsafe")
        n = self.n + 1
        if n < self.k:
            self.n = n
            self.n_arr[0] = n
            self.w_changed = False
            return rng, None, False
        rng, s, ran = self.inner.step(self.acc_pre, self.acc_post, rng, shift - self.e, stats,
                                      False)
        self.w_changed = ran and self.inner.w_changed
        self.acc_pre[...] = 0
        self.acc_post[...] = 0
        self.n = 0
        self.n_arr[0] = 0
        return rng, s, ran

    def flush(self) -> None:
        """The inner step's working copies into the state (the sums are always there)."""
        self.inner.flush()

    def reload(self) -> None:
        """After an outside write of the weights or the state."""
        self.n = int(self.n_arr[0])
        self.inner.reload()


def bind(codes: Codes, weight: np.ndarray, state: State, impl: str = "optimised"):
    """The LPL step of ``impl`` bound to ``weight`` and ``state``. The optimised step has no
    covariance state; for a block with decorrelation it is the reference step. With a
    learning epoch (codes.epoch_log2 > 0) the step is :class:`EpochLPL` around it."""
    if impl not in IMPLEMENTATIONS:
        raise ParameterError(f"LPL implementation must be one of {IMPLEMENTATIONS}, got "
                             f"{impl!r}")
    if impl == "optimised" and not codes.decorr:
        inner = LPLRateFast(codes, weight, state, write_back=False)
    else:
        inner = ReferenceLPL(codes, weight, state)
    return EpochLPL(codes, inner, state) if codes.epoch_log2 > 0 else inner
