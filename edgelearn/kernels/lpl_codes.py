"""The LPL block (docs/protocol.md section 8.2) a device runs fixed-point LPL with (L1).

A device has no floating point in the LPL path, so the host computes the integer codes once
(:func:`edgelearn.rules.lpl_rate.codes_for`, the codes the numpy rule itself runs on) and sends
them as the 64-byte LPL block (:func:`edgelearn.rules.lpl_codes.pack_block`); the C firmware's
shared library and vector harness read that block.
"""

from __future__ import annotations

from edgelearn.rules import lpl_codes, lpl_rate


def lpl_block(params: lpl_rate.Params, w_shift: float, n_out: int) -> bytes:
    """The 64-byte LPL block of ``params`` for a layer of ``n_out`` neurons whose weight LSB is
    2^-w_shift (edgelearn.rules.base.qlayer_w_shift)."""
    return lpl_codes.pack_block(lpl_rate.codes_for(params, w_shift, n_out))
