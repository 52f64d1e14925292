"""Reading a rule vector's final state (tests/vectors/rules/): the learning-epoch arrays of
lpl_rate's State are written only when they are not empty (no rule-level stream has them)."""

from __future__ import annotations

import numpy as np

from edgelearn.rules.lpl_codes import EPOCH_FIELDS


def stored_state(npz, name: str) -> np.ndarray:
    """``state__<name>`` of a vector file (an NpzFile or a dict of its arrays); an absent
    epoch array is the empty one."""
    key = f"state__{name}"
    if key not in getattr(npz, "files", npz) and name in EPOCH_FIELDS:
        return np.zeros(0, np.int64)
    return npz[key]
