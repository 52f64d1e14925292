"""The integer constants of one LPL-adapted layer, exactly as the fixed-point step consumes them.

A device never converts floats into fixed-point constants: the host turns ``lpl_rate.Params``
and the layer's weight scale into these integers once (``lpl_rate.layer_codes``), they travel
as the 64-byte "LPL block" of docs/protocol.md, and the device's rule (``lpl_rate.step_codes``,
the reference; ``lpl_rate_fast.LPLRateFast``, the optimised twin) reads nothing else.

Codes (k, s) stand for k * 2^-s with a 12-bit mantissa (``qmath.RateCode``):

* rate codes (running mean, variance, input/output filters): r = 1 - exp(-1/tau),
  2048 <= k <= 4096, 11 <= s <= 48;
* scale codes (lam, pred, lam_decorr / (n_out - 1), lam_hom, eta * 2^w_shift):
  2048 <= k <= 4096, 0 <= s <= 63; None (k = 0 on the wire) switches the term off.

:func:`check_codes` is the validation a device applies to a received block (each limit keeps
every int64 intermediate of the step free of shifts by 64 or more); :func:`init_state` is the
state a device allocates and zeroes for it.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import numpy as np

from edgelearn.errors import ParameterError
from edgelearn.rules.qmath import RateCode

RULE = "lpl_rate"
RATE_K = (2048, 4096)
RATE_S = (11, 48)
SCALE_S = (0, 63)
WARMUP_MAX = 1 << 30
EPOCH_LOG2_MAX = 6


class Codes(NamedTuple):
    """One layer's LPL constants (docs/protocol.md, "LPL block"; formats in
    docs/learning-rules.md section 3).

    act_frac A, ema_frac E, factor_frac P: fraction bits (A <= 14, E <= 12, 1 <= P, A + P <= 32).
    dither: stochastic-rounding words a_i + b_j (True) or one word per synapse (False).
    warmup: steps with statistics only.  xi_q: variance floor in Q.(2A+E), >= 1.
    var_init_q: initial variance in Q.(2A+E).  w_lo, w_hi: int8 weight bounds.
    mean, var, pre, post: rate codes (pre/post None: filter off).
    lam, pred, lam_decorr, lam_hom, eta: scale codes (None: term off; eta is required).
    decorr: covariance state kept (lam_decorr > 0; the term itself is off when n_out == 1).
    hom: homeostasis on; own_target: its target is each neuron's mean at the end of the
    warm-up (stored), else rate_target_q (Q.(A+E)).
    epoch_log2 e: the rule runs once every 2^e time steps on the activities summed over them
    (0..6, <= act_frac; 0 = every step). The other constants are already per epoch
    (``lpl_rate.epoch_params``); the device converts nothing.
    """

    act_frac: int
    ema_frac: int
    factor_frac: int
    dither: bool
    warmup: int
    xi_q: int
    var_init_q: int
    w_lo: int
    w_hi: int
    mean: RateCode
    var: RateCode
    pre: RateCode | None
    post: RateCode | None
    lam: RateCode | None
    pred: RateCode | None
    decorr: bool
    lam_decorr: RateCode | None
    hom: bool
    own_target: bool
    rate_target_q: int
    lam_hom: RateCode | None
    eta: RateCode
    epoch_log2: int = 0

    @property
    def var_frac(self) -> int:
        return 2 * self.act_frac + self.ema_frac

    @property
    def epoch(self) -> int:
        """Time steps per run of the rule, 2^epoch_log2."""
        return 1 << self.epoch_log2


def _bad(field: str, value, why: str) -> ParameterError:
    err = ParameterError(f"{RULE}: LPL block field '{field}' = {value} {why}")
    err.field = field
    err.value = value
    return err


def _check_int(field: str, v, lo: int, hi: int) -> None:
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not lo <= int(v) <= hi:
        raise _bad(field, v, f"is outside [{lo}, {hi}]")


def _check_code(field: str, c, k_rng: tuple[int, int], s_rng: tuple[int, int],
                optional: bool) -> None:
    if c is None:
        if not optional:
            raise _bad(field, 0, "is required (k = 0 is not allowed here)")
        return
    _check_int(f"{field}.k", c.k, *k_rng)
    _check_int(f"{field}.s", c.s, *s_rng)


def check_codes(c: Codes) -> None:
    """Refuse a block a device must not run (ParameterError naming the field and value)."""
    _check_int("act_frac", c.act_frac, 0, 14)
    _check_int("ema_frac", c.ema_frac, 0, 12)
    _check_int("factor_frac", c.factor_frac, 1, 32)
    if c.act_frac + c.factor_frac > 32:
        raise _bad("factor_frac", c.factor_frac, f"+ act_frac {c.act_frac} exceeds 32")
    _check_int("warmup", c.warmup, 0, WARMUP_MAX)
    _check_int("xi_q", c.xi_q, 1, (1 << 31) - 1)
    _check_int("var_init_q", c.var_init_q, 0, (1 << 31) - 1)
    _check_int("w_lo", c.w_lo, -128, 127)
    _check_int("w_hi", c.w_hi, -128, 127)
    if c.w_lo > c.w_hi:
        raise _bad("w_hi", c.w_hi, f"is below w_lo {c.w_lo}")
    for name in ("mean", "var", "pre", "post"):
        _check_code(name, getattr(c, name), RATE_K, RATE_S, name in ("pre", "post"))
    for name in ("lam", "pred", "lam_decorr", "lam_hom", "eta"):
        _check_code(name, getattr(c, name), RATE_K, SCALE_S, name != "eta")
    if c.lam_decorr is not None and not c.decorr:
        raise _bad("lam_decorr", c.lam_decorr.k, "is set but the decorrelation flag is clear")
    if (c.lam_hom is not None) != c.hom:
        raise _bad("lam_hom", 0 if c.lam_hom is None else c.lam_hom.k,
                   "must be set exactly when the homeostasis flag is set")
    if c.own_target and not c.hom:
        raise _bad("flags", F_OWN_TARGET, "sets the own-target bit without homeostasis")
    if c.own_target and c.warmup < 1:
        raise _bad("warmup", c.warmup, "must be >= 1 when the target is the warm-up mean")
    fixed_target = c.hom and not c.own_target
    _check_int("rate_target_q", c.rate_target_q, 0, (1 << 31) - 1 if fixed_target else 0)
    _check_int("epoch_log2", c.epoch_log2, 0, EPOCH_LOG2_MAX)
    if c.epoch_log2 > c.act_frac:
        raise _bad("epoch_log2", c.epoch_log2, f"exceeds act_frac {c.act_frac} (the epoch mean "
                                               f"acc << (act_frac - epoch_log2) needs it)")


class State(NamedTuple):
    """Per-layer integer LPL state; disabled parts are zero-size arrays.

    z_prev int16 [n_out] (Q.A); mean int32 [n_out] (Q.(A+E)); var int32 [n_out] (Q.(2A+E));
    count int32 [1] (rule runs seen, saturates at warmup); pre_trace int32 [n_in or 0];
    post_trace int32 [n_out or 0]; cov int32 [n_out, n_out] or [0, 0]; target int32 [n_out or 0];
    with a learning epoch (epoch_log2 > 0, else all three [0]): epoch_pre int32 [n_in] (the
    layer's integer inputs summed over the open epoch), epoch_post int32 [n_out] (its spikes
    summed), epoch_steps int32 [1] (time steps in the open epoch, 0 .. 2^epoch_log2 - 1).
    """

    z_prev: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    count: np.ndarray
    pre_trace: np.ndarray
    post_trace: np.ndarray
    cov: np.ndarray
    target: np.ndarray
    epoch_pre: np.ndarray
    epoch_post: np.ndarray
    epoch_steps: np.ndarray


EPOCH_FIELDS = ("epoch_pre", "epoch_post", "epoch_steps")


def state_shapes(n_in: int, n_out: int, pre: bool, post: bool, decorr: bool,
                 own_target: bool, epoch: bool = False
                 ) -> list[tuple[str, tuple[int, ...], type]]:
    """(name, shape, dtype) of every State array for an n_out x n_in layer, in State order
    (``epoch``: the layer has a learning epoch, epoch_log2 > 0)."""
    m = n_out if decorr else 0
    return [("z_prev", (n_out,), np.int16), ("mean", (n_out,), np.int32),
            ("var", (n_out,), np.int32), ("count", (1,), np.int32),
            ("pre_trace", (n_in if pre else 0,), np.int32),
            ("post_trace", (n_out if post else 0,), np.int32),
            ("cov", (m, m), np.int32), ("target", (n_out if own_target else 0,), np.int32),
            ("epoch_pre", (n_in if epoch else 0,), np.int32),
            ("epoch_post", (n_out if epoch else 0,), np.int32),
            ("epoch_steps", (1 if epoch else 0,), np.int32)]


def code_state_shapes(c: Codes, n_in: int, n_out: int) -> list[tuple[str, tuple[int, ...], type]]:
    """:func:`state_shapes` of the layer a block describes."""
    return state_shapes(n_in, n_out, c.pre is not None, c.post is not None, c.decorr,
                        c.own_target, c.epoch_log2 > 0)


def new_state(shapes: list[tuple[str, tuple[int, ...], type]], var_init_q: int) -> State:
    """Zeros, with the variance (and the covariance diagonal) at var_init_q."""
    s = State(*(np.zeros(shape, dt) for _, shape, dt in shapes))
    s.var[:] = var_init_q
    if s.cov.size:
        np.fill_diagonal(s.cov, var_init_q)
    return s


def init_state(c: Codes, n_in: int, n_out: int) -> State:
    """The state a device starts a block from."""
    return new_state(code_state_shapes(c, n_in, n_out), c.var_init_q)


def state_bytes(c: Codes, n_in: int, n_out: int) -> int:
    """Bytes of :func:`init_state`'s arrays."""
    return sum(int(np.prod(shape)) * np.dtype(dt).itemsize
               for _, shape, dt in code_state_shapes(c, n_in, n_out))


