"""The float reference simulator: single steps and whole sequences, any batch size.

Input sequences are [T, n_in] or [T, B, n_in]; outputs are always [T, B, n_out]. The output of a
network is the last layer's spikes, or its membrane for a non-spiking readout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgelearn.errors import InputError
from edgelearn.kernels.lif_float import LayerState, init_layer_state, layer_step
from edgelearn.model import Network, store_traces, trace_buffers

NetworkState = tuple[LayerState, ...]


def init_state(net: Network, batch: int = 1) -> NetworkState:
    """Zero state for every layer."""
    return tuple(init_layer_state(layer, batch) for layer in net.layers)


def step(net: Network, x: np.ndarray, state: NetworkState) -> tuple[np.ndarray, NetworkState]:
    """One time step of the whole network: x float32 [B, n_in] -> (output [B, n_out], state)."""
    new = []
    for layer, st in zip(net.layers, state):
        x, st = layer_step(layer, x, st)
        new.append(st)
    return x, tuple(new)


def as_sequence(net: Network, x: np.ndarray) -> np.ndarray:
    """Validate an input sequence and return it as float32 [T, B, n_in]."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise InputError(f"input must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, None, :]
    if arr.ndim != 3:
        raise InputError(f"input must be [T, n_in] or [T, B, n_in], got shape {arr.shape}")
    if arr.shape[2] != net.n_in:
        raise InputError(f"network '{net.name}' expects {net.n_in} input channels, "
                         f"got {arr.shape[2]} (input shape {arr.shape})")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"input sequence is empty (shape {arr.shape})")
    arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        raise InputError("input contains NaN or Inf")
    return arr


@dataclass
class Recording:
    """Result of :func:`run`: ``output`` [T, B, n_out] and per-layer traces [T, B, n]."""

    output: np.ndarray
    spikes: dict[str, np.ndarray] = field(default_factory=dict)
    current: dict[str, np.ndarray] = field(default_factory=dict)
    membrane: dict[str, np.ndarray] = field(default_factory=dict)
    final_state: NetworkState | None = None


def run(net: Network, x: np.ndarray, record: tuple[str, ...] = ("spikes",),
        state: NetworkState | None = None) -> Recording:
    """Simulate a whole sequence. ``record`` picks any of 'spikes', 'current', 'membrane'."""
    seq = as_sequence(net, x)
    T, B, _ = seq.shape
    state = init_state(net, B) if state is None else state
    out = np.empty((T, B, net.n_out), dtype=np.float32)
    rec = Recording(output=out)
    traces = trace_buffers(rec, net.layers, record, T, B, np.float32, np.float32)
    for t in range(T):
        h = seq[t]
        new = []
        for layer, st in zip(net.layers, state):
            h, st = layer_step(layer, h, st)
            new.append(st)
            if traces:
                store_traces(traces, layer, t, h, st)
        state = tuple(new)
        out[t] = h
    rec.final_state = state
    return rec
