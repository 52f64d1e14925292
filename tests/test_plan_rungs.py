"""Every configuration the planner can choose is one the device engine runs: deploy each rung
of the ladder (for the richest request the CLI accepts) and measure plan == arena high-water."""

import itertools
from pathlib import Path

import numpy as np
import pytest

from edgelearn.adapt.bundle import Bundle, plan_for
from edgelearn.adapt.session import make_target
from edgelearn.cli import build_parser
from edgelearn.device.head import DeviceHead
from edgelearn.memory.planner import HeadShape, buffers_for, ladder, shapes_of
from edgelearn.model import Layer, Network
from edgelearn.quant.calibrate import quantize_network
from edgelearn.rules.hep import EnergyHead
from edgelearn.targets.spec import parse_target


def two_hidden_bundle() -> Bundle:
    """A 16-24-20-5 network (two hidden spiking layers, so every rung of the ladder exists)."""
    rng = np.random.default_rng(3)
    layers = (Layer("h0", rng.normal(0, 2.5 / 4, (24, 16)), alpha=0.8, beta=0.9),
              Layer("h1", rng.normal(0, 2.5 / 5, (20, 24)), alpha=0.8, beta=0.9,
                    recurrent=rng.normal(0, 0.05, (20, 20))),
              Layer("out", rng.normal(0, 0.3, (5, 20)), alpha=0.8, beta=0.9, spiking=False))
    net = Network(layers, name="two_hidden", meta={"readout": "max"})
    x = (rng.random((30, 32, 16)) < 0.2).astype(np.float32)
    qnet, _ = quantize_network(net, x)
    head = DeviceHead(EnergyHead((25, 8, 5), seed=0), np.zeros(25), np.ones(25))
    return Bundle(net, qnet, head, Path("two_hidden.onnx"))


def cli_choices(option: str) -> list:
    """The values ``deploy`` accepts for ``option`` ([None] if it has no such option)."""
    deploy = build_parser()._subparsers._group_actions[0].choices["deploy"]
    for action in deploy._actions:
        if option in action.option_strings:
            return list(action.choices)
    return [None]


def richest_requests() -> list[list[str]]:
    """Every combination of the deploy options that choose how LPL is stored and run."""
    out = []
    for variant, master in itertools.product(cli_choices("--lpl-variant"),
                                             cli_choices("--master")):
        flags = []
        if variant is not None:
            flags += ["--lpl-variant", variant]
        if master is not None:
            flags += ["--master", master]
        out.append(flags)
    return out


@pytest.mark.parametrize("flags", richest_requests(), ids=lambda f: " ".join(f) or "default")
def test_every_rung_is_deployed_and_measured(flags):
    bundle = two_hidden_bundle()
    x = (np.random.default_rng(5).random((4, 30, 16)) < 0.3).astype(np.uint8)
    parser = build_parser()
    args = parser.parse_args(["deploy", "m.onnx", "--budget", "256KiB", *flags])
    top = plan_for(bundle, args)
    rungs = ladder(top.requested, bundle.hidden_names)
    assert len(rungs) >= 5, rungs          # LPL on both, last only, hEP only, LPL only, none
    seen = []
    for cfg, _ in rungs:
        need = sum(b.nbytes for b in buffers_for(shapes_of(bundle.network), cfg, 4, False,
                                                 HeadShape(bundle.head.head.sizes)))
        args = parser.parse_args(["deploy", "m.onnx", "--budget", str(need), *flags])
        plan = plan_for(bundle, args)
        assert plan.config == cfg and plan.total_bytes == need
        target = make_target(parse_target("host"), bundle, plan, progress=False)
        target.set_learning(bool(plan.config.lpl_layers), plan.config.hep)
        for i, sample in enumerate(x):
            target.infer(sample)
            target.teach(i % 5)
        assert target.telemetry().arena_high_water == plan.total_bytes, cfg.describe()
        seen.append(cfg.describe())
    assert len(set(seen)) == len(seen)

