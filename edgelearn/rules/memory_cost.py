"""Extra memory of a learning rule on one layer, for the memory planner (L1).

Protocol: any Params object with ``extra_state_bytes(n_in, n_out, fixed=True) -> int``
(:class:`edgelearn.rules.base.StateBytes`) can be costed; the LPL, STDP, iSTDP and Oja Params
implement it, and so can any other head (e.g. hEP). The figure is exact: it equals the summed
``nbytes`` of the State arrays that the rule's ``init_fixed`` (or ``init``) allocates (tested).
It excludes the weights themselves and the device-wide PRNG state (key + counter: 8 bytes,
shared by all rules on a device; see :data:`PRNG_STATE_BYTES`).
"""

from __future__ import annotations

from edgelearn.errors import ParameterError
from edgelearn.rules.base import StateBytes

PRNG_STATE_BYTES = 8


def rule_memory_bytes(params, n_in: int, n_out: int, fixed: bool = True) -> int:
    """Exact extra bytes of the rule described by ``params`` on an n_out x n_in layer."""
    if not isinstance(params, StateBytes):
        raise ParameterError(f"{type(params).__name__} does not report its memory "
                             f"(needs extra_state_bytes(n_in, n_out, fixed))")
    return int(params.extra_state_bytes(n_in, n_out, fixed=fixed))
