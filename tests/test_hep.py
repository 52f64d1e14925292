"""Real-valued hEP head: exactness, estimator accuracy, API contracts, noise, memory."""

from __future__ import annotations

import pathlib
import re
import sys
import time
import tokenize

import numpy as np
import pytest

from edgelearn.errors import InputError, ModelFileError, ParameterError
from edgelearn.rules.hep import (
    EnergyHead,
    HEPParams,
    OnlineHEP,
    RelaxationError,
    RelaxParams,
    StateNoise,
    WeightReadNoise,
    cosine_scheme,
    hep_memory_bytes,
    hep_scheme,
    interpolation_scheme,
    oscillating_gradient,
)
from edgelearn.rules.hep import schemes as sc

PKG = pathlib.Path(__file__).resolve().parents[1] / "edgelearn" / "rules" / "hep"


def rel(a, b) -> float:
    return float(np.linalg.norm(a.flat() - b.flat()) / np.linalg.norm(b.flat()))


def batch(n_in, n_out, B, seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (B, n_in)), rng.integers(0, n_out, B)


def fd_gradient(head, x, y, eps=1e-5):
    out = []
    for arr in head.weights + head.biases:
        g = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            keep = arr[idx]
            arr[idx] = keep + eps
            lp = head.loss(x, y)
            arr[idx] = keep - eps
            lm = head.loss(x, y)
            arr[idx] = keep
            g[idx] = (lp - lm) / (2 * eps)
        out.append(g)
    return np.concatenate([a.ravel() for a in out])


@pytest.mark.parametrize("activation,sizes,gain,coupling", [
    ("tanh", (5, 6, 4, 3), 1.5, 1.2),      # two hidden layers, strong coupling
    ("sigmoid", (4, 7, 3), 2.0, 0.8),
])
def test_exact_gradient_matches_finite_differences(activation, sizes, gain, coupling):
    head = EnergyHead(sizes, seed=1, gain=gain, coupling=coupling, activation=activation)
    head.biases[0][:] = np.linspace(-0.5, 0.5, sizes[1])
    x, y = batch(sizes[0], sizes[-1], 4, 0)
    g = head.exact_gradient(x, y)
    fd = fd_gradient(head, x, y)
    err = np.linalg.norm(fd - g.flat()) / np.linalg.norm(fd)
    assert err <= 1e-5, err
    assert [a.shape for a in g] == [W.shape for W in head.weights]
    assert [a.shape for a in g.biases] == [b.shape for b in head.biases]


def test_real_hep_beats_centered_ep_on_random_heads():
    """16-32-10 heads with the training initialisation, 6 seeds, amplitude 0.5, <= 7 nudges."""
    errs, ratios = [], []
    for seed in range(6):
        head = EnergyHead((16, 32, 10), seed=seed)
        x, y = batch(16, 10, 8, 100 + seed)
        ex = head.exact_gradient(x, y)
        g = head.hep_gradient(x, y, amplitude=0.5, nudges=7)
        assert g.info["nudges"] <= 7 and g.info["converged"]
        cen = head.ep_gradient(x, y, 0.5, centered=True)
        errs.append(rel(g, ex))
        ratios.append(rel(cen, ex) / rel(g, ex))
    assert np.median(errs) <= 1e-3, errs
    assert min(ratios) >= 10.0, ratios


def test_estimator_error_ordering_and_amplitude_scaling():
    head = EnergyHead((16, 32, 10), seed=3, coupling=0.9)
    x, y = batch(16, 10, 8, 7)
    ex = head.exact_gradient(x, y)
    one = rel(head.ep_gradient(x, y, 0.2), ex)
    cen = rel(head.ep_gradient(x, y, 0.2, centered=True), ex)
    hep = rel(head.hep_gradient(x, y, 0.2, 6), ex)
    assert hep < cen < one
    # one-sided bias O(b), centered O(b^2): halving b halves / quarters the error
    one2 = rel(head.ep_gradient(x, y, 0.1), ex)
    cen2 = rel(head.ep_gradient(x, y, 0.1, centered=True), ex)
    assert 1.6 < one / one2 < 2.4 and 3.2 < cen / cen2 < 4.8
    # more nudges -> smaller error (spectral)
    assert rel(head.hep_gradient(x, y, 0.5, 8), ex) < rel(head.hep_gradient(x, y, 0.5, 4), ex)


