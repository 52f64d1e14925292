"""Spiking LPL (Halvagal & Zenke 2023, SuperSpike-based; the erratum's simulated form).

    dw_ij/dt = eta * alpha * ( [eps * S_j](t) f'(U_i(t)) )                      eligibility e_ij
                   * alpha * [ -pred (S_i(t) - S_i(t - D))                       predictive
                               + lam / (sigma_i^2 + xi) (S_i(t) - Sbar_i(t))     Hebbian
                               + delta ]                                         transmitter-triggered

Discrete time, one call per step. eps and alpha are double-exponential kernels with unit area,
each two first-order averages y1 += r1 (u - y1), y2 += r2 (y1 - y2), r = 1 - exp(-dt/tau)
(eps: tau 5/20 ms, alpha: 2/10 ms). Sbar and sigma^2 are running averages of S and (S - Sbar)^2
(tau_mean 600 s, tau_var 30 s). f'(U) = 1 / (1 + slope |U - theta| / theta)^2 (SuperSpike fast
sigmoid, peak 1; see :func:`surrogate`). S_i(t - D) comes from a delay line of D steps.

Two variants (``Params.variant``):

* "exact": e_ij = alpha * (eps*S_j f'_i) kept per synapse (2 traces per synapse).
* "factorised": e_ij ~= (alpha * eps * S_j) (alpha * f'_i): 2 extra traces per input and 2 per
  output, no per-synapse state. Exact whenever one factor is constant over the alpha kernel;
  the update is a rank-1 outer product.

Memory per layer (fixed point): per input 8 bytes (eps traces) [+ 8 factorised]; per output
4 (mean) + 4 (var) + 8 (error traces) + D (delay line, uint8) [+ 8 factorised f' traces];
per synapse 4 bytes (two int16 eligibility traces, exact only); + 4 (delay-line pointer).
Float: the same counts with float32 (4 bytes) everywhere except the uint8 delay line.

Fixed point: spikes and traces in Q.T (T = trace_frac, a spike = 2^T), f' in Q.12, mean in
Q.(T+E), variance in Q.(2T+E), error in Q.(T+E). All averages use rate-coded stochastic
rounding (unbiased, slow time constants representable). The per-synapse eligibility traces
(int16 Q.T) draw dither words r_ij = a_i + b_j (n_out + n_in PRNG words per trace per step, not
one per synapse): each rounding is still unbiased. Deterministic round-half-up would stick at
a few LSB above zero and bias the update upwards by 5-25 % at low rates (measured).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from edgelearn.errors import ParameterError
from edgelearn.fixed import RngState, round_shift
from edgelearn.rules import base, qmath
from edgelearn.rules.base import FixedStats

RULE = "lpl_spiking"
VARIANTS = ("exact", "factorised")
FP_FRAC = 12
INV_FRAC = 20


@dataclass(frozen=True)
class Params:
    """Spiking LPL parameters; times in seconds (dt the simulation step).

    Attributes: eta (> 0), pred, lam (>= 0), xi (> 0, 1e-3), delta (>= 0, 1e-5),
    tau_pre_rise/tau_pre_fall (eps kernel, 5/20 ms), tau_err_rise/tau_err_fall (alpha kernel,
    2/10 ms), delay (predictive delay D, 20 ms, >= dt), tau_mean (600 s), tau_var (30 s),
    var_init, dt, w_min/w_max, variant ("exact"|"factorised"), trace_frac T, ema_frac E,
    factor_frac P (T + P <= 32), rounding.
    """

    eta: float = 1e-2
    pred: float = 1.0
    lam: float = 1.0
    xi: float = 1e-3
    delta: float = 1e-5
    tau_pre_rise: float = 5e-3
    tau_pre_fall: float = 20e-3
    tau_err_rise: float = 2e-3
    tau_err_fall: float = 10e-3
    delay: float = 20e-3
    tau_mean: float = 600.0
    tau_var: float = 30.0
    var_init: float = 0.01
    dt: float = 1e-3
    w_min: float = -math.inf
    w_max: float = math.inf
    variant: str = "factorised"
    trace_frac: int = 12
    ema_frac: int = 8
    factor_frac: int = 20
    rounding: str = "full"

    def __post_init__(self) -> None:
        base.check_positive(RULE, "eta", self.eta)
        for name in ("pred", "lam", "delta", "var_init"):
            base.check_positive(RULE, name, getattr(self, name), allow_zero=True)
        for name in ("xi", "tau_pre_rise", "tau_pre_fall", "tau_err_rise", "tau_err_fall",
                     "delay", "tau_mean", "tau_var", "dt"):
            base.check_positive(RULE, name, getattr(self, name))
        if self.delay_steps < 1:
            raise ParameterError(f"{RULE}: delay must be >= dt, got {self.delay} s < {self.dt} s")
        if self.delay_steps > 4096:
            raise ParameterError(f"{RULE}: delay of {self.delay_steps} steps exceeds 4096")
        base.check_bounds(RULE, self.w_min, self.w_max)
        if self.variant not in VARIANTS:
            raise ParameterError(f"{RULE}: variant must be one of {VARIANTS}, got {self.variant!r}")
        base.check_int(RULE, "trace_frac", self.trace_frac, 4, 12)
        base.check_int(RULE, "ema_frac", self.ema_frac, 0, 8)
        base.check_int(RULE, "factor_frac", self.factor_frac, 1, 28)
        if self.trace_frac + self.factor_frac > base.MAX_SHIFT:
            raise ParameterError(f"{RULE}: trace_frac + factor_frac must be <= 32")
        base.check_rounding(RULE, self.rounding)
        if self.xi * (1 << (2 * self.trace_frac + self.ema_frac)) < 1:
            raise ParameterError(f"{RULE}: xi={self.xi} is below one LSB of the variance format")

    @property
    def delay_steps(self) -> int:
        return int(round(self.delay / self.dt))

    def extra_state_bytes(self, n_in: int, n_out: int, fixed: bool = True) -> int:
        """Exact bytes of the State arrays (see the module docstring for the breakdown)."""
        base.check_size(RULE, n_in, n_out)
        per_in = 8 + (8 if self.variant == "factorised" else 0)
        per_out = 16 + self.delay_steps + (8 if self.variant == "factorised" else 0)
        per_syn = (4 if fixed else 8) if self.variant == "exact" else 0
        return per_in * n_in + per_out * n_out + per_syn * n_in * n_out + 4


class State(NamedTuple):
    """pre_r, pre_f [n_in]: eps traces. pb_r, pb_f [n_in] and fp_r, fp_f [n_out]: factorised
    traces (size 0 for exact). el_r, el_f [n_out, n_in]: eligibility (size 0 for factorised).
    mean, var, err_r, err_f [n_out]. ring [D, n_out] uint8 delay line, ptr [1] int32."""

    pre_r: np.ndarray
    pre_f: np.ndarray
    pb_r: np.ndarray
    pb_f: np.ndarray
    fp_r: np.ndarray
    fp_f: np.ndarray
    el_r: np.ndarray
    el_f: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    err_r: np.ndarray
    err_f: np.ndarray
    ring: np.ndarray
    ptr: np.ndarray


def _alloc(params: Params, n_in: int, n_out: int, fixed: bool) -> State:
    base.check_size(RULE, n_in, n_out)
    f = np.int32 if fixed else np.float32
    el = np.int16 if fixed else np.float32
    fac = params.variant == "factorised"
    ni, no = (n_in, n_out) if fac else (0, 0)
    shape = (0, 0) if fac else (n_out, n_in)
    z = np.zeros
    return State(z(n_in, f), z(n_in, f), z(ni, f), z(ni, f), z(no, f), z(no, f),
                 z(shape, el), z(shape, el), z(n_out, f), z(n_out, f), z(n_out, f),
                 z(n_out, f), z((params.delay_steps, n_out), np.uint8), z(1, np.int32))


def init(params: Params, n_in: int, n_out: int) -> State:
    s = _alloc(params, n_in, n_out, fixed=False)
    s.var[:] = params.var_init
    return s


def init_fixed(params: Params, n_in: int, n_out: int) -> State:
    s = _alloc(params, n_in, n_out, fixed=True)
    s.var[:] = int(round(params.var_init * (1 << (2 * params.trace_frac + params.ema_frac))))
    return s


def surrogate(u, theta, slope: float = 10.0) -> np.ndarray:
    """SuperSpike fast-sigmoid derivative 1 / (1 + slope |u - theta| / theta)^2 (peak 1)."""
    u = np.asarray(u, dtype=np.float64)
    return 1.0 / (1.0 + slope * np.abs(u - theta) / theta) ** 2


def surrogate_q(u_q, theta_q, slope: int = 10) -> np.ndarray:
    """Integer twin of :func:`surrogate` in Q.12: floor(2^12 theta^2 / (theta + slope|u-theta|)^2)."""
    u = np.asarray(u_q, dtype=np.int64)
    th = np.asarray(theta_q, dtype=np.int64)
    den = th + int(slope) * np.abs(u - th)
    return ((th * th) << FP_FRAC) // (den * den)


def _rates(params: Params) -> dict[str, float]:
    names = ("tau_pre_rise", "tau_pre_fall", "tau_err_rise", "tau_err_fall", "tau_mean",
             "tau_var")
    return {n: qmath.tau_rate(getattr(params, n) / params.dt) for n in names}


def step(pre, post, fprime, state: State, params: Params) -> tuple[np.ndarray, State]:
    """Float twin: pre spikes [n_in], post spikes [n_out], f'(U) [n_out] -> (dW, state)."""
    n_in, n_out = state.pre_r.shape[0], state.mean.shape[0]
    s = base.spikes_input(RULE, "pre", pre, n_in).astype(np.float64)
    S = base.spikes_input(RULE, "post", post, n_out).astype(np.float64)
    fp = base.float_input(RULE, "fprime", fprime, n_out)
    r = _rates(params)
    ema = qmath.ema_float
    pre_r = ema(state.pre_r, s, r["tau_pre_rise"])
    pre_f = ema(state.pre_f, pre_r, r["tau_pre_fall"])
    pb_r, pb_f, fp_r, fp_f, el_r, el_f = state[2:8]
    if params.variant == "exact":
        el_r = ema(el_r, np.outer(fp, pre_f), r["tau_err_rise"])
        el_f = ema(el_f, el_r, r["tau_err_fall"])
        elig = el_f
    else:
        pb_r = ema(pb_r, pre_f, r["tau_err_rise"])
        pb_f = ema(pb_f, pb_r, r["tau_err_fall"])
        fp_r = ema(fp_r, fp, r["tau_err_rise"])
        fp_f = ema(fp_f, fp_r, r["tau_err_fall"])
        elig = None
    ptr = int(state.ptr[0])
    s_delayed = state.ring[ptr].astype(np.float64)
    mean, var = state.mean.astype(np.float64), state.var.astype(np.float64)
    d = S - mean
    err = -params.pred * (S - s_delayed) + params.lam * d / (var + params.xi) + params.delta
    err_r = ema(state.err_r, err, r["tau_err_rise"])
    err_f = ema(state.err_f, err_r, r["tau_err_fall"])
    if elig is None:
        dw = np.outer(params.eta * err_f * fp_f, pb_f)
    else:
        dw = params.eta * err_f[:, None] * elig
    ring = state.ring.copy()
    ring[ptr] = S.astype(np.uint8)
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    new = State(f32(pre_r), f32(pre_f), f32(pb_r), f32(pb_f), f32(fp_r), f32(fp_f), f32(el_r),
                f32(el_f), f32(ema(mean, S, r["tau_mean"])), f32(ema(var, d * d, r["tau_var"])),
                f32(err_r), f32(err_f), ring, np.array([(ptr + 1) % ring.shape[0]], np.int32))
    return dw, new


