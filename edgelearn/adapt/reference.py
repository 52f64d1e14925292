"""Starting LPL state measured on training data (edgelearn.rules.lpl_reference), for a target.

    weights = lpl_reference_weights(qnet, config, x_train)     # host side, once per deployment
    target.set_weights(weights)                               # the LPL section of the weights blob

For every LPL layer of ``config`` the integer network runs the training samples ``x``
[N, T, n_in] (each from a zero neuron state, as the engine runs samples), and the rule's
statistics on that activity become the layer's starting state: running mean = homeostatic
target = the training mean, variance = the training variance, warm-up over. Only layers whose
codes keep a per-neuron target (homeostasis with ``rate_target=None``) use a target; the
statistics are set for every LPL layer.
"""

from __future__ import annotations

import numpy as np

from edgelearn.device.config import compile_config
from edgelearn.errors import DataError
from edgelearn.kernels.lif_fixed import QNetwork, quantize_input
from edgelearn.kernels.lif_kernels import qrun
from edgelearn.rules.lpl_reference import reference_state

REFERENCE_SAMPLES = 256


def lpl_reference_weights(qnet: QNetwork, config, x: np.ndarray,
                          samples: int = REFERENCE_SAMPLES) -> dict[str, np.ndarray]:
    """``{"state.<layer>.lpl.<field>": array}`` of every LPL layer of the engine ``config``
    (an EngineConfig) measured on the first ``samples`` of ``x`` [N, T, n_in]."""
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != qnet.n_in or len(x) == 0:
        raise DataError(f"reference samples must be [N, T, {qnet.n_in}] with N >= 1, got "
                        f"shape {tuple(x.shape)}")
    dc = compile_config(config, qnet)
    if not dc.lpl:
        return {}
    xb = quantize_input(qnet, np.swapaxes(x[:samples], 0, 1))           # [T, N, n_in]
    rec = qrun(qnet, xb, record=("spikes",))
    out: dict[str, np.ndarray] = {}
    for k, codes in dc.lpl:
        la = qnet.layers[k]
        pre = xb if k == 0 else rec.spikes[qnet.layers[k - 1].name]
        post = rec.spikes[la.name]
        st = reference_state(codes, np.swapaxes(pre, 0, 1), np.swapaxes(post, 0, 1))
        for f, arr in zip(st._fields, st):
            if arr.size:
                out[f"state.{la.name}.lpl.{f}"] = arr
    return out
