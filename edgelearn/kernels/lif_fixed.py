"""Integer LIF kernel: the fixed-point twin of :mod:`edgelearn.kernels.lif_float` (L1, numpy).

The spec is docs/fixed-point.md; this module is its executable form. Per layer, all integers,
one step (x is the layer input: int8-range values for the first layer, 0/1 spikes after it):

    R     = U > theta                                   previous step's spike (reset signal)
    A     = W x                                         exact accumulator (int32 on a device)
    C     = A << w_shift            (w_shift >= 0)      contribution in state units
          = round_shift(A, -w_shift) (w_shift < 0)
    I'    = sat( apply_decay(I, alpha) + C + b + shift(V R, v_shift) )
    U'    = sat( apply_decay(U, beta) + I' - theta R )          reset "subtract"
    U'    = sat( (apply_decay(U, beta) + I') * (1 - R) )        reset "zero"
    U'    = sat( apply_decay(U, beta) * (1 - R) + I' )          reset "zero_immediate"
    S'    = U' > theta              (spiking)      readout: output U' (no R, no reset)

``sat`` clips to the layer's signed ``state_bits`` range (16 or 32); ``apply_decay`` and
``round_shift`` are the one rounding rule of :mod:`edgelearn.fixed`. The float value of a state
integer is ``value * scale`` (scale = state LSB in threshold units of the float model), so the
float twin is :func:`dequantize`.

Dense accumulation uses float32 BLAS when the exact result provably stays below 2^24 (every
partial sum is then an exact integer, whatever the summation order), else int64. The event
path (binary inputs) adds the weight columns of the active inputs, so its cost grows with the
number of active inputs; both paths give identical integers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from edgelearn.errors import InputError, ModelError
from edgelearn.fixed import DECAY_ONE, decode_decay, int_range, round_shift, saturate
from edgelearn.model import RESET_MODES, Layer, LayerChain, Network

STATE_BITS = (16, 32)
WEIGHT_BITS = 8
FLOAT_EXACT = 1 << 24          # integers below this magnitude are exact in float32
ACC_LIMIT = (1 << 31) - 1      # accumulators are int32 on a device
MODES = ("auto", "dense", "event")


def _int_array(name: str, what: str, value, shape: tuple, lo: int, hi: int,
               dtype) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iub":
        raise ModelError(f"qlayer '{name}': {what} must be an integer array, got dtype "
                         f"{arr.dtype}")
    if arr.ndim == 0 and len(shape) == 1:
        arr = np.full(shape, int(arr))
    if tuple(arr.shape) != tuple(shape):
        raise ModelError(f"qlayer '{name}': {what} must have shape {shape}, got "
                         f"{tuple(arr.shape)}")
    if arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
        raise ModelError(f"qlayer '{name}': {what} must lie in [{lo}, {hi}], got range "
                         f"[{int(arr.min())}, {int(arr.max())}]")
    out = np.array(arr, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


_HALF = 1 << 11          # 2^(DECAY_BITS - 1)


def _decay(x: np.ndarray, d: np.ndarray) -> np.ndarray:
    """``apply_decay(x, d)`` of edgelearn.fixed (= round_shift(x * d, 12)) on int64 arrays,
    without the argument conversions (hot path; tests check it equals apply_decay)."""
    return (x * d + _HALF) >> 12


def _sat(v: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """``saturate(v, bits)`` of edgelearn.fixed for int64 arrays, as max-then-min."""
    return np.minimum(np.maximum(v, lo), hi)


def _shift(x: np.ndarray, s: int) -> np.ndarray:
    """Multiply int64 ``x`` by 2^s: left shift for s >= 0, else the one rounding rule."""
    return (x << s) if s >= 0 else round_shift(x, -s)


@dataclass(frozen=True, eq=False)
class QLayer:
    """One integer LIF layer (or integer leaky-integrator readout).

    Attributes (units: "state LSB" = one integer step of I and U, worth ``scale`` threshold
    units of the float model):
        name: layer name (same as the float layer).
        weight: int8 [n_out, n_in]; contributes ``(W x) * 2^w_shift`` state LSB.
        alpha: current decay, 12-bit multiplier per neuron, int in [0, 4096] (= alpha * 4096).
        beta: membrane decay, 12-bit multiplier per neuron, int in [0, 4096].
        threshold: int32 [n_out] > 0, in state LSB (ignored for readouts).
        reset: "subtract", "zero" or "zero_immediate".
        spiking: False for the readout (output = U').
        bias: int32 [n_out] in state LSB, or None.
        recurrent: int8 [n_out, n_out] or None; contributes ``(V R) * 2^v_shift`` state LSB.
        w_shift: signed power-of-two exponent from accumulator to state units, -31..31.
        v_shift: the same for the recurrent accumulator.
        state_bits: width of I and U (16 or 32); both saturate to it.
        scale: float value of one state LSB (threshold units of the float model), > 0.
        input_scale: float value of one unit of this layer's integer input (1 for spikes).
    """

    name: str
    weight: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    threshold: np.ndarray
    reset: str = "subtract"
    spiking: bool = True
    bias: np.ndarray | None = None
    recurrent: np.ndarray | None = None
    w_shift: int = 0
    v_shift: int = 0
    state_bits: int = 16
    scale: float = 1.0
    input_scale: float = 1.0
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not name or not name.isascii() \
                or not name.replace("_", "").isalnum():
            raise ModelError(f"qlayer name must be a non-empty identifier, got {name!r}")
        w = np.asarray(self.weight)
        if w.ndim != 2 or w.shape[0] == 0 or w.shape[1] == 0:
            raise ModelError(f"qlayer '{name}': weight must be a non-empty 2-D [n_out, n_in] "
                             f"array, got shape {tuple(w.shape)}")
        n_out, n_in = w.shape
        lo8, hi8 = int_range(WEIGHT_BITS)
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        set_("weight", _int_array(name, "weight", w, (n_out, n_in), lo8, hi8, np.int8))
        if self.state_bits not in STATE_BITS:
            raise ModelError(f"qlayer '{name}': state_bits must be one of {STATE_BITS}, got "
                             f"{self.state_bits}")
        lo, hi = int_range(self.state_bits)
        for what in ("alpha", "beta"):
            set_(what, _int_array(name, what, getattr(self, what), (n_out,), 0, DECAY_ONE,
                                  np.int32))
        set_("threshold", _int_array(name, "threshold", self.threshold, (n_out,),
                                     1 if self.spiking else lo, hi, np.int32))
        if self.reset not in RESET_MODES:
            raise ModelError(f"qlayer '{name}': reset must be one of {RESET_MODES}, got "
                             f"{self.reset!r}")
        if self.bias is not None:
            set_("bias", _int_array(name, "bias", self.bias, (n_out,), lo, hi, np.int32))
        if self.recurrent is not None:
            if not self.spiking:
                raise ModelError(f"qlayer '{name}': a non-spiking readout cannot be recurrent")
            set_("recurrent", _int_array(name, "recurrent weight", self.recurrent,
                                         (n_out, n_out), lo8, hi8, np.int8))
        for what in ("w_shift", "v_shift"):
            v = getattr(self, what)
            if not isinstance(v, (int, np.integer)) or not -31 <= int(v) <= 31:
                raise ModelError(f"qlayer '{name}': {what} must be an int in -31..31, got {v!r}")
            set_(what, int(v))
        for what in ("scale", "input_scale"):
            v = float(getattr(self, what))
            if not (np.isfinite(v) and v > 0):
                raise ModelError(f"qlayer '{name}': {what} must be a finite float > 0, got {v}")
            set_(what, v)
        set_("spiking", bool(self.spiking))
        set_("_cache", {})

    @property
    def n_in(self) -> int:
        return int(self.weight.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.weight.shape[0])

    @property
    def kind(self) -> str:
        if not self.spiking:
            return "readout"
        return "rlif" if self.recurrent is not None else "lif"

    def replace(self, **changes) -> "QLayer":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # -- cached derived forms used by the accumulators (not part of the value) --------------
    def _derived(self, key: str):
        c = self._cache
        if key not in c:
            if key == "wT_f32":
                c[key] = np.ascontiguousarray(self.weight.T, dtype=np.float32)
            elif key == "wT_i32":
                c[key] = np.ascontiguousarray(self.weight.T, dtype=np.int32)
            elif key == "wT_i64":
                c[key] = np.ascontiguousarray(self.weight.T, dtype=np.int64)
            elif key == "row_abs":
                c[key] = int(np.abs(self.weight.astype(np.int64)).sum(axis=1).max())
            elif key == "vT_f32":
                c[key] = np.ascontiguousarray(self.recurrent.T, dtype=np.float32)
            elif key == "consts":           # int64 copies of the per-neuron constants
                lo, hi = int_range(self.state_bits)
                c[key] = (self.alpha.astype(np.int64), self.beta.astype(np.int64),
                          self.threshold.astype(np.int64),
                          None if self.bias is None else self.bias.astype(np.int64), lo, hi)
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

@dataclass(frozen=True, eq=False)
class QNetwork(LayerChain):
    """A chain of :class:`QLayer`; network input integers are float inputs / input_scale.

    Attributes:
        layers: the integer layers, input side first.
        name: model name.
        dt: simulation step in seconds (metadata, as in :class:`edgelearn.model.Network`).
        input_scale: float value of one integer input unit (x_int = round(x / input_scale)).
        input_bits: signed width of the integer input (8: [-128, 127]).
        meta: string metadata (e.g. "readout": "max").
    """

    _what = "qnetwork"

    layers: tuple[QLayer, ...]
    name: str = "network"
    dt: float = 1e-3
    input_scale: float = 1.0
    input_bits: int = 8
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "meta", {str(k): str(v) for k, v in dict(self.meta).items()})
        if not layers:
            raise ModelError(f"qnetwork '{self.name}' has no layers")
        for la in layers:
            if not isinstance(la, QLayer):
                raise ModelError(f"qnetwork '{self.name}': layers must be QLayer, got "
                                 f"{type(la).__name__}")
        names = [la.name for la in layers]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ModelError(f"qnetwork '{self.name}': duplicate layer names {sorted(dup)}")
        for prev, la in zip(layers, layers[1:]):
            if la.n_in != prev.n_out:
                raise ModelError(f"qlayer '{la.name}' expects {la.n_in} inputs, got "
                                 f"{prev.n_out} from layer '{prev.name}'")
            if not prev.spiking:
                raise ModelError(f"qlayer '{prev.name}': only the last layer may be a readout")
        if not 2 <= int(self.input_bits) <= 16:
            raise ModelError(f"qnetwork '{self.name}': input_bits must be 2..16, got "
                             f"{self.input_bits}")
        object.__setattr__(self, "input_bits", int(self.input_bits))
        if not (np.isfinite(self.input_scale) and self.input_scale > 0):
            raise ModelError(f"qnetwork '{self.name}': input_scale must be > 0, got "
                             f"{self.input_scale}")
        object.__setattr__(self, "input_scale", float(self.input_scale))
        if not (np.isfinite(self.dt) and self.dt > 0):
            raise ModelError(f"qnetwork '{self.name}': dt must be > 0 seconds, got {self.dt}")
        object.__setattr__(self, "dt", float(self.dt))
        if not np.isclose(layers[0].input_scale, self.input_scale, rtol=1e-6, atol=0):
            raise ModelError(f"qnetwork '{self.name}': input_scale {self.input_scale:.6g} "
                             f"differs from layer '{layers[0].name}' input_scale "
                             f"{layers[0].input_scale:.6g}")
        for la in layers[1:]:
            if la.input_scale != 1.0:
                raise ModelError(f"qlayer '{la.name}': input_scale must be 1 (spike input), "
                                 f"got {la.input_scale:.6g}")

    @property
    def n_in(self) -> int:
        return self.layers[0].n_in

    @property
    def n_out(self) -> int:
        return self.layers[-1].n_out



class QState(NamedTuple):
    """Per-layer integer state, each int64 [B, n_out] holding ``state_bits``-bit values."""

    current: np.ndarray
    membrane: np.ndarray


QNetworkState = tuple[QState, ...]


def init_qstate(qlayer: QLayer, batch: int = 1) -> QState:
    """All-zero state for ``batch`` sequences."""
    z = np.zeros((batch, qlayer.n_out), dtype=np.int64)
    return QState(z, z.copy())


def init_qnetwork_state(qnet: QNetwork, batch: int = 1) -> QNetworkState:
    return tuple(init_qstate(la, batch) for la in qnet.layers)


# -- accumulators ---------------------------------------------------------------------------

def accumulate_dense(qlayer: QLayer, x: np.ndarray, xmax: int | None = None) -> np.ndarray:
    """Exact ``x W^T`` as int64 [B, n_out] for integer x [B, n_in] (float32 BLAS when exact).

    ``xmax`` is a known bound on |x| (1 for spikes); computed when None.
    """
    if xmax is None:
        xmax = max(int(x.max()), -int(x.min())) if x.size else 0
    if qlayer._derived("row_abs") * xmax < FLOAT_EXACT:
        return (x.astype(np.float32) @ qlayer._derived("wT_f32")).astype(np.int64)
    return x.astype(np.int64) @ qlayer._derived("wT_i64")


def accumulate_event(qlayer: QLayer, x: np.ndarray) -> np.ndarray:
    """Exact ``x W^T`` for binary x [B, n_in]: sum of the weight columns of active inputs.

    Cost is O(active inputs * n_out); int32 sums are exact because |sum| <= 127 * n_in.
    """
    wT = qlayer._derived("wT_i32")
    out = np.empty((x.shape[0], qlayer.n_out), dtype=np.int64)
    for b, row in enumerate(x):
        out[b] = wT[np.flatnonzero(row)].sum(axis=0, dtype=np.int64)
    return out


EVENT_MAX_ACTIVITY = 0.08    # "auto": event path below this input activity, batch 1 only
                             # (bench/bench_fixed.py measured the crossover near 10 %)


def _accumulate(qlayer: QLayer, x: np.ndarray, mode: str, binary: bool) -> np.ndarray:
    if mode == "event" or (mode == "auto" and binary and x.shape[0] == 1
                           and np.count_nonzero(x) < EVENT_MAX_ACTIVITY * x.size):
        if not binary:
            raise InputError(f"qlayer '{qlayer.name}': the event path needs binary 0/1 inputs")
        return accumulate_event(qlayer, x)
    return accumulate_dense(qlayer, x, 1 if binary else None)


# -- steps ----------------------------------------------------------------------------------

def qlayer_step(qlayer: QLayer, x: np.ndarray, state: QState, mode: str = "auto",
                binary: bool | None = None, clip_counts: np.ndarray | None = None
                ) -> tuple[np.ndarray, QState]:
    """Advance one integer layer one step (the equations in the module docstring).

    Args:
        x: integer [B, n_in] (int8-range values, or 0/1 spikes).
        state: :class:`QState` of int64 [B, n_out].
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
    alpha, beta, thr, bias, lo, hi = qlayer._derived("consts")
    i_prev = state.current.astype(np.int64, copy=False)      # no-op for the usual int64 state
    u_prev = state.membrane.astype(np.int64, copy=False)
    acc = _accumulate(qlayer, x, mode, binary)
    cur = _decay(i_prev, alpha) + _shift(acc, qlayer.w_shift)
    if bias is not None:
        cur += bias
    u = _decay(u_prev, beta)
    if qlayer.spiking:
        fired = u_prev > thr
        if qlayer.recurrent is not None:
            rec = (fired.astype(np.float32) @ qlayer._derived("vT_f32")).astype(np.int64)
            cur += _shift(rec, qlayer.v_shift)
    cur_s = _sat(cur, lo, hi)
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
    u_s = _sat(u, lo, hi)
    if clip_counts is not None:
        clip_counts[0] += int(np.count_nonzero(cur_s != cur))
        clip_counts[1] += int(np.count_nonzero(u_s != u))
    if not qlayer.spiking:
        return u_s, QState(cur_s, u_s)
    return (u_s > thr).astype(np.int64), QState(cur_s, u_s)


def qnetwork_step(qnet: QNetwork, x: np.ndarray, state: QNetworkState, mode: str = "auto"
                  ) -> tuple[np.ndarray, QNetworkState]:
    """One step of the whole integer network: int x [B, n_in] -> (output [B, n_out], state)."""
    new = []
    binary = None
    for la, st in zip(qnet.layers, state):
        x, st = qlayer_step(la, x, st, mode=mode, binary=binary)
        binary = True
        new.append(st)
    return x, tuple(new)


def quantize_input(qnet: QNetwork, x: np.ndarray) -> np.ndarray:
    """Float input -> integer input: sat(floor(x / input_scale + 1/2)) as int64."""
    arr = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise InputError("input contains NaN or Inf")
    return saturate(np.floor(arr / qnet.input_scale + 0.5).astype(np.int64), qnet.input_bits)


def as_int_sequence(qnet: QNetwork, x: np.ndarray) -> np.ndarray:
    """Validate an integer input sequence [T, n_in] or [T, B, n_in] -> int64 [T, B, n_in]."""
    arr = np.asarray(x)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise InputError("integer network input must hold integers; quantize float input "
                             "with quantize_input(qnet, x) first")
    elif arr.dtype.kind not in "iub":
        raise InputError(f"input must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, None, :]
    if arr.ndim != 3:
        raise InputError(f"input must be [T, n_in] or [T, B, n_in], got shape {arr.shape}")
    if arr.shape[2] != qnet.n_in:
        raise InputError(f"network '{qnet.name}' expects {qnet.n_in} input channels, got "
                         f"{arr.shape[2]} (input shape {arr.shape})")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"input sequence is empty (shape {arr.shape})")
    arr = arr.astype(np.int64)
    lo, hi = int_range(qnet.input_bits)
    if arr.min() < lo or arr.max() > hi:
        raise InputError(f"integer input must lie in [{lo}, {hi}] ({qnet.input_bits}-bit), got "
                         f"range [{arr.min()}, {arr.max()}]")
    return arr


@dataclass
class QRecording:
    """Result of :func:`qrun`: int64 ``output`` [T, B, n_out], per-layer int traces, and the
    number of saturated entries per layer: ``clipped[name] = (current, membrane, total)``."""

    output: np.ndarray
    spikes: dict = field(default_factory=dict)
    current: dict = field(default_factory=dict)
    membrane: dict = field(default_factory=dict)
    clipped: dict = field(default_factory=dict)
    final_state: QNetworkState | None = None


def qrun(qnet: QNetwork, x: np.ndarray, record: tuple[str, ...] = ("spikes",),
         mode: str = "auto", state: QNetworkState | None = None) -> QRecording:
    """Run an integer sequence x [T, n_in] | [T, B, n_in] through the integer network."""
    unknown = set(record) - {"spikes", "current", "membrane"}
    if unknown:
        raise InputError(f"cannot record {sorted(unknown)}; choose from spikes, current, "
                         f"membrane")
    seq = as_int_sequence(qnet, x)
    T, B, _ = seq.shape
    state = init_qnetwork_state(qnet, B) if state is None else state
    first_binary = bool(seq.min() >= 0 and seq.max() <= 1)
    out = np.empty((T, B, qnet.n_out), dtype=np.int64)
    rec = QRecording(output=out)
    counts = {la.name: np.zeros(2, dtype=np.int64) for la in qnet.layers}
    traces = {k: getattr(rec, k) for k in record}
    for k, d in traces.items():
        for la in qnet.layers:
            if k != "spikes" or la.spiking:
                d[la.name] = np.empty((T, B, la.n_out),
                                      dtype=np.uint8 if k == "spikes" else np.int64)
    for t in range(T):
        h = seq[t]
        binary = first_binary
        new = []
        for la, st in zip(qnet.layers, state):
            h, st = qlayer_step(la, h, st, mode=mode, binary=binary, clip_counts=counts[la.name])
            binary = True
            new.append(st)
            if "spikes" in traces and la.spiking:
                traces["spikes"][la.name][t] = h
            if "current" in traces:
                traces["current"][la.name][t] = st.current
            if "membrane" in traces:
                traces["membrane"][la.name][t] = st.membrane
        state = tuple(new)
        out[t] = h
    rec.clipped = {la.name: (int(counts[la.name][0]), int(counts[la.name][1]), T * B * la.n_out)
                   for la in qnet.layers}
    rec.final_state = state
    return rec


# -- float twin -----------------------------------------------------------------------------

def dequantize_layer(qlayer: QLayer) -> Layer:
    """The float :class:`Layer` whose exact-arithmetic dynamics the integer layer rounds.

    W_float = W_int * 2^w_shift * scale / input_scale; theta, b = int * scale;
    V_float = V_int * 2^v_shift * scale; alpha, beta = d / 4096.
    """
    s = qlayer.scale
    w = qlayer.weight.astype(np.float64) * (2.0 ** qlayer.w_shift) * s / qlayer.input_scale
    rec = None
    if qlayer.recurrent is not None:
        rec = qlayer.recurrent.astype(np.float64) * (2.0 ** qlayer.v_shift) * s
    bias = None if qlayer.bias is None else qlayer.bias.astype(np.float64) * s
    thr = qlayer.threshold.astype(np.float64) * s if qlayer.spiking else 1.0
    return Layer(name=qlayer.name, weight=w, alpha=decode_decay(qlayer.alpha),
                 beta=decode_decay(qlayer.beta), threshold=thr, reset=qlayer.reset,
                 spiking=qlayer.spiking, bias=bias, recurrent=rec)


def dequantize(qnet: QNetwork) -> Network:
    """The float twin :class:`Network` (float inputs x = x_int * input_scale)."""
    return Network(layers=tuple(dequantize_layer(la) for la in qnet.layers), name=qnet.name,
                   dt=qnet.dt, meta=dict(qnet.meta))


def state_to_float(qlayer: QLayer, state: QState) -> tuple[np.ndarray, np.ndarray]:
    """Float value of an integer state: (I * scale, U * scale) as float64."""
    return state.current * qlayer.scale, state.membrane * qlayer.scale
