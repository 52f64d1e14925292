"""Synthetic streams shared by the rule tests and bench/bench_lpl.py (no I/O)."""

from __future__ import annotations

import numpy as np


def latent_stream(n_steps: int, rng: np.random.Generator, n_in: int = 32, n_latent: int = 2,
                  n_noise: int = 24, tau_latent: float = 100.0, noise_std: float = 4.0):
    """x[t] = A s[t] + B n[t]: a slow latent s (unit-variance AR(1), tau_latent steps) mixed
    with fast white noise n of std noise_std living in an n_noise-dimensional subspace.

    Returns (x [T, n_in], s [T, n_latent]).
    """
    a = np.exp(-1.0 / tau_latent)
    e = rng.normal(0.0, np.sqrt(1 - a * a), (n_steps, n_latent))
    s = np.empty((n_steps, n_latent))
    s_prev = rng.normal(0.0, 1.0, n_latent)
    for t in range(n_steps):
        s_prev = a * s_prev + e[t]
        s[t] = s_prev
    A = rng.normal(0.0, 1.0, (n_in, n_latent)) / np.sqrt(n_latent)
    B = rng.normal(0.0, 1.0, (n_in, n_noise)) / np.sqrt(n_noise)
    n = rng.normal(0.0, noise_std, (n_steps, n_noise))
    x = s @ A.T + n @ B.T
    return x / 4.0, s


def linear_r2(features: np.ndarray, target: np.ndarray) -> float:
    """Mean over target columns of the R^2 of a least-squares fit (with intercept); fit on the
    first half, scored on the second half."""
    T = features.shape[0]
    h = T // 2
    X = np.hstack([features, np.ones((T, 1))])
    coef, *_ = np.linalg.lstsq(X[:h], target[:h], rcond=None)
    pred = X[h:] @ coef
    res = ((target[h:] - pred) ** 2).sum(0)
    tot = ((target[h:] - target[h:].mean(0)) ** 2).sum(0)
    return float(np.mean(1 - res / tot))
