"""tools/train.py: end-to-end export, reproduction of the shipped Randman model, bad input."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"


def _tool():
    spec = importlib.util.spec_from_file_location("train_tool", ROOT / "tools" / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _card_command(name: str) -> list[str]:
    """The exact training command written in models/<name>.md (first ```sh block)."""
    text = (MODELS / f"{name}.md").read_text()
    block = re.search(r"```sh\n(.*?)```", text, re.S).group(1)
    argv = shlex.split(block.replace("\\\n", " "))
    assert argv[:2] == ["python", "tools/train.py"], argv[:2]
    return argv[2:]


def _with_out(argv: list[str], out: Path) -> list[str]:
    argv = list(argv)
    argv[argv.index("--out") + 1] = str(out)
    return argv + ["--no-progress"]


# a hang guard, not a speed claim: training time depends on the machine and its load
HANG_SECONDS = 1800


def _run_card(argv: list[str], timeout: float = HANG_SECONDS, threads: int | None = None
              ) -> None:
    """Run the tool as the card says, in a fresh process (BLAS threads as the tool sets them,
    or ``threads`` of them: another summation order, as on another machine)."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    if threads is not None:
        env.update(OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "train.py"), *argv], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]


# Training is chaotic: a different BLAS build or CPU (another summation order) changes the
# weights from the first epochs on, so weights equal to the shipped file are not a property
# the project has across machines. What holds on any machine: the card's command trains a
# network of the stated quality (the bound below: 24 training seeds on this machine gave
# 91.0-96.25 % test accuracy, median 94.75 %), and on one machine the same command gives the
# same weights (the tool pins BLAS to one thread). Two BLAS threads already change the weights
# by up to 0.3 here (what a fresh machine showed), which the test uses as "another machine".
RANDMAN_TEST_FLOOR = 0.90


def test_randman_card_command_trains_a_model_of_the_stated_quality(tmp_path):
    from edgelearn.io import load_network

    out, again, other = tmp_path / "rm.onnx", tmp_path / "rm2.onnx", tmp_path / "rm3.onnx"
    _run_card(_with_out(_card_command("randman_small"), out))
    _run_card(_with_out(_card_command("randman_small"), other), threads=2)
    for path in (out, other):
        hist = json.loads(path.with_suffix(".history.json").read_text())
        assert hist["accuracy"]["test"] >= RANDMAN_TEST_FLOOR, (path.name, hist["accuracy"])
    net, ref = load_network(out), load_network(MODELS / "randman_small.onnx")
    assert net.meta["readout"] == "max"
    assert [(la.name, la.weight.shape) for la in net.layers] == \
        [(la.name, la.weight.shape) for la in ref.layers]
    assert len(hist["epochs"]) == 15 and hist["footprint"]["parameters"] == net.n_parameters
    _run_card(_with_out(_card_command("randman_small"), again))
    for a, b in zip(net.layers, load_network(again).layers):
        np.testing.assert_array_equal(a.weight, b.weight)


@pytest.mark.slow
def test_speech_card_command_trains_a_model_of_the_stated_quality(tmp_path):
    """The speech card's command: test accuracy at least 85 % (shipped 88.9 %; over its last
    10 epochs it stayed within 86.3-89.4 %) and new_user below test by at least 20 points
    (the adaptation gap the stream exists for; shipped 35.7)."""
    out = tmp_path / "sd.onnx"
    _run_card(_with_out(_card_command("speech_digits"), out), timeout=3600)
    hist = json.loads(out.with_suffix(".history.json").read_text())
    acc = hist["accuracy"]
    assert acc["test"] >= 0.85 and acc["test"] - acc["new_user"] >= 0.20, acc
    from edgelearn.io import load_network

    net, ref = load_network(out), load_network(MODELS / "speech_digits.onnx")
    assert net.meta["readout"] == "mean"
    assert [(la.name, la.weight.shape) for la in net.layers] == \
        [(la.name, la.weight.shape) for la in ref.layers]


def _train_drift_rms(net) -> float:
    """rms of the deployed LPL rule's expected update on the first 256 training samples (float
    network, edgelearn.train.lpl_aux.device_drift with the rule's deployed constants)."""
    from edgelearn.data import load_speech_digits
    from edgelearn.rules import lpl_rate
    from edgelearn.train import forward
    from edgelearn.train.lpl_aux import device_drift, filter_rate

    p = lpl_rate.deploy_default()
    x = np.swapaxes(load_speech_digits("train").x[:256], 0, 1).astype(np.float64)
    s = forward(net, x, np.float64).layers[0].spikes
    return float(np.sqrt(np.mean(device_drift(s, x, filter_rate(p.tau_post), p.lam, p.xi) ** 2)))


@pytest.mark.slow
def test_speech_lpl_card_command_trains_a_model_near_the_rules_fixed_point(tmp_path):
    """models/speech_digits_lpl.md: the headline recipe with the device-rule drift loss
    (--lpl-drift 3000). Holds on any machine: test accuracy at least 85 % (shipped 89.7 %), and
    the deployed LPL rule's expected update on training data at most half that of the model
    trained without the term (shipped files: 0.0125 -> 0.0039 rms per step, ratio 0.31)."""
    from edgelearn.io import load_network

    out = tmp_path / "sdl.onnx"
    _run_card(_with_out(_card_command("speech_digits_lpl"), out), timeout=3600)
    acc = json.loads(out.with_suffix(".history.json").read_text())["accuracy"]
    assert acc["test"] >= 0.85, acc
    trained = _train_drift_rms(load_network(out))
    plain = _train_drift_rms(load_network(MODELS / "speech_digits.onnx"))
    assert trained <= 0.5 * plain, (trained, plain)


def _npz(path: Path, **arrays) -> Path:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def test_bad_input_exits_2_with_one_line(tmp_path, capsys):
    tool = _tool()
    rng = np.random.default_rng(0)
    x = (rng.random((20, 10, 4)) < 0.2).astype(np.uint8)
    good = _npz(tmp_path / "good.npz", x=x, y=np.arange(20) % 3, n_classes=np.int64(3))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 not really a zip")
    cases = {
        "garbage": (["--train-file", str(garbage)], "not a readable npz"),
        "missing": (["--train-file", str(tmp_path / "nope.npz")], "does not exist"),
        "label": (["--train-file", str(_npz(tmp_path / "lab.npz", x=x, y=np.arange(20) % 5,
                                             n_classes=np.int64(3)))], "out of range"),
        "empty": (["--train-file", str(_npz(tmp_path / "empty.npz", x=x[:0], y=np.zeros(0, int),
                                             n_classes=np.int64(3)))], "empty"),
        "no_y": (["--train-file", str(_npz(tmp_path / "noy.npz", x=x))], "missing key 'y'"),
        "test_channels": (["--train-file", str(good), "--test-file",
                           str(_npz(tmp_path / "c.npz", x=x[:, :, :3], y=np.arange(20) % 3))],
                          "C=3"),
        "tau": (["--train-file", str(good), "--tau-mem", "-1"], "tau-mem"),
        "lpl-aux": (["--train-file", str(good), "--lpl-aux", "-1"], "--lpl-aux must be finite"),
        "batch": (["--train-file", str(good), "--batch", "0"], "--batch "),
        "out": (["--train-file", str(good), "--out", str(tmp_path / "x.txt")], ".onnx"),
    }
    for name, (extra, msg) in cases.items():
        argv = ["--data", "npz", "--epochs", "1", "--hidden", "4", "--no-progress",
                "--out", str(tmp_path / f"{name}.onnx")] + extra
        assert tool.main(argv) == 2, name
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("train: error:") and msg in err[-1], (name, err[-1])
        assert "Traceback" not in "\n".join(err)
        assert not (tmp_path / f"{name}.onnx").exists()
    # and the good file trains and exports
    argv = ["--data", "npz", "--train-file", str(good), "--test-file", f"held={good}",
            "--epochs", "2", "--hidden", "4", "--no-progress", "--out", str(tmp_path / "g.onnx")]
    assert tool.main(argv) == 0
    hist = json.loads((tmp_path / "g.history.json").read_text())
    assert set(hist["accuracy"]) == {"train", "held"} and len(hist["epochs"]) == 2


def test_speech_path_runs_and_reports_every_split(tmp_path):
    from edgelearn.io import load_network

    out = tmp_path / "tiny.onnx"
    argv = ["--data", "speech", "--limit", "64", "--epochs", "1", "--hidden", "8",
            "--readout", "mean", "--no-progress", "--out", str(out)]
    assert _tool().main(argv) == 0
    hist = json.loads(out.with_suffix(".history.json").read_text())
    assert set(hist["accuracy"]) == {"train", "test", "new_user"}
    assert hist["dataset"]["n_train"] == 64 and hist["dataset"]["channels"] == 64
    assert set(hist["epochs"][0]["eval_acc"]) == {"new_user"}
    net = load_network(out)
    assert net.meta["readout"] == "mean" and net.meta["accuracy_test"]
