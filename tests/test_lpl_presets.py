"""LPL presets (rules/lpl_presets) through the planner, the targets and the CLI."""

import dataclasses
import json

import numpy as np
import pytest

from edgelearn.adapt.bundle import load_bundle
from edgelearn.adapt.reference import lpl_reference_weights
from edgelearn.adapt.session import engine_config, make_target
from edgelearn.cli import main
from edgelearn.data import save_npz
from edgelearn.data.randman import randman_splits
from edgelearn.errors import ParameterError
from edgelearn.memory import get_profile
from edgelearn.memory.planner import AdaptConfig, plan_deployment, shapes_of
from edgelearn.rules import lpl_presets, lpl_rate
from edgelearn.targets.spec import parse_target

MODEL = "models/randman_small.onnx"


def test_presets_switch_the_documented_terms():
    assert lpl_presets.preset("lpl") == lpl_rate.deploy_default()
    hom = lpl_presets.preset("homeostasis")
    assert hom.pred == 0 and hom.lam == 0 and hom.lam_hom > 0 and hom.rate_target is None
    both = lpl_presets.preset("lpl+homeostasis")
    assert both.pred > 0 and both.lam > 0 and both.lam_hom == hom.lam_hom
    slow = lpl_presets.preset("slow+homeostasis")
    assert slow.pred == 100 and slow.lam == 0 and slow.lam_decorr == 0
    assert dataclasses.replace(slow, pred=0.0) == hom      # homeostasis + the slowness term
    assert lpl_presets.needs_reference(slow)
    assert lpl_presets.needs_reference(hom) and not lpl_presets.needs_reference(
        lpl_presets.preset("lpl"))
    with pytest.raises(ParameterError, match="unknown LPL preset 'fast'"):
        lpl_presets.preset("fast")


def test_plan_charges_the_per_neuron_target():
    b = load_bundle(MODEL, quantize=False)
    shapes = shapes_of(b.network)
    prof = get_profile("cortex-m4-256k")
    plans = {n: plan_deployment(shapes, 64 * 1024, prof,
                                AdaptConfig(lpl_layers=b.hidden_names, lpl=lpl_presets.preset(n)))
             for n in ("lpl", "homeostasis")}
    n_out = sum(la.n_out for la in b.network.layers if la.name in b.hidden_names)
    assert plans["homeostasis"].learning_bytes - plans["lpl"].learning_bytes == 4 * n_out


@pytest.fixture(scope="module")
def randman_x():
    _, te = randman_splits(n_classes=10, n_units=32, n_steps=50, dim_manifold=2, alpha=2.0,
                           samples_per_class=200, seed=0)
    return te


@pytest.mark.parametrize("rule", ["homeostasis", "slow+homeostasis"])
def test_host_and_simulated_board_start_from_the_reference_and_stay_bit_identical(randman_x,
                                                                                    rule):
    b = load_bundle(MODEL)
    # a rate large enough that six samples move weights (the preset's moves ~1 LSB per 100)
    hom = dataclasses.replace(lpl_presets.preset(rule), eta=3e-4)
    plan = plan_deployment(shapes_of(b.network), 64 * 1024, get_profile("cortex-m4-256k"),
                           AdaptConfig(lpl_layers=b.hidden_names, hep=False, lpl=hom),
                           link=True)
    ref = lpl_reference_weights(b.qnet, engine_config(b, plan, 3), b.reference_inputs())
    got = {}
    boards = ("sim", "serial:sim?impl=c")          # the Python board and the C firmware build
    for kind in ("host",) + boards:
        with make_target(parse_target(kind), b, plan, seed=3, progress=False) as t:
            w0 = t.get_weights()
            for k, v in ref.items():                  # the upload is the reference state
                np.testing.assert_array_equal(w0[k], v, err_msg=f"{kind} {k}")
            t.set_learning(True, False)
            for x in randman_x.x[:6]:
                t.infer(x)
            got[kind] = t.get_weights()
    for kind in boards:
        assert set(got["host"]) == set(got[kind])
        for k in got["host"]:
            np.testing.assert_array_equal(got["host"][k], got[kind][k], err_msg=f"{kind} {k}")
    name = b.hidden_names[0]
    assert not np.array_equal(got["host"][f"{name}.weight"], b.qnet.layer(name).weight)
    assert not np.array_equal(got["host"][f"state.{name}.lpl.mean"],
                              ref[f"state.{name}.lpl.mean"])


def test_the_slowness_term_of_slow_homeostasis_moves_weights_on_the_device(randman_x):
    """slow+homeostasis differs from homeostasis only by pred: from the same reference state
    and stream, the host engine's weights after learning differ (the term reaches the device)."""
    b = load_bundle(MODEL)
    weights = {}
    for rule in ("homeostasis", "slow+homeostasis"):
        p = dataclasses.replace(lpl_presets.preset(rule), eta=3e-4)
        plan = plan_deployment(shapes_of(b.network), 64 * 1024, get_profile("cortex-m4-256k"),
                               AdaptConfig(lpl_layers=b.hidden_names, hep=False, lpl=p))
        with make_target(parse_target("host"), b, plan, seed=3, progress=False) as t:
            t.set_learning(True, False)          # from the uploaded reference state
            for x in randman_x.x[:6]:
                t.infer(x)
            weights[rule] = t.get_weights()[f"{b.hidden_names[0]}.weight"]
    assert not np.array_equal(weights["homeostasis"], weights["slow+homeostasis"])


def test_deploy_with_the_homeostasis_rule_keeps_plan_equal_to_measured(randman_x, tmp_path,
                                                                       capsys):
    p = tmp_path / "stream.npz"
    save_npz(randman_x, p)
    report = tmp_path / "rep"
    rc = main(["deploy", MODEL, "--target", "host", "--budget", "64KiB", "--adapt", str(p),
               "--limit", "30", "--lpl-rule", "homeostasis", "--no-hep", "--report",
               str(report), "--quiet", "--no-baseline"])
    assert rc == 0, capsys.readouterr().err
    m = json.loads((report / "metrics.json").read_text())
    assert m["memory"]["measured_high_water"] == m["memory"]["planned_total"]
    assert m["runs"]["adapted"]["telemetry"]["lpl_updates"] > 0
