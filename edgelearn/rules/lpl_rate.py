"""Latent Predictive Learning, rate form (Halvagal & Zenke 2023), float twin and fixed point.

One layer with input activity x [n_in] (filtered spike rates) and output activity z [n_out],
z = f(a), a = W x. Per step t and output neuron i (all bracket terms are per neuron):

    d_i   = z_i - zbar_i                       deviation from the running mean (previous step)
    B_i   = - pred * (z_i(t) - z_i(t-1))                                   predictive (slowness)
            + lam * d_i / (sigma_i^2 + xi)                                 Hebbian (variance)
            - lam_decorr / (n_out - 1) * sum_{k != i} d_k C_ik             decorrelation (optional)
            - lam_hom * (zbar_i - rho_i) / (sigma_i^2 + xi)                 rate homeostasis (optional)
    dW_ij = eta * B_i * f'(a_i) * x_j                                      rank-1 outer product

then the statistics move (exponential averages with per-step rates r = 1 - exp(-1/tau)):

    zbar += r_mean (z - zbar);  sigma^2 += r_var (d^2 - sigma^2);  C += r_var (d d^T - C)

The 1/(sigma^2 + xi) factor is computed once per neuron per step from the previous variance.
The homeostatic term is an edgelearn addition (not in the paper's rate form; the paper's spiking
network holds rates with inhibitory plasticity instead): it pulls each neuron's running mean
towards a target rho_i, either ``rate_target`` or, when that is None, the neuron's own running
mean at the end of the warm-up (stored, 4 bytes per neuron). Without it the variance term drives
a spiking layer's rates up (measured in bench/bench_lpl.py).
f'(a) is given by the caller as ``gain`` (default 1, i.e. linear rate units). Optional input
filters (tau_pre, tau_post > 0) turn spikes into rates inside the rule: x~ += r (x - x~).
For the first ``warmup`` steps only the statistics move (no weight change).

Fixed point (A = act_frac, E = ema_frac, P = factor_frac; formats in docs/learning-rules.md):

    x, z            int16  Q.A        (pass spikes as s << A, or your own rate traces)
    zbar            int32  Q.(A+E)    sigma^2, C  int32  Q.(2A+E)     z(t-1) int16 Q.A
    inv_i           = floor(2^(2A+E+20) / (sigma^2_q + xi_q))     1/(sigma^2+xi) in Q.20
    B_i             int64  Q.(A+E);   p_i = eta 2^w_shift B_i f'_i in Q.P
    dW_int          = stochastic_shift(p_i * x_j, P + A)  then clip to the weight bounds

Learning epoch (``epoch`` = k = 2^e, docs/learning-rules.md section 10): the rule may run once
every k time steps instead of every step, on the mean activities of those k steps:

    acc_x += x(t);  acc_z += z(t);  n += 1;   when n == k:  one step with x = acc_x / k,
    z = acc_z / k (fixed point: acc << (A - e), exact) and the constants of epoch_params(p);
    then acc_x = acc_z = 0, n = 0.

``epoch_params`` states the rule's time constants, warm-up, eta and pred per epoch; ``step``,
``codes_for`` and ``step_codes`` are one run of the rule (one epoch), :func:`epoch_step` (float)
and ``lpl_kernels.EpochLPL`` (fixed) the per-time-step accumulation. k = 1 is the plain rule.

Memory (fixed): 2 (z prev) + 4 (mean) + 4 (var) bytes per output neuron, + 4 per input/output
neuron when the input/output filters are on, + 4 n_out^2 with decorrelation, + 4 per output
with a per-neuron homeostatic target, + 4 (step count), + 4 (n_in + n_out + 1) with a learning
epoch (the sums and the step counter). No per-synapse state.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
import numpy as np

from edgelearn.errors import ParameterError
from edgelearn.fixed import RngState, round_shift
from edgelearn.rules import base, lpl_codes, qmath
from edgelearn.rules.base import FixedStats

RULE = "lpl_rate"
INV_FRAC = 20
GAIN_FRAC = 12
FACTOR_LIMIT = 1 << 40


@dataclass(frozen=True)
class Params:
    """LPL rate-form parameters (time constants in steps; weights in float weight units).

    Attributes:
        eta: learning rate, > 0 (weight units per unit of bracket * f' * x).
        pred: weight of the predictive term, >= 0 (paper: 1).
        lam: weight of the Hebbian term, >= 0 (paper: 1).
        lam_decorr: weight of the decorrelation term, >= 0; 0 disables it and its n_out^2 state.
        lam_hom: weight of the rate-homeostasis term, >= 0 (0 disables it).
        rate_target: target mean activity for homeostasis, >= 0, or None = each neuron's own
            running mean at the end of the warm-up (needs warmup >= 1; 4 bytes per neuron).
        xi: variance floor, > 0 (paper rate form: 1e-4), in squared activity units.
        tau_mean, tau_var: time constants of the running mean and variance, > 0 steps.
        tau_pre, tau_post: input/output rate filters, >= 0 steps (0 = use activities as given).
        var_init: initial sigma^2, >= 0.  warmup: steps with statistics only (no weight change).
        w_min, w_max: weight bounds (float units; the fixed rule also clips to int8).
        act_frac, ema_frac, factor_frac: fixed-point fraction bits A, E, P (A + P <= 32).
        rounding: "full" (one PRNG word per synapse) or "dither" (n_in + n_out words per step).
        epoch: time steps per run of the rule, a power of two in {1, 2, ..., 64} with
            log2(epoch) <= act_frac (1: every step). Time constants, warmup and eta stay in
            time steps; :func:`epoch_params` converts them.
    """

    eta: float = 1e-3
    pred: float = 1.0
    lam: float = 1.0
    lam_decorr: float = 0.0
    lam_hom: float = 0.0
    rate_target: float | None = None
    xi: float = 1e-4
    tau_mean: float = 1000.0
    tau_var: float = 1000.0
    tau_pre: float = 0.0
    tau_post: float = 0.0
    var_init: float = 1.0
    warmup: int = 100
    w_min: float = -math.inf
    w_max: float = math.inf
    act_frac: int = 8
    ema_frac: int = 8
    factor_frac: int = 23
    rounding: str = "full"
    epoch: int = 1

    def __post_init__(self) -> None:
        base.check_positive(RULE, "eta", self.eta)
        for name in ("pred", "lam", "lam_decorr", "lam_hom", "var_init"):
            base.check_positive(RULE, name, getattr(self, name), allow_zero=True)
        base.check_positive(RULE, "xi", self.xi)
        base.check_positive(RULE, "tau_mean", self.tau_mean)
        base.check_positive(RULE, "tau_var", self.tau_var)
        base.check_positive(RULE, "tau_pre", self.tau_pre, allow_zero=True)
        base.check_positive(RULE, "tau_post", self.tau_post, allow_zero=True)
        base.check_int(RULE, "warmup", self.warmup, 0, 1 << 30)
        base.check_bounds(RULE, self.w_min, self.w_max)
        base.check_int(RULE, "act_frac", self.act_frac, 0, 14)
        base.check_int(RULE, "ema_frac", self.ema_frac, 0, 12)
        base.check_int(RULE, "factor_frac", self.factor_frac, 1, 32)
        if self.act_frac + self.factor_frac > base.MAX_SHIFT:
            raise ParameterError(f"{RULE}: act_frac + factor_frac must be <= 32, got "
                                 f"{self.act_frac} + {self.factor_frac}")
        base.check_rounding(RULE, self.rounding)
        if self.rate_target is not None:
            base.check_positive(RULE, "rate_target", self.rate_target, allow_zero=True)
        elif self.lam_hom > 0 and self.warmup < 1:
            raise ParameterError(f"{RULE}: rate_target=None takes each neuron's mean at the end "
                                 f"of the warm-up, so warmup must be >= 1, got {self.warmup}")
        if self.xi_q < 1:
            raise ParameterError(f"{RULE}: xi={self.xi} is below one LSB of the variance format "
                                 f"Q.{2 * self.act_frac + self.ema_frac}; raise act_frac/ema_frac")
        check_epoch(self.epoch, self.act_frac)

    @property
    def epoch_log2(self) -> int:
        """e = log2(epoch)."""
        return int(self.epoch).bit_length() - 1

    # derived fixed-point constants
    @property
    def stores_target(self) -> bool:
        """Whether the state keeps a per-neuron homeostatic target."""
        return self.lam_hom > 0 and self.rate_target is None

    @property
    def var_frac(self) -> int:
        return 2 * self.act_frac + self.ema_frac

    @property
    def xi_q(self) -> int:
        return int(round(self.xi * (1 << (2 * self.act_frac + self.ema_frac))))

    def extra_state_bytes(self, n_in: int, n_out: int, fixed: bool = True) -> int:
        """Exact bytes of the State arrays init/init_fixed allocate for an n_out x n_in layer."""
        base.check_size(RULE, n_in, n_out)
        if fixed:
            b = 2 * n_out + 4 * n_out + 4 * n_out + 4
            b += 4 * n_in if self.tau_pre > 0 else 0
            b += 4 * n_out if self.tau_post > 0 else 0
            b += 4 * n_out * n_out if self.lam_decorr > 0 else 0
            b += 4 * n_out if self.stores_target else 0
            b += 4 * (n_in + n_out + 1) if self.epoch > 1 else 0
            return b
        b = 4 * 3 * n_out + 4
        b += 4 * n_in if self.tau_pre > 0 else 0
        b += 4 * n_out if self.tau_post > 0 else 0
        b += 4 * n_out * n_out if self.lam_decorr > 0 else 0
        b += 4 * n_out if self.stores_target else 0
        b += 4 * (n_in + n_out + 1) if self.epoch > 1 else 0
        return b


EPOCHS = tuple(1 << e for e in range(lpl_codes.EPOCH_LOG2_MAX + 1))


def check_epoch(epoch, act_frac: int = 14) -> None:
    """Refuse a learning epoch that is not a power of two in 1..64 or whose log2 exceeds
    ``act_frac`` (ParameterError naming ``epoch``)."""
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or \
            int(epoch) not in EPOCHS:
        raise ParameterError(f"{RULE}: epoch must be a power of two in {list(EPOCHS)}, got "
                             f"{epoch!r}")
    e = int(epoch).bit_length() - 1
    if e > act_frac:
        raise ParameterError(f"{RULE}: epoch {epoch} needs log2(epoch) = {e} <= act_frac "
                             f"({act_frac}): the epoch mean is acc << (act_frac - {e})")


@functools.lru_cache(maxsize=256)
def epoch_params(p: Params) -> Params:
    """The constants of one learning epoch of ``p`` as one step of the ordinary rule (k =
    p.epoch time steps): epoch 1; tau_mean, tau_var, tau_pre, tau_post / k (a 0 filter stays
    0); warmup = ceil(warmup / k); eta * k (eta is per time step, an epoch applies the rule to
    k steps at once); pred / k (the predictive term is z(t) - z(t-1), which telescopes over
    the k steps of an epoch: counted once per epoch, not k times); every other field as is.
    With k = 1 it returns ``p`` itself."""
    k = int(p.epoch)
    if k == 1:
        return p
    return dataclasses.replace(
        p, epoch=1, tau_mean=p.tau_mean / k, tau_var=p.tau_var / k, tau_pre=p.tau_pre / k,
        tau_post=p.tau_post / k, warmup=-(-int(p.warmup) // k), eta=p.eta * k, pred=p.pred / k)


State = lpl_codes.State   # float twin: float32 arrays (count int32); fixed: see lpl_codes


def deploy_default() -> Params:
    """LPL for a deployed hidden layer (what a deployment adapts with unless told otherwise):
    filtered rates, slow statistics, dithered rounding.

    Hebbian weight 0.03 (the paper's 1 drives a pretrained spiking layer to high rates,
    docs/learning-rules.md section 8) and eta 1e-7: on the speech model's new-user stream every
    larger rate lowered accuracy (bench/bench_adapt.py --lpl-eta; docs/results.md), because
    LPL's objective is not the task's and the features drift away from what the head knows."""
    return Params(eta=1e-7, lam=0.03, tau_mean=2000.0, tau_var=2000.0, tau_pre=20.0,
                  tau_post=20.0, warmup=200, rounding="dither", var_init=0.01)


def state_shapes(params: Params, n_in: int, n_out: int):
    """(name, shape, dtype) of the fixed-point State arrays of an n_out x n_in layer."""
    base.check_size(RULE, n_in, n_out)
    return lpl_codes.state_shapes(n_in, n_out, params.tau_pre > 0, params.tau_post > 0,
                                  params.lam_decorr > 0, params.stores_target, params.epoch > 1)


def init(params: Params, n_in: int, n_out: int) -> State:
    """Float state (float32; count and epoch_steps int32): zero mean and previous output,
    variance var_init, empty epoch sums."""
    s = State(*(np.zeros(shape, np.int32 if name in ("count", "epoch_steps") else np.float32)
                for name, shape, _ in state_shapes(params, n_in, n_out)))
    s.var[:] = params.var_init
    if s.cov.size:
        np.fill_diagonal(s.cov, params.var_init)
    return s


def init_fixed(params: Params, n_in: int, n_out: int) -> State:
    """Integer state (formats in the module docstring and edgelearn.rules.lpl_codes)."""
    return lpl_codes.new_state(state_shapes(params, n_in, n_out), _var_init_q(params))


def _var_init_q(params: Params) -> int:
    return min(int(round(params.var_init * (1 << params.var_frac))), (1 << 31) - 1)


# ---------------------------------------------------------------- float twin

def step(pre, post, state: State, params: Params, gain=None) -> tuple[np.ndarray, State]:
    """Float twin of one run of the rule: returns (dW [n_out, n_in] float64, new state).
    Refuses NaN/Inf inputs.

    ``pre``: x [n_in]; ``post``: z [n_out]; ``gain``: f'(a) [n_out] (default 1).
    Apply with ``qmath.apply_float(w, dW, params.w_min, params.w_max)``. With a learning
    epoch (params.epoch = k > 1) this is one epoch: x and z are the means over its k time
    steps and the constants those of :func:`epoch_params` (:func:`epoch_step` accumulates).
    The epoch sums of ``state`` pass through unchanged.
    """
    params = epoch_params(params)
    n_out = state.mean.shape[0]
    n_in = state.pre_trace.shape[0] if params.tau_pre > 0 else np.asarray(pre).reshape(-1).size
    x = base.float_input(RULE, "pre", pre, n_in)
    z = base.float_input(RULE, "post", post, n_out)
    g = np.ones(n_out) if gain is None else base.float_input(RULE, "gain", gain, n_out)
    pre_tr, post_tr = state.pre_trace, state.post_trace
    if params.tau_pre > 0:
        pre_tr = qmath.ema_float(pre_tr.astype(np.float64), x, qmath.tau_rate(params.tau_pre))
        x = pre_tr
    if params.tau_post > 0:
        post_tr = qmath.ema_float(post_tr.astype(np.float64), z, qmath.tau_rate(params.tau_post))
        z = post_tr
    mean = state.mean.astype(np.float64)
    var = state.var.astype(np.float64)
    d = z - mean
    bracket = (-params.pred * (z - state.z_prev) + params.lam * d / (var + params.xi))
    cov = state.cov.astype(np.float64)
    if params.lam_decorr > 0 and n_out > 1:
        off = cov - np.diag(np.diag(cov))
        bracket = bracket - params.lam_decorr / (n_out - 1) * (off @ d)
    if params.lam_hom > 0:
        rho = state.target if params.stores_target else params.rate_target
        bracket = bracket - params.lam_hom * (mean - rho) / (var + params.xi)
    count = int(state.count[0])
    if count < params.warmup:
        dw = np.zeros((n_out, n_in))
    else:
        dw = np.outer(params.eta * bracket * g, x)
    r_m, r_v = qmath.tau_rate(params.tau_mean), qmath.tau_rate(params.tau_var)
    new_mean = qmath.ema_float(mean, z, r_m).astype(np.float32)
    target = state.target
    if params.stores_target and count + 1 == params.warmup:
        target = new_mean.copy()
    new = State(
        z_prev=z.astype(np.float32),
        mean=new_mean,
        var=qmath.ema_float(var, d * d, r_v).astype(np.float32),
        count=np.array([min(count + 1, params.warmup)], np.int32),
        pre_trace=np.asarray(pre_tr, np.float32),
        post_trace=np.asarray(post_tr, np.float32),
        cov=(qmath.ema_float(cov, np.outer(d, d), r_v).astype(np.float32) if cov.size
             else state.cov),
        target=target,
        epoch_pre=state.epoch_pre, epoch_post=state.epoch_post, epoch_steps=state.epoch_steps,
    )
    return dw, new


def epoch_step(pre, post, state: State, params: Params, gain=None
               ) -> tuple[np.ndarray | None, State]:
    """Float twin of one time step with the learning epoch of ``params`` (k = params.epoch):
    acc_x += pre, acc_z += post, n += 1; when n == k, :func:`step` on acc_x / k, acc_z / k
    (and ``gain``, f'(a) of this last step) and the sums restart. Returns (dW or None when the
    rule did not run, new state). With k = 1 it is :func:`step`."""
    k = int(params.epoch)
    if k == 1:
        return step(pre, post, state, params, gain)
    n_out = state.mean.shape[0]
    n_in = state.epoch_pre.shape[0]
    acc_x = state.epoch_pre + base.float_input(RULE, "pre", pre, n_in)
    acc_z = state.epoch_post + base.float_input(RULE, "post", post, n_out)
    n = int(state.epoch_steps[0]) + 1
    if n < k:
        return None, state._replace(epoch_pre=acc_x.astype(np.float32),
                                    epoch_post=acc_z.astype(np.float32),
                                    epoch_steps=np.array([n], np.int32))
    dw, new = step(acc_x / k, acc_z / k, state, params, gain)
    return dw, new._replace(epoch_pre=np.zeros_like(state.epoch_pre),
                            epoch_post=np.zeros_like(state.epoch_post),
                            epoch_steps=np.zeros_like(state.epoch_steps))


# ---------------------------------------------------------------- fixed point

def _scale_code(name: str, value: float) -> qmath.RateCode | None:
    return None if value == 0 else qmath.encode_scale(RULE, name, value)


@functools.lru_cache(maxsize=256)
def codes_for(params: Params, w_shift: float, n_out: int) -> lpl_codes.Codes:
    """The integer constants of the fixed step for a layer with ``n_out`` outputs whose float
    weight is ``w_int * 2^-w_shift`` (what a host sends a device as an LPL block). With a
    learning epoch: the constants of :func:`epoch_params` and epoch_log2 = log2(epoch)."""
    e = params.epoch_log2
    params = epoch_params(params)
    base.check_w_shift(RULE, w_shift)
    lo, hi = qmath.int_bounds(params.w_min, params.w_max, w_shift)
    decorr = params.lam_decorr > 0 and n_out > 1
    fixed_target = params.lam_hom > 0 and not params.stores_target
    codes = lpl_codes.Codes(
        act_frac=params.act_frac, ema_frac=params.ema_frac, factor_frac=params.factor_frac,
        dither=params.rounding == "dither", warmup=int(params.warmup), xi_q=params.xi_q,
        var_init_q=_var_init_q(params), w_lo=lo, w_hi=hi,
        mean=qmath.decay_code(RULE, "tau_mean", params.tau_mean),
        var=qmath.decay_code(RULE, "tau_var", params.tau_var),
        pre=qmath.decay_code(RULE, "tau_pre", params.tau_pre) if params.tau_pre > 0 else None,
        post=(qmath.decay_code(RULE, "tau_post", params.tau_post) if params.tau_post > 0
              else None),
        lam=_scale_code("lam", params.lam), pred=_scale_code("pred", params.pred),
        decorr=params.lam_decorr > 0,
        lam_decorr=(_scale_code("lam_decorr", params.lam_decorr / (n_out - 1)) if decorr
                    else None),
        hom=params.lam_hom > 0, own_target=params.stores_target,
        rate_target_q=(int(round(params.rate_target * (1 << (params.act_frac
                                                              + params.ema_frac))))
                       if fixed_target else 0),
        lam_hom=_scale_code("lam_hom", params.lam_hom),
        eta=qmath.encode_scale(RULE, "eta * 2^w_shift", params.eta * 2.0 ** float(w_shift)),
        epoch_log2=e)
    lpl_codes.check_codes(codes)
    return codes


def layer_codes(params: Params, qlayer) -> lpl_codes.Codes:
    """:func:`codes_for` a QLayer of edgelearn.kernels.lif_fixed."""
    return codes_for(params, base.qlayer_w_shift(qlayer), qlayer.n_out)


def _scale(x: np.ndarray, code: qmath.RateCode | None) -> np.ndarray:
    """x * k 2^-s (round half up); a code that is off (None) gives zeros."""
    if code is None:
        return np.zeros_like(x)
    return round_shift(x * code.k, code.s)


def bracket_codes(x: np.ndarray, z: np.ndarray, state: State, c: lpl_codes.Codes,
                  gain: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-neuron post factor p [n_out] (int64, Q.P weight LSBs per unit x) and deviation d.

    Pure integer arithmetic; no PRNG. Returns (p, d, n_saturated).
    """
    A, E, P = c.act_frac, c.ema_frac, c.factor_frac
    B = A + E
    d = (z << E) - state.mean.astype(np.int64)                               # Q.(A+E)
    vx = state.var.astype(np.int64) + c.xi_q                                 # Q.(2A+E)
    inv = (np.int64(1) << np.int64(2 * A + E + INV_FRAC)) // vx              # Q.20
    hebb = _scale(round_shift(d * inv, INV_FRAC), c.lam)                     # Q.(A+E)
    predictive = _scale((z - state.z_prev.astype(np.int64)) << E, c.pred)
    b = hebb - predictive
    if c.lam_decorr is not None:
        cov = round_shift(state.cov.astype(np.int64), E)                     # Q.2A
        np.fill_diagonal(cov, 0)
        b = b - _scale(round_shift(cov @ d, 2 * A), c.lam_decorr)            # Q.(A+E)
    if c.hom:
        rho = state.target.astype(np.int64) if c.own_target else c.rate_target_q   # Q.(A+E)
        dm = state.mean.astype(np.int64) - rho
        b = b - _scale(round_shift(dm * inv, INV_FRAC), c.lam_hom)
    b = round_shift(b * gain, GAIN_FRAC)                                     # Q.B
    sh = B + c.eta.s - P
    p = b * c.eta.k
    p = round_shift(p, sh) if sh >= 0 else p << -sh                          # Q.P
    p, nsat = qmath.saturate_count(p, 41)
    return p, d, nsat


def bracket_fixed(x: np.ndarray, z: np.ndarray, state: State, params: Params, w_shift: float,
                  gain: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`bracket_codes` with the constants of ``params`` at ``w_shift``."""
    return bracket_codes(x, z, state, codes_for(params, w_shift, z.shape[0]), gain)


def step_codes(w_int8, pre_q, post_q, state: State, c: lpl_codes.Codes, rng: RngState,
               gain_q=None) -> tuple[np.ndarray, State, RngState, FixedStats]:
    """The reference fixed-point LPL step (the specification of every faster version).

    ``pre_q`` int [n_in] and ``post_q`` int [n_out] in Q.act_frac (int16 range); ``gain_q``
    f'(a) in Q.12 (default 4096 = 1). Returns (w_int8_new, state, rng, stats). PRNG words are
    drawn in this order: pre filter (n_in), post filter (n_out), weight update (n_out*n_in, or
    n_out + n_in with dither; none during warm-up), mean (n_out), var (n_out), cov (n_out^2).
    Cost O(n_in * n_out); no per-synapse state. One run of the rule: with c.epoch_log2 > 0 the
    caller passes the epoch means (lpl_kernels.EpochLPL); the state's epoch sums pass through.
    """
    n_out = state.mean.shape[0]
    w = np.asarray(w_int8)
    n_in = w.shape[1] if w.ndim == 2 else -1
    w = base.int8_weights(RULE, w, n_in, n_out)
    x = base.int_input(RULE, "pre", pre_q, n_in)
    z = base.int_input(RULE, "post", post_q, n_out)
    g = (np.full(n_out, 1 << GAIN_FRAC, np.int64) if gain_q is None
         else base.int_input(RULE, "gain", gain_q, n_out))
    A, E = c.act_frac, c.ema_frac
    count = int(state.count[0])
    skipped = count < c.warmup
    # PRNG word offsets of this step (the documented order); per-neuron words in one pass
    k_pre = n_in if c.pre is not None else 0
    k_post = n_out if c.post is not None else 0
    o_w = k_pre + k_post
    k_w = 0 if skipped else (n_out + n_in if c.dither else n_out * n_in)
    o_mean = o_w + k_w
    total = o_mean + 2 * n_out + state.cov.size
    r = qmath.rng_words_at(rng, np.concatenate([np.arange(o_w), np.arange(o_mean, total)]))
    r_mean = r[o_w:o_w + n_out]
    r_var = r[o_w + n_out:o_w + 2 * n_out]
    nsat = 0
    pre_tr, post_tr = state.pre_trace, state.post_trace
    if c.pre is not None:
        pre_tr = qmath.ema_apply(pre_tr, x << E, c.pre, r[:k_pre])
        x = round_shift(pre_tr, E)
    if c.post is not None:
        post_tr = qmath.ema_apply(post_tr, z << E, c.post, r[k_pre:o_w])
        z = round_shift(post_tr, E)
    p, d, s1 = bracket_codes(x, z, state, c, g)
    nsat += s1
    changed = clipped = 0
    if not skipped:
        w, _, changed, clipped = qmath.apply_rank1(
            w, p, x, c.factor_frac + A, qmath.advance(rng, o_w), c.w_lo, c.w_hi,
            "dither" if c.dither else "full")
    mean = qmath.ema_apply(state.mean, z << E, c.mean, r_mean)
    var = qmath.ema_apply(state.var, round_shift(d * d, E), c.var, r_var)
    cov = state.cov
    if cov.size:
        cov = qmath.ema_apply(cov, round_shift(np.outer(d, d), E), c.var,
                             r[o_w + 2 * n_out:].reshape(cov.shape))
    rng = qmath.advance(rng, total)
    out = []
    for a in (mean, var, cov):
        a, k = qmath.saturate_count(a, 32)
        nsat += k
        out.append(a.astype(np.int32))
    new = State(
        z_prev=np.minimum(np.maximum(z, -32768), 32767).astype(np.int16),
        mean=out[0], var=np.maximum(out[1], 0).astype(np.int32),
        count=np.array([min(count + 1, c.warmup)], np.int32),
        pre_trace=np.asarray(pre_tr, np.int32), post_trace=np.asarray(post_tr, np.int32),
        cov=out[2],
        target=(out[0].copy() if c.own_target and count + 1 == c.warmup else state.target),
        epoch_pre=state.epoch_pre, epoch_post=state.epoch_post, epoch_steps=state.epoch_steps,
    )
    return w, new, rng, FixedStats(changed, clipped, nsat, int(skipped))


def step_fixed(w_int8, pre_q, post_q, state: State, params: Params, rng: RngState, w_shift: float,
               gain_q=None) -> tuple[np.ndarray, State, RngState, FixedStats]:
    """Fixed-point LPL step on an int8 weight matrix: :func:`step_codes` with the constants of
    ``params`` for a layer whose float weight is ``w_int * 2^-w_shift``."""
    n_out = state.mean.shape[0]
    return step_codes(w_int8, pre_q, post_q, state, codes_for(params, w_shift, n_out), rng,
                      gain_q)


def exact_update_fixed(pre_q, post_q, state: State, params: Params, w_shift: float,
                       gain_q=None) -> np.ndarray:
    """The fixed rule's update before stochastic rounding, in float weight units [n_out, n_in].

    For tests and diagnostics (input filters must be off: they would consume PRNG words).
    """
    n_out = state.mean.shape[0]
    x = np.asarray(pre_q, dtype=np.int64)
    z = base.int_input(RULE, "post", post_q, n_out)
    g = (np.full(n_out, 1 << GAIN_FRAC, np.int64) if gain_q is None
         else np.asarray(gain_q, np.int64))
    p, _, _ = bracket_fixed(x, z, state, params, w_shift, g)
    return np.outer(p.astype(np.float64), x.astype(np.float64)) / 2.0 ** (
        params.factor_frac + params.act_frac + w_shift)


def quantize_activity(x, params: Params, name: str = "activity") -> np.ndarray:
    """Float activity -> int16 Q.act_frac (round half up, saturating). Refuses NaN/Inf."""
    a = np.asarray(x, dtype=np.float64)
    a = base.float_input(RULE, name, a, a.shape[0]) if a.ndim == 1 else a
    if not np.all(np.isfinite(a)):
        from edgelearn.errors import InputError
        raise InputError(f"{RULE}: {name} contains NaN/Inf; refusing to quantize")
    q = np.floor(a * (1 << params.act_frac) + 0.5)
    return np.clip(q, -32768, 32767).astype(np.int16)


lpl_fixed_step = step_fixed
