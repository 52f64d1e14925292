"""Fixed-point primitives shared by every integer path (layer L0, numpy only).

One rounding rule, defined here and nowhere else (docs/fixed-point.md):

    round_shift(x, s) = (x + 2^(s-1)) >> s        for s > 0  (round half up, arithmetic shift)
    round_shift(x, 0) = x

Saturation clips to the two's-complement range of a width: [-2^(b-1), 2^(b-1) - 1].

Decays are 12-bit multipliers: a constant c in [0, 1] is stored as ``d = round(c * 4096)`` and
applied as ``round_shift(x * d, 12)``.

Stochastic rounding uses a counter-based generator so that a vector of draws is one numpy
expression and bit-reproducible in C:

    hash32(x): x ^= x >> 16; x *= 0x7feb352d; x ^= x >> 15; x *= 0x846ca68b; x ^= x >> 16
    draw i of a stream (key, counter):  r_i = hash32(key ^ hash32(counter + i))   (all mod 2^32)
    after n draws the counter advances by n.

    stochastic_shift(x, s, r) = (x + (r & (2^s - 1))) >> s

E[stochastic_shift(x, s, r)] = x / 2^s exactly when r is uniform, so sub-LSB learning updates
are unbiased.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from edgelearn.errors import FixedPointError

DECAY_BITS = 12
DECAY_ONE = 1 << DECAY_BITS



def int_range(bits: int) -> tuple[int, int]:
    """Two's-complement range of a signed integer with ``bits`` bits: (min, max)."""
    if not 2 <= bits <= 64:
        raise FixedPointError(f"integer width must be 2..64 bits, got {bits}")
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def saturate(x: np.ndarray, bits: int) -> np.ndarray:
    """Clip integer array ``x`` to the signed ``bits``-bit range (dtype kept as int64)."""
    lo, hi = int_range(bits)
    return np.clip(np.asarray(x, dtype=np.int64), lo, hi)


def saturated_count(x: np.ndarray, bits: int) -> int:
    """Number of entries of ``x`` outside the signed ``bits``-bit range (before clipping)."""
    lo, hi = int_range(bits)
    x = np.asarray(x)
    return int(np.count_nonzero((x < lo) | (x > hi)))


def round_shift(x: np.ndarray, s: int) -> np.ndarray:
    """Divide by 2^s rounding half up: ``(x + 2^(s-1)) >> s`` on int64 (s >= 0)."""
    x = np.asarray(x, dtype=np.int64)
    if s < 0:
        raise FixedPointError(f"shift must be >= 0, got {s}")
    if s == 0:
        return x
    return (x + (1 << (s - 1))) >> s


def round_shift_float(x: np.ndarray, s: int) -> np.ndarray:
    """Float twin of :func:`round_shift`: floor(x / 2^s + 1/2) computed in float64."""
    return np.floor(np.asarray(x, dtype=np.float64) / float(1 << s) + 0.5)


def encode_decay(c: np.ndarray | float) -> np.ndarray:
    """Encode a decay constant c in [0, 1] as a 12-bit multiplier round(c * 4096) (int64)."""
    c = np.asarray(c, dtype=np.float64)
    if not np.all(np.isfinite(c)) or np.any(c < 0) or np.any(c > 1):
        raise FixedPointError(f"decay constants must lie in [0, 1], got range "
                              f"[{np.nanmin(c):.4g}, {np.nanmax(c):.4g}]")
    return np.rint(c * DECAY_ONE).astype(np.int64)


def decode_decay(d: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_decay`: d / 4096 as float64."""
    return np.asarray(d, dtype=np.float64) / DECAY_ONE


def apply_decay(x: np.ndarray, d: np.ndarray) -> np.ndarray:
    """x * (d / 4096) with the one rounding rule: ``round_shift(x * d, 12)``."""
    return round_shift(np.asarray(x, dtype=np.int64) * np.asarray(d, dtype=np.int64), DECAY_BITS)


def hash32(x: np.ndarray) -> np.ndarray:
    """The lowbias32 integer hash of uint32 values, in uint32 arithmetic (multiplications wrap
    mod 2^32 by themselves); returns uint32."""
    x = np.asarray(x).astype(np.uint32)
    with np.errstate(over="ignore"):           # wrapping is the point (numpy warns on scalars)
        x = x ^ (x >> np.uint32(16))
        x = x * np.uint32(0x7FEB352D)
        x = x ^ (x >> np.uint32(15))
        x = x * np.uint32(0x846CA68B)
        return x ^ (x >> np.uint32(16))


class RngState(NamedTuple):
    """State of the counter-based stochastic-rounding stream: 32-bit key and counter."""

    key: int
    counter: int


def rng_init(seed: int) -> RngState:
    """Start a stream for a device seeded with ``seed`` (any int; reduced mod 2^32)."""
    return RngState(key=int(seed) & 0xFFFFFFFF, counter=0)


def rng_words_at(state: RngState, idx: np.ndarray) -> np.ndarray:
    """Words ``idx`` (offsets from the current counter) of the stream without advancing it:
    r_k = hash32(key ^ hash32(counter + k)) (uint32). Rules that skip inactive synapses fetch
    the words of the active ones only and stay bit-identical."""
    ctr = np.asarray(idx, dtype=np.uint32) + np.uint32(state.counter & 0xFFFFFFFF)  # wraps
    return hash32(np.uint32(state.key & 0xFFFFFFFF) ^ hash32(ctr))


def rng_advance(state: RngState, n: int) -> RngState:
    """The stream after ``n`` more draws."""
    return RngState(state.key, (state.counter + int(n)) & 0xFFFFFFFF)


def rng_draw(state: RngState, n: int) -> tuple[np.ndarray, RngState]:
    """Draw ``n`` uint32 values and return them with the advanced state."""
    return rng_words_at(state, np.arange(n, dtype=np.uint32)), rng_advance(state, n)


def stochastic_shift(x: np.ndarray, s: int, r: np.ndarray) -> np.ndarray:
    """Divide int64 ``x`` by 2^s (s >= 0) with stochastic rounding:
    ``(x + (r & (2^s-1))) >> s``.

    ``r`` holds uniform 32-bit draws, one per element of ``x`` (same shape or broadcastable),
    as uint32 (the fast path: uint32 + int64 stays int64) or any integer array.
    """
    x = np.asarray(x, dtype=np.int64)
    if s == 0:
        return x
    r = np.asarray(r)
    if r.dtype == np.uint32 and s <= 32:
        low = r if s == 32 else r & np.uint32((1 << s) - 1)
    else:
        low = (r.astype(np.uint64) & np.uint64((1 << s) - 1)).astype(np.int64)
    return (x + low) >> s


def saturate_count(x: np.ndarray, bits: int) -> tuple[np.ndarray, int]:
    """Clip int64 ``x`` to the signed ``bits`` range; return it and the number of clipped
    entries (``x`` itself when nothing is out of range)."""
    lo, hi = int_range(bits)
    x = np.asarray(x)
    if x.size == 0 or (x.min() >= lo and x.max() <= hi):
        return x, 0
    y = np.minimum(np.maximum(x, lo), hi)
    return y, int(np.count_nonzero(y != x))
