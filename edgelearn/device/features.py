"""The head's features of a sample, defined once (docs/protocol.md section 8.4).

    f = [ counts_j / T  for j in the feature layer ]  ++  [ score_c  for c in 0..n_out-1 ]

counts: spikes of the feature layer (``edgelearn.model.feature_layer_index``) over the sample of
T steps; score: the readout score in threshold units (max, or mean, over time of the readout
membrane, times the readout layer's scale). :func:`feature_vector` composes them for the device
engine (one sample, and each replayed sample), the TFLite target and the offline
:func:`head_features` (batches, through the integer kernel); the engine computes the same
integers one sample at a time (tested), so a head trained on offline features sees on a device
exactly what it saw in training.
"""

from __future__ import annotations

import numpy as np

from edgelearn.kernels.lif_fixed import QNetwork, quantize_input
from edgelearn.kernels.lif_kernels import qrun
from edgelearn.model import feature_layer_index


def feature_vector(counts: np.ndarray, T, scores: np.ndarray) -> np.ndarray:
    """[counts / T, scores] as binary64 (the last axis; counts [..., n_feature], T scalar or
    [..., 1], scores [..., n_out])."""
    rates = np.asarray(counts, dtype=np.float64) / np.asarray(T, dtype=np.float64)
    return np.concatenate([rates, np.asarray(scores, dtype=np.float64)], axis=-1)


def readout_scores(output: np.ndarray, readout: str, scale: float) -> np.ndarray:
    """Readout scores [B, n_out] in threshold units from integer readout outputs [T, B, n_out]:
    mean or max over time, times the readout layer's scale (as the device engine computes)."""
    o = np.asarray(output, dtype=np.float64)
    return (o.mean(axis=0) if readout == "mean" else o.max(axis=0)) * scale


def head_features(qnet: QNetwork, x: np.ndarray, layer: str | None = None, readout: str = "max",
                  batch: int = 256) -> np.ndarray:
    """Head features [N, n_feature + n_out] of samples ``x`` [N, T, n_in] (float or integer
    input, quantized as a target does): spike rates of ``layer`` (default: the feature layer)
    and the readout scores, binary64."""
    x = np.asarray(x)
    T = x.shape[1]
    name = layer or qnet.layers[feature_layer_index(qnet.layers)].name
    out = []
    scale = qnet.layers[-1].scale
    for i in range(0, len(x), batch):
        xb = quantize_input(qnet, np.swapaxes(x[i:i + batch], 0, 1))
        rec = qrun(qnet, xb, record=("spikes",))
        counts = rec.spikes[name].sum(axis=0, dtype=np.int64)
        out.append(feature_vector(counts, T, readout_scores(rec.output, readout, scale)))
    return np.concatenate(out)
