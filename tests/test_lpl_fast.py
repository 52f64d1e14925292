"""The fast in-place LPL step equals lpl_rate.step_fixed bit for bit (weights, state, PRNG
counter, stats), and the device engine that uses it computes what the reference engine did."""

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from edgelearn.device.engine import Engine, EngineConfig, default_lpl
from edgelearn.errors import InputError, ModelError, ParameterError
from edgelearn.fixed import RngState, rng_init
from edgelearn.kernels.lif_fast import bind_weight, weight_changed
from edgelearn.kernels.lif_fixed import QLayer, init_qstate
from edgelearn.kernels.lif_kernels import qlayer_step
from edgelearn.memory.arena import Arena
from edgelearn.rules import lpl_rate
from edgelearn.rules.lpl_rate_fast import LPLRateFast
from _vector_state import stored_state

VEC = Path(__file__).resolve().parents[1] / "tests" / "vectors" / "rules"
MANIFEST = json.loads((VEC / "manifest.json").read_text())

ENGINE = default_lpl()
VARIANTS = {
    "engine_dither": dataclasses.replace(ENGINE, warmup=20),
    "engine_full": dataclasses.replace(ENGINE, warmup=20, rounding="full"),
    "fast_eta_bounds_nofilter_pre": dataclasses.replace(
        ENGINE, warmup=3, eta=0.5, w_min=-0.05, w_max=0.05, tau_pre=0.0),
    "split_codes_nofilter_post": dataclasses.replace(
        ENGINE, warmup=0, eta=1e-3, tau_post=0.0, tau_mean=50.0, tau_var=80.0, lam=0.5,
        pred=2.0, xi=0.01),
    "split_filters_long_mean": dataclasses.replace(      # rate code s > 32 (fit_shift path)
        ENGINE, warmup=2, eta=3e-3, tau_pre=7.0, tau_post=30.0, tau_mean=1e7, tau_var=1e7,
        rounding="full"),
    "no_filters_no_pred": dataclasses.replace(
        ENGINE, warmup=1, eta=2e-2, tau_pre=0.0, tau_post=0.0, pred=0.0),
    "engine_small_updates_many_changes": dataclasses.replace(    # sparse window path
        ENGINE, warmup=20, eta=1e-5, lam=1.0),
    "engine_mixed_small_and_dense": dataclasses.replace(ENGINE, warmup=20, eta=3e-5, lam=1.0),
    "engine_homeostasis_stored_target": dataclasses.replace(ENGINE, warmup=20, lam_hom=1.0),
    "homeostasis_rate_target_full": dataclasses.replace(
        ENGINE, warmup=5, lam_hom=0.3, rate_target=0.05, rounding="full", eta=1e-2),
}


def _stream(params, T, n_in, n_out, seed, w_shift=9.77, check_every=1, w0=None):
    g = np.random.default_rng(seed)
    w_ref = (g.integers(-128, 128, (n_out, n_in)) if w0 is None else w0).astype(np.int8)
    st_ref = lpl_rate.init_fixed(params, n_in, n_out)
    w = w_ref.copy()
    st = lpl_rate.State(*(a.copy() for a in st_ref))
    fast = LPLRateFast(params, w, st, w_shift, prng_block=1000)     # small: exercise refills
    rng_ref = rng = rng_init(seed + 11)
    A = params.act_frac
    n_changed = 0
    for t in range(T):
        pre = g.integers(0, 4, n_in) * (g.random(n_in) < 0.28)
        post = (g.random(n_out) < 0.1).astype(np.int64)
        w_ref, st_ref, rng_ref, s_ref = lpl_rate.step_fixed(
            w_ref, pre << A, post << A, st_ref, params, rng_ref, w_shift)
        with_stats = t % 3 == 0            # else the clip-free spike path may run
        rng, s, ran = fast.step(pre, post, rng, shift=A, stats=with_stats, spikes=True)
        n_changed += s_ref.n_changed
        assert s == (s_ref if with_stats else None), f"stats differ at step {t}: {s}"
        assert ran == (not s_ref.skipped)
        assert rng == rng_ref, f"PRNG differs at step {t}"
        if t % check_every == 0 or t == T - 1:
            np.testing.assert_array_equal(w, w_ref, err_msg=f"weights differ at step {t}")
            for name, a, b in zip(st._fields, st, st_ref):
                assert a.dtype == b.dtype, name
                np.testing.assert_array_equal(a, b, err_msg=f"state {name} at step {t}")
    return n_changed, fast._bounded


