"""Local learning rules (L1, numpy only): LPL (rate and spiking), triplet STDP, Vogels iSTDP, Oja.

Each rule is a module with the same interface (see :mod:`edgelearn.rules.base`):
``Params``, ``State``, ``init``, ``step`` (float twin), ``init_fixed``, ``step_fixed``.
``rule_memory_bytes`` reports the exact extra bytes a rule needs on a layer.
"""

from edgelearn.rules.base import FixedStats, StateBytes
from edgelearn.rules.lpl_rate import lpl_fixed_step
from edgelearn.rules.memory_cost import rule_memory_bytes

__all__ = ["FixedStats", "StateBytes", "lpl_fixed_step", "rule_memory_bytes"]
