"""Learning-memory cost of the hEP head (bytes), for the memory-cost protocol of edgelearn.rules.

Real hEP keeps ONE accumulator per weight and bias (the phase-weighted pre*post products are
summed in place, phase after phase or tick after tick), plus the relaxing state (one value per
unit per sample) and the one-hot target. The weights themselves are the model, not learning
state. Per layer this is HEPParams.extra_state_bytes (the StateBytes protocol that
edgelearn.rules.memory_cost.rule_memory_bytes dispatches to); the head adds the target.
"""

from __future__ import annotations

from edgelearn.errors import ParameterError
from edgelearn.rules.hep.params import HEPParams


def hep_memory_bytes(head, params: HEPParams | None = None, batch: int = 1,
                     itemsize: int = 4) -> dict:
    """Byte breakdown for learning on ``head`` with ``batch`` samples at ``itemsize`` bytes per
    value: weights, accumulators (one per parameter), state, target, extra_state_bytes
    (everything but the weights), and per_layer (the protocol figure of each layer, batch 1,
    32-bit)."""
    if int(batch) < 1 or int(itemsize) < 1:
        raise ParameterError(f"hep_memory_bytes needs batch >= 1 and itemsize >= 1, got "
                             f"{batch}, {itemsize}")
    params = params or HEPParams()
    out = head.memory_breakdown(int(batch), int(itemsize))
    out["per_layer"] = [params.extra_state_bytes(head.sizes[k], head.sizes[k + 1])
                        for k in range(len(head.sizes) - 1)]
    return out