@pytest.mark.parametrize("name", list(VARIANTS))
def test_fast_step_equals_step_fixed_on_random_streams(name):
    changed, clip_free = _stream(VARIANTS[name], 300, 24, 40, seed=len(name))
    assert changed > 0                                                  # weights do move
    if name.startswith("engine") and "mixed" not in name:
        assert clip_free                        # the engine's clip-free spike path was tested


def test_fast_step_equals_step_fixed_engine_shape_long_stream():
    """The engine's parameters and the headline layer shape (64 -> 128), 700 steps."""
    changed, clip_free = _stream(dataclasses.replace(ENGINE, warmup=50), 700, 64, 128, seed=3,
                                 check_every=7)
    assert changed > 0 and clip_free


def test_fast_step_saturating_values_and_stats_off():
    """Large activities (int16 range) and weights at the int8 rails; stats=False returns None
    and leaves the same integers."""
    p = dataclasses.replace(ENGINE, warmup=0, eta=0.2, var_init=1e-3, rounding="full")
    g = np.random.default_rng(5)
    w0 = np.where(g.random((6, 9)) < 0.5, 127, -128).astype(np.int8)
    w_ref, st_ref = w0.copy(), lpl_rate.init_fixed(p, 9, 6)
    w, st = w0.copy(), lpl_rate.init_fixed(p, 9, 6)
    fast = LPLRateFast(p, w, st, 6.0)
    rng_ref = rng = RngState(99, 0xFFFFFF00)                    # counter wraps mod 2^32
    for t in range(80):
        pre = g.integers(-32768, 32768, 9)
        post = g.integers(-32768, 32768, 6)
        w_ref, st_ref, rng_ref, _ = lpl_rate.step_fixed(w_ref, pre, post, st_ref, p, rng_ref,
                                                        6.0)
        rng, s, _ = fast.step(pre, post, rng)
        assert s is None and rng == rng_ref
        np.testing.assert_array_equal(w, w_ref)
        for a, b in zip(st, st_ref):
            np.testing.assert_array_equal(a, b)


def _vector_cases():
    out = []
    for e in MANIFEST["vectors"]:
        if e["rule"] == "lpl_rate" and e["params"]["lam_decorr"] == 0 and "gain" not in e.get(
                "arrays", []):
            out.append(e)
    return out


@pytest.mark.parametrize("entry", _vector_cases(), ids=lambda e: e["name"])
def test_fast_step_replays_shared_vectors(entry):
    d = np.load(VEC.parent / entry["file"], allow_pickle=False)
    p = lpl_rate.Params(**{k: (math.inf if v == "inf" else -math.inf if v == "-inf" else v)
                           for k, v in entry["params"].items()})
    w = d["w0"].astype(np.int8)
    st = lpl_rate.init_fixed(p, entry["n_in"], entry["n_out"])
    fast = LPLRateFast(p, w, st, entry["w_shift"])
    rng = rng_init(entry["seed"])
    for t in range(entry["steps"]):
        rng, s, _ = fast.step(d["pre"][t], d["post"][t], rng, stats=True)
        np.testing.assert_array_equal(w, d["w"][t], err_msg=f"weights differ at step {t}")
        assert tuple(s) == tuple(d["stats"][t]), f"stats differ at step {t}"
    for name, arr in zip(st._fields, st):
        np.testing.assert_array_equal(np.asarray(arr, np.int64), stored_state(d, name))
    assert rng.counter == int(d["rng_counter"][0])


def test_shared_vectors_cover_the_fast_step():
    assert len(_vector_cases()) >= 2


