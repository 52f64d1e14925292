"""Randman: procedural spiking random-manifold classification (Zenke & Vogels 2021).

Each class k owns a random smooth manifold of dimension D embedded in C = n_units dimensions.
Embedding coordinate j of a point u in [0, 1]^D is a product over manifold dimensions of random
smooth 1-d functions (K = f_cutoff frequency components, i = 0 .. K-1):

    f_j(u) = prod_{d=1..D} sum_i theta0[j,d,i] s_i sin(2 pi (i u_d theta1[j,d,i] + theta2[j,d,i]))
    s_i = 1 / (i^alpha + 1),      theta0, theta1, theta2 ~ U(0, 1),
    K = min(ceil(prec^(-1/alpha)), max_f_cutoff)

(larger alpha = smoother manifolds = an easier task). Samples u ~ U(0,1)^D are drawn per class;
each coordinate is min-max scaled over that class's samples to [0, 1] and becomes the TIME of one
spike of unit j (n_spikes > 1 uses independent manifolds for further spikes of each unit):

    t_j = floor(step_frac * n_steps * (f_j(u) - min_j) / (max_j - min_j)),  clipped to ceil(step_frac n_steps) - 1

so x[n, t_j, j] += 1: x is uint8 [N, n_steps, n_units] with n_spikes spikes per unit.
Everything is drawn from np.random.default_rng(seed): same seed, same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgelearn.data.dataset import Dataset
from edgelearn.errors import DataError, ParameterError


@dataclass(frozen=True)
class RandmanParams:
    """Randman parameters (see the module docstring for the equations).

    Attributes:
        n_classes: number of classes (manifolds).
        n_units: C, embedding dimension = input channels.
        n_steps: T, time bins.
        dim_manifold: D, intrinsic manifold dimension (1-2 learnable; higher is harder).
        alpha: spectral decay exponent (smoothness), > 0.
        n_spikes: spikes per unit per sample.
        step_frac: fraction of the n_steps bins that spike times span, in (0, 1].
        prec: spectral precision used to choose the number of frequency components.
        max_f_cutoff: upper bound on the number of frequency components.
    """

    n_classes: int = 10
    n_units: int = 100
    n_steps: int = 100
    dim_manifold: int = 2
    alpha: float = 2.0
    n_spikes: int = 1
    step_frac: float = 1.0
    prec: float = 1e-3
    max_f_cutoff: int = 1000

    def __post_init__(self) -> None:
        for name in ("n_classes", "n_units", "n_steps", "dim_manifold", "n_spikes",
                     "max_f_cutoff"):
            if int(getattr(self, name)) < 1:
                raise ParameterError(f"randman {name} must be >= 1, got {getattr(self, name)}")
        if self.n_spikes > 255:
            raise ParameterError(f"randman n_spikes must be <= 255, got {self.n_spikes}")
        if not self.alpha > 0:
            raise ParameterError(f"randman alpha must be > 0, got {self.alpha}")
        if not 0 < self.step_frac <= 1:
            raise ParameterError(f"randman step_frac must lie in (0, 1], got {self.step_frac}")
        if not 0 < self.prec < 1:
            raise ParameterError(f"randman prec must lie in (0, 1), got {self.prec}")

    @property
    def f_cutoff(self) -> int:
        """K, the number of frequency components."""
        return int(min(np.ceil(self.prec ** (-1.0 / self.alpha)), self.max_f_cutoff))


def _manifold_params(p: RandmanParams, rng: np.random.Generator) -> np.ndarray:
    """theta [3, n_units, D, K] ~ U(0, 1) for one manifold."""
    return rng.random((3, p.n_units, p.dim_manifold, p.f_cutoff))


def eval_manifold(theta: np.ndarray, u: np.ndarray, alpha: float) -> np.ndarray:
    """Embedding coordinates f(u) [n, n_units] of points u [n, D] (module docstring)."""
    k = theta.shape[-1]
    i = np.arange(k, dtype=np.float64)
    s = 1.0 / (i ** alpha + 1.0)
    out = np.ones((u.shape[0], theta.shape[1]))
    for d in range(theta.shape[2]):
        # [n, units, K]
        arg = 2 * np.pi * (i[None, None, :] * u[:, d, None, None] * theta[1, None, :, d, :]
                           + theta[2, None, :, d, :])
        out *= np.sum(theta[0, None, :, d, :] * s * np.sin(arg), axis=-1)
    return out


def _last_bin(p: RandmanParams) -> int:
    return min(p.n_steps, int(np.ceil(p.step_frac * p.n_steps))) - 1


def _spike_raster(p: RandmanParams, u: np.ndarray, thetas: list[np.ndarray]) -> np.ndarray:
    n = u.shape[0]
    x = np.zeros((n, p.n_steps, p.n_units), dtype=np.uint8)
    rows = np.arange(n)[:, None]
    cols = np.arange(p.n_units)[None, :]
    for theta in thetas:
        f = eval_manifold(theta, u, p.alpha)
        lo, hi = f.min(axis=0), f.max(axis=0)
        scaled = (f - lo) / np.where(hi > lo, hi - lo, 1.0)
        t = np.floor(scaled * p.step_frac * p.n_steps).astype(np.int64)
        t = np.clip(t, 0, _last_bin(p))
        np.add.at(x, (np.broadcast_to(rows, t.shape), t, np.broadcast_to(cols, t.shape)), 1)
    return x


def make_randman(n_classes: int = 10, n_units: int = 100, n_steps: int = 100,
                 dim_manifold: int = 2, alpha: float = 2.0, samples_per_class: int = 1000,
                 seed: int = 0, n_spikes: int = 1, step_frac: float = 1.0, prec: float = 1e-3,
                 max_f_cutoff: int = 1000, shuffle: bool = True) -> Dataset:
    """A spiking Randman data set: x uint8 [n_classes * samples_per_class, n_steps, n_units].

    ``meta["u"]`` holds each sample's manifold coordinates [N, dim_manifold] (float64).
    """
    p = RandmanParams(n_classes, n_units, n_steps, dim_manifold, alpha, n_spikes, step_frac,
                      prec, max_f_cutoff)
    if int(samples_per_class) < 1:
        raise DataError(f"randman samples_per_class must be >= 1, got {samples_per_class}")
    rng = np.random.default_rng(seed)
    xs, ys, us = [], [], []
    for k in range(p.n_classes):
        thetas = [_manifold_params(p, rng) for _ in range(p.n_spikes)]
        u = rng.random((int(samples_per_class), p.dim_manifold))
        xs.append(_spike_raster(p, u, thetas))
        ys.append(np.full(int(samples_per_class), k, dtype=np.int64))
        us.append(u)
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    u = np.concatenate(us)
    if shuffle:
        order = rng.permutation(x.shape[0])
        x, y, u = x[order], y[order], u[order]
    meta = {"generator": "randman", "seed": int(seed), **p.__dict__,
            "f_cutoff": p.f_cutoff, "samples_per_class": int(samples_per_class), "u": u}
    return Dataset(x, y, p.n_classes, f"randman/c{p.n_classes}-u{p.n_units}-d{p.dim_manifold}",
                   meta)


def randman_splits(test_fraction: float = 0.2, **kwargs) -> tuple[Dataset, Dataset]:
    """(train, test) from one :func:`make_randman` draw (same manifolds, disjoint samples).

    Keyword arguments go to make_randman; each class is split so both halves stay balanced.
    """
    if not 0 < test_fraction < 1:
        raise DataError(f"randman test_fraction must lie in (0, 1), got {test_fraction}")
    ds = make_randman(**kwargs)
    test_mask = np.zeros(len(ds), dtype=bool)
    for k in range(ds.n_classes):
        idx = np.flatnonzero(ds.y == k)
        n_test = int(round(test_fraction * idx.size))
        if n_test < 1 or n_test >= idx.size:
            raise DataError(f"randman: class {k} has {idx.size} samples, too few to split with "
                            f"test_fraction={test_fraction}")
        test_mask[idx[:n_test]] = True
    base = ds.name
    return ds.subset(~test_mask, f"{base}/train"), ds.subset(test_mask, f"{base}/test")