@pytest.mark.parametrize("M", [6, 10, 11, 12, 13])
def test_dft_readout_equals_chebyshev_interpolation(M):
    """c_n by DFT with the Nyquist term weighted 1/M == interpolation at the distinct nudges."""
    w = sc.dft_phase_weights(M)
    theta = 2 * np.pi * np.arange(M) / M
    collapsed: dict = {}
    for t, wm in zip(np.round(np.cos(theta), 12), w):
        collapsed[t] = collapsed.get(t, 0.0) + wm
    s = cosine_scheme(M)
    for t, ws in zip(s.nodes, s.weights):
        assert abs(collapsed[round(t, 12)] - ws) < 1e-12
    # exact on odd polynomials up to the degree the nodes support
    deg = len(interpolation_scheme(np.cos(theta[theta <= np.pi + 1e-12])).nodes) - 1
    for n in range(1, deg + 1, 2):
        est = sum(wj * tj ** n for tj, wj in zip(s.nodes, s.weights))
        assert abs(est - (1.0 if n == 1 else 0.0)) < 1e-10


def test_default_scheme_nodes_and_budget():
    for D in range(2, 10):
        s = hep_scheme(D)
        assert s.distinct <= D and s.distinct == 2 * (D // 2)
        assert all(abs(t) < 1 for t in s.nodes) and 0.0 not in s.nodes
    with pytest.raises(ParameterError):
        hep_scheme(1)


def test_nudge_table_does_not_depend_on_lapack(monkeypatch):
    """The nudge weights travel to devices in the config blob (docs/protocol.md), so they must
    be the same bits on every CPU: computed in plain float64 (schemes.lagrange_deriv0), not
    from LAPACK's pseudo-inverse, whose last bit moved between two CPUs. A pinv that is off
    in the last bits must not change them."""
    before = {n: sc.hep_scheme(n).weights for n in (2, 4, 6, 8)}
    real_pinv = np.linalg.pinv
    monkeypatch.setattr(np.linalg, "pinv", lambda a: real_pinv(a) * (1 + 2.0 ** -48))
    for n, w in before.items():
        assert sc.hep_scheme(n).weights == w
    t = sc.hep_scheme(2).nodes
    assert sc.hep_scheme(2).weights == (1.0 / (t[0] - t[1]), 1.0 / (t[1] - t[0]))
    for n in (4, 6, 8):         # the same derivative as the Chebyshev fit, to rounding
        s = sc.hep_scheme(n)
        V = np.cos(np.outer(np.arccos(s.nodes), np.arange(len(s.nodes))))
        ref = sc.cheb_deriv0(np.arange(len(s.nodes))) @ real_pinv(V)
        np.testing.assert_allclose(s.weights, ref, rtol=0, atol=1e-12)
    with pytest.raises(ParameterError, match="distinct"):
        sc.lagrange_deriv0([0.5, 0.5])


def test_real_schemes_exact_to_third_order_pay_at_least_3x_in_noise():
    """With the averaging time split by |w_j| the estimate's noise std is ~ sigma sum|w_j| / b.
    Exactness to third order (sum w t = 1, sum w t^3 = 0) gives sum w (3t - 4t^3) = 3, and
    |3t - 4t^3| = |T_3(t)| <= 1 on [-1, 1], so sum|w| >= 3; nodes +-1/2, +-1 (the extrema of
    T_3) attain it. Centered EP has sum|w| = 1: real hEP needs >= 3x its amplitude to match
    its noise."""
    assert sum(abs(w) for w in sc.centered_scheme().weights) == pytest.approx(1.0)
    extremal = sc.low_noise_scheme()
    assert sorted(extremal.nodes) == [-1.0, -0.5, 0.5, 1.0]
    assert sum(abs(w) for w in extremal.weights) == pytest.approx(3.0)
    rng = np.random.default_rng(0)
    for _ in range(400):
        k = int(rng.integers(2, 5))
        t = np.sort(rng.uniform(0.02, 1.0, k))
        s = sc.interpolation_scheme(np.concatenate([-t, t]), degree=3)
        w, nodes = np.asarray(s.weights), np.asarray(s.nodes)
        assert abs(np.dot(w, nodes) - 1) < 1e-8 and abs(np.dot(w, nodes ** 3)) < 1e-8
        assert np.abs(w).sum() >= 3.0 - 1e-9
    for D in (4, 6, 8):
        assert sum(abs(w) for w in hep_scheme(D).weights) >= 3.0


def test_no_complex_arithmetic_anywhere():
    """Source (code tokens, not prose) has no complex names or imaginary literals; every
    array an estimator returns is real float64."""
    for path in PKG.glob("*.py"):
        with open(path, "rb") as fh:
            for tok in tokenize.tokenize(fh.readline):
                if tok.type == tokenize.NUMBER:
                    assert not tok.string.lower().endswith("j"), (path.name, tok)
                if tok.type == tokenize.NAME:
                    assert not re.search(r"complex|cfloat|cdouble|csingle", tok.string.lower()), \
                        (path.name, tok)
    head = EnergyHead((6, 8, 3), seed=0)
    x, y = batch(6, 3, 3, 0)
    grads = [head.exact_gradient(x, y), head.hep_gradient(x, y, 0.5, 6, harmonics=True),
             head.ep_gradient(x, y, 0.3), oscillating_gradient(head, x, y, 0.5, period=32)]
    for g in grads:
        for a in list(g) + g.biases:
            assert a.dtype == np.float64
    res = head.free_phase(x)
    assert res.z.dtype == np.float64 and all(s.dtype == np.float64 for s in res.s)
    # every array bound to a local variable in any package function, at every return, is real
    seen = {"arrays": 0}
    bad = []

    def check(v, where):
        if isinstance(v, np.ndarray):
            seen["arrays"] += 1
            if v.dtype.kind == "c":
                bad.append(where)
        elif isinstance(v, (list, tuple)):
            for item in v:
                check(item, where)

    def local_tracer(frame, event, arg):
        if event == "return":
            where = f"{frame.f_code.co_filename}:{frame.f_code.co_name}"
            for v in list(frame.f_locals.values()) + [arg]:
                check(v, where)
        return local_tracer

    def tracer(frame, event, arg):
        if str(PKG) in frame.f_code.co_filename:
            return local_tracer
        return None

    sys.settrace(tracer)
    try:
        head.exact_gradient(x, y)
        head.hep_gradient(x, y, 0.5, 6, harmonics=True)
        head.ep_gradient(x, y, 0.3, centered=True)
        head.hep_gradient(x, y, 0.5, 4, noise=StateNoise(0.01, np.random.default_rng(0)),
                          weight_read=WeightReadNoise(0.01, np.random.default_rng(1)))
        oscillating_gradient(head, x, y, 0.5, period=16, harmonics=3, substeps=1)
        head.choose_amplitude(x, y, 4, tol=1e-2, start=0.5)
        OnlineHEP(head, lr=0.01).update(x[0], int(y[0]))
    finally:
        sys.settrace(None)
    assert seen["arrays"] > 1000 and not bad, bad[:3]


def test_nonconvergence_is_reported_and_strict_raises():
    head = EnergyHead((6, 8, 3), seed=0, relax=RelaxParams(solver="dynamics", max_steps=3,
                                                           tol=1e-12))
    x, y = batch(6, 3, 4, 1)
    res = head.free_phase(x)
    assert not res.converged and res.iterations == 3 and res.unconverged > 0
    with pytest.raises(RelaxationError, match="did not converge"):
        head.free_phase(x, strict=True)
    g = head.hep_gradient(x, y, 0.5, 6)
    assert g.info["converged"] is False
    # Newton cap as well
    head = EnergyHead((6, 8, 3), seed=0, relax=RelaxParams(max_iter=1, tol=1e-14,
                                                           newton_switch=10.0))
    assert not head.free_phase(x).converged
    with pytest.raises(RelaxationError):
        head.loss(x, y)


def test_strongly_coupled_head_still_converges():
    head = EnergyHead((16, 32, 10), seed=0, coupling=1.6, max_coupling=None)
    x, _ = batch(16, 10, 8, 100)
    res = head.free_phase(x)
    assert res.converged, res.residual


def test_api_shapes_predict_and_validation():
    head = EnergyHead((6, 8, 3), seed=0)
    x, y = batch(6, 3, 5, 2)
    assert isinstance(head.predict(x[0]), int)
    assert head.predict(x).shape == (5,)
    assert np.isfinite(head.loss(x[0], int(y[0])))
    with pytest.raises(InputError):
        head.loss(x[:, :5], y)
    with pytest.raises(InputError):
        head.loss(x, np.full(5, 3))
    with pytest.raises(InputError):
        head.loss(x, y.astype(float))
    with pytest.raises(ParameterError):
        head.hep_gradient(x, y, amplitude=0.0)
    with pytest.raises(ParameterError):
        EnergyHead((6, 3), seed=0)
    with pytest.raises(ParameterError):
        EnergyHead((6, 8, 3), activation="relu")


def test_updates_reduce_loss_and_online_learner():
    head = EnergyHead((6, 12, 3), seed=0, max_coupling=0.8)
    x, y = batch(6, 3, 16, 3)
    before = head.loss(x, y)
    worst = 0.0
    for _ in range(40):
        head.hep_update(x, y, lr=0.2, amplitude=0.5, nudges=6)
    assert head.loss(x, y) < 0.9 * before
    # along an exact-gradient trajectory (coupling pushed to its bound) hEP stays exact
    twin = EnergyHead((6, 12, 3), seed=0, max_coupling=0.8)
    for _ in range(40):
        ex = twin.exact_gradient(x, y)
        worst = max(worst, rel(twin.hep_gradient(x, y, 0.5, 6), ex))
        twin.apply(ex, 0.2)
    assert twin.coupling_norm() > 0.79 and worst < 1e-2, worst  # measured 1.5e-3
    learner = OnlineHEP(EnergyHead((6, 12, 3), seed=0), lr=0.05)
    for i in range(32):
        learner.update(x[i % 16], int(y[i % 16]))
    assert learner.updates == 32 and learner.nonconverged == 0
    assert learner.head.loss(x, y) < before
    with pytest.raises(ParameterError):
        OnlineHEP(head, estimator="bogus")


def test_coupling_projection_keeps_energy_convex():
    head = EnergyHead((6, 8, 5, 3), seed=0, coupling=3.0, max_coupling=0.9)
    assert head.project() < 1.0
    assert head.coupling_norm() <= 0.9 + 1e-12


def test_save_load_roundtrip(tmp_path):
    head = EnergyHead((6, 8, 3), seed=4, activation="sigmoid")
    path = tmp_path / "head.npz"
    head.save(path)
    back = EnergyHead.load(path)
    x, _ = batch(6, 3, 4, 0)
    assert back.sizes == head.sizes and back.activation == "sigmoid"
    np.testing.assert_array_equal(back.logits(x), head.logits(x))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ModelFileError):
        EnergyHead.load(tmp_path / "bad.npz")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_continuous_oscillation_mode_converges_to_exact():
    head = EnergyHead((16, 32, 10), seed=0)
    x, y = batch(16, 10, 8, 100)
    ex = head.exact_gradient(x, y)
    coarse = rel(oscillating_gradient(head, x, y, 0.5, period=64, substeps=4), ex)
    fine = rel(oscillating_gradient(head, x, y, 0.5, period=128, substeps=8), ex)
    cen = rel(head.ep_gradient(x, y, 0.5, centered=True), ex)
    assert fine < coarse and fine < 1e-4 and fine < cen / 50


