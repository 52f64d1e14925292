"""Trainer: forward agrees with the reference simulator, measured traces, training, errors."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from edgelearn.errors import DataError, InputError, ParameterError
from edgelearn.runtime.reference import run
from edgelearn.train import (Trace, TrainConfig, backward, evaluate, forward, init_network,
                             predict, train)


def _synthetic(rng, n_per_class=40, n_classes=4, T=30, C=16):
    """Each class a fixed random rate per channel; samples are Bernoulli draws [T, C]."""
    templates = np.repeat(rng.random((n_classes, 1, C)) * 0.4, T, axis=1)
    y = np.repeat(np.arange(n_classes), n_per_class)
    x = (rng.random((y.size, T, C)) < templates[y]).astype(np.uint8)
    return SimpleNamespace(x=x, y=y.astype(np.int64), n_classes=n_classes)


@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_forward_matches_reference_simulator(recurrent, reset):
    rng = np.random.default_rng(0)
    net = init_network(16, [24, 12], 5, rng, recurrent=recurrent, reset=reset, bias=True)
    x = (rng.random((40, 6, 16)) < 0.2).astype(np.float32)
    tr = forward(net, x)
    rec = run(net, x, record=("spikes", "membrane", "current"))
    for layer, lt in zip(net.layers, tr.layers):
        if layer.spiking:
            assert np.array_equal(lt.spikes, rec.spikes[layer.name])
            assert 0 < lt.spikes.sum()
        np.testing.assert_allclose(lt.membrane, rec.membrane[layer.name], atol=1e-5)
    np.testing.assert_allclose(tr.output, rec.output, atol=1e-5)


def test_measured_trace_gives_same_gradients_and_accepts_noise():
    rng = np.random.default_rng(1)
    net = init_network(8, [10], 3, rng, recurrent=True)
    x = (rng.random((25, 4, 8)) < 0.3).astype(np.float32)
    y = np.array([0, 1, 2, 1])
    cfg = TrainConfig(w_upper=1.0, w_lower=1.0)
    g_sim = backward(net, forward(net, x), y, cfg)
    rec = run(net, x, record=("spikes", "membrane"))
    g_meas = backward(net, Trace.from_recording(net, x, rec), y, cfg)
    for name, d in g_sim.layers.items():
        for key, g in d.items():
            np.testing.assert_allclose(g_meas.layers[name][key], g, rtol=1e-4,
                                       atol=1e-5 * np.abs(g).max())
    # a noisy device: membranes off by noise, spikes as measured; the backward pass uses them
    noisy = {k: v + rng.normal(0, 0.05, v.shape) for k, v in rec.membrane.items()}
    g_noisy = backward(net, Trace.from_measurements(net, x, noisy, rec.spikes), y, cfg)
    w, w0 = g_noisy.layers["hidden0"]["weight"], g_sim.layers["hidden0"]["weight"]
    assert np.all(np.isfinite(w)) and not np.allclose(w, w0)
    with pytest.raises(InputError, match="lacks membrane of layer 'readout'"):
        Trace.from_measurements(net, x, {"hidden0": noisy["hidden0"]}, rec.spikes)
    with pytest.raises(InputError, match="expected"):
        Trace.from_measurements(net, x, {k: v[:5] for k, v in noisy.items()}, rec.spikes)


def test_backward_with_output_gradient_equals_label_path():
    rng = np.random.default_rng(2)
    net = init_network(8, [10], 3, rng)
    x = (rng.random((20, 5, 8)) < 0.3).astype(np.float32)
    y = rng.integers(0, 3, 5)
    cfg = TrainConfig(readout="mean")
    tr = forward(net, x)
    g = backward(net, tr, y, cfg)
    z = tr.output.mean(0)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(5), y] -= 1
    g_out = np.broadcast_to(p / 5 / 20, tr.output.shape).astype(np.float32)
    g2 = backward(net, tr, g_out, cfg)
    np.testing.assert_allclose(g2.layers["hidden0"]["weight"], g.layers["hidden0"]["weight"],
                               rtol=1e-4, atol=1e-7)
    with pytest.raises(InputError, match="labels must lie in"):
        backward(net, tr, np.array([0, 1, 2, 3, 0]), cfg)


def test_training_learns_is_deterministic_and_stores_readout():
    rng = np.random.default_rng(3)
    ds = _synthetic(rng)
    cfg = TrainConfig(epochs=6, batch_size=16, lr=5e-3, w_upper=1.0, w_lower=1.0, seed=7,
                      readout="mean")
    nets = []
    for _ in range(2):
        net0 = init_network(16, [32], 4, np.random.default_rng(11), recurrent=True)
        net, hist = train(net0, ds, cfg, val_ds=ds, progress=False)
        nets.append(net)
    assert len(hist) == 6 and hist[-1]["loss"] < hist[0]["loss"]
    assert hist[-1]["train_acc"] > 0.9 and hist[-1]["val_acc"] > 0.9
    assert set(hist[-1]["rates"]) == {"hidden0"}
    assert nets[0].meta["readout"] == "mean"
    for a, b in zip(nets[0].layers, nets[1].layers):
        assert np.array_equal(a.weight, b.weight)
    acc = evaluate(nets[0], ds)
    assert acc == pytest.approx(hist[-1]["val_acc"])
    # predict agrees with the reference simulator's readout
    rec = run(nets[0], np.transpose(ds.x[:20], (1, 0, 2)))
    assert np.array_equal(rec.output.mean(0).argmax(1), predict(nets[0], ds.x[:20]).argmax(1))


def test_bad_data_and_parameters_raise_clear_errors():
    rng = np.random.default_rng(4)
    net = init_network(16, [8], 4, rng)
    good = _synthetic(rng, n_per_class=2)
    cfg = TrainConfig(epochs=1)
    bad_label = SimpleNamespace(x=good.x, y=good.y + 1, n_classes=5)
    with pytest.raises(DataError, match=r"labels must lie in \[0, 3\], got range \[1, 4\]"):
        train(net, bad_label, cfg, progress=False)
    with pytest.raises(DataError, match="is empty"):
        train(net, SimpleNamespace(x=good.x[:0], y=good.y[:0], n_classes=4), cfg, progress=False)
    with pytest.raises(DataError, match="has 15 channels"):
        evaluate(net, SimpleNamespace(x=good.x[:, :, :15], y=good.y, n_classes=4))
    with pytest.raises(ParameterError, match="readout"):
        TrainConfig(readout="last")
    with pytest.raises(ParameterError, match="batch_size"):
        TrainConfig(batch_size=0)
