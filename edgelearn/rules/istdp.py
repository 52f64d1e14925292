"""Inhibitory STDP of Vogels et al. (2011), float twin and fixed point.

Traces x_j (pre) and x_i (post), each +1 per spike and decaying with exp(-dt/tau) per step.
Per step: (1) traces decay; (2) on a presynaptic spike S_j: dW_ij += eta (x_i - alpha),
alpha = 2 rho0 tau (depression when the postsynaptic neuron is below the target rate rho0);
(3) on a postsynaptic spike S_i: dW_ij += eta x_j; (4) traces += spikes. Traces in (2), (3) are
the ones before this step's spikes. Weights are inhibitory *magnitudes*, clipped to
[w_min, w_max] (default [0, 1]); the sign is the layer's business.

Fixed point: traces int32 Q.trace_frac (rate-coded stochastic decay), update numerator
(eta 2^w_shift as mantissa/exponent) ``a_i (S_j << T) + b_i x_j``, stochastic_shift by P + T.
Memory: 4 bytes per input + 4 per output; no per-synapse state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from edgelearn.errors import ParameterError
from edgelearn.fixed import RngState
from edgelearn.rules import base, qmath
from edgelearn.rules.base import FixedStats

RULE = "istdp"


@dataclass(frozen=True)
class Params:
    """Vogels 2011 iSTDP: eta (1e-4), rho0 target rate in Hz (3), tau trace in s (20 ms),
    dt step in s, weight bounds, fixed-point fraction bits (sum <= 32), rounding."""

    eta: float = 1e-4
    rho0: float = 3.0
    tau: float = 20e-3
    dt: float = 1e-3
    w_min: float = 0.0
    w_max: float = 1.0
    trace_frac: int = 12
    factor_frac: int = 20
    rounding: str = "full"

    def __post_init__(self) -> None:
        for name in ("eta", "rho0", "tau", "dt"):
            base.check_positive(RULE, name, getattr(self, name))
        base.check_bounds(RULE, self.w_min, self.w_max)
        base.check_int(RULE, "trace_frac", self.trace_frac, 4, 16)
        base.check_int(RULE, "factor_frac", self.factor_frac, 1, 28)
        if self.trace_frac + self.factor_frac > base.MAX_SHIFT:
            raise ParameterError(f"{RULE}: trace_frac + factor_frac must be <= 32")
        base.check_rounding(RULE, self.rounding)

    @property
    def alpha(self) -> float:
        return 2.0 * self.rho0 * self.tau

    def extra_state_bytes(self, n_in: int, n_out: int, fixed: bool = True) -> int:
        base.check_size(RULE, n_in, n_out)
        return 4 * n_in + 4 * n_out


class State(NamedTuple):
    """x_pre [n_in], x_post [n_out] (float32, or int32 Q.trace_frac)."""

    x_pre: np.ndarray
    x_post: np.ndarray


def init(params: Params, n_in: int, n_out: int) -> State:
    base.check_size(RULE, n_in, n_out)
    return State(np.zeros(n_in, np.float32), np.zeros(n_out, np.float32))


def init_fixed(params: Params, n_in: int, n_out: int) -> State:
    base.check_size(RULE, n_in, n_out)
    return State(np.zeros(n_in, np.int32), np.zeros(n_out, np.int32))


def step(pre, post, state: State, params: Params) -> tuple[np.ndarray, State]:
    """Float twin: spikes pre [n_in], post [n_out] -> (dW [n_out, n_in], state)."""
    n_in, n_out = state.x_pre.shape[0], state.x_post.shape[0]
    s_pre = base.spikes_input(RULE, "pre", pre, n_in).astype(np.float64)
    s_post = base.spikes_input(RULE, "post", post, n_out).astype(np.float64)
    c = np.exp(-params.dt / params.tau)
    xp, xq = state.x_pre * c, state.x_post * c
    dw = params.eta * (np.outer(xq - params.alpha, s_pre) + np.outer(s_post, xp))
    return dw, State((xp + s_pre).astype(np.float32), (xq + s_post).astype(np.float32))


def step_fixed(w_int8, pre, post, state: State, params: Params, rng: RngState, w_shift: float
               ) -> tuple[np.ndarray, State, RngState, FixedStats]:
    """Fixed-point step. PRNG order: decay x_pre (n_in), x_post (n_out), weight update."""
    n_in, n_out = state.x_pre.shape[0], state.x_post.shape[0]
    w = base.int8_weights(RULE, w_int8, n_in, n_out)
    base.check_w_shift(RULE, w_shift)
    s_pre = base.spikes_input(RULE, "pre", pre, n_in)
    s_post = base.spikes_input(RULE, "post", post, n_out)
    T, P = params.trace_frac, params.factor_frac
    code = qmath.decay_code(RULE, "tau", params.tau / params.dt)
    (xp, xq), rng = qmath.decay_traces_fixed(tuple(state), (code, code), rng)
    eta = qmath.encode_scale(RULE, "eta", params.eta * 2.0 ** float(w_shift))
    alpha_q = int(round(params.alpha * (1 << T)))
    a = qmath.to_factor(xq - alpha_q, T, eta, P)                 # per post, times S_j << T
    b = qmath.to_factor(s_post << T, T, eta, P)                  # per post, times x_j
    num = a[:, None] * (s_pre << T)[None, :] + b[:, None] * xp[None, :]
    lo, hi = qmath.int_bounds(params.w_min, params.w_max, w_shift)
    w, rng, changed, clipped = qmath.apply_update(w, num, P + T, rng, lo, hi, params.rounding)
    nsat = 0
    outs = []
    for arr, s in ((xp, s_pre), (xq, s_post)):
        arr, k = qmath.saturate_count(arr + (s << T), 32)
        nsat += k
        outs.append(arr.astype(np.int32))
    return w, State(*outs), rng, FixedStats(changed, clipped, nsat, 0)