def test_state_and_weight_read_noise_plug_in():
    head = EnergyHead((16, 32, 10), seed=0)
    x, y = batch(16, 10, 8, 100)
    ex = head.exact_gradient(x, y)
    zero = head.hep_gradient(x, y, 0.5, 6, noise=StateNoise(0.0, np.random.default_rng(0)))
    assert zero.info["solver"] == "dynamics" and rel(zero, ex) < 1e-3
    calls = []

    def read(W):
        calls.append(1)
        return W

    g = head.hep_gradient(x, y, 0.5, 6, weight_read=read)
    assert calls and rel(g, ex) < 1e-3
    noisy = head.hep_gradient(x, y, 1.0, 6, noise=StateNoise(0.02, np.random.default_rng(1)),
                              weight_read=WeightReadNoise(0.01, np.random.default_rng(2)))
    cos = float(noisy.flat() @ ex.flat() / np.linalg.norm(noisy.flat()) / np.linalg.norm(ex.flat()))
    assert cos > 0.8
    head.noise = StateNoise(0.02, np.random.default_rng(3))  # head-level default is used
    assert head.hep_gradient(x, y, 0.5, 6).info["solver"] == "dynamics"
    with pytest.raises(ParameterError):
        StateNoise(-1.0, np.random.default_rng(0))


