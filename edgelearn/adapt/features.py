"""Hidden-layer features of the integer network, computed offline in batches.

The features of a sample are the spike counts of the feature layer (the last hidden layer)
over the sample divided by its length T (rates per step in [0, 1]) followed by the readout
scores (see edgelearn.device.head). The device engine computes the
same integers one sample at a time (tested), so a head trained on these features sees on the
device exactly what it saw in training.
"""

from __future__ import annotations

import numpy as np

from edgelearn.kernels.lif_fixed import QNetwork, qrun, quantize_input


def readout_scores(output: np.ndarray, readout: str, scale: float) -> np.ndarray:
    """Readout scores [B, n_out] in threshold units from integer readout outputs [T, B, n_out]:
    mean or max over time, times the readout layer's scale (as the device engine computes)."""
    o = np.asarray(output, dtype=np.float64)
    return (o.mean(axis=0) if readout == "mean" else o.max(axis=0)) * scale


def head_features(qnet: QNetwork, x: np.ndarray, layer: str, readout: str = "max",
                  batch: int = 256) -> np.ndarray:
    """Head features [N, n_hidden + n_out] of samples ``x`` [N, T, n_in]: spike rates of
    ``layer`` and the readout scores (edgelearn.device.head), float64."""
    x = np.asarray(x)
    T = x.shape[1]
    out = []
    scale = qnet.layers[-1].scale
    for i in range(0, len(x), batch):
        xb = quantize_input(qnet, np.swapaxes(x[i:i + batch], 0, 1))
        rec = qrun(qnet, xb, record=("spikes",))
        rates = rec.spikes[layer].sum(axis=0, dtype=np.int64) / T
        out.append(np.concatenate([rates, readout_scores(rec.output, readout, scale)], axis=1))
    return np.concatenate(out).astype(np.float64)