def step_fixed(w_int8, pre, post, fprime_q, state: State, params: Params, rng: RngState,
               w_shift: float) -> tuple[np.ndarray, State, RngState, FixedStats]:
    """Fixed-point step. ``fprime_q``: f'(U) in Q.12 [n_out] (see :func:`surrogate_q`).

    PRNG order: pre_r, pre_f (n_in each); exact: el_r, el_f (n_out + n_in each, dither);
    factorised: pb_r, pb_f (n_in), fp_r, fp_f (n_out); err_r, err_f (n_out each); weight
    update; mean, var (n_out each).
    """
    n_in, n_out = state.pre_r.shape[0], state.mean.shape[0]
    w = base.int8_weights(RULE, w_int8, n_in, n_out)
    base.check_w_shift(RULE, w_shift)
    s = base.spikes_input(RULE, "pre", pre, n_in)
    S = base.spikes_input(RULE, "post", post, n_out)
    fp = base.int_input(RULE, "fprime", fprime_q, n_out)
    T, E, P = params.trace_frac, params.ema_frac, params.factor_frac
    code = {k: qmath.encode_rate(RULE, k, v) for k, v in _rates(params).items()}
    ema = qmath.ema_fixed
    pre_r, rng = ema(state.pre_r, s << T, code["tau_pre_rise"], rng)
    pre_f, rng = ema(state.pre_f, pre_r, code["tau_pre_fall"], rng)
    pb_r, pb_f, fp_r, fp_f, el_r, el_f = (np.asarray(a, np.int64) for a in state[2:8])
    nsat = 0
    if params.variant == "exact":
        tgt = round_shift(np.outer(fp, pre_f), FP_FRAC)                       # Q.T
        el_r, rng = qmath.ema_fixed(el_r, tgt, code["tau_err_rise"], rng, dither=True)
        el_r, k1 = qmath.saturate_count(el_r, 16)
        el_f, rng = qmath.ema_fixed(el_f, el_r, code["tau_err_fall"], rng, dither=True)
        el_f, k2 = qmath.saturate_count(el_f, 16)
        nsat += k1 + k2
    else:
        pb_r, rng = ema(pb_r, pre_f, code["tau_err_rise"], rng)
        pb_f, rng = ema(pb_f, pb_r, code["tau_err_fall"], rng)
        fp_r, rng = ema(fp_r, fp, code["tau_err_rise"], rng)
        fp_f, rng = ema(fp_f, fp_r, code["tau_err_fall"], rng)
    ptr = int(state.ptr[0])
    s_delayed = state.ring[ptr].astype(np.int64)
    B = T + E
    d = (S << B) - state.mean.astype(np.int64)                                # Q.(T+E)
    vx = state.var.astype(np.int64) + int(round(params.xi * (1 << (2 * T + E))))
    inv = (np.int64(1) << np.int64(2 * T + E + INV_FRAC)) // vx               # Q.20
    err = (_scale(round_shift(d * inv, INV_FRAC), params.lam)
           - _scale((S - s_delayed) << B, params.pred)
           + int(round(params.delta * (1 << B))))
    err, k3 = qmath.saturate_count(err, 32)
    err_r, rng = ema(state.err_r, err, code["tau_err_rise"], rng)
    err_f, rng = ema(state.err_f, err_r, code["tau_err_fall"], rng)
    eta = qmath.encode_scale(RULE, "eta * 2^w_shift", params.eta * 2.0 ** float(w_shift))
    lo, hi = qmath.int_bounds(params.w_min, params.w_max, w_shift)
    if params.variant == "exact":
        a = qmath.to_factor(err_f, B, eta, P)                                  # Q.P
        num = a[:, None] * el_f
    else:
        a = qmath.to_factor(round_shift(err_f * fp_f, FP_FRAC), B, eta, P)
        num = a[:, None] * pb_f[None, :]
    a_sat, k4 = qmath.saturate_count(a, 40)
    nsat += k3 + k4
    w, rng, changed, clipped = qmath.apply_update(w, num, P + T, rng, lo, hi, params.rounding)
    mean, rng = ema(state.mean, S << B, code["tau_mean"], rng)
    var, rng = ema(state.var, round_shift(d * d, E), code["tau_var"], rng)
    ring = state.ring.copy()
    ring[ptr] = S.astype(np.uint8)
    i32 = lambda a: np.clip(a, -(1 << 31), (1 << 31) - 1).astype(np.int32)  # noqa: E731
    new = State(i32(pre_r), i32(pre_f), i32(pb_r), i32(pb_f), i32(fp_r), i32(fp_f),
                el_r.astype(np.int16), el_f.astype(np.int16), i32(mean), i32(np.maximum(var, 0)),
                i32(err_r), i32(err_f), ring, np.array([(ptr + 1) % ring.shape[0]], np.int32))
    return w, new, rng, FixedStats(changed, clipped, nsat, 0)


def _scale(x: np.ndarray, value: float) -> np.ndarray:
    if value == 0:
        return np.zeros_like(x)
    c = qmath.encode_scale(RULE, "coefficient", value)
    prod = np.asarray(x, np.int64) * c.k
    return round_shift(prod, c.s) if c.s >= 0 else prod << -c.s
