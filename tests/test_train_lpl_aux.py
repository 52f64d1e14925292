"""The LPL auxiliary losses of the trainer (edgelearn.train.lpl_aux) and their gradients.

1. L_lpl and L_drift as functions of the spikes (and input) arrays: the analytic gradients equal
   central finite differences (float64, rel. err < 1e-6).
2. Through the whole network: backward with w_lpl and w_drift on, on the smooth pseudo-network
   (forward(pseudo_scale=k), whose exact derivative is the surrogate), equals central finite
   differences of loss_value for every parameter of a two-hidden-layer network (so the drift
   term's input gradient reaches the layer below); rel. err < 1e-6.
3. L_drift's G is the float device rule's summed update: lpl_rate.step (filters of the same
   tau, statistics frozen at the batch's mean and variance, no warm-up) over one sequence gives
   sum_t dW = eta T G (rel. err < 1e-5: the rule's state is float32).
"""

from __future__ import annotations

import numpy as np
import pytest

from edgelearn.errors import ParameterError
from edgelearn.model import Layer, Network
from edgelearn.rules import lpl_rate
from edgelearn.train import TrainConfig, backward, forward, loss_value
from edgelearn.train.lpl_aux import (device_drift, device_drift_loss, filter_rate, low_pass,
                                     lpl_aux_loss)
from tests.test_train_grad import _fd


def _fd_array(f, a, eps=1e-6):
    out = np.zeros(a.shape)
    for i in np.ndindex(a.shape):
        p, m = a.copy(), a.copy()
        p[i] += eps
        m[i] -= eps
        out[i] = (f(p) - f(m)) / (2 * eps)
    return out


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))


def _spikes(rng, T=9, B=3, n=4, p=0.4):
    return (rng.random((T, B, n)) < p).astype(np.float64) + rng.normal(0, 0.05, (T, B, n))


def test_lpl_objective_gradient_matches_fd():
    rng = np.random.default_rng(0)
    s = _spikes(rng)
    r, lam, xi = filter_rate(3.0), 0.3, 1e-3
    loss, g = lpl_aux_loss(s, r, lam, xi)
    fd = _fd_array(lambda a: lpl_aux_loss(a, r, lam, xi)[0], s)
    assert np.isfinite(loss) and np.abs(g).max() > 0
    assert _rel(g, fd) < 1e-6


def test_drift_gradients_match_fd():
    rng = np.random.default_rng(1)
    s, x = _spikes(rng), _spikes(rng, n=3, p=0.5)
    r, lam, xi = filter_rate(4.0), 0.5, 1e-3
    loss, g_s, g_x = device_drift_loss(s, x, r, lam, xi)
    assert loss > 0
    assert _rel(g_s, _fd_array(lambda a: device_drift_loss(a, x, r, lam, xi)[0], s)) < 1e-6
    assert _rel(g_x, _fd_array(lambda a: device_drift_loss(s, a, r, lam, xi)[0], x)) < 1e-6


def test_network_gradient_with_aux_terms_matches_fd_of_pseudo_network():
    rng = np.random.default_rng(5)
    h0 = Layer("h0", rng.normal(0.5, 0.5, (4, 3)), alpha=0.6, beta=0.8, threshold=1.0,
               recurrent=rng.normal(0, 0.3, (4, 4)))
    h1 = Layer("h1", rng.normal(0.4, 0.5, (3, 4)), alpha=0.5, beta=0.7, threshold=1.0)
    o = Layer("o", rng.normal(0, 0.5, (2, 3)), alpha=0.5, beta=0.9, spiking=False)
    net = Network((h0, h1, o))
    x = (rng.random((10, 3, 3)) < 0.5).astype(np.float64)
    y = rng.integers(0, 2, 3)
    k = 2.0
    cfg = TrainConfig(readout="mean", dtype="float64", surrogate_scale=k, detach_reset=False,
                      w_lpl=2.0, w_drift=5.0, lpl_lam=0.4, lpl_tau=3.0, lpl_xi=1e-3)
    g = backward(net, forward(net, x, np.float64, pseudo_scale=k), y, cfg)
    assert g.parts["lpl"] != 0 and g.parts["drift"] > 0
    assert g.loss == pytest.approx(loss_value(net, x, y, cfg, k), rel=1e-12)
    for la in net.layers:
        for key, ga in g.layers[la.name].items():
            fd = _fd(net, x, y, cfg, la.name, key, k)
            assert _rel(ga, fd) < 1e-6, (la.name, key)


def test_drift_is_the_float_rules_summed_update():
    rng = np.random.default_rng(2)
    T, n_in, n = 30, 5, 4
    s = (rng.random((T, 1, n)) < 0.3).astype(np.float64)
    x = rng.integers(0, 3, (T, 1, n_in)).astype(np.float64)
    tau, lam, xi, eta = 5.0, 0.2, 1e-4, 1e-3
    G = device_drift(s, x, filter_rate(tau), lam, xi)
    z = low_pass(s, filter_rate(tau))
    m, v = z.mean(axis=(0, 1)), z.var(axis=(0, 1))
    # statistics frozen at the batch's (tau_mean, tau_var huge), filters and z_prev start at 0
    p = lpl_rate.Params(eta=eta, lam=lam, xi=xi, tau_pre=tau, tau_post=tau, tau_mean=1e12,
                        tau_var=1e12, warmup=0, var_init=0.01)
    st = lpl_rate.init(p, n_in, n)
    st = st._replace(mean=m.astype(np.float32), var=v.astype(np.float32))
    total = np.zeros((n, n_in))
    for t in range(T):
        dw, st = lpl_rate.step(x[t, 0], s[t, 0], st, p)
        total += dw
    assert _rel(total, eta * T * G) < 1e-5


@pytest.mark.parametrize("field,value", [("w_lpl", -1.0), ("w_drift", float("nan")),
                                         ("lpl_tau", 0.0), ("lpl_xi", -1e-4),
                                         ("lpl_lam", -0.1)])
def test_bad_aux_parameters_are_refused(field, value):
    with pytest.raises(ParameterError, match=field):
        TrainConfig(**{field: value})


def _train_tool():
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location(
        "train_tool", Path(__file__).resolve().parent.parent / "tools" / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_train_tool_options_reach_the_loss(tmp_path, capsys):
    import json
    rng = np.random.default_rng(0)
    x = (rng.random((24, 12, 4)) < 0.3).astype(np.uint8)
    data = tmp_path / "d.npz"
    with open(data, "wb") as fh:
        np.savez(fh, x=x, y=np.arange(24) % 3, n_classes=np.int64(3))
    base = ["--data", "npz", "--train-file", str(data), "--epochs", "1", "--hidden", "6",
            "--batch", "8", "--no-progress"]
    tool = _train_tool()
    out = tmp_path / "aux.onnx"
    assert tool.main(base + ["--lpl-aux", "2", "--lpl-drift", "50", "--lpl-lam", "0.1",
                             "--lpl-tau", "4", "--out", str(out)]) == 0
    hist = json.loads(out.with_suffix(".history.json").read_text())
    cfg = hist["config"]
    assert (cfg["w_lpl"], cfg["w_drift"], cfg["lpl_lam"], cfg["lpl_tau"]) == (2, 50, 0.1, 4)
    assert hist["epochs"][0]["lpl"] != 0 and hist["epochs"][0]["drift"] > 0
    capsys.readouterr()
    assert tool.main(base + ["--lpl-tau", "0", "--out", str(tmp_path / "bad.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("train: error:") and "--lpl-tau must be finite and > 0" in err[-1]
    assert not (tmp_path / "bad.onnx").exists()