def test_choose_amplitude_picks_a_trustworthy_amplitude():
    head = EnergyHead((16, 32, 10), seed=0, coupling=0.9)
    x, y = batch(16, 10, 8, 5)
    b, diag = head.choose_amplitude(x, y, nudges=6, tol=1e-4, start=2.0)
    ex = head.exact_gradient(x, y)
    assert diag["tried"][-1]["ok"] and rel(head.hep_gradient(x, y, b, 6), ex) < 1e-3


def test_memory_protocol_one_accumulator_per_synapse():
    p = HEPParams()
    st = p.init_state(32, 10)
    assert p.extra_state_bytes(32, 10) == sum(a.nbytes for a in st)
    head = EnergyHead((128, 64, 10), seed=0)
    m = hep_memory_bytes(head)
    assert m["accumulator_bytes"] == 4 * head.n_params == m["weights_bytes"]
    assert sum(m["per_layer"]) + m["target_bytes"] == m["extra_state_bytes"]
    assert head.extra_state_bytes() == m["extra_state_bytes"]
    from edgelearn.rules.memory_cost import rule_memory_bytes
    assert rule_memory_bytes(p, 128, 64) == m["per_layer"][0]


def test_single_sample_update_is_fast():
    head = EnergyHead((128, 64, 10), seed=0)
    rng = np.random.default_rng(0)
    xs = rng.uniform(0, 1, (20, 128))
    head.hep_update(xs[0], 1, 0.01)
    times = []
    for i in range(20):
        # CPU time of this process (all its threads), not wall time: other processes on a
        # loaded machine do not count
        t = time.process_time()
        head.hep_update(xs[i], i % 10, 0.01)
        times.append(time.process_time() - t)
    assert np.median(times) < 0.05  # ~5 ms on an idle core; loose for a shared CI machine


