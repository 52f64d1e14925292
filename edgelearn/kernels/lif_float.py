"""Float32 LIF layer step, the numpy reference of the model in :mod:`edgelearn.model`.

    R = H(U - theta);  I' = alpha I + x W^T + b + R V^T
    U' = beta U + I' - theta R          (subtract)     U' = (1 - R)(beta U + I')   (zero)
    U' = (beta U)(1 - R) + I'           (zero_immediate)
    S' = H(U' - theta)                  readout: U' = beta U + I', output U'
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from edgelearn.model import Layer


class LayerState(NamedTuple):
    """Per-layer state, each float32 [B, n_out]: synaptic current I and membrane U."""

    current: np.ndarray
    membrane: np.ndarray


def init_layer_state(layer: Layer, batch: int) -> LayerState:
    """All-zero state for ``batch`` independent sequences."""
    z = np.zeros((batch, layer.n_out), dtype=np.float32)
    return LayerState(z, z.copy())


def layer_step(layer: Layer, x: np.ndarray, state: LayerState) -> tuple[np.ndarray, LayerState]:
    """Advance one layer one step. ``x`` is float32 [B, n_in]; returns (output [B, n_out], state).

    The output is the spike vector S' (0/1 float32) or, for a readout, the membrane U'.
    """
    cur = layer.alpha * state.current + x @ layer.weight.T
    if layer.bias is not None:
        cur = cur + layer.bias
    u = layer.beta * state.membrane
    if not layer.spiking:
        u = u + cur
        return u, LayerState(cur, u)
    reset = (state.membrane > layer.threshold).astype(np.float32)
    if layer.recurrent is not None:
        cur = cur + reset @ layer.recurrent.T
    if layer.reset == "subtract":
        u = u + cur - layer.threshold * reset
    elif layer.reset == "zero":
        u = (u + cur) * (1.0 - reset)
    else:
        u = u * (1.0 - reset) + cur
    spikes = (u > layer.threshold).astype(np.float32)
    return spikes, LayerState(cur, u)
