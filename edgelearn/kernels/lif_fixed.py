"""Integer LIF kernel: the fixed-point twin of :mod:`edgelearn.kernels.lif_float` (L1, numpy).

The specification is docs/fixed-point.md; this module holds its data types (:class:`QLayer`,
:class:`QNetwork`, :class:`QState`), the integer input, the float twin (:func:`dequantize`)
and the reference layer step :func:`reference_step`, its executable form. Per layer, all
integers, one step (x is the layer input: ``input_bits``-range values for the first layer,
0/1 spikes after it):

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

The optimised step (float32 BLAS when exact, event-driven accumulation, cached weight forms)
is :mod:`edgelearn.kernels.lif_fast`; :mod:`edgelearn.kernels.lif_kernels` runs either, or the
C kernel, behind one interface (``qlayer_step``, ``qnetwork_step``, ``qrun``), and the shared
test vectors (tests/vectors/) check all of them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from edgelearn.errors import InputError, ModelError
from edgelearn.fixed import DECAY_ONE, apply_decay, decode_decay, int_range, round_shift, saturate
from edgelearn.model import RESET_MODES, Layer, LayerChain, Network

STATE_BITS = (16, 32)
WEIGHT_BITS = 8


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

    ``_cache`` holds derived forms of the weights that the optimised kernel keeps
    (edgelearn.kernels.lif_fast); it is not part of the value.
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


# -- the reference step ---------------------------------------------------------------------

def shift_by(a: np.ndarray, s: int) -> np.ndarray:
    """``a * 2^s`` for int64 ``a``: a left shift for s >= 0, else ``round_shift(a, -s)``."""
    return a << s if s >= 0 else round_shift(a, -s)


def reference_step(qlayer: QLayer, x: np.ndarray, state: QState,
                   clip_counts: np.ndarray | None = None) -> tuple[np.ndarray, QState]:
    """One step of one integer layer, docs/fixed-point.md section 5 written as it reads.

    With x the integer input [B, n_in] and (I, U) = ``state`` (int [B, n_out]):

        R  = U > theta                          (spiking layers; 0 for the readout)
        A  = x W^T                              (int64, exact)
        I' = sat( apply_decay(I, alpha) + shift_by(A, w_shift) + b
                  + shift_by(R V^T, v_shift) )
        U' = sat( apply_decay(U, beta) + I' - theta R )          reset "subtract"
           = sat( (apply_decay(U, beta) + I') (1 - R) )          reset "zero"
           = sat( apply_decay(U, beta) (1 - R) + I' )            reset "zero_immediate"
           = sat( apply_decay(U, beta) + I' )                    readout
        output = (U' > theta) as 0/1 (spiking layers), U' (readout)

    Absent terms (bias, recurrence) are zero; ``sat`` is the layer's ``state_bits`` range.
    Everything is int64 and nothing is cached, so this is slow and obviously right; the
    optimised :func:`edgelearn.kernels.lif_fast.step` must give the same integers.

    Args:
        clip_counts: optional int64[2] incremented by the number of entries of I' and U'
            that saturation changed.
    Returns:
        (output int64 [B, n_out], the new :class:`QState` of int64 arrays).
    """
    x = np.asarray(x).astype(np.int64)
    current = np.asarray(state.current).astype(np.int64)
    membrane = np.asarray(state.membrane).astype(np.int64)
    theta = qlayer.threshold.astype(np.int64)
    if qlayer.spiking:
        r = (membrane > theta).astype(np.int64)
    else:
        r = np.zeros_like(membrane)
    a = x @ qlayer.weight.astype(np.int64).T
    current_sum = apply_decay(current, qlayer.alpha) + shift_by(a, qlayer.w_shift)
    if qlayer.bias is not None:
        current_sum = current_sum + qlayer.bias.astype(np.int64)
    if qlayer.recurrent is not None:
        a_rec = r @ qlayer.recurrent.astype(np.int64).T
        current_sum = current_sum + shift_by(a_rec, qlayer.v_shift)
    new_current = saturate(current_sum, qlayer.state_bits)
    decayed = apply_decay(membrane, qlayer.beta)
    if not qlayer.spiking:
        membrane_sum = decayed + new_current
    elif qlayer.reset == "subtract":
        membrane_sum = decayed + new_current - theta * r
    elif qlayer.reset == "zero":
        membrane_sum = (decayed + new_current) * (1 - r)
    else:                                                   # "zero_immediate"
        membrane_sum = decayed * (1 - r) + new_current
    new_membrane = saturate(membrane_sum, qlayer.state_bits)
    if clip_counts is not None:
        clip_counts[0] += int(np.count_nonzero(new_current != current_sum))
        clip_counts[1] += int(np.count_nonzero(new_membrane != membrane_sum))
    if qlayer.spiking:
        output = (new_membrane > theta).astype(np.int64)
    else:
        output = new_membrane
    return output, QState(new_current, new_membrane)



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
