"""Statistics of phase-change-memory devices, after IBM aihwkit's PCMLikeNoiseModel (L1).

The formulas and constants are the published fit of Nandakumar et al. (ICECS 2019) as used by
aihwkit (``src/aihwkit/inference/noise/pcm.py``); this module re-derives them in numpy from the
equations (see ANCHORS.md), with g the conductance relative to g_max:

    programming noise   sigma_prog(g) = (c0 + c1 g + c2 g^2) * g_max / 25 uS      [uS]
    drift exponent      mu_nu(g)    = clip(-0.0155 ln g + 0.0244, 0.049, 0.1)
                        sigma_nu(g) = clip(-0.0125 ln g - 0.0059, 0.008, 0.045)
                        nu = |mu_nu + sigma_nu z|   (g clipped below at 1e-7)
    drift               G(t) = G_prog ((t + t0) / t0)^(-nu)
    read (1/f) noise    Q(g) = min(0.2, 0.0088 / max(1e-3, g^0.65))   (g of the programmed value)
                        sigma_read(t) = Q sqrt(ln((t + t0 + t_read) / (2 t_read)))   relative to |G(t)|
"""

from __future__ import annotations

import numpy as np

G_REL_FLOOR = 1e-7


def prog_sigma_us(g_rel: np.ndarray, coeffs_us, g_max_us: float, g_max_ref_us: float) -> np.ndarray:
    """Programming-noise standard deviation in uS at relative target conductance ``g_rel``."""
    g_rel = np.asarray(g_rel, dtype=np.float64)
    sigma = np.zeros_like(g_rel)
    power = np.ones_like(g_rel)
    for c in coeffs_us:
        sigma = sigma + c * power
        power = power * g_rel
    return sigma * (g_max_us / g_max_ref_us)


def nu_mean(g_rel: np.ndarray) -> np.ndarray:
    """Mean drift exponent mu_nu at relative conductance ``g_rel``."""
    g = np.maximum(np.abs(np.asarray(g_rel, dtype=np.float64)), G_REL_FLOOR)
    return np.clip(-0.0155 * np.log(g) + 0.0244, 0.049, 0.1)


def nu_std(g_rel: np.ndarray) -> np.ndarray:
    """Standard deviation sigma_nu of the drift exponent at relative conductance ``g_rel``."""
    g = np.maximum(np.abs(np.asarray(g_rel, dtype=np.float64)), G_REL_FLOOR)
    return np.clip(-0.0125 * np.log(g) - 0.0059, 0.008, 0.045)


def read_q(g_rel: np.ndarray) -> np.ndarray:
    """1/f noise amplitude Q at relative programmed conductance ``g_rel``."""
    g = np.abs(np.asarray(g_rel, dtype=np.float64))
    return np.minimum(0.2, 0.0088 / np.maximum(1e-3, g ** 0.65))


def read_sigma_rel(g_rel: np.ndarray, t_since_s, t0_s: float, t_read_s: float) -> np.ndarray:
    """Relative read-noise std at time ``t_since_s`` after programming (0 where t + t0 <= 0)."""
    t = np.asarray(t_since_s, dtype=np.float64) + t0_s
    arg = np.maximum((t + t_read_s) / (2.0 * t_read_s), 1.0)
    return read_q(g_rel) * np.sqrt(np.log(arg))


def drift_factor(nu: np.ndarray, t_since_s, t0_s: float) -> np.ndarray:
    """G(t) / G_prog = ((t + t0) / t0)^(-nu); 1 for t <= 0."""
    t = np.maximum(np.asarray(t_since_s, dtype=np.float64), 0.0)
    return ((t + t0_s) / t0_s) ** (-np.asarray(nu, dtype=np.float64))
