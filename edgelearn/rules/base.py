"""The common interface of the local learning rules and the fixed-point helpers they share (L1).

Every rule module (lpl_rate, lpl_spiking, triplet_stdp, istdp, oja) offers the same five names:

    Params                                   frozen dataclass, validated in __post_init__
    init(params, n_in, n_out) -> State       float32 state (NamedTuple of arrays)
    step(pre, post, state, params, ...) -> (dW, State)          float twin, returns the update
    init_fixed(params, n_in, n_out) -> State                    integer state
    step_fixed(w_int8, pre_q, post_q, state, params, rng, w_shift, ...)
        -> (w_int8_new, State, RngState, FixedStats)           applies the update on-device

Weights on the device are int8 with a per-layer shift: ``w_float = w_int * 2^-w_shift``.
Each Params class also has ``extra_state_bytes(n_in, n_out, fixed=True) -> int`` (the
:class:`StateBytes` protocol) which equals the summed ``nbytes`` of the arrays in its State.

NaN policy (both twins): a rule never writes a NaN. Float steps refuse non-finite inputs with
:class:`InputError` (no update, no state change). Fixed steps accept integer arrays only, so a
NaN cannot be represented; float arrays are refused with :class:`InputError` (the caller must
quantize at the boundary, where NaN is rejected too).

The integer arithmetic shared by the fixed-point rules (rate codes, stochastic averages,
bounded stochastic-rounding weight updates, PRNG words) is in :mod:`edgelearn.rules.qmath`.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

from edgelearn.errors import InputError, ParameterError
from edgelearn.rules.qmath import MAX_SHIFT  # noqa: F401 (re-exported for Params checks)

ROUNDING_MODES = ("full", "dither")


@runtime_checkable
class StateBytes(Protocol):
    """What the memory planner needs from a rule's (or head's) Params object."""

    def extra_state_bytes(self, n_in: int, n_out: int, fixed: bool = True) -> int: ...


class FixedStats(NamedTuple):
    """Diagnostics of one fixed-point step (plain ints, cheap to log).

    n_changed: weights whose int8 value changed. n_clipped: updates cut by the weight bounds.
    n_saturated: intermediate values clipped to their format (traces, averages, factors).
    skipped: 1 when the rule did not update weights this step (warm-up), else 0.
    """

    n_changed: int
    n_clipped: int
    n_saturated: int
    skipped: int


# ---------------------------------------------------------------- parameter validation

def check_positive(rule: str, name: str, value: float, allow_zero: bool = False) -> None:
    """Refuse NaN, Inf and negative values (and zero unless ``allow_zero``)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{rule}: {name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ParameterError(f"{rule}: {name} must be finite, got {v}")
    if v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ParameterError(f"{rule}: {name} must be {bound}, got {v}")


def check_finite(rule: str, name: str, value: float) -> None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{rule}: {name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ParameterError(f"{rule}: {name} must be finite, got {v}")


def check_int(rule: str, name: str, value: int, lo: int, hi: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not lo <= value <= hi:
        raise ParameterError(f"{rule}: {name} must be an integer in [{lo}, {hi}], got {value!r}")


def check_bounds(rule: str, w_min: float, w_max: float) -> None:
    for name, v in (("w_min", w_min), ("w_max", w_max)):
        if math.isnan(float(v)):
            raise ParameterError(f"{rule}: {name} must not be NaN")
    if not float(w_min) < float(w_max):
        raise ParameterError(f"{rule}: need w_min < w_max, got [{w_min}, {w_max}]")


def check_rounding(rule: str, rounding: str) -> None:
    if rounding not in ROUNDING_MODES:
        raise ParameterError(f"{rule}: rounding must be one of {ROUNDING_MODES}, got {rounding!r}")


def check_size(rule: str, n_in: int, n_out: int) -> None:
    for name, n in (("n_in", n_in), ("n_out", n_out)):
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not 0 < n <= (1 << 20):
            raise ParameterError(f"{rule}: {name} must be an integer in 1..{1 << 20}, got {n!r}")


# ---------------------------------------------------------------- input validation

def float_input(rule: str, name: str, x, n: int) -> np.ndarray:
    """A finite float64 vector of length ``n`` (refuses NaN/Inf and wrong shapes)."""
    a = np.asarray(x, dtype=np.float64)
    if a.shape != (n,):
        raise InputError(f"{rule}: {name} must have shape ({n},), got {tuple(a.shape)}")
    if not np.all(np.isfinite(a)):
        bad = int(np.count_nonzero(~np.isfinite(a)))
        raise InputError(f"{rule}: {name} has {bad} non-finite entries (NaN/Inf); update refused")
    return a


def int_input(rule: str, name: str, x, n: int, bits: int = 16) -> np.ndarray:
    """An integer vector of length ``n`` within the signed ``bits`` range, as int64."""
    a = np.asarray(x)
    if a.shape != (n,):
        raise InputError(f"{rule}: {name} must have shape ({n},), got {tuple(a.shape)}")
    if a.dtype.kind not in "iub":
        raise InputError(f"{rule}: {name} must be an integer array (quantize first), "
                         f"got dtype {a.dtype}")
    a = a.astype(np.int64)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if a.size and (a.min() < lo or a.max() > hi):
        raise InputError(f"{rule}: {name} outside the int{bits} range [{lo}, {hi}]: "
                         f"[{a.min()}, {a.max()}]")
    return a


def int8_weights(rule: str, w, n_in: int, n_out: int) -> np.ndarray:
    a = np.asarray(w)
    if a.shape != (n_out, n_in):
        raise InputError(f"{rule}: weight must have shape ({n_out}, {n_in}), got {tuple(a.shape)}")
    if a.dtype != np.int8:
        raise InputError(f"{rule}: weight must be int8, got dtype {a.dtype}")
    return a


def check_w_shift(rule: str, w_shift: float) -> None:
    """``w_shift`` is the weight LSB exponent: w_float = w_int * 2^-w_shift (any finite real in
    [-32, 32]; integer for power-of-two scales). See :func:`qlayer_w_shift`."""
    try:
        v = float(w_shift)
    except (TypeError, ValueError):
        raise InputError(f"{rule}: w_shift must be a number, got {w_shift!r}") from None
    if not (math.isfinite(v) and -32 <= v <= 32):
        raise InputError(f"{rule}: w_shift must be finite and in [-32, 32], got {w_shift!r}")


def qlayer_w_shift(qlayer) -> float:
    """The rule's ``w_shift`` for an edgelearn.kernels.lif_fixed.QLayer.

    A QLayer weight contributes ``w_int * 2^qlayer.w_shift`` state LSBs per input unit, one
    state LSB is ``scale`` threshold units and one input unit is ``input_scale``; so the float
    weight is ``w_int * 2^qlayer.w_shift * scale / input_scale`` = ``w_int * 2^-w_shift`` with
    ``w_shift = -(qlayer.w_shift + log2(scale / input_scale))``.
    """
    return -(float(qlayer.w_shift) + math.log2(float(qlayer.scale) / float(qlayer.input_scale)))


def state_nbytes(state) -> int:
    """Sum of nbytes of every array in a State NamedTuple (what the memory test compares)."""
    return int(sum(np.asarray(a).nbytes for a in state))


def spikes_input(rule: str, name: str, s, n: int) -> np.ndarray:
    """A 0/1 spike vector of length n (int64); refuses NaN, wrong shapes and other values."""
    a = np.asarray(s)
    if a.shape != (n,):
        raise InputError(f"{rule}: {name} must have shape ({n},), got {tuple(a.shape)}")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise InputError(f"{rule}: {name} has non-finite entries (NaN/Inf); update refused")
    if a.size and not np.all((a == 0) | (a == 1)):
        raise InputError(f"{rule}: {name} must hold spikes (0 or 1)")
    return a.astype(np.int64)
