"""Adam on the trainable arrays of a network (L2, numpy only).

    m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
    p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
"""

from __future__ import annotations

import numpy as np

from edgelearn.model import Network

TRAINABLE = ("weight", "bias", "recurrent")


def parameters(net: Network) -> dict[str, dict[str, np.ndarray]]:
    """Writable float32 copies of W, b, V of every layer, keyed by layer name then field."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for layer in net.layers:
        d = {}
        for key in TRAINABLE:
            v = getattr(layer, key)
            if v is not None:
                d[key] = np.array(v, dtype=np.float32, copy=True)
        out[layer.name] = d
    return out


def with_parameters(net: Network, params: dict[str, dict[str, np.ndarray]]) -> Network:
    """A copy of ``net`` with the given arrays (validated by the Layer constructor)."""
    layers = tuple(layer.replace(**params[layer.name]) if layer.name in params else layer
                   for layer in net.layers)
    return net.replace(layers=layers)


class Adam:
    """Adam state over a parameter dictionary as returned by :func:`parameters`."""

    def __init__(self, params: dict[str, dict[str, np.ndarray]], lr: float = 1e-3,
                 b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> None:
        self.lr, self.b1, self.b2, self.eps = lr, b1, b2, eps
        self.t = 0
        self.m = {k: {f: np.zeros_like(a) for f, a in d.items()} for k, d in params.items()}
        self.v = {k: {f: np.zeros_like(a) for f, a in d.items()} for k, d in params.items()}

    def step(self, params: dict[str, dict[str, np.ndarray]],
             grads: dict[str, dict[str, np.ndarray]], scale: float = 1.0) -> None:
        """Update ``params`` in place with gradients ``grads`` (multiplied by ``scale``)."""
        self.t += 1
        c1 = 1.0 - self.b1 ** self.t
        c2 = 1.0 - self.b2 ** self.t
        for name, d in params.items():
            for f, p in d.items():
                g = grads[name][f].astype(np.float32, copy=False) * np.float32(scale)
                m, v = self.m[name][f], self.v[name][f]
                m *= self.b1
                m += (1.0 - self.b1) * g
                v *= self.b2
                v += (1.0 - self.b2) * (g * g)
                p -= (self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)).astype(p.dtype)
