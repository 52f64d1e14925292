"""The substrate target: what the host sees, the write path, in-the-loop training, on-device rules."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgelearn.data.randman import randman_splits
from edgelearn.errors import TargetError
from edgelearn.io import load_network
from edgelearn.runtime.reference import run
from edgelearn.substrate import get_preset
from edgelearn.substrate.hooks import SubstrateStateNoise, SubstrateWeightRead
from edgelearn.targets.substrate import (AdaptConfig, OnDeviceLearner, SubstrateTarget,
                                         evaluate_on, train_in_loop, weight_bytes)
from edgelearn.train import TrainConfig
from tests._hang import HANG_SECONDS

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "randman_small.onnx"


@pytest.fixture(scope="module")
def task():
    net = load_network(MODEL)
    tr, te = randman_splits(n_classes=10, n_units=32, n_steps=50, dim_manifold=2, alpha=2.0,
                            samples_per_class=200, seed=0)
    return net, tr.subset(np.arange(480)), te.subset(np.arange(200))


def test_ideal_target_runs_the_float_model(task):
    net, _, te = task
    tgt = SubstrateTarget("ideal", 0)
    tgt.load(net)
    x = te.x[:8].transpose(1, 0, 2).astype(np.float32)
    out, obs = tgt.run(x)
    ref = run(net, x, record=("spikes", "membrane"))
    np.testing.assert_array_equal(out, ref.output)
    np.testing.assert_array_equal(obs.spikes["hidden0"], ref.spikes["hidden0"])


def test_host_sees_only_noisy_readout_and_noisy_reads(task):
    net, _, te = task
    tgt = SubstrateTarget("bss2", 3)
    tgt.load(net)
    x = te.x[:4].transpose(1, 0, 2).astype(np.float32)
    _, a = tgt.run(x)
    _, b = tgt.run(x)
    assert not np.array_equal(a.membrane["hidden0"], b.membrane["hidden0"])   # readout noise
    assert set(a.spikes) == {"hidden0"} and set(a.membrane) == {"hidden0", "readout"}
    p = SubstrateTarget("pcm", 3)
    p.load(net)
    r1, r2 = p.read_weights(), p.read_weights()
    assert set(r1) == {"hidden0", "readout"}
    assert not np.array_equal(r1["hidden0"], r2["hidden0"])
    np.testing.assert_allclose(r1["hidden0"], net.layers[0].weight, atol=0.35)


def test_budget_and_load_errors(task):
    net, _, _ = task
    need = weight_bytes(net, "bss2")
    assert need == net.layers[0].weight.size + net.layers[1].weight.size   # 7 bits -> 1 byte
    with pytest.raises(TargetError, match=rf"needs {need} B of weight memory, budget 100 B"):
        SubstrateTarget("bss2", 0, budget=100).load(net)
    with pytest.raises(TargetError, match="call load"):
        SubstrateTarget("bss2", 0).read_weights()


def test_in_the_loop_training_absorbs_mismatch(task):
    net, tr, te = task
    tgt = SubstrateTarget("bss2", 0)
    tgt.load(net)
    before = evaluate_on(tgt, te)
    programmed = tgt.info()["programmed"]
    trained, hist = train_in_loop(tgt, net, tr, TrainConfig(epochs=2, batch_size=32, lr=1e-3),
                                  progress=False)
    after = evaluate_on(tgt, te)
    assert tgt.info()["programmed"] > programmed        # learning went through the write path
    assert hist[-1]["written"] > 0 and len(hist) == 2
    assert after > before + 0.03, (before, after)


def test_weight_read_hook_freezes_mismatch_and_redraws_read_noise():
    W = np.random.default_rng(0).normal(size=(6, 5))
    wr = SubstrateWeightRead(get_preset("bss2"), 4)
    a, b = wr(W), wr(W)
    np.testing.assert_array_equal(a, b)                  # bss2: digital weights, frozen mismatch
    assert not np.allclose(a, W)
    np.testing.assert_array_equal(a, SubstrateWeightRead(get_preset("bss2"), 4)(W))
    p = SubstrateWeightRead(get_preset("pcm"), 4)
    assert not np.array_equal(p(W), p(W))               # pcm: fresh read noise
    np.testing.assert_array_equal(SubstrateWeightRead(get_preset("ideal"), 0)(W), W)
    assert SubstrateStateNoise(get_preset("bss2"), 0).sigma == pytest.approx(0.02)


def test_on_device_hep_learns_and_lpl_writes_through_the_device(task):
    net, tr, te = task
    tgt = SubstrateTarget("pcm", 1)
    tgt.load(net)
    learner = OnDeviceLearner(tgt, AdaptConfig(lpl=True, epochs=1, write_threshold=1e-3))
    hist = learner.adapt(tr, progress=False)
    assert [h["phase"] for h in hist] == ["lpl", "hep"]         # unsupervised first, then hEP
    assert hist[-1]["hep_updates"] == 15 and hist[-1]["lpl_updates"] == 480
    assert hist[0]["written"] > 0
    assert learner.accuracy(te) > 0.5


def test_target_interface_infer_teach(task):
    net, tr, _ = task
    tgt = SubstrateTarget("bss2", 2)
    tgt.load(net)
    with pytest.raises(TargetError, match="attach_learner"):
        tgt.set_learning(True, True)
    assert tgt.infer(tr.x[0]).scores.shape == (10,)
    tgt.attach_learner(calibration_x=tr.x[:64])
    tgt.set_learning(False, True)
    assert {"lpl", "hep"} <= tgt.capabilities
    tgt.infer(tr.x[0])
    tgt.teach(int(tr.y[0]))
    w = tgt.get_weights()
    assert {"hidden0", "readout", "head.W0", "head.b1"} <= set(w)
    tgt.set_weights(w)
    assert tgt.telemetry().hep_updates == 1


def test_train_in_loop_cli(tmp_path):
    cmd = [sys.executable, str(ROOT / "tools" / "train_in_loop.py"), str(MODEL), "--epochs", "1",
           "--no-progress", "--json", str(tmp_path / "r.json"), "--out-device",
           str(tmp_path / "d.npz")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=HANG_SECONDS)
    assert res.returncode == 0, res.stderr
    assert "after in-the-loop training" in res.stdout
    assert (tmp_path / "d.npz").exists() and (tmp_path / "r.json").exists()
    bad = subprocess.run(cmd[:2] + [str(tmp_path / "missing.onnx")], capture_output=True,
                         text=True, timeout=HANG_SECONDS)
    assert bad.returncode == 2 and "error:" in bad.stderr and "Traceback" not in bad.stderr


def test_in_the_loop_training_writes_recurrent_weights(task):
    from edgelearn.train import init_network
    _, tr, _ = task
    net = init_network(32, [16], 10, np.random.default_rng(0), recurrent=True, bias=True,
                       meta={"readout": "mean"})
    tgt = SubstrateTarget("pcm", 0)
    tgt.load(net)
    assert set(tgt.read_weights()) == {"hidden0", "hidden0.recurrent", "readout"}
    v0 = tgt.get_weights()["hidden0.recurrent"]
    trained, hist = train_in_loop(tgt, net, tr.subset(np.arange(64)),
                                  TrainConfig(epochs=1, batch_size=32, lr=1e-2, readout="mean"),
                                  progress=False)
    assert not np.array_equal(tgt.get_weights()["hidden0.recurrent"], v0)
    np.testing.assert_array_equal(tgt.device.base.layer("hidden0").bias,
                                  trained.layer("hidden0").bias)      # digital bias written


def test_software_features_match_an_ideal_device(task):
    from edgelearn.targets.substrate import copy_head, pretrain_head, software_features
    net, tr, te = task
    tgt = SubstrateTarget("ideal", 0)
    tgt.load(net)
    learner = OnDeviceLearner(tgt)
    x = te.x[:16]
    raw = learner.observe(np.ascontiguousarray(x.transpose(1, 0, 2), dtype=np.float32))[2]
    np.testing.assert_allclose(software_features(net, x), raw, rtol=1e-6, atol=1e-6)
    head = pretrain_head(net, tr.subset(np.arange(64)), AdaptConfig(), epochs=1)
    twin = copy_head(head)
    twin.weights[0][0, 0] += 1.0
    assert head.weights[0][0, 0] != twin.weights[0][0, 0]


def test_deployed_substrate_classifies_with_the_bundle_head():
    """`deploy --target substrate` starts from the model's pretrained head and its feature
    normalisation (as host and boards do), frozen twin included; on the ideal chip the
    features are the float model's, so the head's prediction is the host computation's."""
    from edgelearn.adapt.bundle import load_bundle, plan_for
    from edgelearn.adapt.session import make_target
    from edgelearn.cli import build_parser
    from edgelearn.targets.spec import parse_target
    from edgelearn.targets.substrate import software_features

    b = load_bundle(ROOT / "models" / "speech_digits.onnx")
    args = build_parser().parse_args(["deploy", "m", "--budget", "256KiB"])
    plan = plan_for(b, args)
    for p in (plan, plan.without_learning()):
        t = make_target(parse_target("substrate:ideal"), b, p)
        lr = t.learner
        assert lr is not None and lr.classifies
        for W, W0 in zip(lr.head.weights, b.head.head.weights):
            np.testing.assert_array_equal(W, W0)
        np.testing.assert_array_equal(lr.mu, b.head.mean)
        np.testing.assert_array_equal(lr.sd, b.head.std)
    from edgelearn.data import load_speech_digits
    x = load_speech_digits("new_user").x[:6]
    t.set_learning(False, False)
    feats = software_features(b.network, x)
    for i in range(6):
        res = t.infer(x[i])
        want = b.head.head.logits(b.head.normalise(feats[i]))[0]
        assert res.prediction == int(np.argmax(want))
