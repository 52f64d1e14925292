"""Online training of an hEP head on SNN features (hidden spike rates of models/randman_small)."""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_hep", ROOT / "bench" / "bench_hep.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def features():
    return _bench().snn_features()        # models/randman_small.onnx ships with the repo


def test_online_hep_matches_exact_training_on_snn_features(features):
    """400 online updates (one sample each): real hEP within 1 point of exact gradients."""
    Xtr, ytr, Xte, yte = features
    sub = (Xtr[:400], ytr[:400], Xte, yte)
    bench = _bench()
    exact = bench.train_online(sub, "exact", 0.5, 0.0, 1)
    hep = bench.train_online(sub, "hep", 0.5, 0.0, 1)
    assert exact["final"] > 0.6
    assert abs(hep["final"] - exact["final"]) <= 0.01, (hep["final"], exact["final"])
    assert hep["nonconverged"] == 0


@pytest.mark.slow
def test_online_hep_full_stream_and_under_state_noise(features):
    """2 epochs over 1600 samples: hEP within 1 point of exact; under state noise 0.1, hEP
    (4 nudges, b = 2) within 2 points of centered EP at b = 1 (measured: parity, see
    docs/hep.md; real hEP does not beat centered EP in online training under white state noise)."""
    bench = _bench()
    exact = bench.train_online(features, "exact", 0.5, 0.0, 2)
    hep = bench.train_online(features, "hep", 0.5, 0.0, 2)
    assert abs(hep["final"] - exact["final"]) <= 0.01
    noisy_hep = bench.train_online(features, "hep", 2.0, 0.1, 2, nudges=4)
    noisy_cen = bench.train_online(features, "centered", 1.0, 0.1, 2)
    assert noisy_hep["final"] >= noisy_cen["final"] - 0.02
    assert np.isfinite(noisy_hep["steps_per_update"])
