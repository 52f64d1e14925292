"""Minimal triplet STDP with homeostatic depression (Pfister & Gerstner 2006; Zenke et al. 2013),
after Auryn's TripletConnection. Float twin and fixed point; spikes in, per-step update.

Traces (each +1 per spike, decaying with exp(-dt/tau) per step):
    x_j   presynaptic, tau_plus       y_i  postsynaptic, tau_minus
    y2_i  postsynaptic, tau_long      h_i  postsynaptic rate estimate, tau_hom  (h / tau_hom ~ rate)

Per step t: (1) all traces decay one step; (2) on a presynaptic spike S_j:
    dW_ij -= hom_fudge * y_i * h_i^2 ,   hom_fudge = A3 tau_plus tau_long / (tau_minus kappa tau_hom^2)
(3) on a postsynaptic spike S_i:  dW_ij += A3 * x_j * y2_i ; (4) traces += spikes.
Traces used in (2) and (3) are the ones *before* this step's spikes are added (a pre and a post
spike in the same step do not see each other). Weights are clipped to [w_min, w_max].

Fixed point: traces int32 Q.trace_frac with rate-coded stochastic decay; factors Q.factor_frac;
update = stochastic_shift(pot_i * x_j - dep_i * (S_j << T), factor_frac + trace_frac).
Memory: 4 bytes per input (x) + 12 bytes per output (y, y2, h); no per-synapse state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from edgelearn.errors import ParameterError
from edgelearn.fixed import RngState, round_shift
from edgelearn.rules import base, qmath
from edgelearn.rules.base import FixedStats

RULE = "triplet_stdp"


@dataclass(frozen=True)
class Params:
    """Triplet STDP constants (Auryn TripletConnection defaults). Times in seconds, rates in Hz.

    Attributes:
        a3_plus: triplet potentiation amplitude (6.5e-3).  tau_plus, tau_minus, tau_long,
        tau_hom: trace time constants (16.8 ms, 33.7 ms, 114 ms, 10 s). kappa: target rate (3 Hz).
        dt: simulation step (s). w_min, w_max: weight bounds (float weight units).
        trace_frac, factor_frac: fixed-point fraction bits (sum <= 32). rounding: "full"|"dither".
    """

    a3_plus: float = 6.5e-3
    tau_plus: float = 16.8e-3
    tau_minus: float = 33.7e-3
    tau_long: float = 114e-3
    tau_hom: float = 10.0
    kappa: float = 3.0
    dt: float = 1e-3
    w_min: float = 0.0
    w_max: float = 1.0
    trace_frac: int = 12
    factor_frac: int = 20
    rounding: str = "full"

    def __post_init__(self) -> None:
        for name in ("a3_plus", "tau_plus", "tau_minus", "tau_long", "tau_hom", "kappa", "dt"):
            base.check_positive(RULE, name, getattr(self, name))
        base.check_bounds(RULE, self.w_min, self.w_max)
        base.check_int(RULE, "trace_frac", self.trace_frac, 4, 16)
        base.check_int(RULE, "factor_frac", self.factor_frac, 1, 28)
        if self.trace_frac + self.factor_frac > base.MAX_SHIFT:
            raise ParameterError(f"{RULE}: trace_frac + factor_frac must be <= 32")
        base.check_rounding(RULE, self.rounding)

    @property
    def hom_fudge(self) -> float:
        return (self.a3_plus * self.tau_plus * self.tau_long
                / (self.tau_minus * self.kappa * self.tau_hom ** 2))

    def taus(self) -> tuple[float, float, float, float]:
        return self.tau_plus, self.tau_minus, self.tau_long, self.tau_hom

    def extra_state_bytes(self, n_in: int, n_out: int, fixed: bool = True) -> int:
        base.check_size(RULE, n_in, n_out)
        return 4 * n_in + 12 * n_out      # int32 or float32 alike


class State(NamedTuple):
    """x_pre [n_in], y_post [n_out], y_long [n_out], hom [n_out] (float32 or int32 Q.T)."""

    x_pre: np.ndarray
    y_post: np.ndarray
    y_long: np.ndarray
    hom: np.ndarray


def _alloc(n_in: int, n_out: int, dtype) -> State:
    base.check_size(RULE, n_in, n_out)
    return State(np.zeros(n_in, dtype), np.zeros(n_out, dtype), np.zeros(n_out, dtype),
                 np.zeros(n_out, dtype))


def init(params: Params, n_in: int, n_out: int) -> State:
    return _alloc(n_in, n_out, np.float32)


def init_fixed(params: Params, n_in: int, n_out: int) -> State:
    return _alloc(n_in, n_out, np.int32)


def step(pre, post, state: State, params: Params) -> tuple[np.ndarray, State]:
    """Float twin: spikes pre [n_in], post [n_out] (0/1) -> (dW [n_out, n_in], state)."""
    n_in, n_out = state.x_pre.shape[0], state.y_post.shape[0]
    s_pre = base.spikes_input(RULE, "pre", pre, n_in).astype(np.float64)
    s_post = base.spikes_input(RULE, "post", post, n_out).astype(np.float64)
    c = [np.exp(-params.dt / tau) for tau in params.taus()]
    x, y, y2, h = (a.astype(np.float64) * ci for a, ci in zip(state, c))
    dw = (np.outer(params.a3_plus * y2 * s_post, x)
          - np.outer(params.hom_fudge * y * h * h, s_pre))
    new = State(*(np.asarray(a, np.float32) for a in
                  (x + s_pre, y + s_post, y2 + s_post, h + s_post)))
    return dw, new


def step_fixed(w_int8, pre, post, state: State, params: Params, rng: RngState, w_shift: float
               ) -> tuple[np.ndarray, State, RngState, FixedStats]:
    """Fixed-point step on int8 weights (w = w_int 2^-w_shift). PRNG order: decay of x, y, y2,
    h (n_in + 3 n_out words), then the weight update."""
    n_in, n_out = state.x_pre.shape[0], state.y_post.shape[0]
    w = base.int8_weights(RULE, w_int8, n_in, n_out)
    base.check_w_shift(RULE, w_shift)
    s_pre = base.spikes_input(RULE, "pre", pre, n_in)
    s_post = base.spikes_input(RULE, "post", post, n_out)
    T, P = params.trace_frac, params.factor_frac
    codes = tuple(qmath.decay_code(RULE, "trace", tau / params.dt) for tau in params.taus())
    (x, y, y2, h), rng = qmath.decay_traces_fixed(tuple(state), codes, rng)
    scale = 2.0 ** float(w_shift)
    pot = qmath.to_factor(y2 * s_post, T, qmath.encode_scale(RULE, "a3_plus", params.a3_plus * scale), P)
    h2, nsat = qmath.saturate_count(round_shift(h * h, T), 32)
    dep = qmath.to_factor(y * h2, 2 * T,
                         qmath.encode_scale(RULE, "hom_fudge", params.hom_fudge * scale), P)
    num = pot[:, None] * x[None, :] - dep[:, None] * (s_pre << T)[None, :]
    lo, hi = qmath.int_bounds(params.w_min, params.w_max, w_shift)
    w, rng, changed, clipped = qmath.apply_update(w, num, P + T, rng, lo, hi, params.rounding)
    one = 1 << T
    outs = []
    for a, s in ((x, s_pre), (y, s_post), (y2, s_post), (h, s_post)):
        a, k = qmath.saturate_count(a + s * one, 32)
        nsat += k
        outs.append(a.astype(np.int32))
    return w, State(*outs), rng, FixedStats(changed, clipped, nsat, 0)
