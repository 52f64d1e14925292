"""One noisy time step of a layer on the substrate (L1): the float equations plus temporal noise.

The deterministic part is :func:`edgelearn.kernels.lif_float.layer_step` on a Layer whose
weights and neuron constants already carry the device's mismatch. Temporal noise then enters as

    I[n] <- I[n] + sigma_I z_I          (synaptic input noise, threshold units)
    U[n] <- U[n] + sigma_I z_I + sigma_U z_U     (membrane sees both; times (1 - R) for reset-to-zero)
    S[n]  = H(U[n] - theta)             spikes recomputed from the noisy membrane

so with both sigmas 0 the step is exactly ``layer_step``.
"""

from __future__ import annotations

import numpy as np

from edgelearn.kernels.lif_float import LayerState, layer_step
from edgelearn.model import Layer


def noisy_layer_step(layer: Layer, x: np.ndarray, state: LayerState, rng: np.random.Generator,
                     input_sigma: float, membrane_sigma: float) -> tuple[np.ndarray, LayerState]:
    """``layer_step`` with temporal noise on the synaptic input and the membrane."""
    out, new = layer_step(layer, x, state)
    if input_sigma == 0.0 and membrane_sigma == 0.0:
        return out, new
    shape = new.current.shape
    e_i = (input_sigma * rng.standard_normal(shape)).astype(np.float32) if input_sigma else 0.0
    e_u = (membrane_sigma * rng.standard_normal(shape)).astype(np.float32) if membrane_sigma \
        else 0.0
    cur = new.current + e_i
    du = e_i + e_u
    if layer.spiking and layer.reset == "zero":      # zero_immediate keeps the new input
        du = du * (1.0 - (state.membrane > layer.threshold).astype(np.float32))
    u = (new.membrane + du).astype(np.float32)
    if not layer.spiking:
        return u, LayerState(cur.astype(np.float32), u)
    spikes = (u > layer.threshold).astype(np.float32)
    return spikes, LayerState(cur.astype(np.float32), u)
