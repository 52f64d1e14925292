"""Pluggable noise for the hEP head (the substrate simulator plugs its own models in here).

* state noise: any callable ``z -> z_noisy`` applied to the flat state [B, N] after every
  relaxation step (units: pre-activation; hidden rates are tanh of it, logits are it).
* weight read noise: any callable ``W -> W_noisy`` applied to every weight matrix each time the
  relaxation reads it (once per step). Biases are read exactly.

Both draw from an explicit np.random.Generator.
"""

from __future__ import annotations

import numpy as np

from edgelearn.errors import ParameterError


class StateNoise:
    """Additive white Gaussian state noise: z + sigma * xi, xi ~ N(0, 1) each step."""

    def __init__(self, sigma: float, rng: np.random.Generator) -> None:
        if not (sigma >= 0 and np.isfinite(sigma)):
            raise ParameterError(f"StateNoise.sigma must be >= 0, got {sigma}")
        if not isinstance(rng, np.random.Generator):
            raise ParameterError("StateNoise needs an np.random.Generator as rng")
        self.sigma, self.rng = float(sigma), rng

    def __call__(self, z: np.ndarray) -> np.ndarray:
        if self.sigma == 0.0:
            return z
        return z + self.sigma * self.rng.standard_normal(z.shape)


class WeightReadNoise:
    """Weight read noise: W * (1 + rel * xi) + abs_sigma * xi' (fresh draws at every read)."""

    def __init__(self, rel: float, rng: np.random.Generator, abs_sigma: float = 0.0) -> None:
        if not (rel >= 0 and abs_sigma >= 0):
            raise ParameterError(f"WeightReadNoise needs rel >= 0 and abs_sigma >= 0, got "
                                 f"{rel}, {abs_sigma}")
        if not isinstance(rng, np.random.Generator):
            raise ParameterError("WeightReadNoise needs an np.random.Generator as rng")
        self.rel, self.abs_sigma, self.rng = float(rel), float(abs_sigma), rng

    def __call__(self, W: np.ndarray) -> np.ndarray:
        out = W
        if self.rel:
            out = out * (1.0 + self.rel * self.rng.standard_normal(W.shape))
        if self.abs_sigma:
            out = out + self.abs_sigma * self.rng.standard_normal(W.shape)
        return out