def test_real_hep_beats_centered_ep_under_state_noise_at_best_amplitude():
    """Gradient error under state noise (sigma 0.02), each estimator at its best amplitude:
    real hEP can run at large amplitudes (its bias stays small), which beats the extra noise
    gain of its inner nudges; centered EP is bias-limited at large b, noise-limited at small b."""
    def best(est, amps):
        meds = []
        for b in amps:
            errs = []
            for seed in range(2):
                head = EnergyHead((16, 32, 10), seed=seed)
                x, y = batch(16, 10, 8, 100 + seed)
                ex = head.exact_gradient(x, y)
                for r in range(3):
                    noise = StateNoise(0.02, np.random.default_rng(10 * seed + r))
                    g = (head.hep_gradient(x, y, b, 4, noise=noise) if est == "hep" else
                         head.ep_gradient(x, y, b, centered=True, noise=noise))
                    errs.append(rel(g, ex))
            meds.append(float(np.median(errs)))
        return min(meds)
    hep = best("hep", [1.5, 2.0, 3.0])
    cen = best("centered", [0.5, 0.75, 1.0, 1.5])
    assert hep < 0.9 * cen, (hep, cen)  # measured 0.037 vs 0.047


def test_low_noise_scheme_is_fourth_order_and_plugs_into_online_learning():
    """Noise-free, the low-noise scheme's error falls like b^4 (centered EP's like b^2) and is far
    below centered EP's at b = 0.5; OnlineHEP passes a scheme through to hep_gradient."""
    head = EnergyHead((16, 32, 10), seed=0)
    x, y = batch(16, 10, 8, 100)
    ex = head.exact_gradient(x, y)
    low = {b: rel(head.hep_gradient(x, y, b, scheme=sc.low_noise_scheme()), ex) for b in (0.25, 0.5)}
    cen = rel(head.ep_gradient(x, y, 0.5, centered=True), ex)
    assert low[0.25] < low[0.5] / 8 and low[0.5] < cen / 10, (low, cen)
    learner = OnlineHEP(head, lr=0.01, amplitude=0.5, scheme=sc.low_noise_scheme())
    g = learner.gradient(x, y)
    assert rel(g, head.hep_gradient(x, y, 0.5, scheme=sc.low_noise_scheme())) == 0.0


