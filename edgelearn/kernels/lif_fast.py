"""The optimised integer LIF layer step (L1, numpy): the integers of
:func:`edgelearn.kernels.lif_fixed.reference_step`, faster.

What makes it fast, none of which changes a result:

* **Dense accumulation in float32 BLAS** when the exact result provably stays below 2^24
  (``max row sum |W| * max|x| < 2^24``): every partial sum is then an exact integer in
  float32, whatever the summation order or FMA use; else int64.
* **Event-driven accumulation** for binary inputs: the sum of the weight columns of the active
  inputs (int32; ``|sum| <= 128 n_in``), so the cost grows with the number of spikes. "auto"
  takes it for batch 1 below EVENT_MAX_ACTIVITY input activity.
* **Cached forms** of the weights and constants on the layer (``QLayer._cache``: transposes
  in float32/int32/int64, the row-sum bound, int64 copies of the per-neuron constants), and
  :func:`bind_weight` / :func:`weight_changed` for an engine whose int8 weights change in
  place (on-device learning): the float32 transpose is refreshed in place, not rebuilt.
* **In-place updates** of the step's temporaries and the decay as ``(x d + 2^11) >> 12``
  without argument conversions.

:mod:`edgelearn.kernels.lif_kernels` is the interface callers use; tests/test_lif_kernels.py
checks this step against the reference on the shared vectors and on random networks.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgelearn.errors import InputError, ModelError
from edgelearn.fixed import DECAY_BITS, int_range
from edgelearn.kernels.lif_fixed import WEIGHT_BITS, QLayer, QState, shift_by

MODES = ("auto", "dense", "event")
FLOAT_EXACT = 1 << 24          # integers below this magnitude are exact in float32
EVENT_MAX_ACTIVITY = 0.08      # "auto": event path below this input activity, batch 1 only
                               # (bench/bench_fixed.py measured the crossover near 10 %)
_HALF = 1 << (DECAY_BITS - 1)


def derived(qlayer: QLayer, key: str):
    """A cached form of the layer's weights or constants (built on first use)."""
    c = qlayer._cache
    if key not in c:
        if key == "wT_f32":
            c[key] = np.ascontiguousarray(qlayer.weight.T, dtype=np.float32)
        elif key == "wT_i32":
            c[key] = np.ascontiguousarray(qlayer.weight.T, dtype=np.int32)
        elif key == "wT_i64":
            c[key] = np.ascontiguousarray(qlayer.weight.T, dtype=np.int64)
        elif key == "row_abs":
            c[key] = int(np.abs(qlayer.weight.astype(np.int64)).sum(axis=1).max())
        elif key == "vT_f32":
            c[key] = np.ascontiguousarray(qlayer.recurrent.T, dtype=np.float32)
        elif key == "consts":           # int64 copies of the per-neuron constants
            lo, hi = int_range(qlayer.state_bits)
            c[key] = (qlayer.alpha.astype(np.int64), qlayer.beta.astype(np.int64),
                      qlayer.threshold.astype(np.int64),
                      None if qlayer.bias is None else qlayer.bias.astype(np.int64), lo, hi)
        else:
            raise KeyError(key)
    return c[key]


# -- in-place weights (device engines that learn) -------------------------------------------

def bind_weight(qlayer: QLayer, buffer: np.ndarray) -> QLayer:
    """A copy of ``qlayer`` whose weight is a read-only VIEW of ``buffer`` (no copy).

    For an engine that updates its int8 weights in place (on-device learning): it writes the
    buffer, then calls :func:`weight_changed` on the returned layer before the next step.
    Only shape and dtype are checked (int8 [n_out, n_in] as before); every int8 value is a
    valid weight, so the full revalidation of :meth:`QLayer.replace` is not needed.
    """
    buf = np.asarray(buffer)
    if buf.dtype != np.int8 or buf.shape != qlayer.weight.shape:
        raise ModelError(f"qlayer '{qlayer.name}': weight buffer must be int8 "
                         f"{tuple(qlayer.weight.shape)}, got {buf.dtype} {tuple(buf.shape)}")
    view = buf.view()
    view.setflags(write=False)
    new = dataclasses.replace(qlayer)            # validated copy of the other fields
    object.__setattr__(new, "weight", view)
    # the float32 transpose as a view of a row-major [n_out, n_in] copy: refreshing it after
    # a weight change is then a contiguous int8 -> float32 conversion
    object.__setattr__(new, "_cache", {"wT_f32": view.astype(np.float32).T})
    return new


def weight_changed(qlayer: QLayer) -> None:
    """Refresh the cached forms of ``qlayer.weight`` after its buffer changed in place.

    The float32 transpose is rewritten in place (no allocation); the other weight-derived
    forms are dropped (rebuilt on first use). ``row_abs`` (the bound that proves the float32
    accumulator exact) is set to the int8 bound 128 * n_in, valid for any int8 matrix, so the
    dense path stays exact without a per-change reduction.
    """
    c = qlayer._cache
    f = c.get("wT_f32")
    if f is not None:
        np.copyto(f, qlayer.weight.T)
    for key in ("wT_i32", "wT_i64"):
        c.pop(key, None)
    c["row_abs"] = (1 << (WEIGHT_BITS - 1)) * qlayer.n_in


