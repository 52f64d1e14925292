"""Gradient checks of the surrogate-gradient trainer (edgelearn.train.backward).

What is compared, precisely:
1. Readout-only, true spiking network (Heaviside spikes): the loss is an exactly differentiable
   function of the readout weights/bias (hidden spikes do not depend on them), so backward's
   readout gradients must equal central finite differences of loss_value (float64, rel. err < 1e-6).
2. All parameters, pseudo-network: forward(pseudo_scale=k) replaces H by phi(v) = 1/k + v/(1+k|v|),
   whose derivative is exactly the surrogate 1/(1+k|v|)^2, so backward (with detach_reset=False)
   is the exact gradient of that smooth network's loss, rate penalties included; compared with
   central finite differences of loss_value(pseudo_scale=k) (float64, step 2^-16, rel. err < 1e-6; the
   error shrinks as step^2, e.g. 1e-5 at 2^-12, 4e-8 at 2^-16).
3. All parameters, true spiking network, against torch autograd of the same forward with the same
   surrogate (custom autograd Function) and the same loss, detached or attached reset
   (float64, rel. err < 1e-9). Optional: skipped (and says so) when torch is absent.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgelearn.model import Layer, Network
from edgelearn.train import TrainConfig, backward, forward, loss_value


def _tiny(rng, reset="subtract", recurrent=True, bias=True, n_in=3, n_h=4, n_out=3):
    h = Layer("h", rng.normal(0.6, 0.5, (n_h, n_in)), alpha=0.6, beta=0.8, threshold=1.0,
              reset=reset, bias=rng.normal(0, 0.1, n_h) if bias else None,
              recurrent=rng.normal(0, 0.3, (n_h, n_h)) if recurrent else None)
    o = Layer("o", rng.normal(0, 0.5, (n_out, n_h)), alpha=0.5, beta=0.9, spiking=False,
              bias=rng.normal(0, 0.1, n_out) if bias else None)
    return Network((h, o))


def _data(rng, T=12, B=3, n_in=3, n_out=3):
    x = (rng.random((T, B, n_in)) < 0.5).astype(np.float64)
    return x, rng.integers(0, n_out, B)


def _fd(net, x, y, cfg, layer, key, pseudo, eps=2.0 ** -16):
    """Central differences; the IR stores float32, so divide by the float32 step actually taken."""
    base = getattr(net.layer(layer), key)
    out = np.zeros(base.shape)
    for i in np.ndindex(base.shape):
        vals, ps = [], []
        for s in (1, -1):
            p = base.copy()
            p[i] = np.float32(p[i] + s * eps)
            ps.append(float(p[i]))
            vals.append(loss_value(net.replace_layer(layer, **{key: p}), x, y, cfg, pseudo))
        out[i] = (vals[0] - vals[1]) / (ps[0] - ps[1])
    return out


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))


@pytest.mark.parametrize("readout", ["max", "mean"])
def test_readout_gradient_matches_fd_of_true_loss(readout):
    rng = np.random.default_rng(3)
    net = _tiny(rng)
    x, y = _data(rng)
    cfg = TrainConfig(readout=readout, dtype="float64")
    tr = forward(net, x, np.float64)
    assert 0 < tr.layers[0].spikes.sum() < tr.layers[0].spikes.size
    g = backward(net, tr, y, cfg)
    for key in ("weight", "bias"):
        fd = _fd(net, x, y, cfg, "o", key, None)
        assert _rel(g.layers["o"][key], fd) < 1e-6, key
    assert g.loss == pytest.approx(loss_value(net, x, y, cfg), rel=1e-12)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("readout", ["max", "mean"])
def test_full_gradient_matches_fd_of_pseudo_network(reset, readout):
    rng = np.random.default_rng(4)
    net = _tiny(rng, reset=reset)
    x, y = _data(rng)
    k = 2.0
    cfg = TrainConfig(readout=readout, dtype="float64", surrogate_scale=k, detach_reset=False,
                      w_upper=3.0, rate_upper=0.2, w_lower=3.0, rate_lower=0.9)
    tr = forward(net, x, np.float64, pseudo_scale=k)
    g = backward(net, tr, y, cfg)
    assert g.parts["upper"] > 0 and g.parts["lower"] > 0
    worst = 0.0
    for layer in ("h", "o"):
        for key in g.layers[layer]:
            fd = _fd(net, x, y, cfg, layer, key, k)
            err = _rel(g.layers[layer][key], fd)
            worst = max(worst, err)
            assert err < 1e-6, (layer, key, err)
    print(f"pseudo-network FD check ({reset}, {readout}): max rel. error {worst:.2e}")


def _torch_grads(torch, net, x, y, cfg):
    """Same forward/loss as edgelearn.train in torch, surrogate via a custom autograd Function."""
    k = cfg.surrogate_scale

    class Spike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, v):
            ctx.save_for_backward(v)
            return (v > 0).to(v.dtype)

        @staticmethod
        def backward(ctx, g):
            (v,) = ctx.saved_tensors
            return g / (1 + k * v.abs()) ** 2

    t = lambda a: torch.tensor(np.asarray(a, dtype=np.float64))  # noqa: E731
    params = {la.name: {f: t(getattr(la, f)).requires_grad_() for f in
                        ("weight", "bias", "recurrent") if getattr(la, f) is not None}
              for la in net.layers}
    h = t(x)
    T, B, _ = h.shape
    loss = 0
    for la in net.layers:
        p = params[la.name]
        alpha, beta, theta = t(la.alpha), t(la.beta), t(la.threshold)
        cur = torch.zeros(B, la.n_out, dtype=torch.float64)
        mem = torch.zeros_like(cur)
        r = torch.zeros_like(cur)
        outs = []
        for n in range(T):
            cur = alpha * cur + h[n] @ p["weight"].T
            if "bias" in p:
                cur = cur + p["bias"]
            if not la.spiking:
                mem = beta * mem + cur
                outs.append(mem)
                continue
            if "recurrent" in p:
                cur = cur + r @ p["recurrent"].T
            rd = r.detach() if cfg.detach_reset else r
            if la.reset == "subtract":
                mem = beta * mem + cur - theta * rd
            else:
                mem = (beta * mem + cur) * (1 - rd)
            r = Spike.apply(mem - theta)
            outs.append(r)
        h = torch.stack(outs)
        if la.spiking:
            rate = h.mean(0)
            loss = loss + cfg.w_upper * (torch.relu(rate - cfg.rate_upper) ** 2).mean()
            loss = loss + cfg.w_lower * (torch.relu(cfg.rate_lower - rate.mean(0)) ** 2).mean()
    logits = h.max(0).values if cfg.readout == "max" else h.mean(0)
    loss = loss + torch.nn.functional.cross_entropy(logits, torch.tensor(y))
    loss.backward()
    return float(loss.detach()), {n: {f: v.grad.numpy() for f, v in d.items()} for n, d in params.items()}


@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("readout", ["max", "mean"])
def test_full_gradient_matches_torch_autograd(detach, reset, readout):
    torch = pytest.importorskip("torch", reason="optional: torch not installed, "
                                "autograd comparison skipped (FD checks still run)")
    rng = np.random.default_rng(5)
    net = _tiny(rng, reset=reset)
    # a second hidden layer so gradients pass through spikes of a layer below
    h2 = Layer("h2", rng.normal(0.5, 0.6, (4, 4)), alpha=0.3, beta=0.7, reset=reset,
               recurrent=rng.normal(0, 0.3, (4, 4)))
    net = Network((net.layers[0], h2, net.layers[1]))
    x, y = _data(rng, T=20, B=4)
    cfg = TrainConfig(readout=readout, dtype="float64", surrogate_scale=3.0, detach_reset=detach,
                      w_upper=2.0, rate_upper=0.1, w_lower=2.0, rate_lower=0.5)
    tr = forward(net, x, np.float64)
    assert 0 < tr.layers[1].spikes.sum() < tr.layers[1].spikes.size
    g = backward(net, tr, y, cfg)
    t_loss, t_grads = _torch_grads(torch, net, x, y, cfg)
    assert g.loss == pytest.approx(t_loss, rel=1e-12)
    for name, d in t_grads.items():
        for key, want in d.items():
            assert np.max(np.abs(want)) > 0, (name, key)
            assert _rel(g.layers[name][key], want) < 1e-9, (name, key)
