"""OnlineHEP: apply real-hEP updates to a stream of labelled samples (in place).

    learner = OnlineHEP(head, lr=0.05, amplitude=0.5, nudges=6)
    learner.predict(x)            # free-phase argmax
    learner.update(x, y)          # one hEP step when a label arrives; returns the Gradient

mode 'discrete' relaxes at the scheme's nudges (Newton when noise-free, dynamics under noise);
mode 'oscillating' runs the continuous oscillation (oscillate.py). estimator 'centered' /
'one-sided' / 'exact' swap in the baselines (same stream, same learning rate) for comparisons.
Non-converged relaxations are counted in ``nonconverged``; strict=True raises instead.
"""

from __future__ import annotations

import numpy as np

from edgelearn.errors import ParameterError
from edgelearn.rules.hep.head import _UNSET, EnergyHead, Gradient
from edgelearn.rules.hep.oscillate import oscillating_gradient
from edgelearn.rules.hep.schemes import NudgeScheme

ESTIMATORS = ("hep", "centered", "one-sided", "exact")


class OnlineHEP:
    """Online learner around an EnergyHead (see module docstring). lr: SGD step size;
    clip: optional max L2 norm of the whole update (0 = off); scheme: a NudgeScheme that
    replaces the default one of ``nudges`` for estimator 'hep' (e.g. schemes.low_noise_scheme())."""

    def __init__(self, head: EnergyHead, lr: float = 0.05, amplitude: float = 0.5,
                 nudges: int = 6, estimator: str = "hep", mode: str = "discrete",
                 clip: float = 0.0, strict: bool = False, noise=_UNSET, weight_read=_UNSET,
                 scheme: NudgeScheme | None = None, **oscillation) -> None:
        if not (lr > 0 and np.isfinite(lr)):
            raise ParameterError(f"OnlineHEP lr must be > 0, got {lr}")
        if estimator not in ESTIMATORS:
            raise ParameterError(f"OnlineHEP estimator must be one of {ESTIMATORS}, got {estimator!r}")
        if mode not in ("discrete", "oscillating"):
            raise ParameterError(f"OnlineHEP mode must be 'discrete' or 'oscillating', got {mode!r}")
        if mode == "oscillating" and estimator != "hep":
            raise ParameterError("OnlineHEP mode 'oscillating' only exists for estimator 'hep'")
        if not (amplitude > 0):
            raise ParameterError(f"OnlineHEP amplitude must be > 0, got {amplitude}")
        self.head, self.lr, self.amplitude, self.nudges = head, float(lr), float(amplitude), int(nudges)
        self.estimator, self.mode, self.clip, self.strict = estimator, mode, float(clip), strict
        self.noise, self.weight_read, self.oscillation = noise, weight_read, oscillation
        self.scheme = scheme
        self.updates = 0
        self.nonconverged = 0
        self.relax_steps = 0

    def predict(self, x):
        return self.head.predict(x)

    def gradient(self, x, y) -> Gradient:
        h, b = self.head, self.amplitude
        if self.estimator == "exact":
            return h.exact_gradient(x, y, strict=self.strict)
        if self.mode == "oscillating":
            return oscillating_gradient(h, x, y, b, noise=self.noise, weight_read=self.weight_read,
                                        **self.oscillation)
        if self.estimator == "hep":
            return h.hep_gradient(x, y, b, self.nudges, scheme=self.scheme, noise=self.noise,
                                  weight_read=self.weight_read, strict=self.strict)
        return h.ep_gradient(x, y, b, centered=self.estimator == "centered", noise=self.noise,
                             weight_read=self.weight_read, strict=self.strict)

    def update(self, x, y) -> Gradient:
        """One learning step on (x, y) (a sample or a batch); applied in place."""
        g = self.gradient(x, y)
        lr = self.lr
        if self.clip > 0:
            n = float(np.linalg.norm(g.flat()))
            if n > self.clip:
                lr *= self.clip / n
        self.head.apply(g, lr)
        self.updates += 1
        self.relax_steps += int(g.info.get("relax_steps", 0))
        if not g.info.get("converged", True):
            self.nonconverged += 1
        return g
