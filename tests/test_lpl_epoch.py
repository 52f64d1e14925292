"""The LPL learning epoch (docs/learning-rules.md section 10): the rule runs once every k time
steps on the activities summed over them. Parameters, codes and block byte 7, state and memory,
the engine against a hand-written loop of the specification, and the float twin."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from edgelearn.device.engine import Engine, EngineConfig
from edgelearn.errors import InputError, ParameterError
from edgelearn.fixed import rng_init
from edgelearn.kernels.lif_fixed import QLayer, QNetwork, init_qstate
from edgelearn.kernels.lif_kernels import qlayer_step
from edgelearn.link import blobs
from edgelearn.memory.arena import Arena
from edgelearn.rules import lpl_codes, lpl_kernels, lpl_rate

P8 = dataclasses.replace(lpl_rate.deploy_default(), eta=4e-4, warmup=20, epoch=8)


# ---- parameters --------------------------------------------------------------------------

def test_epoch_params_states_one_epoch_as_one_step():
    p = dataclasses.replace(lpl_rate.deploy_default(), warmup=201, pred=0.5, tau_post=0.0)
    q = lpl_rate.epoch_params(dataclasses.replace(p, epoch=8))
    assert q.epoch == 1
    assert (q.tau_mean, q.tau_var, q.tau_pre, q.tau_post) == (
        p.tau_mean / 8, p.tau_var / 8, p.tau_pre / 8, 0.0)
    assert q.warmup == 26                                   # ceil(201 / 8)
    assert q.eta == p.eta * 8 and q.pred == p.pred / 8
    same = ("lam", "lam_decorr", "lam_hom", "rate_target", "xi", "var_init", "w_min", "w_max",
            "act_frac", "ema_frac", "factor_frac", "rounding")
    assert all(getattr(q, f) == getattr(p, f) for f in same)
    assert lpl_rate.epoch_params(p) is p                    # k = 1: unchanged


@pytest.mark.parametrize("epoch", [0, 3, 12, 128, -8, True, 8.0, "8"])
def test_bad_epoch_is_refused_naming_epoch(epoch):
    with pytest.raises(ParameterError, match="epoch"):
        lpl_rate.Params(epoch=epoch)


def test_epoch_needs_log2_at_most_act_frac():
    lpl_rate.Params(epoch=4, act_frac=2, xi=1e-2)
    with pytest.raises(ParameterError, match=r"epoch 8 .*act_frac \(2\)"):
        lpl_rate.Params(epoch=8, act_frac=2, xi=1e-2)


# ---- codes and the LPL block ---------------------------------------------------------------

def _hidden(n_in=12, n_out=10, seed=0):
    g = np.random.default_rng(seed)
    return QLayer("hid", g.integers(-50, 70, (n_out, n_in)), g.integers(2800, 3600, n_out),
                  g.integers(3000, 3900, n_out), np.full(n_out, 220),
                  recurrent=g.integers(-20, 20, (n_out, n_out)), w_shift=0, scale=1 / 220)


def test_layer_codes_are_the_epoch_params_codes_with_epoch_log2():
    la = _hidden()
    c = lpl_rate.layer_codes(P8, la)
    assert c.epoch_log2 == 3 and c.epoch == 8
    plain = lpl_rate.layer_codes(lpl_rate.epoch_params(P8), la)
    assert plain.epoch_log2 == 0 and c == plain._replace(epoch_log2=3)
    assert lpl_rate.layer_codes(dataclasses.replace(P8, epoch=1), la).epoch_log2 == 0


def test_block_byte_7_round_trips_and_bad_values_are_refused():
    c = lpl_rate.layer_codes(P8, _hidden())
    block = lpl_codes.pack_block(c)
    assert block[7] == 3 and lpl_codes.FIELD_OFFSETS["epoch_log2"] == 7
    assert lpl_codes.unpack_block(block) == c
    assert lpl_codes.pack_block(c._replace(epoch_log2=0))[7] == 0
    for value in (7, 255):
        bad = bytearray(block)
        bad[7] = value
        with pytest.raises(ParameterError, match="epoch_log2") as e:
            lpl_codes.unpack_block(bytes(bad))
        assert e.value.field == "epoch_log2" and e.value.value == value
        with pytest.raises(blobs.BlobError) as be:      # offsets count from the blob start
            blobs.decode_lpl_block(bytes(bad), 100)
        assert be.value.offset == 107
    low = bytearray(lpl_codes.pack_block(c._replace(epoch_log2=2)))
    low[0] = 1                                          # act_frac 1 < epoch_log2 2
    with pytest.raises(ParameterError, match="epoch_log2") as e:
        lpl_codes.unpack_block(bytes(low))
    assert e.value.field == "epoch_log2"


# ---- state and memory ----------------------------------------------------------------------

@pytest.mark.parametrize("epoch", [1, 2, 64])
def test_state_arrays_and_memory_figures(epoch):
    n_in, n_out = 12, 10
    p = dataclasses.replace(P8, epoch=epoch)
    st = lpl_rate.init_fixed(p, n_in, n_out)
    want = (n_in, n_out, 1) if epoch > 1 else (0, 0, 0)
    assert tuple(getattr(st, f).size for f in lpl_codes.EPOCH_FIELDS) == want
    assert all(getattr(st, f).dtype == np.int32 for f in lpl_codes.EPOCH_FIELDS)
    nbytes = sum(a.nbytes for a in st)
    assert p.extra_state_bytes(n_in, n_out) == nbytes
    assert lpl_codes.state_bytes(lpl_rate.codes_for(p, 0.0, n_out), n_in, n_out) == nbytes
    base = dataclasses.replace(P8, epoch=1).extra_state_bytes(n_in, n_out)
    assert nbytes - base == (4 * (n_in + n_out + 1) if epoch > 1 else 0)
    fl = lpl_rate.init(p, n_in, n_out)
    assert p.extra_state_bytes(n_in, n_out, fixed=False) == sum(a.nbytes for a in fl)


def test_epoch_1_binds_the_plain_kernels():
    la = _hidden()
    c = lpl_rate.layer_codes(dataclasses.replace(P8, epoch=1), la)
    st = lpl_codes.init_state(c, la.n_in, la.n_out)
    w = la.weight.astype(np.int8)
    for impl in lpl_kernels.IMPLEMENTATIONS:
        assert not isinstance(lpl_kernels.bind(c, w, st, impl), lpl_kernels.EpochLPL)
    c8 = lpl_rate.layer_codes(P8, la)
    st8 = lpl_codes.init_state(c8, la.n_in, la.n_out)
    assert isinstance(lpl_kernels.bind(c8, w, st8), lpl_kernels.EpochLPL)


# ---- the engine against the specification, step by step -----------------------------------

def _network() -> QNetwork:
    g = np.random.default_rng(11)
    out = QLayer("out", g.integers(-40, 40, (4, 10)), np.full(4, 3200), np.full(4, 3700),
                 np.full(4, 1), spiking=False, bias=g.integers(-10, 10, 4), scale=1 / 220)
    return QNetwork((_hidden(), out), name="epoch", input_bits=8)


def _engine(q, impl, p=P8):
    cfg = EngineConfig(readout="max", lpl_layers=("hid",), lpl=p, hep=None, seed=7)
    e = Engine(q, Arena(1 << 16), None, cfg, lpl_impl=impl)
    e.set_learning(True, False)
    return e


def _spec_loop(q, p, x, restarts, seed=7):
    """The specification written out: LIF step of the hidden layer (reference kernel), then
    acc += input, spikes; on the k-th step lpl_rate.step_codes on acc << (A - e) with the
    layer's epoch codes; the layer state restarts at ``restarts`` (a restore on a fresh
    engine keeps the learning state, not the neuron state)."""
    la = q.layers[0]
    c = lpl_rate.layer_codes(p, la)
    k, e, A = 1 << c.epoch_log2, c.epoch_log2, c.act_frac
    st = lpl_codes.init_state(c, la.n_in, la.n_out)
    w = la.weight.astype(np.int8)
    rng = rng_init(seed)
    acc_pre = np.zeros(la.n_in, np.int64)
    acc_post = np.zeros(la.n_out, np.int64)
    n = runs = 0
    s = init_qstate(la)
    for t in range(x.shape[0]):
        if t in restarts:
            s = init_qstate(la)
        y, s = qlayer_step(la.replace(weight=w), x[t:t + 1], s, impl="reference")
        acc_pre += x[t]
        acc_post += y[0]
        n += 1
        if n == k:
            w, st, rng, stats = lpl_rate.step_codes(w, acc_pre << (A - e), acc_post << (A - e),
                                                    st, c, rng)
            runs += not stats.skipped
            acc_pre[:] = 0
            acc_post[:] = 0
            n = 0
    return w, st, rng, (acc_pre, acc_post, n), runs


@pytest.mark.parametrize("impl", lpl_kernels.IMPLEMENTATIONS)
def test_engine_equals_the_spec_loop_across_chunks_and_a_restore(impl):
    q = _network()
    T = 360
    x = np.random.default_rng(4).integers(0, 4, (T, 12))     # layer 0: valued inputs
    x[::3] = (x[::3] > 1)                                     # and some 0/1 rows
    bounds = [0, 5, 18, 19, 100, 163, 203, 300, T]           # chunks split mid-epoch
    restore_at = 163                                          # 163 % 8 = 3: mid-epoch
    e = _engine(q, impl)
    for a, b in zip(bounds, bounds[1:]):
        if a == restore_at:
            w = e.get_weights()
            st = w["state.hid.lpl.epoch_steps"]
            assert st[0] == restore_at % 8 and w["state.hid.lpl.epoch_pre"].any()
            w = blobs.decode_weights(blobs.encode_weights(w, ["hid", "out"]), ["hid", "out"])
            e = _engine(q, impl)
            e.set_weights(w)
            e.set_learning(True, False)
        e.stream(x[a:b])
    w_ref, st_ref, rng_ref, (acc_pre, acc_post, n), runs = _spec_loop(q, P8, x, {restore_at})
    got = e.get_weights()
    np.testing.assert_array_equal(got["hid.weight"], w_ref)
    assert np.any(w_ref != q.layers[0].weight), "the stream moved no weight"
    for f, arr in zip(st_ref._fields, st_ref):
        if f not in lpl_codes.EPOCH_FIELDS:
            np.testing.assert_array_equal(got[f"state.hid.lpl.{f}"], arr, err_msg=f)
    np.testing.assert_array_equal(got["state.hid.lpl.epoch_pre"], acc_pre)
    np.testing.assert_array_equal(got["state.hid.lpl.epoch_post"], acc_post)
    assert got["state.hid.lpl.epoch_steps"][0] == n == T % 8
    assert tuple(got["state.rng"]) == (rng_ref.key, rng_ref.counter)
    assert runs == T // 8 - lpl_rate.epoch_params(P8).warmup > 0


def test_accumulators_do_not_move_while_lpl_is_off():
    q = _network()
    e = _engine(q, "optimised")
    x = np.random.default_rng(5).integers(0, 3, (13, 12))
    e.stream(x[:5])
    before = e.get_weights()
    e.set_learning(False, False)
    e.stream(x[5:])
    after = e.get_weights()
    for f in lpl_codes.EPOCH_FIELDS:
        key = f"state.hid.lpl.{f}"
        np.testing.assert_array_equal(after[key], before[key])
    assert before["state.hid.lpl.epoch_steps"][0] == 5
    assert e.counters["lpl_updates"] == 0                       # no epoch finished


def test_restoring_unreachable_epoch_sums_is_refused():
    q = _network()
    e = _engine(q, "optimised")
    e.stream(np.ones((3, 12), np.int64))
    w = e.get_weights()
    for key, value, match in (("epoch_steps", [8], r"epoch_steps' must lie in \[0, 7\]"),
                              ("epoch_post", np.full(10, 4), r"epoch_post' must lie in \[0, 3\]"),
                              ("epoch_pre", np.full(12, 3 * 128), r"epoch_pre' must lie in")):
        bad = dict(w)
        bad[f"state.hid.lpl.{key}"] = np.asarray(value, np.int32)
        with pytest.raises(InputError, match=match):
            e.set_weights(bad)
    e.set_weights(w)


# ---- the float twin ------------------------------------------------------------------------

def test_float_twin_epoch_step_is_step_on_the_epoch_means():
    p = dataclasses.replace(P8, warmup=0)
    g = np.random.default_rng(3)
    pre, post = g.integers(0, 2, (24, 6)), g.integers(0, 2, (24, 4))
    st = lpl_rate.init(p, 6, 4)
    ref = lpl_rate.init(lpl_rate.epoch_params(p), 6, 4)
    for t in range(24):
        dw, st = lpl_rate.epoch_step(pre[t], post[t], st, p)
        if t % 8 < 7:
            assert dw is None and st.epoch_steps[0] == t % 8 + 1
            continue
        dw_ref, ref = lpl_rate.step(pre[t - 7:t + 1].mean(0), post[t - 7:t + 1].mean(0), ref,
                                    lpl_rate.epoch_params(p))
        np.testing.assert_allclose(dw, dw_ref, rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(st.mean, ref.mean, rtol=1e-6)
        assert st.epoch_steps[0] == 0 and not st.epoch_pre.any()


def test_float_twin_and_fixed_point_agree_at_epoch_8():
    """400 epochs (3200 steps) of rate-modulated spikes, float twin (lpl_rate.epoch_step)
    against the fixed kernel (EpochLPL, int8 weights from 0, dithered stochastic rounding).
    Bounds: the running mean and variance within 0.2 % of the float twin's largest value
    (measured < 0.05 %); the summed weight change has cosine > 0.99 with the float sum
    (measured 0.994) and every synapse lies within 4 standard deviations of the rounding
    noise, 4 sqrt(runs / 4) LSB, of it (measured max 14 LSB of an allowed 39)."""
    n_in, n_out, ws, T = 16, 8, 7.0, 3200
    p = dataclasses.replace(lpl_rate.deploy_default(), eta=4e-3, warmup=80, epoch=8)
    g = np.random.default_rng(6)
    rate_in = 0.3 + 0.25 * np.sin(np.arange(T)[:, None] / 150.0 + g.uniform(0, 6, n_in))
    pre = (g.random((T, n_in)) < rate_in).astype(np.int64)
    mix = g.normal(0, 1, (n_out, n_in))
    rate_out = 1 / (1 + np.exp(-(rate_in - 0.3) @ mix.T * 3))
    post = (g.random((T, n_out)) < rate_out).astype(np.int64)
    c = lpl_rate.codes_for(p, ws, n_out)
    w = np.zeros((n_out, n_in), np.int8)
    sq = lpl_codes.init_state(c, n_in, n_out)
    kern = lpl_kernels.bind(c, w, sq, "reference")
    st = lpl_rate.init(p, n_in, n_out)
    total = np.zeros((n_out, n_in))
    rng = rng_init(2)
    runs = 0
    for t in range(T):
        rng, _, ran = kern.step(pre[t], post[t], rng, p.act_frac, spikes=True)
        runs += ran
        dw, st = lpl_rate.epoch_step(pre[t], post[t], st, p)
        if dw is not None:
            total += dw * 2.0 ** ws
    assert runs == T // 8 - 10                                  # warm-up: ceil(80 / 8)
    A, E = p.act_frac, p.ema_frac
    for q, f, frac in ((sq.mean, st.mean, A + E), (sq.var, st.var, 2 * A + E)):
        assert np.abs(q / 2.0 ** frac - f).max() <= 2e-3 * np.abs(f).max()
    fixed = w.astype(np.float64)
    assert np.abs(fixed).max() < 127                           # no clipping
    cos = (fixed * total).sum() / (np.linalg.norm(fixed) * np.linalg.norm(total))
    assert cos > 0.99, cos
    assert np.abs(fixed - total).max() <= 4 * math.sqrt(runs / 4)


# ---- through the planner, the targets and the CLI -----------------------------------------

MODEL = "models/randman_small.onnx"


@pytest.fixture(scope="module")
def randman_x():
    from edgelearn.data.randman import randman_splits
    _, te = randman_splits(n_classes=10, n_units=32, n_steps=50, dim_manifold=2, alpha=2.0,
                           samples_per_class=200, seed=0)
    return te


def test_host_and_simulated_board_agree_with_an_epoch_from_the_reference_state(randman_x):
    """slow+homeostasis with epoch 8: the reference state is measured on epoch means, the
    config blob carries epoch_log2 to the board, and host and board end bit-identical
    (weights, statistics, epoch sums mid-epoch: 6 samples of 50 steps = 37.5 epochs)."""
    from edgelearn.adapt.bundle import load_bundle
    from edgelearn.adapt.reference import lpl_reference_weights
    from edgelearn.adapt.session import engine_config, make_target
    from edgelearn.memory import get_profile
    from edgelearn.memory.planner import AdaptConfig, plan_deployment, shapes_of
    from edgelearn.rules import lpl_presets
    from edgelearn.targets.spec import parse_target

    b = load_bundle(MODEL)
    p = dataclasses.replace(lpl_presets.preset("slow+homeostasis"), eta=3e-4, epoch=8)
    plan = plan_deployment(shapes_of(b.network), 64 * 1024, get_profile("cortex-m4-256k"),
                           AdaptConfig(lpl_layers=b.hidden_names, hep=False, lpl=p), link=True)
    ref = lpl_reference_weights(b.qnet, engine_config(b, plan, 3), b.reference_inputs())
    name = b.hidden_names[0]
    got = {}
    for kind in ("host", "sim"):
        with make_target(parse_target(kind), b, plan, seed=3, progress=False) as t:
            w0 = t.get_weights()
            for k, v in ref.items():
                np.testing.assert_array_equal(w0[k], v, err_msg=f"{kind} {k}")
            t.set_learning(True, False)
            for x in randman_x.x[:6]:
                t.infer(x)
            got[kind] = t.get_weights()
            assert t.telemetry().lpl_updates == 37            # one per finished epoch
    assert set(got["host"]) == set(got["sim"])
    for k in got["host"]:
        np.testing.assert_array_equal(got["host"][k], got["sim"][k], err_msg=k)
    assert got["host"][f"state.{name}.lpl.epoch_steps"][0] == 300 % 8
    assert got["host"][f"state.{name}.lpl.epoch_post"].any()
    assert not np.array_equal(got["host"][f"{name}.weight"], b.qnet.layer(name).weight)


def test_reference_state_runs_on_epoch_means():
    """lpl_reference.reference_state with an epoch measures the statistics of the means over
    consecutive k steps (what the rule sees): without filters the variance of a mean of 8
    Bernoulli steps is ~1/8 of a step's; with the deployed 20-step filters (2.5 epochs) both
    see about the same smoothed rate. Means agree; the epoch sums start empty."""
    from edgelearn.rules.lpl_reference import reference_state
    la = _hidden()
    g = np.random.default_rng(8)
    pre = g.integers(0, 2, (4, 1000, la.n_in))
    post = (g.random((4, 1000, la.n_out)) < 0.3).astype(np.int64)
    for p, lo, hi in ((dataclasses.replace(P8, tau_pre=0.0, tau_post=0.0), 0.1, 0.2),
                      (P8, 0.95, 1.05)):
        st8 = reference_state(lpl_rate.layer_codes(p, la), pre, post, burn_in=400)
        st1 = reference_state(lpl_rate.layer_codes(dataclasses.replace(p, epoch=1), la), pre,
                              post, burn_in=400)
        ratio = st8.var / st1.var
        assert np.all((ratio > lo) & (ratio < hi)), ratio
        np.testing.assert_allclose(st8.mean, st1.mean, rtol=5e-3)
        assert st8.epoch_steps[0] == 0 and not st8.epoch_pre.any() and st8.epoch_pre.size