# ---- the 64-byte LPL block (docs/protocol.md section 8.2) ----------------------------------
BLOCK = struct.Struct("<BBBBBbbBIIii" + "HBB" * 9 + "I")   # byte 7: epoch_log2
BLOCK_BYTES = BLOCK.size
CODE_FIELDS = ("mean", "var", "pre", "post", "lam", "pred", "lam_decorr", "lam_hom", "eta")
F_DECORR, F_HOM, F_OWN_TARGET = 1, 2, 4
# byte offset of every field in the block (what a device names in BAD_PARAM)
FIELD_OFFSETS = {"act_frac": 0, "ema_frac": 1, "factor_frac": 2, "rounding": 3, "flags": 4,
                 "w_lo": 5, "w_hi": 6, "epoch_log2": 7, "warmup": 8, "xi_q": 12,
                 "var_init_q": 16, "rate_target_q": 20,
                 **{n: 24 + 4 * i for i, n in enumerate(CODE_FIELDS)},
                 **{f"{n}.k": 24 + 4 * i for i, n in enumerate(CODE_FIELDS)},
                 **{f"{n}.s": 26 + 4 * i for i, n in enumerate(CODE_FIELDS)},
                 **{f"{n}.reserved": 27 + 4 * i for i, n in enumerate(CODE_FIELDS)},
                 "reserved_end": 60}


