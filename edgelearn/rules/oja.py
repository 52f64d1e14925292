"""Oja's rule (1982): dW_ij = eta * y_i * (x_j - y_i W_ij), float twin and fixed point.

The rule keeps |w_i| near 1 and turns each neuron into a principal-component detector. It needs
the weight itself (not rank-1), still O(n_in n_out) per step, and no extra state.

Fixed point: x, y int16 Q.act_frac, w_float = w_int 2^-w_shift (integer w_shift in 0..24 here,
because the rule mixes the weight with the activities), eta = k 2^-s (12-bit mantissa):
    num_ij = k * ((y_i x_j) << w_shift - y_i^2 w_int_ij),   dW_int = stochastic_shift(num, s + 2A)
which is exactly eta * (y x - y^2 W) in weight LSBs before rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from edgelearn.errors import InputError
from edgelearn.fixed import RngState
from edgelearn.rules import base, qmath
from edgelearn.rules.base import FixedStats

RULE = "oja"


@dataclass(frozen=True)
class Params:
    """eta > 0 learning rate; weight bounds; act_frac A (Q format of x, y); rounding."""

    eta: float = 1e-3
    w_min: float = -math.inf
    w_max: float = math.inf
    act_frac: int = 8
    rounding: str = "full"

    def __post_init__(self) -> None:
        base.check_positive(RULE, "eta", self.eta)
        base.check_bounds(RULE, self.w_min, self.w_max)
        base.check_int(RULE, "act_frac", self.act_frac, 0, 14)
        base.check_rounding(RULE, self.rounding)

    def extra_state_bytes(self, n_in: int, n_out: int, fixed: bool = True) -> int:
        base.check_size(RULE, n_in, n_out)
        return 0


class State(NamedTuple):
    """Oja's rule has no state beyond the weights."""


def init(params: Params, n_in: int, n_out: int) -> State:
    base.check_size(RULE, n_in, n_out)
    return State()


init_fixed = init


def step(pre, post, state: State, params: Params, w=None) -> tuple[np.ndarray, State]:
    """Float twin: needs the current weight ``w`` [n_out, n_in]; returns (dW, state)."""
    if w is None:
        raise InputError(f"{RULE}: step needs the current weight w")
    w = np.asarray(w, dtype=np.float64)
    n_out, n_in = w.shape
    x = base.float_input(RULE, "pre", pre, n_in)
    y = base.float_input(RULE, "post", post, n_out)
    if not np.all(np.isfinite(w)):
        raise InputError(f"{RULE}: weight has non-finite entries; update refused")
    return params.eta * (np.outer(y, x) - (y * y)[:, None] * w), state


def step_fixed(w_int8, pre_q, post_q, state: State, params: Params, rng: RngState,
               w_shift: int) -> tuple[np.ndarray, State, RngState, FixedStats]:
    """Fixed-point Oja step on int8 weights; PRNG words only for the weight update."""
    w = np.asarray(w_int8)
    if w.ndim != 2:
        raise InputError(f"{RULE}: weight must be 2-D, got {w.ndim}-D")
    n_out, n_in = w.shape
    w = base.int8_weights(RULE, w, n_in, n_out)
    base.check_int(RULE, "w_shift", w_shift, 0, 24)
    x = base.int_input(RULE, "pre", pre_q, n_in)
    y = base.int_input(RULE, "post", post_q, n_out)
    eta = qmath.encode_scale(RULE, "eta", params.eta)
    num = eta.k * ((np.outer(y, x) << w_shift) - (y * y)[:, None] * w.astype(np.int64))
    lo, hi = qmath.int_bounds(params.w_min, params.w_max, w_shift)
    w, rng, changed, clipped = qmath.apply_update(w, num, eta.s + 2 * params.act_frac, rng, lo,
                                                 hi, params.rounding)
    return w, state, rng, FixedStats(changed, clipped, 0, 0)
