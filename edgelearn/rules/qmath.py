"""Integer arithmetic shared by the fixed-point learning rules (L1, numpy only).

* Rate code: a per-step rate r = 1 - exp(-1/tau) (tau in steps) as a 12-bit mantissa k in
  [2048, 4095] and an exponent s, r ~= k * 2^-s; an average moves as
  ``x += stochastic_shift((target - x) * k, s, word)``. A 12-bit decay multiplier cannot
  represent tau > ~8000 steps (it rounds to 4096 = no decay); the rate code can, and stochastic
  rounding keeps the average unbiased however small the step.
* Scale code: positive coefficients (learning rates, lambdas) as the same mantissa/exponent.
* Weight updates: an exact integer numerator over 2^shift weight LSBs, applied with
  :func:`edgelearn.fixed.stochastic_shift` and bounds that stop updates but never move a weight
  by themselves. rounding="full": one PRNG word per synapse (row-major, index i * n_in + j);
  "dither": n_out + n_in words a_i, b_j and r_ij = a_i + b_j mod 2^32 (uniform for every
  synapse, so each rounding is unbiased) at O(n_in + n_out) PRNG cost.
* PRNG words, the stochastic shift and saturation are the primitives of :mod:`edgelearn.fixed`
  (defined there once): r_k = hash32(key ^ hash32(counter + k)) at arbitrary offsets, so
  event-driven updates can skip inactive synapses and stay bit-identical.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from edgelearn.errors import ParameterError
from edgelearn.fixed import RngState, rng_advance as advance, rng_words_at, round_shift
from edgelearn.fixed import saturate_count  # noqa: F401 (the rules' import of the primitive)
from edgelearn.fixed import rng_draw as words
from edgelearn.fixed import stochastic_shift as sshift

MANTISSA_BITS = 12
MAX_SHIFT = 32               # stochastic_shift uses one 32-bit draw per element
INT8_MIN, INT8_MAX = -128, 127


class RateCode(NamedTuple):
    """A rate r in (0, 1] as ``k * 2^-s`` with k a 12-bit mantissa (2048 <= k <= 4095 or 4096)."""

    k: int
    s: int

    @property
    def value(self) -> float:
        return self.k / float(1 << self.s)


@functools.lru_cache(maxsize=4096)
def encode_rate(rule: str, name: str, r: float) -> RateCode:
    """Encode a per-step rate r in (0, 1] with a 12-bit mantissa (relative error < 2^-12)."""
    if not (math.isfinite(r) and 0 < r <= 1):
        raise ParameterError(f"{rule}: {name} rate must lie in (0, 1], got {r}")
    s = MANTISSA_BITS - 1 - math.floor(math.log2(r))
    k = int(round(r * (1 << s)))
    if s > 48:
        raise ParameterError(f"{rule}: {name} rate {r:.3g} is too small to encode (s={s} > 48)")
    return RateCode(k, s)


def tau_rate(tau_steps: float) -> float:
    """Per-step rate of an exponential average with time constant ``tau_steps``: 1-exp(-1/tau)."""
    return -math.expm1(-1.0 / tau_steps)


@functools.lru_cache(maxsize=4096)
def decay_code(rule: str, name: str, tau_steps: float) -> RateCode:
    return encode_rate(rule, name, tau_rate(tau_steps))


def fit_shift(num: np.ndarray, shift: int) -> tuple[np.ndarray, int]:
    """Bring a stochastic shift into 0..32 (one 32-bit draw per element): for shift > 32 first
    round_shift by shift - 32 (bias < 2^-33 LSB); for shift < 0 shift left instead."""
    num = np.asarray(num, dtype=np.int64)
    if shift > MAX_SHIFT:
        return round_shift(num, shift - MAX_SHIFT), MAX_SHIFT
    if shift < 0:
        return num << -shift, 0
    return num, shift


def ema_fixed(x: np.ndarray, target: np.ndarray, code: RateCode, rng: RngState,
              dither: bool = False) -> tuple[np.ndarray, RngState]:
    """``x + stochastic_shift((target - x) * k, s, draw)`` elementwise (int64).

    One PRNG word per element; with ``dither`` (2-D x only) r_ij = a_i + b_j, i.e.
    n_out + n_in words per call, each rounding still unbiased. If s > 32 the product is first
    reduced with round_shift by s - 32 (bias < 2^-33 LSB).
    """
    x = np.asarray(x, dtype=np.int64)
    num, s = fit_shift((np.asarray(target, dtype=np.int64) - x) * code.k, code.s)
    if dither:
        r, rng = draws(rng, x.shape, "dither")
    else:
        r, rng = words(rng, x.size)
        r = r.reshape(x.shape)
    return x + sshift(num, s, r), rng


def ema_apply(x: np.ndarray, target: np.ndarray, code: RateCode, r: np.ndarray) -> np.ndarray:
    """:func:`ema_fixed` with the PRNG words ``r`` given (one per element)."""
    x = np.asarray(x, dtype=np.int64)
    num, s = fit_shift((np.asarray(target, dtype=np.int64) - x) * code.k, code.s)
    return x + sshift(num, s, r)


def ema_float(x: np.ndarray, target: np.ndarray, rate: float) -> np.ndarray:
    return x + (target - x) * rate


@functools.lru_cache(maxsize=4096)
def int_bounds(w_min: float, w_max: float, w_shift: float) -> tuple[int, int]:
    """Integer weight bounds: the float bounds in LSBs, intersected with the int8 range."""
    scale = 2.0 ** float(w_shift)
    lo = INT8_MIN if w_min == -math.inf else max(INT8_MIN, math.ceil(w_min * scale))
    hi = INT8_MAX if w_max == math.inf else min(INT8_MAX, math.floor(w_max * scale))
    if lo > hi:
        raise ParameterError(f"weight bounds [{w_min}, {w_max}] hold no int8 value at "
                             f"w_shift={w_shift}")
    return lo, hi


def draws(rng: RngState, shape: tuple[int, int], rounding: str) -> tuple[np.ndarray, RngState]:
    """PRNG words for an [n_out, n_in] update: full (one per synapse) or dither (a_i + b_j)."""
    n_out, n_in = shape
    if rounding == "full":
        r, rng = words(rng, n_out * n_in)
        return r.reshape(n_out, n_in), rng
    r, rng = words(rng, n_out + n_in)
    return r[:n_out, None] + r[None, n_out:], rng          # uint32 arrays wrap mod 2^32


def apply_update(w: np.ndarray, num: np.ndarray, shift: int, rng: RngState, lo: int, hi: int,
                 rounding: str) -> tuple[np.ndarray, RngState, int, int]:
    """w + stochastic_shift(num, shift) with bounds; returns (w_int8, rng, changed, clipped).

    Bounds stop updates, they never move a weight by themselves: the result is clipped to
    [min(lo, w), max(hi, w)], so a weight already outside [lo, hi] (e.g. pretrained) stays
    until an update moves it inwards, and a zero update is always a no-op (which is what lets
    :func:`apply_rank1` skip inactive synapses).

    ``num`` is the exact update in units of 2^-shift weight LSBs (int64 [n_out, n_in]). If
    shift > 32 the numerator is first reduced with round_shift (bias < 2^-33 LSB).
    """
    num, shift = fit_shift(num, shift)
    r, rng = draws(rng, num.shape, rounding)
    dw = sshift(num, shift, r).ravel()
    idx = np.flatnonzero(dw)
    out, changed, clipped = _bounded_add(w, idx, dw[idx], lo, hi)
    return out, rng, changed, clipped


def _bounded_add(w: np.ndarray, idx: np.ndarray, dw: np.ndarray, lo: int, hi: int
                 ) -> tuple[np.ndarray, int, int]:
    """Add dw to the flat entries idx of int8 ``w`` under the bounds rule (only the entries
    with a nonzero change are touched); returns (new w, changed, clipped)."""
    if idx.size == 0:
        return w, 0, 0
    w64 = w.ravel()[idx].astype(np.int64)
    raw = w64 + dw
    new = np.minimum(np.maximum(raw, np.minimum(lo, w64)), np.maximum(hi, w64))
    out = w.copy()
    out.ravel()[idx] = new
    return out, int(np.count_nonzero(new != w64)), int(np.count_nonzero(new != raw))


def apply_rank1(w: np.ndarray, post: np.ndarray, pre: np.ndarray, shift: int, rng: RngState,
                lo: int, hi: int, rounding: str) -> tuple[np.ndarray, RngState, int, int]:
    """:func:`apply_update` for ``num = outer(post, pre)``, skipping zero rows and columns.

    A zero numerator never changes a weight whatever its draw (r & (2^s-1) < 2^s), and the
    counter-based PRNG lets the active synapses fetch their own words, so the result and the
    PRNG state are bit-identical to the dense path; the cost scales with the number of active
    (row, column) pairs (event-driven when ``pre`` holds sparse spikes).
    """
    post = np.asarray(post, dtype=np.int64)
    pre = np.asarray(pre, dtype=np.int64)
    n_out, n_in = w.shape
    rows, cols = np.flatnonzero(post), np.flatnonzero(pre)
    if 2 * rows.size * cols.size > n_out * n_in:
        return apply_update(w, post[:, None] * pre[None, :], shift, rng, lo, hi, rounding)
    n_words = n_out * n_in if rounding == "full" else n_out + n_in
    if rows.size == 0 or cols.size == 0:
        return w, advance(rng, n_words), 0, 0
    num, shift = fit_shift(post[rows, None] * pre[None, cols], shift)
    if rounding == "full":
        r = rng_words_at(rng, rows[:, None] * n_in + cols[None, :])
    else:
        ab = rng_words_at(rng, np.concatenate([rows, n_out + cols]))
        r = ab[: rows.size, None] + ab[None, rows.size:]
    dw = sshift(num, shift, r)
    rr, cc = np.nonzero(dw)
    out, changed, clipped = _bounded_add(w, rows[rr] * n_in + cols[cc], dw[rr, cc], lo, hi)
    return out, advance(rng, n_words), changed, clipped


def apply_float(w: np.ndarray, dw: np.ndarray, w_min: float, w_max: float) -> np.ndarray:
    """Float twin of the bounded update: clip(w + dW, min(w_min, w), max(w_max, w))."""
    w = np.asarray(w, dtype=np.float64)
    return np.clip(w + dw, np.minimum(w_min, w), np.maximum(w_max, w))


@functools.lru_cache(maxsize=4096)
def encode_scale(rule: str, name: str, value: float) -> RateCode:
    """A positive scale factor (learning rate, coefficient) as mantissa/exponent (k, s).

    Unlike a rate it may exceed 1 (then s may be negative, meaning a left shift)."""
    if not (math.isfinite(value) and value > 0):
        raise ParameterError(f"{rule}: {name} must be finite and > 0, got {value}")
    s = MANTISSA_BITS - 1 - math.floor(math.log2(value))
    k = int(round(value * 2.0 ** s))
    return RateCode(k, s)


def to_factor(v: np.ndarray, v_frac: int, code: RateCode, out_frac: int) -> np.ndarray:
    """Integer v (Q.v_frac) times the scale ``code`` (k 2^-s), as int64 in Q.out_frac (round half up)."""
    prod = np.asarray(v, dtype=np.int64) * code.k
    sh = v_frac + code.s - out_frac
    return round_shift(prod, sh) if sh >= 0 else prod << -sh


def decay_traces_fixed(traces: tuple[np.ndarray, ...], codes: tuple[RateCode, ...],
                       rng: RngState) -> tuple[list[np.ndarray], RngState]:
    """One step of exponential decay for each trace: x -= stochastic_shift(x * k, s)."""
    out = []
    for x, c in zip(traces, codes):
        y, rng = ema_fixed(x, np.zeros_like(x, dtype=np.int64), c, rng)
        out.append(y)
    return out, rng
