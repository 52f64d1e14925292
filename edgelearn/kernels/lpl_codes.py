"""The integer coefficients a device runs fixed-point LPL with (L1, numpy-free arithmetic).

:func:`edgelearn.rules.lpl_rate.step_fixed` turns its float parameters into integer codes at
every call; a device has no floating point in that path, so the host computes the codes once
and sends them. This module states those codes (the same functions the numpy rule uses, so they
cannot drift) and packs them into the 116-byte block the C firmware's test harness and shared
library read (layout in firmware/README.md, "LPL coefficient block"):

    rate codes (k, s): mean, var, pre filter, post filter   rate = k 2^-s; k = 0: filter off
    scale codes (k, s): lam, pred, lam_decorr / (n_out - 1), lam_hom, eta 2^w_shift
                        value = k 2^-s (s < 0: a left shift); k = 0: the term is zero
    xi_q = round(xi 2^(2A+E)); rate_target_q = round(rate_target 2^(A+E));
    w_lo, w_hi = the integer weight bounds; var_init_q = min(round(var_init 2^(2A+E)), 2^31-1)
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from edgelearn.rules import lpl_rate, qmath

CODES_MAGIC = b"LPLC"
_BLOCK = struct.Struct("<4sBBBBIq18iBBBxqiii")


class LPLCodes(NamedTuple):
    act_frac: int
    ema_frac: int
    factor_frac: int
    rounding: int          # 0 full, 1 dither
    warmup: int
    xi_q: int
    mean: tuple[int, int]
    var: tuple[int, int]
    pre: tuple[int, int]
    post: tuple[int, int]
    lam: tuple[int, int]
    pred: tuple[int, int]
    lam_decorr: tuple[int, int]
    lam_hom: tuple[int, int]
    eta: tuple[int, int]
    decorr: int
    hom: int
    stores_target: int
    rate_target_q: int
    w_lo: int
    w_hi: int
    var_init_q: int


def _scale_code(value: float, name: str) -> tuple[int, int]:
    if value == 0:
        return (0, 0)
    c = qmath.encode_scale(lpl_rate.RULE, name, value)
    return (int(c.k), int(c.s))


def lpl_codes(params: lpl_rate.Params, w_shift: float, n_out: int) -> LPLCodes:
    """The integer codes of ``params`` for a layer of ``n_out`` neurons whose weight LSB is
    2^-w_shift (edgelearn.rules.base.qlayer_w_shift)."""
    p = params
    codes = lpl_rate._codes(p)
    rc = lambda c: (0, 0) if c is None else (int(c.k), int(c.s))  # noqa: E731
    A, E = p.act_frac, p.ema_frac
    decorr = p.lam_decorr > 0
    lo, hi = qmath.int_bounds(p.w_min, p.w_max, w_shift)
    rate_target_q = (int(round(p.rate_target * (1 << (A + E))))
                     if p.lam_hom > 0 and not p.stores_target else 0)
    return LPLCodes(
        act_frac=A, ema_frac=E, factor_frac=p.factor_frac,
        rounding=0 if p.rounding == "full" else 1, warmup=int(p.warmup), xi_q=p.xi_q,
        mean=rc(codes.mean), var=rc(codes.var), pre=rc(codes.pre), post=rc(codes.post),
        lam=_scale_code(p.lam, "lam"), pred=_scale_code(p.pred, "pred"),
        lam_decorr=(_scale_code(p.lam_decorr / (n_out - 1), "lam_decorr")
                    if decorr and n_out > 1 else (0, 0)),
        lam_hom=_scale_code(p.lam_hom, "lam_hom"),
        eta=_scale_code(p.eta * 2.0 ** float(w_shift), "eta * 2^w_shift"),
        decorr=int(decorr), hom=int(p.lam_hom > 0), stores_target=int(p.stores_target),
        rate_target_q=rate_target_q, w_lo=lo, w_hi=hi,
        var_init_q=min(int(round(p.var_init * (1 << p.var_frac))), (1 << 31) - 1))


def pack_codes(c: LPLCodes) -> bytes:
    """The 116-byte little-endian coefficient block."""
    pairs = [v for name in ("mean", "var", "pre", "post", "lam", "pred", "lam_decorr", "lam_hom",
                            "eta") for v in getattr(c, name)]
    return _BLOCK.pack(CODES_MAGIC, c.act_frac, c.ema_frac, c.factor_frac, c.rounding, c.warmup,
                       c.xi_q, *pairs, c.decorr, c.hom, c.stores_target, c.rate_target_q,
                       c.w_lo, c.w_hi, c.var_init_q)
