"""Initial networks for training (L2, numpy only).

Weights are drawn N(0, s^2) with s = gain * (1 - beta) / sqrt(n_in) as in SpyTorch (gain 7 there),
so that the input drive is independent of the fan-in and of the membrane time constant.
alpha = exp(-dt / tau_syn), beta = exp(-dt / tau_mem).
"""

from __future__ import annotations

import math

import numpy as np

from edgelearn.errors import ParameterError
from edgelearn.model import Layer, Network


def decay(dt: float, tau: float) -> float:
    """exp(-dt / tau) for dt, tau in seconds; tau = 0 gives 0 (no memory)."""
    if not (dt > 0 and tau >= 0 and math.isfinite(dt) and math.isfinite(tau)):
        raise ParameterError(f"need dt > 0 and tau >= 0 seconds, got dt={dt}, tau={tau}")
    return 0.0 if tau == 0 else math.exp(-dt / tau)


def init_network(n_in: int, hidden: tuple[int, ...] | list[int], n_out: int,
                 rng: np.random.Generator, *, alpha: float = 0.8, beta: float = 0.9,
                 threshold: float = 1.0, reset: str = "subtract", recurrent: bool = False,
                 bias: bool = False, gain: float = 7.0, rec_gain: float = 1.0,
                 out_alpha: float | None = None, out_beta: float | None = None,
                 name: str = "network", dt: float = 1e-3, meta: dict | None = None) -> Network:
    """``n_in -> hidden... -> n_out`` LIF layers 'hidden0', 'hidden1', ... and a readout 'readout'.

    ``gain`` scales feed-forward weights, ``rec_gain`` the recurrent ones (same formula with
    n_in = layer width); the readout uses ``out_alpha``/``out_beta`` (default: alpha/beta).
    """
    if int(n_in) < 1 or int(n_out) < 1 or any(int(h) < 1 for h in hidden):
        raise ParameterError(f"layer sizes must be >= 1, got {n_in}, {list(hidden)}, {n_out}")
    if gain <= 0 or rec_gain < 0:
        raise ParameterError(f"gain must be > 0 and rec_gain >= 0, got {gain}, {rec_gain}")
    layers = []
    prev = int(n_in)
    for i, h in enumerate(hidden):
        h = int(h)
        s = gain * (1.0 - beta) / math.sqrt(prev)
        w = rng.normal(0.0, s, (h, prev))
        v = (rng.normal(0.0, rec_gain * (1.0 - beta) / math.sqrt(h), (h, h))
             if recurrent else None)
        layers.append(Layer(f"hidden{i}", w, alpha=alpha, beta=beta, threshold=threshold,
                            reset=reset, bias=np.zeros(h) if bias else None, recurrent=v))
        prev = h
    ob = beta if out_beta is None else out_beta
    oa = alpha if out_alpha is None else out_alpha
    w = rng.normal(0.0, gain * (1.0 - ob) / math.sqrt(prev), (int(n_out), prev))
    layers.append(Layer("readout", w, alpha=oa, beta=ob, spiking=False,
                        bias=np.zeros(int(n_out)) if bias else None))
    return Network(tuple(layers), name=name, dt=dt, meta=dict(meta or {}))
