"""The arithmetic behind the label-free drift record (bench/bench_lpl_drift.summarise):
recovery = (method - frozen) / (frozen without drift - frozen) per seed, wins over homeostasis,
float minus fixed; recovery only where every seed lost accuracy to the drift."""

import numpy as np
import pytest

from bench.bench_lpl_drift import summarise


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
