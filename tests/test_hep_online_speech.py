"""Online training of an hEP head on the speech model's head features (bench_hep_online_noise)."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "bench_hep_online_noise", ROOT / "bench" / "bench_hep_online_noise.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod._init(mod.speech_features())     # models/speech_digits.onnx and its data ship here
    return mod


def job(**kw):
    return {"sigma": 0.0, "nudges": 6, "steps": 60, "average": 50, "n_train": 600,
            "seed": 0, **kw}


def test_real_hep_within_one_point_of_exact_on_speech_features(bench):
    """600 single-sample updates, noise-free: real hEP (6 nudges, b = 0.5) vs exact gradients."""
    exact = bench.train_one(job(estimator="exact", amplitude=1.0))
    hep = bench.train_one(job(estimator="hep", amplitude=0.5))
    assert exact["test_accuracy"] > 0.6
    assert abs(hep["test_accuracy"] - exact["test_accuracy"]) <= 0.01, (hep, exact)
    assert hep["nonconverged"] == 0


@pytest.mark.slow
def test_under_strong_state_noise_real_hep_wins_at_equal_large_amplitude(bench):
    """sigma 1, b = 8, full epoch: centered EP's bias is large there, real hEP's is not
    (measured +11.2 / +8.5 points on seeds 0 / 1; over 6 seeds +7.8 +- 1.9, docs/hep.md).
    At each estimator's best amplitude they tie; that is the noise bound sum|w| >= 3."""
    for seed in (0, 1):
        kw = {"sigma": 1.0, "nudges": 4, "amplitude": 8.0, "seed": seed, "n_train": None}
        hep = bench.train_one(job(estimator="hep", **kw))
        cen = bench.train_one(job(estimator="centered", **kw))
        assert hep["test_accuracy"] >= cen["test_accuracy"] + 0.03, (seed, hep, cen)
