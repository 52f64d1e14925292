"""The arithmetic behind the label-free drift record (bench/bench_lpl_drift.summarise):
recovery = (method - frozen) / (frozen without drift - frozen) per seed, wins over homeostasis,
float minus fixed; recovery only where every seed lost accuracy to the drift."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.bench_lpl_drift import DRIFTS, condition_sets, float_features, summarise


def test_recovery_wins_and_float_minus_fixed_per_seed():
    acc = {
        "none": {"frozen": [0.9, 0.9], "homeostasis": [0.88, 0.89], "LPL": [0.9, 0.91],
                 "LPL (float)": [0.9, 0.9]},
        "gain": {"frozen": [0.5, 0.7], "homeostasis": [0.7, 0.8], "LPL": [0.5, 0.85],
                 "LPL (float)": [0.55, 0.8]},
        "warp": {"frozen": [0.92, 0.8], "homeostasis": [0.9, 0.85], "LPL": [0.9, 0.8],
                 "LPL (float)": [0.9, 0.8]},
    }
    s = summarise(acc, ["none", "gain", "warp"], ["frozen", "homeostasis", "LPL", "LPL (float)"])
    hom = s["gain"]["homeostasis"]
    assert hom["recovery"]["values"] == pytest.approx([0.2 / 0.4, 0.1 / 0.2])
    assert hom["vs_frozen"]["mean"] == pytest.approx(0.15)
    assert hom["accuracy"]["se"] == pytest.approx(np.std([0.7, 0.8], ddof=1) / np.sqrt(2))
    lpl = s["gain"]["LPL"]
    assert lpl["recovery"]["values"] == pytest.approx([0.0, 0.75])
    assert lpl["wins_vs_homeostasis"] == 1
    assert lpl["vs_homeostasis"]["values"] == pytest.approx([-0.2, 0.05])
    assert s["gain"]["LPL (float)"]["float_minus_fixed"]["values"] == pytest.approx([0.05, -0.05])
    assert "recovery" not in s["warp"]["LPL"]          # seed 0 lost nothing to the warp
    assert "recovery" not in s["none"]["LPL"]
    assert "wins_vs_homeostasis" not in s["gain"]["homeostasis"]


def test_tilt_condition_holds_out_at_the_full_tilt():
    """The tilt condition: the stream starts untouched and the held-out set passes through the
    full 20 dB tilt (lowest channel +10 dB, highest -10 dB)."""
    from edgelearn.data import load_speech_digits
    test = load_speech_digits("test")
    xs, _, xe, ye = condition_sets("tilt", 0, test, None)
    xs0, _, xe0, ye0 = condition_sets("none", 0, test, None)
    assert DRIFTS["tilt"].severity == 20.0 and np.array_equal(ye, ye0)
    assert np.array_equal(xs[0], xs0[0])
    ratio = xe.astype(float).sum(axis=(0, 1)) / xe0.astype(float).sum(axis=(0, 1))
    assert ratio[0] == pytest.approx(10 ** 0.5, rel=0.05)
    assert ratio[-1] == pytest.approx(10 ** -0.5, rel=0.05)


def test_float_twin_sees_the_integer_input():
    """The float network is fed the device's integer input (counts clipped to the 4-bit signed
    input range, at most 7), not the raw counts: before this, a gain drift's large counts
    reached the float twin unclipped and cost it 4.2 points on its own."""
    from edgelearn.adapt.bundle import load_bundle
    from edgelearn.kernels.lif_fixed import dequantize
    bundle = load_bundle("models/speech_digits.onnx")
    net = dequantize(bundle.qnet)
    x = (np.random.default_rng(0).poisson(1.5, size=(3, 100, 64)) * 4).astype(np.uint8)
    assert bundle.qnet.input_bits == 4 and x.max() > 7
    f = float_features(bundle, net, x, "max")
    assert np.array_equal(f, float_features(bundle, net, np.minimum(x, 7), "max"))
    assert not np.array_equal(f, float_features(bundle, net, x // 4, "max"))


@pytest.mark.parametrize("argv", [
    ["bench/bench_lpl_drift.py", "--lpl-eta", "-1", "--seeds", "1"],
    ["bench/bench_lpl_drift.py", "--seeds", "0"],
    ["bench/bench_lpl_drift.py", "--limit", "-1"],
    ["bench/bench_lpl_drift.py", "--conditions", "none,nonesuch"],
    ["bench/bench_lpl_drift.py", "--seeds", "1", "--methods", "LPL"],
    ["bench/bench_lpl_drift.py", "--presets", "slow+homeostasis,fast", "--seeds", "1"],
    ["bench/bench_lpl_drift.py", "--presets", "homeostasis", "--seeds", "1"],
    ["bench/bench_lpl_drift.py", "--lpl-epoch", "3", "--seeds", "1"],
    ["bench/bench_lpl_fixed_point.py", "no/such/model.onnx"],
    ["bench/bench_lpl_fixed_point.py", "models/speech_digits.onnx", "--samples", "-1"],
])
def test_bad_input_is_one_line_and_exit_2(argv, tmp_path):
    """A refused value (the LPL rule's eta, no seeds, a negative count, an unknown condition,
    a learning epoch that is not a power of two,
    methods without frozen, an unknown preset or one named like a bench method) or a missing
    model: one stderr line, exit 2, no report."""
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, *argv, "--out", str(tmp_path / "r")], cwd=root,
                       capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(root)})
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and ": error: " in lines[0], r.stderr[-2000:]
    assert not list(tmp_path.iterdir())
