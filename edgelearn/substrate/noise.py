"""The noise hooks of a substrate, each a pure function of its inputs and an explicit Generator.

Conductance arrays are float64 [2, n_out, n_in] in uS (device 0 = g+, device 1 = g-), as made by
:mod:`edgelearn.substrate.mapping`. Order of application: see :mod:`edgelearn.substrate.params`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from edgelearn.substrate import pcm
from edgelearn.substrate.params import Drift, Faults, Mapping, Mismatch, Programming, ReadNoise

FAULT_NONE, FAULT_OFF, FAULT_ON = 0, 1, 2
MIN_SCALE = 0.05     # mismatch factors are truncated below at this value (a gain never flips sign)


class SynapseMismatch(NamedTuple):
    """Per-synapse fixed pattern: w_eff = gain * w + offset * w_max. Both [n_out, n_in]."""

    gain: np.ndarray
    offset: np.ndarray


class NeuronMismatch(NamedTuple):
    """Per-neuron fixed pattern, each [n_out]: threshold, alpha and beta after the spread."""

    threshold: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray


def draw_synapse_mismatch(rng: np.random.Generator, shape: tuple[int, int],
                          p: Mismatch) -> SynapseMismatch:
    """Gain 1 + gain_sigma z (truncated at MIN_SCALE) and offset offset_sigma z (units of w_max)."""
    gain = np.maximum(1.0 + p.gain_sigma * rng.standard_normal(shape), MIN_SCALE)
    offset = p.offset_sigma * rng.standard_normal(shape)
    return SynapseMismatch(gain, offset)


def spread_decay(decay: np.ndarray, sigma: float, z: np.ndarray) -> np.ndarray:
    """Decay factor exp(-1/tau') with tau' = tau (1 + sigma z), tau = -1/ln(decay).

    Decays of exactly 0 (no memory) or 1 (no leak) have no time constant to spread and stay.
    """
    d = np.asarray(decay, dtype=np.float64)
    inner = (d > 0) & (d < 1)
    safe = np.where(inner, d, 0.5)
    tau = -1.0 / np.log(safe)
    tau2 = tau * np.maximum(1.0 + sigma * z, MIN_SCALE)
    return np.where(inner, np.exp(-1.0 / tau2), d)


def draw_neuron_mismatch(rng: np.random.Generator, threshold: np.ndarray, alpha: np.ndarray,
                         beta: np.ndarray, p: Mismatch) -> NeuronMismatch:
    """Threshold theta (1 + s z) (truncated at MIN_SCALE theta) and spread alpha, beta."""
    n = np.asarray(threshold).shape
    z = rng.standard_normal((3,) + n)
    thr = np.asarray(threshold, np.float64) * np.maximum(1.0 + p.threshold_sigma * z[0], MIN_SCALE)
    return NeuronMismatch(thr, spread_decay(alpha, p.tau_syn_sigma, z[1]),
                          spread_decay(beta, p.tau_mem_sigma, z[2]))


def draw_faults(rng: np.random.Generator, shape: tuple[int, ...], p: Faults) -> np.ndarray:
    """int8 codes per device: FAULT_NONE, FAULT_OFF (stuck at 0) or FAULT_ON (stuck at g_max)."""
    u = rng.random(shape)
    codes = np.zeros(shape, dtype=np.int8)
    codes[u < p.stuck_off] = FAULT_OFF
    codes[(u >= p.stuck_off) & (u < p.stuck_off + p.stuck_on)] = FAULT_ON
    return codes


def apply_faults(g: np.ndarray, codes: np.ndarray, active: np.ndarray,
                 mapping: Mapping) -> np.ndarray:
    """Force stuck devices. For a sign-bit mapping the synapse's code (row 0) hits the device
    that its sign selects; the unused device stays an exact 0."""
    if mapping.sign == "sign_bit":
        codes = np.where(active, codes[0][None], FAULT_NONE)
    out = np.where(codes == FAULT_OFF, 0.0, g)
    out = np.where(codes == FAULT_ON, mapping.g_max_us, out)
    return np.where(active, out, 0.0)


def program(rng: np.random.Generator, g_target: np.ndarray, p: Programming,
            mapping: Mapping) -> np.ndarray:
    """One write: g_prog = g_target + scale sigma(g_target) z, clipped at 0 (uS)."""
    if p.kind == "none" or p.scale == 0.0:
        return g_target.copy()
    if p.kind == "gaussian":
        sigma = p.sigma_rel * mapping.g_max_us
    else:
        sigma = pcm.prog_sigma_us(g_target / mapping.g_max_us, p.coeffs_us, mapping.g_max_us,
                                  p.g_max_ref_us)
    return np.maximum(g_target + p.scale * sigma * rng.standard_normal(g_target.shape), 0.0)


def draw_nu(rng: np.random.Generator, g_target: np.ndarray, p: Drift,
            mapping: Mapping) -> np.ndarray:
    """Drift exponents per device, drawn at each write: |mu_nu + sigma_nu z| * scale."""
    if p.kind == "none":
        return np.zeros(g_target.shape)
    g_rel = g_target / mapping.g_max_us
    z = rng.standard_normal(g_target.shape)
    return np.abs(pcm.nu_mean(g_rel) + pcm.nu_std(g_rel) * z) * p.scale


def drifted(g_prog: np.ndarray, nu: np.ndarray, t_since_s: np.ndarray, p: Drift) -> np.ndarray:
    """G(t) = G_prog ((t + t0)/t0)^(-nu) with t the time since each device's last write."""
    if p.kind == "none":
        return g_prog
    return g_prog * pcm.drift_factor(nu, t_since_s, p.t0_s)


def read(rng: np.random.Generator, g_now: np.ndarray, g_prog: np.ndarray, t_since_s: np.ndarray,
         p: ReadNoise, drift: Drift, mapping: Mapping) -> np.ndarray:
    """One read of the array: g_now plus read noise (clipped at 0), a fresh draw per call."""
    if p.kind == "none" or p.scale == 0.0:
        return g_now
    z = rng.standard_normal(g_now.shape)
    if p.kind == "gaussian":
        noise = p.sigma_rel * mapping.g_max_us * z
    else:
        sig = pcm.read_sigma_rel(g_prog / mapping.g_max_us, t_since_s, drift.t0_s, p.t_read_s)
        noise = np.abs(g_now) * sig * z
    return np.maximum(g_now + p.scale * noise, 0.0)
