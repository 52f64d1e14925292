"""Training configuration of the surrogate-gradient trainer (L2, numpy only).

Loss of one minibatch of B sequences (labels y_b, readout membrane U_o[t, b, c]):

    z[b, c]  = max_t U_o[t, b, c]            (readout="max")   or  mean_t U_o[t, b, c]  ("mean")
    L_ce     = mean_b  -log softmax(z[b])[y_b]
    r[b, j]  = mean_t S[t, b, j]             spikes per step of hidden neuron j (every spiking layer)
    L_upper  = w_upper * mean_{b,j} relu(r[b, j] - rate_upper)^2       (too-active neurons)
    L_lower  = w_lower * mean_j relu(rate_lower - mean_b r[b, j])^2    (silent neurons)
    L        = L_ce + sum over spiking layers of (L_upper + L_lower
                                                   + w_lpl L_lpl + w_drift L_drift)

L_lpl (the rate-form LPL objective) and L_drift (the mean square of the deployed LPL rule's
expected update) are defined in :mod:`edgelearn.train.lpl_aux` on the layer's spikes and input
low-pass filtered with time constant ``lpl_tau`` steps, Hebbian weight ``lpl_lam``, ``lpl_xi``.

Surrogate (SuperSpike fast sigmoid): dS/dU := 1 / (1 + k |U - theta|)^2 with k = surrogate_scale
and theta the layer's threshold; ``detach_reset`` treats the reset signal R[n] = S[n-1] as a
constant inside the reset term (the recurrent weights V still receive gradient through it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgelearn.errors import ParameterError

READOUTS = ("max", "mean")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of :func:`edgelearn.train.train` (rates are in spikes per time step).

    Attributes:
        epochs: passes over the training set.
        batch_size: sequences per minibatch.
        lr: Adam step size.
        adam_b1, adam_b2, adam_eps: Adam moment decays and denominator offset.
        lr_decay: the step size is multiplied by this after every epoch (1 = constant).
        grad_clip: clip the global gradient norm to this value (0 = no clipping).
        readout: "max" or "mean" over time of the readout membrane.
        surrogate_scale: k of the fast-sigmoid surrogate (1/threshold units).
        detach_reset: no gradient through the reset term.
        rate_upper, w_upper: upper spike-rate bound and its penalty weight.
        rate_lower, w_lower: lower spike-rate bound and its penalty weight.
        w_lpl: weight of the LPL objective L_lpl on every spiking layer (0 = off).
        w_drift: weight of the device-rule drift L_drift on every spiking layer (0 = off).
        lpl_lam, lpl_tau, lpl_xi: Hebbian weight, filter time constant (steps) and variance
            offset of both (the deployed rule's: 0.03, 20, 1e-4).
        seed: seed of the numpy Generator for shuffling (initialisation has its own seed).
        dtype: "float32" (training) or "float64" (gradient checks).
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    adam_b1: float = 0.9
    adam_b2: float = 0.999
    adam_eps: float = 1e-8
    lr_decay: float = 1.0
    grad_clip: float = 0.0
    readout: str = "max"
    surrogate_scale: float = 10.0
    detach_reset: bool = True
    rate_upper: float = 0.1
    w_upper: float = 0.0
    rate_lower: float = 0.005
    w_lower: float = 0.0
    w_lpl: float = 0.0
    w_drift: float = 0.0
    lpl_lam: float = 0.03
    lpl_tau: float = 20.0
    lpl_xi: float = 1e-4
    seed: int = 0
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if int(self.epochs) != self.epochs or self.epochs < 0:
            raise ParameterError(f"epochs must be an integer >= 0, got {self.epochs}")
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            raise ParameterError(f"batch_size must be an integer >= 1, got {self.batch_size}")
        for name in ("lr", "surrogate_scale", "adam_eps"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise ParameterError(f"{name} must be > 0, got {v}")
        for name in ("adam_b1", "adam_b2"):
            v = getattr(self, name)
            if not 0 <= v < 1:
                raise ParameterError(f"{name} must lie in [0, 1), got {v}")
        if not (0 < self.lr_decay <= 1):
            raise ParameterError(f"lr_decay must lie in (0, 1], got {self.lr_decay}")
        for name in ("grad_clip", "rate_upper", "w_upper", "rate_lower", "w_lower", "w_lpl",
                     "w_drift", "lpl_lam"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise ParameterError(f"{name} must be finite and >= 0, got {v}")
        for name in ("lpl_tau", "lpl_xi"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise ParameterError(f"{name} must be finite and > 0, got {v}")
        if self.readout not in READOUTS:
            raise ParameterError(f"readout must be one of {READOUTS}, got {self.readout!r}")
        if self.dtype not in ("float32", "float64"):
            raise ParameterError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")

    @property
    def np_dtype(self) -> type:
        return np.float64 if self.dtype == "float64" else np.float32