def test_a_head_made_without_seed_or_rng_is_the_seed_0_head():
    """docs/hep.md: EnergyHead(sizes, seed=0, ...): the default initialisation is reproducible
    (it once drew from fresh OS entropy)."""
    a, b, c = EnergyHead((6, 8, 3)), EnergyHead((6, 8, 3)), EnergyHead((6, 8, 3), seed=0)
    for Wa, Wb, Wc in zip(a.weights, b.weights, c.weights):
        assert np.array_equal(Wa, Wb) and np.array_equal(Wa, Wc)
    d = EnergyHead((6, 8, 3), rng=np.random.default_rng(1))
    assert not np.array_equal(a.weights[0], d.weights[0])


def test_given_weights_and_biases_must_match_the_sizes():
    """docs/hep.md: weights / biases replace the initialisation; one array per layer of the
    right shape, finite (a short list was accepted and failed later in numpy)."""
    W = [np.full((8, 6), 0.1), np.full((3, 8), -0.2)]
    b = [np.zeros(8), np.full(3, 0.5)]
    head = EnergyHead((6, 8, 3), weights=W, biases=b)
    assert all(np.array_equal(h, w) and h.dtype == np.float64 for h, w in zip(head.weights, W))
    assert np.array_equal(head.biases[1], b[1])
    assert np.array_equal(EnergyHead((6, 8, 3), weights=W).biases[0], np.zeros(8))
    for bad in (dict(weights=W[:1]), dict(biases=b[:1]), dict(weights=W + W[1:]),
                dict(weights=[W[1], W[0]]), dict(weights=[W[0], np.full((3, 8), np.nan)])):
        with pytest.raises(ParameterError):
            EnergyHead((6, 8, 3), **bad)


def test_nudge_nodes_are_the_correctly_rounded_cosines():
    """docs/hep.md defines the nodes a host sends as the correctly rounded cos of each float64
    phase 2.0 * pi * (m + 0.5) / M (a definition any language can meet); the C library's cos
    that schemes.py calls meets it over the config blob's range (up to 16 nudges, M = 32)."""
    import mpmath                # the dev extra's; computes the correctly rounded cos
    for n in range(2, 17):
        M = 4 * (n // 2)
        phases = [2.0 * np.pi * (m + 0.5) / M for m in range(M // 2)]
        with mpmath.workprec(200):
            exact = tuple(float(mpmath.cos(mpmath.mpf(v))) for v in phases)
        assert sc.hep_scheme(n).nodes == exact, n