def pack_block(c: Codes) -> bytes:
    """The 64-byte little-endian LPL block of ``c`` (checked first)."""
    check_codes(c)
    flags = (F_DECORR if c.decorr else 0) | (F_HOM if c.hom else 0) | \
        (F_OWN_TARGET if c.own_target else 0)
    codes = []
    for name in CODE_FIELDS:
        code = getattr(c, name)
        codes += [0, 0, 0] if code is None else [int(code.k), int(code.s), 0]
    return BLOCK.pack(c.act_frac, c.ema_frac, c.factor_frac, int(c.dither), flags, c.w_lo,
                      c.w_hi, c.epoch_log2, c.warmup, c.xi_q, c.var_init_q, c.rate_target_q, *codes, 0)


def unpack_block(data: bytes) -> Codes:
    """Parse and check a 64-byte LPL block; ParameterError with ``.field`` (a key of
    FIELD_OFFSETS) and ``.value`` for the first invalid field."""
    if len(data) != BLOCK_BYTES:
        raise _bad("length", len(data), f"is not the block's {BLOCK_BYTES} bytes")
    v = BLOCK.unpack(bytes(data))
    A, E, P, rounding, flags, w_lo, w_hi, epoch_log2, warmup, xi_q, var_q, target_q = v[:12]
    raw, res1 = v[12:39], v[39]
    if res1:
        raise _bad("reserved_end", res1, "is a reserved field and must be 0")
    if rounding not in (0, 1):
        raise _bad("rounding", rounding, "is not a rounding mode (0 full, 1 dither)")
    if flags & ~(F_DECORR | F_HOM | F_OWN_TARGET):
        raise _bad("flags", flags, "sets undefined flag bits")
    codes = {}
    for i, name in enumerate(CODE_FIELDS):
        k, s, r = raw[3 * i:3 * i + 3]
        if r:
            raise _bad(f"{name}.reserved", r, "is a reserved byte and must be 0")
        if k == 0 and s != 0:
            raise _bad(f"{name}.s", s, "must be 0 when k is 0 (term off)")
        codes[name] = None if k == 0 else RateCode(k, s)
    c = Codes(act_frac=A, ema_frac=E, factor_frac=P, dither=bool(rounding), warmup=warmup,
              xi_q=xi_q, var_init_q=var_q, w_lo=w_lo, w_hi=w_hi, decorr=bool(flags & F_DECORR),
              hom=bool(flags & F_HOM), own_target=bool(flags & F_OWN_TARGET),
              rate_target_q=target_q, epoch_log2=epoch_log2, **codes)
    check_codes(c)
    return c
