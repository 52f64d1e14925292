"""The LPL block (docs/protocol.md section 8.2) a device runs fixed-point LPL with (L1).

:func:`edgelearn.rules.lpl_rate.step_fixed` turns its float parameters into integer codes at
every call; a device has no floating point in that path, so the host computes the codes once
and sends them as the 64-byte LPL block. :func:`lpl_block` packs them with the same encoders
the numpy rule uses (so they cannot drift); the C firmware's shared library and vector harness
read that block.
"""

from __future__ import annotations

import struct

from edgelearn.rules import lpl_rate, qmath

_BLOCK = struct.Struct("<BBBBBbbBIIii" + "HBB" * 9 + "I")


def _scale(value: float, name: str) -> tuple[int, int]:
    if value == 0:
        return (0, 0)
    c = qmath.encode_scale(lpl_rate.RULE, name, value)
    return (int(c.k), int(c.s))


def lpl_block(params: lpl_rate.Params, w_shift: float, n_out: int) -> bytes:
    """The 64-byte LPL block of ``params`` for a layer of ``n_out`` neurons whose weight LSB is
    2^-w_shift (edgelearn.rules.base.qlayer_w_shift)."""
    p = params
    codes = lpl_rate._codes(p)
    rate = lambda c: (0, 0) if c is None else (int(c.k), int(c.s))  # noqa: E731
    A, E = p.act_frac, p.ema_frac
    lo, hi = qmath.int_bounds(p.w_min, p.w_max, w_shift)
    own = p.stores_target
    fixed_target = p.lam_hom > 0 and not own
    flags = (1 if p.lam_decorr > 0 else 0) | (2 if p.lam_hom > 0 else 0) | (4 if own else 0)
    var_init_q = min(int(round(p.var_init * (1 << p.var_frac))), (1 << 31) - 1)
    pairs = [rate(codes.mean), rate(codes.var), rate(codes.pre), rate(codes.post),
             _scale(p.lam, "lam"), _scale(p.pred, "pred"),
             _scale(p.lam_decorr / (n_out - 1), "lam_decorr") if p.lam_decorr > 0 and n_out > 1
             else (0, 0), _scale(p.lam_hom, "lam_hom"),
             _scale(p.eta * 2.0 ** float(w_shift), "eta * 2^w_shift")]
    fields = [v for k, s in pairs for v in (k, s, 0)]
    target_q = int(round(p.rate_target * (1 << (A + E)))) if fixed_target else 0
    return _BLOCK.pack(A, E, p.factor_frac, 0 if p.rounding == "full" else 1, flags, lo, hi, 0,
                       int(p.warmup), p.xi_q, var_init_q, target_q, *fields, 0)
