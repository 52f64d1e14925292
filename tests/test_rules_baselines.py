"""Baseline rules: hand-computed spike-pair / triplet cases and float-vs-fixed bounds."""

import math

import numpy as np

from edgelearn.fixed import rng_init
from edgelearn.rules import istdp, oja, triplet_stdp

K = 4000   # identical synapses run in parallel to average stochastic rounding


def _run(mod, p, pre_times, post_times, n_steps, n_out=1, fixed=False, w_shift=7, w0=0):
    """Drive one pre neuron and n_out identical post neurons; return total dW per synapse."""
    st = (mod.init_fixed if fixed else mod.init)(p, 1, n_out)
    w = np.full((n_out, 1), w0, np.int8)
    rng = rng_init(11)
    total = np.zeros((n_out, 1))
    for t in range(n_steps):
        pre = np.array([int(t in pre_times)])
        post = np.full(n_out, int(t in post_times))
        if fixed:
            w, st, rng, _ = mod.step_fixed(w, pre, post, st, p, rng, w_shift)
        else:
            dw, st = mod.step(pre, post, st, p)
            total += dw
    return (w.astype(np.int64) - w0) / 2.0 ** w_shift if fixed else total


def test_triplet_post_pre_post_hand_computed():
    p = triplet_stdp.Params(w_min=-1.0, w_max=1.0)
    got = _run(triplet_stdp, p, pre_times={10}, post_times={0, 20}, n_steps=21)[0, 0]
    ms = 1e-3
    dep = p.hom_fudge * math.exp(-10 * ms / p.tau_minus) * math.exp(-10 * ms / p.tau_hom) ** 2
    pot = p.a3_plus * math.exp(-10 * ms / p.tau_plus) * math.exp(-20 * ms / p.tau_long)
    assert math.isclose(got, pot - dep, rel_tol=1e-6)
    assert pot > 0 and dep > 0


def test_triplet_pair_alone_only_depresses():
    """A pre->post pair has no earlier post spike, so the triplet term is 0 (minimal model)."""
    p = triplet_stdp.Params(w_min=-1.0, w_max=1.0)
    assert _run(triplet_stdp, p, {0}, {5}, 6)[0, 0] == 0.0
    got = _run(triplet_stdp, p, {5}, {0}, 6)[0, 0]
    want = -p.hom_fudge * math.exp(-5e-3 / p.tau_minus) * math.exp(-5e-3 / p.tau_hom) ** 2
    assert math.isclose(got, want, rel_tol=1e-6)


def test_triplet_fixed_matches_float_on_average():
    """Mean of K stochastically rounded synapses is within 4 standard errors of the float
    update; traces/factors quantization adds < 1 % (a3 and hom scaled up to be resolvable)."""
    p = triplet_stdp.Params(a3_plus=0.05, tau_hom=0.05, w_min=-1.0, w_max=1.0)
    want = _run(triplet_stdp, p, {10}, {0, 20}, 21)[0, 0]
    got = _run(triplet_stdp, p, {10}, {0, 20}, 21, n_out=K, fixed=True, w0=0)[:, 0]
    se = got.std() / math.sqrt(K)
    assert abs(got.mean() - want) <= 4 * se + 0.01 * abs(want)


def test_vogels_pair_hand_computed():
    p = istdp.Params(w_min=-1.0, w_max=1.0)
    c = math.exp(-5e-3 / p.tau)
    pre_post = _run(istdp, p, {0}, {5}, 6)[0, 0]
    post_pre = _run(istdp, p, {5}, {0}, 6)[0, 0]
    assert math.isclose(pre_post, p.eta * (c - p.alpha), rel_tol=1e-6)   # -eta alpha + eta x_pre
    assert math.isclose(post_pre, p.eta * (c - p.alpha), rel_tol=1e-6)   # symmetric window
    lone_pre = _run(istdp, p, {0}, set(), 3)[0, 0]
    assert math.isclose(lone_pre, -p.eta * p.alpha, rel_tol=1e-6)          # below target: depress


def test_vogels_fixed_matches_float_on_average():
    p = istdp.Params(eta=0.05, w_min=-1.0, w_max=1.0)
    want = _run(istdp, p, {0, 3}, {5}, 6)[0, 0]
    got = _run(istdp, p, {0, 3}, {5}, 6, n_out=K, fixed=True)[:, 0]
    se = got.std() / math.sqrt(K)
    assert abs(got.mean() - want) <= 4 * se + 0.01 * abs(want)


def test_oja_hand_computed():
    p = oja.Params(eta=0.1)
    w = np.array([[0.5, 0.5]])
    dw, _ = oja.step(np.array([1.0, 0.0]), np.array([0.5]), oja.State(), p, w=w)
    np.testing.assert_allclose(dw, 0.1 * 0.5 * np.array([[0.75, -0.25]]))


def _oja_stream(n, rng):
    c = np.array([[3.0, 1.2], [1.2, 1.0]])
    return rng.multivariate_normal([0, 0], c, n), np.linalg.eigh(c)[1][:, -1]


def test_oja_float_and_fixed_find_first_pc():
    rng = np.random.default_rng(0)
    xs, pc = _oja_stream(6000, rng)
    p = oja.Params(eta=2e-3, act_frac=8, w_min=-2.0, w_max=2.0)
    w = np.array([[0.3, -0.2]])
    wq = np.array([[19, -13]], np.int8)          # same start, w_shift 6
    r = rng_init(4)
    xq = np.round(xs * 256).astype(np.int16)
    for x, x_q in zip(xs, xq):
        dw, _ = oja.step(x, w @ x, oja.State(), p, w=w)
        w = w + dw
        y_q = np.array([(int(wq[0] @ x_q.astype(np.int64)) + 32) >> 6])
        wq, _, r, _ = oja.step_fixed(wq, x_q, y_q, oja.State(), p, r, 6)
    wf = wq[0] / 64.0
    for v in (w[0], wf):
        assert abs(np.linalg.norm(v) - 1.0) < 0.06
        assert abs(v @ pc) / np.linalg.norm(v) > 0.99