def test_fast_step_refuses_bad_bindings():
    p = ENGINE
    st = lpl_rate.init_fixed(p, 4, 3)
    with pytest.raises(ParameterError):
        LPLRateFast(dataclasses.replace(p, lam_decorr=0.1), np.zeros((3, 4), np.int8),
                    lpl_rate.init_fixed(dataclasses.replace(p, lam_decorr=0.1), 4, 3), 8.0)
    with pytest.raises(InputError):
        LPLRateFast(p, np.zeros((3, 4), np.int16), st, 8.0)
    with pytest.raises(InputError):
        LPLRateFast(p, np.zeros((3, 5), np.int8), st, 8.0)
    with pytest.raises(InputError):
        LPLRateFast(p, np.zeros((3, 4), np.int8), st._replace(mean=np.zeros(3, np.int64)), 8.0)
    ro = np.zeros((3, 4), np.int8)
    ro.setflags(write=False)
    with pytest.raises(InputError):
        LPLRateFast(p, ro, st, 8.0)


def _layer(seed=0, n_in=20, n_out=12):
    g = np.random.default_rng(seed)
    return QLayer("h", g.integers(-60, 60, (n_out, n_in)), np.full(n_out, 3500),
                  np.full(n_out, 3900), np.full(n_out, 400),
                  recurrent=g.integers(-30, 30, (n_out, n_out)), w_shift=2)


def test_bind_weight_follows_the_buffer():
    la = _layer()
    buf = la.weight.copy()
    bound = bind_weight(la, buf)
    x = np.random.default_rng(1).integers(0, 4, (1, la.n_in))
    s = init_qstate(la)
    y0, _ = qlayer_step(bound, x, s)                         # fills the caches
    buf[:, :5] = -buf[:, :5]
    weight_changed(bound)
    ref = la.replace(weight=buf)
    for mode in ("dense", "event"):
        xb = (x > 0).astype(np.int64)
        a, sa = qlayer_step(bound, xb if mode == "event" else x, s, mode=mode)
        b, sb = qlayer_step(ref, xb if mode == "event" else x, s, mode=mode)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(sa.membrane, sb.membrane)
    assert not bound.weight.flags.writeable
    with pytest.raises(ModelError):
        bind_weight(la, buf.astype(np.int16))


# -- the engine: optimised LPL kernel == reference kernel (lpl_kernels.bind) -----------------

def _engines(readout="max"):
    from edgelearn.kernels.lif_fixed import QNetwork
    g = np.random.default_rng(2)
    hid = _layer(3, 16, 24)
    out = QLayer("readout", g.integers(-40, 40, (5, 24)), np.full(5, 3800), np.full(5, 4000),
                 np.full(5, 1 << 20), spiking=False, state_bits=32, w_shift=3)
    q = QNetwork((hid, out), name="tiny")
    cfg = EngineConfig(readout=readout, lpl_layers=("h",),
                       lpl=dataclasses.replace(ENGINE, warmup=30, eta=1e-3), hep=None, seed=4)
    fast = Engine(q, Arena(1 << 16), None, cfg, lpl_impl="optimised")
    ref = Engine(q, Arena(1 << 16), None, cfg, lpl_impl="reference", lif_impl="reference")
    assert type(fast.kernels[0]).__name__ == "LPLRateFast"
    assert type(ref.kernels[0]).__name__ == "ReferenceLPL"
    return fast, ref


@pytest.mark.parametrize("readout", ["max", "mean"])
def test_engine_fast_path_equals_reference_path(readout):
    fast, ref = _engines(readout)
    g = np.random.default_rng(8)
    for e in (fast, ref):
        e.set_learning(True, False)
    for i in range(6):
        x = g.integers(0, 4, (25, 16)) * (g.random((25, 16)) < 0.3)
        r1, r0 = fast.run_sample(x), ref.run_sample(x)
        assert r1.prediction == r0.prediction and r1.spikes == r0.spikes
        np.testing.assert_array_equal(r1.scores, r0.scores)
        np.testing.assert_array_equal(r1.features, r0.features)
        assert fast.rng == ref.rng and fast.counters == ref.counters
        assert bytes(fast.arena._buf) == bytes(ref.arena._buf), f"arena differs, sample {i}"
    assert fast.counters["lpl_updates"] > 0
    w_net = fast.network().layer("h").weight.copy()
    fast.run_sample(g.integers(0, 4, (25, 16)))
    assert np.array_equal(w_net, ref.network().layer("h").weight)   # network() is a snapshot
    assert not np.array_equal(fast.network().layer("h").weight, w_net)


