"""The network IR: layers of current-based LIF neurons and a leaky-integrator readout (L1).

Discrete time, one call per time step n, per layer (all arrays per neuron, units of threshold
are arbitrary but shared by U and theta):

    R[n]   = H(U[n-1] - theta)                       spike of the previous step (the reset signal)
    I[n]   = alpha * I[n-1] + W x[n] + b + V R[n]    synaptic current (V only if recurrent)
    U[n]   = beta * U[n-1] + I[n] - theta * R[n]     reset by subtraction    (reset="subtract")
    U[n]   = (1 - R[n]) * (beta * U[n-1] + I[n])     reset to zero           (reset="zero")
    U[n]   = beta * (1 - R[n]) * U[n-1] + I[n]       reset to zero at once   (reset="zero_immediate")
    S[n]   = H(U[n] - theta),  H(v) = 1 if v > 0 else 0

"zero" holds the membrane at zero for the step after a spike (that step's input is lost);
"zero_immediate" sets it to zero in the step of the spike, so the next step integrates its
input onto zero: NIR's reset to v_reset = 0 under forward Euler, and snnTorch's ``Leaky`` /
``Synaptic`` with reset_mechanism="zero" (with or without reset_delay).

This is the state update of snnTorch's ``Synaptic``/``RSynaptic`` (and of ``Leaky``/``RLeaky``
with reset by subtraction, as alpha = 0; snnTorch's ``Leaky`` with reset to zero computes
beta (1 - R) U + I instead and loads as an opaque graph), so the spike S[n] of a step is the
reset signal of the next one and the state is just (I, U).
A readout layer (``spiking=False``) has no threshold and no reset; its output is U[n].
alpha = exp(-dt/tau_syn), beta = exp(-dt/tau_mem).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from edgelearn.errors import InputError, ModelError

RESET_MODES = ("subtract", "zero", "zero_immediate")
MAX_NEURONS = 1 << 20      # refuse absurd sizes before allocating
MAX_PARAMETERS = 1 << 28


def _per_neuron(name: str, what: str, value, n: int) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float32)
    if arr.ndim == 0:
        arr = np.full(n, float(arr), dtype=np.float32)
    if arr.shape != (n,):
        raise ModelError(f"layer '{name}': {what} must be a scalar or have {n} entries, "
                         f"got shape {tuple(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        raise ModelError(f"layer '{name}': {what} contains NaN or Inf")
    return arr


def _frozen(arr: np.ndarray) -> np.ndarray:
    arr = np.array(arr, dtype=np.float32, copy=True)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Layer:
    """One fully connected layer of CUBA LIF neurons (or a leaky-integrator readout).

    Attributes:
        name: unique layer name.
        weight: W, float32 [n_out, n_in]; input current per unit input (threshold units).
        alpha: synaptic-current decay per step, scalar or [n_out], in [0, 1].
        beta: membrane decay per step, scalar or [n_out], in [0, 1].
        threshold: theta > 0, scalar or [n_out] (ignored for readouts).
        reset: "subtract", "zero" or "zero_immediate" (module docstring).
        spiking: False makes this a non-spiking leaky-integrator readout (output = U).
        bias: b, float32 [n_out] or None.
        recurrent: V, float32 [n_out, n_out] or None (spikes of step n-1 feed step n).
    """

    name: str
    weight: np.ndarray
    alpha: np.ndarray | float = 0.0
    beta: np.ndarray | float = 0.9
    threshold: np.ndarray | float = 1.0
    reset: str = "subtract"
    spiking: bool = True
    bias: np.ndarray | None = None
    recurrent: np.ndarray | None = None

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not name or not name.replace("_", "").isalnum():
            raise ModelError(f"layer name must be a non-empty identifier, got {name!r}")
        w = np.asarray(self.weight)
        if w.ndim != 2:
            raise ModelError(f"layer '{name}': weight must be 2-D [n_out, n_in], got {w.ndim}-D")
        n_out, n_in = w.shape
        if not (0 < n_out <= MAX_NEURONS and 0 < n_in <= MAX_NEURONS):
            raise ModelError(f"layer '{name}': size {n_out}x{n_in} outside 1..{MAX_NEURONS}")
        if not np.all(np.isfinite(w)):
            raise ModelError(f"layer '{name}': weight contains NaN or Inf")
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        set_("weight", _frozen(w))
        for what in ("alpha", "beta", "threshold"):
            set_(what, _frozen(_per_neuron(name, what, getattr(self, what), n_out)))
        for what in ("alpha", "beta"):
            v = getattr(self, what)
            if np.any(v < 0) or np.any(v > 1):
                raise ModelError(f"layer '{name}': {what} must lie in [0, 1], got range "
                                 f"[{v.min():.4g}, {v.max():.4g}]")
        if self.spiking and np.any(self.threshold <= 0):
            raise ModelError(f"layer '{name}': threshold must be > 0, got min "
                             f"{self.threshold.min():.4g}")
        if self.reset not in RESET_MODES:
            raise ModelError(f"layer '{name}': reset must be one of {RESET_MODES}, "
                             f"got {self.reset!r}")
        if self.bias is not None:
            set_("bias", _frozen(_per_neuron(name, "bias", self.bias, n_out)))
        if self.recurrent is not None:
            v = np.asarray(self.recurrent)
            if v.shape != (n_out, n_out):
                raise ModelError(f"layer '{name}': recurrent weight must be {n_out}x{n_out}, "
                                 f"got {'x'.join(map(str, v.shape))}")
            if not np.all(np.isfinite(v)):
                raise ModelError(f"layer '{name}': recurrent weight contains NaN or Inf")
            if not self.spiking:
                raise ModelError(f"layer '{name}': a non-spiking readout cannot be recurrent")
            set_("recurrent", _frozen(v))

    @property
    def n_in(self) -> int:
        return int(self.weight.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.weight.shape[0])

    @property
    def n_parameters(self) -> int:
        """Number of trainable numbers: W, V and b (neuron constants not counted)."""
        n = self.weight.size
        n += 0 if self.recurrent is None else self.recurrent.size
        n += 0 if self.bias is None else self.bias.size
        return int(n)

    @property
    def kind(self) -> str:
        """Short type name: 'lif', 'rlif' (recurrent) or 'readout'."""
        if not self.spiking:
            return "readout"
        return "rlif" if self.recurrent is not None else "lif"

    def replace(self, **changes) -> "Layer":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


class LayerChain:
    """Lookup and replacement of named layers, shared by :class:`Network` and the integer
    ``QNetwork`` (both frozen dataclasses with ``name`` and ``layers``)."""

    _what = "network"

    def layer(self, name: str):
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ModelError(f"{self._what} '{self.name}' has no layer '{name}'; layers are "
                         f"{[la.name for la in self.layers]}")

    def replace_layer(self, name: str, **changes):
        """A copy with layer ``name`` changed (e.g. new weights after learning)."""
        self.layer(name)
        layers = tuple(la.replace(**changes) if la.name == name else la for la in self.layers)
        return dataclasses.replace(self, layers=layers)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


RECORDABLE = ("spikes", "current", "membrane")     # what a run can record per layer


def check_record(record: tuple[str, ...]) -> None:
    """InputError unless every name in ``record`` is one of RECORDABLE."""
    unknown = set(record) - set(RECORDABLE)
    if unknown:
        raise InputError(f"cannot record {sorted(unknown)}; choose from spikes, current, "
                         f"membrane")


def trace_buffers(recording, layers, record: tuple[str, ...], T: int, B: int, dtype,
                  spike_dtype) -> dict[str, dict]:
    """Allocate the per-layer traces a run records: for each kind in ``record`` (checked by
    :func:`check_record`), ``recording.<kind>[layer] = empty [T, B, n_out]`` (spikes only of
    spiking layers). Returns {kind: that dict}, for :func:`store_traces`."""
    check_record(record)
    traces = {k: getattr(recording, k) for k in record}
    for k, d in traces.items():
        for la in layers:
            if k != "spikes" or la.spiking:
                d[la.name] = np.empty((T, B, la.n_out), dtype=spike_dtype if k == "spikes"
                                      else dtype)
    return traces


def store_traces(traces: dict[str, dict], layer, t: int, output: np.ndarray, state) -> None:
    """Step ``t`` of ``layer`` into the traces of :func:`trace_buffers`: its output (spiking
    layers), ``state.current`` and ``state.membrane``."""
    if "spikes" in traces and layer.spiking:
        traces["spikes"][layer.name][t] = output
    if "current" in traces:
        traces["current"][layer.name][t] = state.current
    if "membrane" in traces:
        traces["membrane"][layer.name][t] = state.membrane


def hidden_layer_indices(layers) -> tuple[int, ...]:
    """Indices of the spiking layers before the output layer (the LPL candidates), or of every
    spiking layer when no earlier layer spikes. Works on float and integer layers alike."""
    spiking = [k for k, la in enumerate(layers) if la.spiking]
    return tuple(k for k in spiking if k < len(layers) - 1) or tuple(spiking)


def feature_layer_index(layers) -> int:
    """The feature layer: the layer whose spike counts feed the head and the features of a
    sample (docs/protocol.md, "Sample mode"): the last of :func:`hidden_layer_indices`.
    The one definition every part of edgelearn uses; ModelError if no layer spikes."""
    hidden = hidden_layer_indices(layers)
    if not hidden:
        raise ModelError("the model has no spiking layer to take features from")
    return hidden[-1]


@dataclass(frozen=True, eq=False)
class Network(LayerChain):
    """A feed-forward chain of layers; layer k's input is layer k-1's output.

    Attributes:
        layers: the layers, input side first.
        name: model name.
        dt: the simulation step in seconds that alpha/beta were computed for (metadata only).
        meta: free-form string metadata carried through export/import.
    """

    layers: tuple[Layer, ...]
    name: str = "network"
    dt: float = 1e-3
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "meta", {str(k): str(v) for k, v in dict(self.meta).items()})
        if not layers:
            raise ModelError(f"network '{self.name}' has no layers")
        if not (np.isfinite(self.dt) and self.dt > 0):
            raise ModelError(f"network '{self.name}': dt must be > 0 seconds, got {self.dt}")
        names = [layer.name for layer in layers]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ModelError(f"network '{self.name}': duplicate layer names {sorted(dup)}")
        for prev, layer in zip(layers, layers[1:]):
            if layer.n_in != prev.n_out:
                raise ModelError(f"layer '{layer.name}' expects {layer.n_in} inputs, "
                                 f"got {prev.n_out} from layer '{prev.name}'")
        for layer in layers[:-1]:
            if not layer.spiking:
                raise ModelError(f"layer '{layer.name}': only the last layer may be a "
                                 f"non-spiking readout")
        total = sum(layer.n_parameters for layer in layers)
        if total > MAX_PARAMETERS:
            raise ModelError(f"network '{self.name}' has {total} parameters, limit "
                             f"{MAX_PARAMETERS}")

    @property
    def n_in(self) -> int:
        return self.layers[0].n_in

    @property
    def n_out(self) -> int:
        return self.layers[-1].n_out

    @property
    def n_parameters(self) -> int:
        return sum(layer.n_parameters for layer in self.layers)

