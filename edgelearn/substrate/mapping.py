"""Deterministic weight <-> conductance mapping (L1, numpy only).

A layer's weights w (threshold units) map to a pair of device conductances (uS):

    m = clip(|w| / w_max, 0, 1)                       clipped entries are counted, never silent
    m_q = round(m L) / L   with L = 2^bits - 1         (no rounding when bits is None)
    g+ = g_max m_q  where w > 0,  g- = g_max m_q  where w < 0,  the other device 0
    w  = (g+ - g-) / g_max * w_max                    (the inverse, :func:`to_weights`)

With ``sign="differential"`` both devices are physical; with ``sign="sign_bit"`` only the one
selected by the sign exists (the other is an exact digital 0), which :func:`active_mask` gives.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from edgelearn.errors import SubstrateError
from edgelearn.substrate.params import Mapping


class DeviceTarget(NamedTuple):
    """Target conductances of one weight matrix: g [2, n_out, n_in] uS (0 = g+, 1 = g-)."""

    g: np.ndarray
    n_clipped: int
    max_abs: float


def choose_w_max(weight: np.ndarray, mapping: Mapping, name: str) -> float:
    """w_max for a layer: headroom * max|w| (1.0 for an all-zero matrix)."""
    w = np.asarray(weight, dtype=np.float64)
    if not np.all(np.isfinite(w)):
        raise SubstrateError(f"weights of '{name}' contain NaN or Inf")
    top = float(np.max(np.abs(w))) if w.size else 0.0
    return mapping.headroom * top if top > 0 else 1.0


def quantize_magnitude(m: np.ndarray, mapping: Mapping) -> np.ndarray:
    """Round relative magnitudes in [0, 1] to the device's levels (identity if continuous)."""
    levels = mapping.levels
    if levels is None:
        return m
    return np.round(m * levels) / levels


def to_device(weight: np.ndarray, w_max: float, mapping: Mapping, name: str) -> DeviceTarget:
    """Map float weights to target conductances; counts entries beyond +-w_max (clipped)."""
    w = np.asarray(weight, dtype=np.float64)
    if not np.all(np.isfinite(w)):
        raise SubstrateError(f"weights written to '{name}' contain NaN or Inf")
    if not w_max > 0:
        raise SubstrateError(f"'{name}': w_max must be > 0, got {w_max}")
    mag = np.abs(w) / w_max
    over = mag > 1.0 + 1e-6
    m = quantize_magnitude(np.minimum(mag, 1.0), mapping)
    g = np.zeros((2,) + w.shape, dtype=np.float64)
    g[0] = np.where(w > 0, m, 0.0) * mapping.g_max_us
    g[1] = np.where(w < 0, m, 0.0) * mapping.g_max_us
    return DeviceTarget(g, int(over.sum()), float(np.max(np.abs(w))) if w.size else 0.0)


def to_weights(g: np.ndarray, w_max: float, mapping: Mapping) -> np.ndarray:
    """Nominal weights of conductances g [2, ...]: (g+ - g-) / g_max * w_max, float32."""
    return ((g[0] - g[1]) * (w_max / mapping.g_max_us)).astype(np.float32)


def active_mask(g_target: np.ndarray, mapping: Mapping) -> np.ndarray:
    """Boolean [2, ...]: which devices physically exist for these targets.

    Differential pairs: both. Sign bit: g+ where the target is positive, g- where negative
    (for a zero target, g+ with sign +).
    """
    if mapping.sign == "differential":
        return np.ones(g_target.shape, dtype=bool)
    neg = g_target[1] > 0
    return np.stack([~neg, neg])
