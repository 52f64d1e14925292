"""Divergence guard: decide when adaptation has gone wrong and must roll back.

Three checks, each cheap enough to run every ``check_every`` samples:

* non-finite values (NaN/Inf) in any float learning state (the hEP head);
* the fraction of int8 weights pinned at the rails (-128 or 127) exceeds ``max_saturated``;
* accuracy on a small held-in buffer of labelled samples falls more than ``max_drop``
  below the accuracy measured at the last good checkpoint (with 20 held-in samples one
  sample is 5 points, so the default 0.25 flags a collapse, not noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgelearn.errors import ParameterError


@dataclass(frozen=True)
class GuardParams:
    """Thresholds of the guard.

    Attributes:
        max_saturated: largest tolerated fraction of int8 weights at -128 or 127 (0..1).
        max_drop: largest tolerated drop of held-in accuracy vs the last checkpoint (0..1).
        check_every: samples between checks (and checkpoints).
        held_in: number of labelled samples kept for the accuracy check.
    """

    max_saturated: float = 0.05
    max_drop: float = 0.25
    check_every: int = 50
    held_in: int = 20

    def __post_init__(self) -> None:
        if not 0 < self.max_saturated <= 1 or not 0 < self.max_drop <= 1:
            raise ParameterError(f"guard thresholds must lie in (0, 1], got max_saturated "
                                 f"{self.max_saturated}, max_drop {self.max_drop}")
        if self.check_every < 1 or self.held_in < 0:
            raise ParameterError(f"guard check_every must be >= 1 and held_in >= 0, got "
                                 f"{self.check_every}, {self.held_in}")


def saturated_fraction(int8_weights: list[np.ndarray]) -> float:
    """Fraction of entries equal to -128 or 127 over all given int8 arrays."""
    total = sum(w.size for w in int8_weights)
    if total == 0:
        return 0.0
    rails = sum(int(np.count_nonzero((w == 127) | (w == -128))) for w in int8_weights)
    return rails / total


def check(params: GuardParams, int8_weights: list[np.ndarray], float_arrays: list[np.ndarray],
          held_in_accuracy: float | None, reference_accuracy: float | None) -> str | None:
    """Return a one-line reason if adaptation diverged, else None."""
    for arr in float_arrays:
        if not np.all(np.isfinite(arr)):
            return "non-finite value in the hEP head"
    frac = saturated_fraction(int8_weights)
    if frac > params.max_saturated:
        return f"{100 * frac:.1f} % of int8 weights saturated (limit " \
               f"{100 * params.max_saturated:.1f} %)"
    if held_in_accuracy is not None and reference_accuracy is not None:
        if held_in_accuracy < reference_accuracy - params.max_drop:
            return (f"held-in accuracy fell to {100 * held_in_accuracy:.1f} % from "
                    f"{100 * reference_accuracy:.1f} %")
    return None
