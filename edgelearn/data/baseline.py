"""A numpy logistic-regression baseline: how linearly separable is a spiking data set?

Features: spike counts summed over ``time_pools`` equal time windows per channel
(x [N, T, C] -> [N, time_pools * C]), log1p-compressed and standardised with the TRAIN mean and
std. Model: softmax regression p = softmax(W f + b), trained by full-batch gradient descent
with Adam on the mean cross-entropy + (l2 / 2) |W|^2. Deterministic (zero init, no sampling).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgelearn.data.dataset import Dataset
from edgelearn.errors import DataError


def pooled_features(x: np.ndarray, time_pools: int) -> np.ndarray:
    """Spike counts summed in ``time_pools`` windows: [N, T, C] -> [N, time_pools * C]."""
    t = x.shape[1]
    edges = np.linspace(0, t, time_pools + 1).round().astype(int)
    xs = x.astype(np.float64)
    feats = [xs[:, a:b].sum(axis=1) for a, b in zip(edges[:-1], edges[1:])]
    return np.log1p(np.concatenate(feats, axis=1))


@dataclass
class LogisticBaseline:
    """Fitted softmax regression; use :meth:`accuracy` on any Dataset with the same shape."""

    weight: np.ndarray
    bias: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    time_pools: int

    def _features(self, ds: Dataset) -> np.ndarray:
        return (pooled_features(ds.x, self.time_pools) - self.mean) / self.std

    def predict(self, ds: Dataset) -> np.ndarray:
        """Predicted labels [N]."""
        return np.argmax(self._features(ds) @ self.weight.T + self.bias, axis=1)

    def accuracy(self, ds: Dataset) -> float:
        """Fraction of correctly classified samples."""
        return float(np.mean(self.predict(ds) == ds.y))


def fit_logistic(train: Dataset, time_pools: int = 10, l2: float = 1e-3, steps: int = 300,
                 lr: float = 0.05) -> LogisticBaseline:
    """Fit the baseline on ``train`` (see the module docstring)."""
    if time_pools < 1 or time_pools > train.n_steps:
        raise DataError(f"time_pools must lie in [1, {train.n_steps}], got {time_pools}")
    f = pooled_features(train.x, time_pools)
    mean, std = f.mean(axis=0), f.std(axis=0) + 1e-6
    f = (f - mean) / std
    n, d = f.shape
    k = train.n_classes
    onehot = np.eye(k)[train.y]
    w = np.zeros((k, d))
    b = np.zeros(k)
    mw, vw, mb, vb = (np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b))
    for step in range(1, steps + 1):
        z = f @ w.T + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) / n
        gw = g.T @ f + l2 * w
        gb = g.sum(axis=0)
        for param, grad, m, v in ((w, gw, mw, vw), (b, gb, mb, vb)):
            m *= 0.9
            m += 0.1 * grad
            v *= 0.999
            v += 0.001 * grad ** 2
            param -= lr * (m / (1 - 0.9 ** step)) / (np.sqrt(v / (1 - 0.999 ** step)) + 1e-8)
    return LogisticBaseline(w, b, mean, std, time_pools)
