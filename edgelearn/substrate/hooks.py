"""Noise hooks that let other learners run on a substrate (L1, numpy only).

The hEP head (edgelearn.rules.hep) accepts two callables: ``weight_read(W) -> W_noisy`` applied
each time the relaxation reads a weight matrix, and ``noise(z) -> z_noisy`` applied to the
relaxing state after every step. These classes build both from a substrate preset, so a head
"stored on the chip" sees the same kinds of imperfection as the SNN:

    weight read  W -> gain * Q(W) + offset * w_max + read noise
        Q: quantization to the preset's magnitude levels relative to w_max = max|W| of the matrix
        gain, offset: frozen per-synapse mismatch (drawn once per matrix shape from the seed)
        drift (pcm): |Q(W)| ((t + t0)/t0)^(-mu_nu(|Q(W)|/w_max)) with the mean drift exponent,
                    rescaled by the global drift compensation when the preset has it
        read noise: gaussian  sigma_rel * w_max * z
                    pcm       |W(t)| * Q_pcm(|Q(W)|/w_max) * sqrt(ln((t + t0 + t_read)/(2 t_read))) * z
                    (aihwkit's accumulated 1/f noise), fresh per read
        t: seconds since programming, from ``clock()`` (default: always 0)
    state noise  z -> z + sigma * z',  sigma = sqrt(input_sigma^2 + membrane_sigma^2)

Matrices of the same shape share one frozen mismatch pattern (hEP heads have distinct shapes
per layer unless two layers are equal in size, in which case they share it).
"""

from __future__ import annotations

import math

import numpy as np

from edgelearn.substrate import pcm
from edgelearn.substrate.mapping import quantize_magnitude
from edgelearn.substrate.noise import MIN_SCALE
from edgelearn.substrate.params import Preset


class SubstrateWeightRead:
    """``W -> W_noisy`` for a matrix stored on a device made from ``preset`` and ``seed``."""

    def __init__(self, preset: Preset, seed: int, clock=None) -> None:
        self.preset = preset
        self.clock = clock
        ss = np.random.SeedSequence([int(seed), 0x5E])
        fixed, read = ss.spawn(2)
        self._fixed = np.random.Generator(np.random.PCG64(fixed))
        self.rng = np.random.Generator(np.random.PCG64(read))
        self._pattern: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def pattern(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """(gain, offset) frozen for this shape."""
        shape = tuple(int(s) for s in shape)
        if shape not in self._pattern:
            mm = self.preset.mismatch
            gain = np.maximum(1.0 + mm.gain_sigma * self._fixed.standard_normal(shape), MIN_SCALE)
            self._pattern[shape] = (gain, mm.offset_sigma * self._fixed.standard_normal(shape))
        return self._pattern[shape]

    def __call__(self, W: np.ndarray) -> np.ndarray:
        W = np.asarray(W, dtype=np.float64)
        w_max = float(np.max(np.abs(W))) if W.size else 0.0
        if w_max == 0.0:
            return W
        wq = W if self.preset.mapping.bits is None else \
            np.sign(W) * quantize_magnitude(np.abs(W) / w_max, self.preset.mapping) * w_max
        gain, offset = self.pattern(W.shape)
        out = gain * wq + offset * w_max
        rp, dr = self.preset.read, self.preset.drift
        t = float(self.clock()) if self.clock is not None else 0.0
        g_rel = np.abs(wq) / w_max
        if dr.kind == "pcm" and t > 0:
            f = pcm.drift_factor(pcm.nu_mean(g_rel) * dr.scale, t, dr.t0_s)
            if dr.compensation:
                f = f * (np.abs(wq).sum() / max(float((np.abs(wq) * f).sum()), 1e-300))
            out = out * f
        if rp.kind == "gaussian" and rp.sigma_rel > 0:
            out = out + rp.scale * rp.sigma_rel * w_max * self.rng.standard_normal(W.shape)
        elif rp.kind == "pcm":
            sig = pcm.read_sigma_rel(g_rel, t, dr.t0_s, rp.t_read_s)
            out = out + rp.scale * np.abs(out) * sig * self.rng.standard_normal(W.shape)
        return out


class SubstrateStateNoise:
    """``z -> z + sigma z'`` with the preset's temporal noise level (threshold units)."""

    def __init__(self, preset: Preset, seed: int) -> None:
        rp = preset.read
        self.sigma = math.sqrt(rp.input_sigma ** 2 + rp.membrane_sigma ** 2)
        self.rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), 0x57])))

    def __call__(self, z: np.ndarray) -> np.ndarray:
        if self.sigma == 0.0:
            return z
        return z + self.sigma * self.rng.standard_normal(np.shape(z))


def head_hooks(preset: Preset, seed: int, clock=None):
    """(state_noise or None, weight_read) for an hEP head living on this substrate;
    ``clock()`` gives the seconds since the head was programmed (drift, read noise)."""
    sn = SubstrateStateNoise(preset, seed)
    return (sn if sn.sigma > 0 else None), SubstrateWeightRead(preset, seed, clock)
