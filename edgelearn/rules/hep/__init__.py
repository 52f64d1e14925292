"""Real-valued holomorphic equilibrium propagation (hEP) for an energy-based classifier head.

See docs/hep.md. Public API: EnergyHead, RelaxParams, RelaxationError, StateNoise,
WeightReadNoise, OnlineHEP, the nudge schemes, continuous-oscillation estimates and
hep_memory_bytes. No complex arithmetic anywhere in this package.
"""

from edgelearn.rules.hep.head import EnergyHead, Gradient
from edgelearn.rules.hep.memory import hep_memory_bytes
from edgelearn.rules.hep.noise import StateNoise, WeightReadNoise
from edgelearn.rules.hep.online import OnlineHEP
from edgelearn.rules.hep.oscillate import oscillating_gradient
from edgelearn.rules.hep.params import HEPLayerState, HEPParams
from edgelearn.rules.hep.relax import RelaxationError, RelaxParams, RelaxResult
from edgelearn.rules.hep.schemes import (
                                         NudgeScheme,
                                         centered_scheme,
                                         cosine_scheme,
                                         hep_scheme,
                                         interpolation_scheme,
                                         low_noise_scheme,
                                         one_sided_scheme,
)

__all__ = [
                                         "EnergyHead",
                                         "Gradient",
                                         "HEPLayerState",
                                         "HEPParams",
                                         "NudgeScheme",
                                         "OnlineHEP",
                                         "RelaxParams",
                                         "RelaxResult",
                                         "RelaxationError",
                                         "StateNoise",
                                         "WeightReadNoise",
                                         "centered_scheme",
                                         "cosine_scheme",
                                         "hep_memory_bytes",
                                         "hep_scheme",
                                         "interpolation_scheme",
                                         "low_noise_scheme",
                                         "one_sided_scheme",
                                         "oscillating_gradient",
]
