"""The device engine: same integers as the offline kernel, plan == measured arena use,
learning switches, weight get/set round trip."""

import numpy as np
import pytest

from edgelearn.adapt.bundle import load_bundle
from edgelearn.device.features import head_features
from edgelearn.data.randman import randman_splits
from edgelearn.device.engine import EngineConfig
from edgelearn.device.head import DeviceHead
from edgelearn.errors import InputError, MemoryBudgetError, ParameterError
from edgelearn.memory import get_profile
from edgelearn.memory.planner import AdaptConfig, HeadShape, plan_deployment, shapes_of
from edgelearn.quant.calibrate import quantize_network
from edgelearn.rules.hep import EnergyHead
from edgelearn.targets.host import HostTarget


@pytest.fixture(scope="module")
def setup():
    b = load_bundle("models/randman_small.onnx", quantize=False)
    tr, te = randman_splits(n_classes=10, n_units=32, n_steps=50, dim_manifold=2, alpha=2.0,
                            samples_per_class=20, seed=0)
    q, _ = quantize_network(b.network, np.swapaxes(tr.x[:64], 0, 1))
    f = head_features(q, tr.x, "hidden0")
    head = DeviceHead.fit(EnergyHead((f.shape[1], 8, 10), seed=1), f)
    return b, q, head, te


@pytest.mark.parametrize("learn", [AdaptConfig(), AdaptConfig(("hidden0",)),
                                   AdaptConfig(("hidden0",), hep=True)])
def test_plan_equals_measured_high_water(setup, learn):
    b, q, head, te = setup
    plan = plan_deployment(shapes_of(b.network), 32768, get_profile("cortex-m4-256k"), learn,
                           head=HeadShape(head.head.sizes))
    t = HostTarget(q, plan.budget, head, EngineConfig(lpl_layers=learn.lpl_layers,
                                                      hep=None if not learn.hep else
                                                      EngineConfig().hep))
    t.set_learning(bool(learn.lpl_layers), learn.hep)
    for i in range(3):
        t.infer(te.x[i])
        t.teach(int(te.y[i]))
    hw = t.telemetry().arena_high_water
    assert abs(hw - plan.total_bytes) <= 0.01 * plan.total_bytes
    assert hw == plan.total_bytes  # the same buffers, the same alignment
    used = {k: v for k, v in t.arena.report().items() if v}
    assert used == {bb.name: bb.nbytes for bb in plan.buffers}


def test_engine_features_equal_offline_kernel(setup):
    b, q, head, te = setup
    t = HostTarget(q, 32768, head)
    offline = head_features(q, te.x[:5], "hidden0")
    for i in range(5):
        t.infer(te.x[i])
        np.testing.assert_array_equal(t.engine._last_features, head.normalise(offline[i]))


def test_frozen_engine_is_deterministic_and_matches_head(setup):
    b, q, head, te = setup
    t1, t2 = HostTarget(q, 32768, head), HostTarget(q, 32768, head)
    f = head.normalise(head_features(q, te.x[:10], "hidden0"))
    for i in range(10):
        r1, r2 = t1.infer(te.x[i]), t2.infer(te.x[i])
        assert r1.prediction == r2.prediction == int(head.head.predict(f[i]))


def test_learning_changes_weights_and_set_weights_restores(setup):
    b, q, head, te = setup
    t = HostTarget(q, 32768, head, EngineConfig(lpl_layers=("hidden0",)))
    w0 = t.get_weights()
    t.set_learning(True, True)
    for i in range(20):
        t.infer(te.x[i])
        t.teach(int(te.y[i]))
    w1 = t.get_weights()
    assert not np.array_equal(w0["head.W0"], w1["head.W0"])
    reps = EngineConfig().hep.repeats
    tel = t.telemetry()
    assert tel.lpl_updates > 0 and tel.hep_updates + tel.extra["hep_nonconverged"] == 20 * reps
    w_mid = t.get_weights()
    t.set_weights(w0)
    for k, v in t.get_weights().items():
        np.testing.assert_array_equal(v, w0[k])
    # restoring everything learning changed resumes bit-exactly
    t.set_weights(w_mid)
    a = [t.infer(te.x[i]).scores for i in range(20, 23)]
    t.teach(int(te.y[22]))
    t.set_weights(w_mid)
    b = [t.infer(te.x[i]).scores for i in range(20, 23)]
    t.teach(int(te.y[22]))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


def test_engine_errors(setup):
    b, q, head, te = setup
    with pytest.raises(MemoryBudgetError, match="needs"):
        HostTarget(q, 512, head)
    t = HostTarget(q, 32768, head)
    with pytest.raises(ParameterError, match="LPL was not planned"):
        t.set_learning(True, False)
    with pytest.raises(InputError, match=r"sample must be \[T, 32\]"):
        t.infer(np.zeros((5, 31), np.uint8))
    with pytest.raises(ParameterError, match="not a spiking layer"):
        HostTarget(q, 32768, head, EngineConfig(lpl_layers=("readout",)))


def test_chunked_sample_equals_whole_sample(setup):
    b, q, head, te = setup
    t1 = HostTarget(q, 32768, head, EngineConfig(lpl_layers=("hidden0",)))
    t2 = HostTarget(q, 32768, head, EngineConfig(lpl_layers=("hidden0",)))
    t1.set_learning(True, False)
    t2.set_learning(True, False)
    for i in range(3):
        r1 = t1.engine.run_sample(te.x[i])
        e = t2.engine
        e.begin_sample()
        for lo in range(0, te.x.shape[1], 7):
            e.run_steps(te.x[i][lo:lo + 7])
        r2 = e.end_sample()
        np.testing.assert_array_equal(r1.scores, r2.scores)
        np.testing.assert_array_equal(r1.features, r2.features)
    np.testing.assert_array_equal(t1.engine.w[0], t2.engine.w[0])
    with pytest.raises(InputError, match="begin_sample"):
        t2.engine.run_steps(te.x[0])


def test_set_weights_refuses_bad_arrays_and_writes_nothing(setup):
    b, q, head, te = setup
    t = HostTarget(q, 32768, head, EngineConfig(lpl_layers=("hidden0",)))
    w = t.get_weights()
    bad = dict(w)
    bad["head.W0"] = np.full_like(w["head.W0"], np.nan)
    with pytest.raises(InputError, match="NaN"):
        t.set_weights(bad)
    with pytest.raises(InputError, match="unknown weight array 'nope'"):
        t.set_weights({"nope": np.zeros(3)})
    with pytest.raises(InputError, match="shape"):
        t.set_weights({"hidden0.weight": np.zeros((2, 2), np.int8)})
    for k, v in t.get_weights().items():
        np.testing.assert_array_equal(v, w[k])
    t.set_learning(False, True)
    t.infer(te.x[0])
    with pytest.raises(InputError, match="class index"):
        t.teach("3")


def test_planner_replay_default_is_the_engines():
    from edgelearn.device.engine import HEPSettings
    assert HeadShape((4, 2, 2)).replay == HEPSettings().replay


def test_mean_readout_features_equal_offline_on_the_speech_model():
    from edgelearn.data import load_speech_digits
    b = load_bundle("models/speech_digits.onnx")
    x = load_speech_digits("test").x[:5]
    offline = head_features(b.qnet, x, b.feature_layer, "mean")
    t = HostTarget(b.qnet, 1 << 20, b.head, EngineConfig(readout="mean"))
    for i in range(5):
        t.infer(x[i])
        np.testing.assert_array_equal(t.engine._last_features, b.head.normalise(offline[i]))