# -- accumulators ---------------------------------------------------------------------------

def accumulate_dense(qlayer: QLayer, x: np.ndarray, xmax: int | None = None) -> np.ndarray:
    """Exact ``x W^T`` as int64 [B, n_out] for integer x [B, n_in] (float32 BLAS when exact).

    ``xmax`` is a known bound on |x| (1 for spikes); computed when None.
    """
    if xmax is None:
        xmax = max(int(x.max()), -int(x.min())) if x.size else 0
    if derived(qlayer, "row_abs") * xmax < FLOAT_EXACT:
        return (x.astype(np.float32) @ derived(qlayer, "wT_f32")).astype(np.int64)
    return x.astype(np.int64) @ derived(qlayer, "wT_i64")


def accumulate_event(qlayer: QLayer, x: np.ndarray) -> np.ndarray:
    """Exact ``x W^T`` for binary x [B, n_in]: sum of the weight columns of active inputs.

    Cost is O(active inputs * n_out); int32 sums are exact because |sum| <= 128 * n_in.
    """
    wT = derived(qlayer, "wT_i32")
    out = np.empty((x.shape[0], qlayer.n_out), dtype=np.int64)
    for b, row in enumerate(x):
        out[b] = wT[np.flatnonzero(row)].sum(axis=0, dtype=np.int64)
    return out


def accumulate(qlayer: QLayer, x: np.ndarray, mode: str, binary: bool) -> np.ndarray:
    """``x W^T`` by the path ``mode`` picks (see :func:`step`)."""
    if mode == "event" or (mode == "auto" and binary and x.shape[0] == 1
                           and np.count_nonzero(x) < EVENT_MAX_ACTIVITY * x.size):
        if not binary:
            raise InputError(f"qlayer '{qlayer.name}': the event path needs binary 0/1 inputs")
        return accumulate_event(qlayer, x)
    return accumulate_dense(qlayer, x, 1 if binary else None)


# -- the step -------------------------------------------------------------------------------

def step(qlayer: QLayer, x: np.ndarray, state: QState, mode: str = "auto",
         binary: bool | None = None, clip_counts: np.ndarray | None = None
         ) -> tuple[np.ndarray, QState]:
    """:func:`edgelearn.kernels.lif_fixed.reference_step`, optimised (same integers).

    Args:
        x: integer [B, n_in] (input_bits-range values, or 0/1 spikes).
        state: :class:`QState` of int64 [B, n_out] (other integer dtypes are converted).
        mode: "dense", "event" (binary x only) or "auto" (event for batch 1 binary x with
            activity below EVENT_MAX_ACTIVITY, else dense).
        binary: whether x is known to be 0/1 (None: checked).
        clip_counts: optional int64[2] incremented by the number of saturated I and U entries.
    Returns:
        (output, new state): output is int64 0/1 spikes, or the readout membrane U'.
    """
    if mode not in MODES:
        raise InputError(f"mode must be one of {MODES}, got {mode!r}")
    if binary is None:
        binary = bool(x.dtype == np.bool_ or not np.any((x != 0) & (x != 1)))
    alpha, beta, thr, bias, lo, hi = derived(qlayer, "consts")
    i_prev = state.current.astype(np.int64, copy=False)      # no-op for the usual int64 state
    u_prev = state.membrane.astype(np.int64, copy=False)
    cur = shift_by(accumulate(qlayer, x, mode, binary), qlayer.w_shift)
    cur += (i_prev * alpha + _HALF) >> DECAY_BITS             # apply_decay(I, alpha)
    if bias is not None:
        cur += bias
    u = (u_prev * beta + _HALF) >> DECAY_BITS                 # apply_decay(U, beta)
    if qlayer.spiking:
        fired = u_prev > thr
        if qlayer.recurrent is not None:
            rec = (fired.astype(np.float32) @ derived(qlayer, "vT_f32")).astype(np.int64)
            cur += shift_by(rec, qlayer.v_shift)
    cur_s = np.minimum(np.maximum(cur, lo), hi)
    if not qlayer.spiking:
        u += cur_s
    elif qlayer.reset == "subtract":
        u += cur_s
        u -= thr * fired
    elif qlayer.reset == "zero":
        u += cur_s
        u[fired] = 0
    else:
        u[fired] = 0
        u += cur_s
    u_s = np.minimum(np.maximum(u, lo), hi)
    if clip_counts is not None:
        clip_counts[0] += int(np.count_nonzero(cur_s != cur))
        clip_counts[1] += int(np.count_nonzero(u_s != u))
    if not qlayer.spiking:
        return u_s, QState(cur_s, u_s)
    return (u_s > thr).astype(np.int64), QState(cur_s, u_s)
