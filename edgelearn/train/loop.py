"""Minibatch training loop, evaluation and prediction (L2, numpy only).

A data set is any object with ``x`` [N, T, C] (spike counts, any numeric dtype), ``y`` [N]
integer labels and ``n_classes`` (as :class:`edgelearn.data.Dataset`). Sequences are fed
time-major, [T, B, C] float32, so that the network sees x[n] at step n.
"""

from __future__ import annotations

import time

import numpy as np

from edgelearn.errors import DataError, InputError
from edgelearn.model import Network
from edgelearn.progress import Progress
from edgelearn.train.bptt import backward, forward, reduce_time
from edgelearn.train.config import READOUTS, TrainConfig
from edgelearn.train.optim import Adam, parameters, with_parameters


def check_dataset(ds, net: Network, what: str = "data set") -> tuple[np.ndarray, np.ndarray]:
    """Validate ``ds`` against ``net``; returns (x [N, T, C], y int64 [N])."""
    x = getattr(ds, "x", None)
    y = getattr(ds, "y", None)
    if x is None or y is None:
        raise DataError(f"{what} must have arrays x and y, got {type(ds).__name__}")
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 3:
        raise DataError(f"{what}: x must be [N, T, C], got shape {x.shape}")
    if x.dtype.kind not in "biuf":
        raise DataError(f"{what}: x must be numeric, got dtype {x.dtype}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(f"{what} is empty (x shape {x.shape})")
    if y.shape != (x.shape[0],):
        raise DataError(f"{what}: y must have shape ({x.shape[0]},), got {y.shape}")
    if y.dtype.kind not in "iu":
        raise DataError(f"{what}: labels must be integers, got dtype {y.dtype}")
    if x.shape[2] != net.n_in:
        raise DataError(f"{what} has {x.shape[2]} channels, network '{net.name}' expects "
                        f"{net.n_in}")
    if y.min() < 0 or y.max() >= net.n_out:
        raise DataError(f"{what}: labels must lie in [0, {net.n_out - 1}], got range "
                        f"[{y.min()}, {y.max()}]")
    return x, y.astype(np.int64)


def _batch(x: np.ndarray, idx: np.ndarray, dtype=np.float32) -> np.ndarray:
    return np.ascontiguousarray(x[idx].transpose(1, 0, 2), dtype=dtype)


def net_readout(net: Network, readout: str | None = None) -> str:
    """The readout mode: the argument, else net.meta['readout'], else 'max'."""
    mode = readout or net.meta.get("readout", "max")
    if mode not in READOUTS:
        raise InputError(f"readout must be one of {READOUTS}, got {mode!r}")
    return mode


def predict(net: Network, x: np.ndarray, readout: str | None = None,
            batch_size: int = 256) -> np.ndarray:
    """Logits [N, n_out] of sequences x [N, T, C] (max or mean over time of the readout)."""
    mode = net_readout(net, readout)
    x = np.asarray(x)
    if x.ndim != 3:
        raise InputError(f"x must be [N, T, C], got shape {x.shape}")
    out = np.empty((x.shape[0], net.n_out), dtype=np.float32)
    for start in range(0, x.shape[0], batch_size):
        idx = np.arange(start, min(start + batch_size, x.shape[0]))
        tr = forward(net, _batch(x, idx))
        out[idx] = reduce_time(tr.output, mode)
    return out


def evaluate(net: Network, ds, readout: str | None = None, batch_size: int = 256) -> float:
    """Classification accuracy in [0, 1] of ``net`` on ``ds`` (argmax of :func:`predict`)."""
    x, y = check_dataset(ds, net)
    return float(np.mean(predict(net, x, readout, batch_size).argmax(axis=1) == y))


def train(net: Network, train_ds, cfg: TrainConfig, val_ds=None, progress: bool = True,
          callback=None) -> tuple[Network, list[dict]]:
    """Train W, b, V of every layer with surrogate-gradient BPTT and Adam.

    Returns the trained network (meta['readout'] set to cfg.readout) and a history, one dict per
    epoch: epoch, loss, ce, upper, lower, lpl, drift (epoch means over minibatches), train_acc
    (accuracy of the minibatches before each update), val_acc (None without val_ds), rates
    (mean spikes per step per spiking layer), lr, seconds. Deterministic for a given cfg.seed
    and input. ``callback(epoch_dict, net)`` is called after each epoch.
    """
    x, y = check_dataset(train_ds, net, "training set")
    net = net.replace(meta={**net.meta, "readout": cfg.readout})  # callbacks classify like this
    if val_ds is not None:
        check_dataset(val_ds, net, "validation set")
    rng = np.random.default_rng(cfg.seed)
    params = parameters(net)
    opt = Adam(params, cfg.lr, cfg.adam_b1, cfg.adam_b2, cfg.adam_eps)
    n = x.shape[0]
    n_batches = (n + cfg.batch_size - 1) // cfg.batch_size
    history: list[dict] = []
    bar = Progress(cfg.epochs * n_batches, "train", unit="batch", enabled=progress)
    current = with_parameters(net, params)
    for epoch in range(cfg.epochs):
        t0 = time.monotonic()
        perm = rng.permutation(n)
        sums = {"loss": 0.0, "ce": 0.0, "upper": 0.0, "lower": 0.0, "lpl": 0.0, "drift": 0.0}
        rate_sum: dict[str, float] = {}
        correct = 0
        for k in range(n_batches):
            idx = perm[k * cfg.batch_size:(k + 1) * cfg.batch_size]
            tr = forward(current, _batch(x, idx, cfg.np_dtype), cfg.np_dtype)
            g = backward(current, tr, y[idx], cfg)
            if not np.isfinite(g.loss):
                raise InputError(f"training diverged in epoch {epoch + 1}, batch {k + 1}: "
                                 f"loss {g.loss}; lower lr ({cfg.lr})")
            scale = 1.0
            if cfg.grad_clip > 0:
                norm = g.global_norm()
                if norm > cfg.grad_clip:
                    scale = cfg.grad_clip / norm
            opt.step(params, g.layers, scale)
            current = with_parameters(net, params)
            w = len(idx) / n
            sums["loss"] += g.loss * w
            for key in ("ce", "upper", "lower", "lpl", "drift"):
                sums[key] += g.parts.get(key, 0.0) * w
            for name, r in g.rates.items():
                rate_sum[name] = rate_sum.get(name, 0.0) + r * w
            correct += int(np.sum(g.logits.argmax(axis=1) == y[idx]))
            bar.update(1, f"epoch {epoch + 1} loss {g.loss:.3f}")
        rec = {"epoch": epoch + 1, **{k: round(v, 6) for k, v in sums.items()},
               "train_acc": round(correct / n, 6),
               "val_acc": None if val_ds is None else round(
                   evaluate(current, val_ds, cfg.readout), 6),
               "rates": {k: round(v, 6) for k, v in rate_sum.items()},
               "lr": opt.lr, "seconds": round(time.monotonic() - t0, 3)}
        history.append(rec)
        if callback is not None:
            callback(rec, current)
        opt.lr *= cfg.lr_decay
    bar.close()
    return current, history
