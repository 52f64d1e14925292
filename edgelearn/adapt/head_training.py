"""Offline training of the energy-based head with exact gradients (Adam, minibatches).

Used to make the head a model ships with (tools/train_head.py) and to fine-tune the offline
oracle of the adaptation benchmark. The gradient is the exact one of the head's equilibrium
loss (implicit differentiation, ``EnergyHead.exact_gradient``); the on-device learner
replaces it by the real-valued hEP estimate.
"""

from __future__ import annotations

import numpy as np

from edgelearn.errors import ParameterError
from edgelearn.progress import Progress
from edgelearn.rules.hep import EnergyHead


def train_head(head: EnergyHead, x: np.ndarray, y: np.ndarray, epochs: int = 20,
               lr: float = 1e-2, batch: int = 64, seed: int = 0, progress: bool = True,
               label: str = "head") -> list[dict]:
    """Train ``head`` in place on features ``x`` [N, n_in] and labels ``y`` [N]; returns the
    per-epoch history (loss and accuracy on the training features)."""
    if epochs < 1 or batch < 1 or not lr > 0:
        raise ParameterError(f"train_head needs epochs >= 1, batch >= 1, lr > 0; got {epochs}, "
                             f"{batch}, {lr}")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    rng = np.random.default_rng(seed)
    params = list(head.weights) + list(head.biases)
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    b1, b2, eps = 0.9, 0.999, 1e-8
    t = 0
    history = []
    n_batches = (len(x) + batch - 1) // batch
    bar = Progress(epochs * n_batches, label, unit="batches", enabled=progress)
    for ep in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            g = head.exact_gradient(x[idx], y[idx], strict=False)
            grads = list(g) + list(g.biases)
            t += 1
            for p, gi, mi, vi in zip(params, grads, m, v):
                mi *= b1
                mi += (1 - b1) * gi
                vi *= b2
                vi += (1 - b2) * gi * gi
                p -= lr * (mi / (1 - b1 ** t)) / (np.sqrt(vi / (1 - b2 ** t)) + eps)
            head.project()      # keep the coupling contractive: one stable equilibrium
            bar.update(1)
        acc = head.accuracy(x, y)
        history.append({"epoch": ep + 1, "train_accuracy": acc})
        bar.postfix = f"epoch {ep + 1} acc {100 * acc:.1f} %"
    bar.close()
    return history