def test_engine_set_weights_reaches_the_bound_layer():
    fast, ref = _engines()
    w = {"h.weight": np.zeros((24, 16), np.int8)}
    fast.set_weights(w)
    ref.set_weights(w)
    x = np.random.default_rng(0).integers(0, 4, (20, 16))
    np.testing.assert_array_equal(fast.run_sample(x).scores, ref.run_sample(x).scores)


def test_engine_restore_resumes_bit_exactly_on_the_fast_path():
    fast, _ = _engines()
    fast.set_learning(True, False)
    g = np.random.default_rng(4)
    xs = [g.integers(0, 4, (25, 16)) * (g.random((25, 16)) < 0.3) for _ in range(5)]
    for x in xs[:2]:
        fast.run_sample(x)
    saved = fast.get_weights()
    first = [fast.run_sample(x).scores for x in xs[2:]]
    after = fast.get_weights()
    fast.set_weights(saved)
    again = [fast.run_sample(x).scores for x in xs[2:]]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    for key, arr in fast.get_weights().items():
        np.testing.assert_array_equal(arr, after[key], err_msg=key)


@pytest.mark.parametrize("scale", [0.0, 1e-6, 3e-5, 0.01, 0.49])
def test_small_update_window_equals_dense_update(scale):
    """The windowed (sparse) dither update equals the dense one whenever 2 max|p x| <= 2^S,
    including windows that wrap around 2^S."""
    g = np.random.default_rng(int(scale * 1e6) + 1)
    p = dataclasses.replace(ENGINE, warmup=0)
    S = p.factor_frac + p.act_frac
    for trial in range(20):
        w0 = g.integers(-128, 128, (30, 17)).astype(np.int8)
        w0[0, :3] = [127, -128, 127]
        x = g.integers(-300, 301, 17)
        N = int(scale * (1 << S))
        pv = g.integers(-(N // 301) - 1, N // 301 + 1, 30) if N else np.zeros(30, np.int64)
        rw = g.integers(0, 1 << S, 30 + 17)
        out = []
        for small in (True, False):
            w = w0.copy()
            f = LPLRateFast(p, w, lpl_rate.init_fixed(p, 17, 30), 9.0)
            if small:
                n_max = int(np.abs(pv).max()) * int(np.abs(x).max())
                assert 2 * n_max <= 1 << S
                res = f._apply_small(pv, x, rw, n_max, trial % 2 == 0)   # odd: scalar path
            else:
                res = _dense(f, pv, x, rw)
            out.append((w.copy(), res))
        np.testing.assert_array_equal(out[0][0], out[1][0])
        if trial % 2 == 0:
            assert out[0][1] == out[1][1]


def _dense(f, pv, x, rw):
    """The dense path of LPLRateFast._apply (the window test disabled)."""
    f.full = True                                  # full skips the window test ...
    n_out = f.n_out
    u = (rw[:n_out, None] + rw[None, n_out:]) & ((1 << f.w_shift_total) - 1)
    return f._apply(pv, x, u.reshape(-1), True)    # ... and takes u as given words


def test_engine_parameters_take_the_hot_step(monkeypatch):
    """The branch-free hot step (the engine's case) is what the bit-exact streams exercise."""
    calls = []
    hot = LPLRateFast._hot_step
    monkeypatch.setattr(LPLRateFast, "_hot_step",
                        lambda self, *a: calls.append(1) or hot(self, *a))
    _stream(VARIANTS["engine_dither"], 120, 16, 20, seed=9)
    assert len(calls) > 50
