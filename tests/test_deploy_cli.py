"""`edgelearn plan / deploy / demo` end to end on the small Randman model (fast settings)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from edgelearn.adapt.checkpoint import load_checkpoint
from edgelearn.cli import main
from edgelearn.data import save_npz
from edgelearn.data.randman import randman_splits
from tests._hang import HANG_SECONDS

MODEL = "models/randman_small.onnx"


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    _, te = randman_splits(n_classes=10, n_units=32, n_steps=50, dim_manifold=2, alpha=2.0,
                           samples_per_class=200, seed=0)
    p = tmp_path_factory.mktemp("s") / "stream.npz"
    save_npz(te, p)
    return str(p)


def _one_line_error(capsys, rc, needle):
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert needle in err, err


def test_plan_json(capsys):
    assert main(["plan", MODEL, "--budget", "16KiB", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["total_bytes"] <= 16384 and plan["config"].startswith("LPL")
    assert plan["learning_bytes"] > 0 and plan["dropped"] == []


@pytest.mark.parametrize("target", ["host", "sim", "substrate:bss2", "tflite"])
def test_deploy_to_each_target(target, stream, tmp_path, capsys):
    report = tmp_path / "rep"
    rc = main(["deploy", MODEL, "--target", target, "--budget", "64KiB", "--adapt", stream,
               "--limit", "40", "--labels", "0.25", "--report", str(report), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0, out
    m = json.loads((report / "metrics.json").read_text())
    assert m["runs"]["adapted"]["samples"] == 40 and "frozen" in m["runs"]
    assert 0.0 <= m["runs"]["adapted"]["accuracy"] <= 1.0
    assert (report / "accuracy.png").stat().st_size > 1000
    if target in ("host", "sim"):
        assert m["memory"]["measured_high_water"] == m["memory"]["planned_total"]
        assert m["runs"]["adapted"]["labels"] == 10
        assert (report / "adapted_model.onnx").exists()
        assert (report / "adapted_model.head.npz").exists()
        assert m["runs"]["adapted"]["telemetry"]["lpl_updates"] > 0
    if target == "tflite":
        assert m["runs"]["adapted"]["labels"] == 0          # TFLite does not train
        assert "all learning (TensorFlow Lite does not train)" in m["plan"]["dropped"]


@pytest.mark.parametrize("args, needle", [
    (["--budget", "1KiB"], "inference alone needs"),
    (["--budget", "64KiB", "--target", "mars"], "unknown target 'mars'"),
    (["--budget", "64KiB", "--device", "pdp11"], "unknown device profile 'pdp11'"),
    (["--budget", "64KiB", "--target", "serial:/dev/does-not-exist"], "use --target sim"),
    (["--budget", "64KiB", "--adapt", "new_user"], "has 64 channels but the model expects 32"),
    (["--budget", "lots"], "cannot read size 'lots'"),
    # the substrate's learner has its own LPL: a rule preset there was silently not run
    (["--budget", "64KiB", "--target", "substrate:bss2", "--lpl-rule", "homeostasis"],
     "the substrate target runs its own LPL settings"),
    (["--budget", "64KiB", "--lpl-epoch", "3"], "--lpl-epoch: must be a power of two in [1, 64]"),
    (["--budget", "64KiB", "--lpl-epoch", "128"],
     "--lpl-epoch: must be a power of two in [1, 64], got 128"),
    (["--budget", "64KiB", "--lpl-epoch", "0"], "--lpl-epoch: must be a power of two in [1, 64], got 0"),
    (["--budget", "64KiB", "--lpl-epoch", "x"], "--lpl-epoch: expected an integer, got 'x'"),
    (["--budget", "64KiB", "--target", "substrate:bss2", "--lpl-epoch", "8"],
     "--lpl-epoch 8: the substrate target runs its own LPL settings"),
])
def test_deploy_bad_input(args, needle, capsys, tmp_path):
    rc = main(["deploy", MODEL, "--report", str(tmp_path / "r"), "--quiet"] + args)
    _one_line_error(capsys, rc, needle)
    assert not (tmp_path / "r").exists()


def test_plan_refuses_an_lpl_rule_the_substrate_would_not_run(capsys):
    """`edgelearn plan` says what `edgelearn deploy` would do: on a substrate target only the
    default --lpl-rule (the plan once charged a rule the substrate never runs)."""
    rc = main(["plan", MODEL, "--budget", "64KiB", "--target", "substrate:bss2",
               "--lpl-rule", "homeostasis"])
    _one_line_error(capsys, rc, "the substrate target runs its own LPL settings")
    assert main(["plan", MODEL, "--budget", "64KiB", "--target", "host",
                 "--lpl-rule", "homeostasis"]) == 0
    rc = main(["plan", MODEL, "--budget", "64KiB", "--target", "substrate:bss2",
               "--lpl-epoch", "4"])
    _one_line_error(capsys, rc, "leave --lpl-epoch at 1")


def test_plan_shows_and_charges_the_learning_epoch(capsys):
    """`edgelearn plan --lpl-epoch 8`: the epoch sums (4 (n_in + n_out + 1) B per layer) and
    the epoch means in lpl.scratch (4 (n_in + n_out) B) are charged, and the plan says it."""
    plans = {}
    for k in ("1", "8"):
        assert main(["plan", MODEL, "--budget", "64KiB", "--lpl-epoch", k, "--json"]) == 0
        plans[k] = json.loads(capsys.readouterr().out)
    assert "learning epoch 8 steps" in plans["8"]["config"]
    assert "epoch" not in plans["1"]["config"]
    bufs = {k: {b["name"]: b["bytes"] for b in p["buffers"]} for k, p in plans.items()}
    extra = set(bufs["8"]) - set(bufs["1"])
    assert extra and all(".lpl.epoch_" in n for n in extra)
    grown = sum(bufs["8"][n] for n in extra) + bufs["8"]["lpl.scratch"] - \
        bufs["1"]["lpl.scratch"]
    assert plans["8"]["learning_bytes"] - plans["1"]["learning_bytes"] == grown > 0


def test_killed_run_resumes_without_corrupt_checkpoint(stream, tmp_path):
    report = tmp_path / "rep"
    cmd = [sys.executable, "-m", "edgelearn", "deploy", MODEL, "--target", "host", "--budget",
           "64KiB", "--adapt", stream, "--limit", "200", "--report", str(report), "--quiet",
           "--no-baseline"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = report / "checkpoint.npz"
    deadline = time.time() + HANG_SECONDS
    while time.time() < deadline and not ckpt.exists():
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists(), "no checkpoint was written before the kill"
    arrays, doc = load_checkpoint(ckpt)           # readable: written atomically
    assert 0 < doc["next"] <= 200
    assert not [p for p in os.listdir(report) if p.endswith(".tmp")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=HANG_SECONDS)
    assert out.returncode == 0, out.stderr
    m = json.loads((report / "metrics.json").read_text())
    assert m["runs"]["adapted"]["resumed_from"] >= doc["next"]
    assert m["runs"]["adapted"]["samples"] == 200
    assert "resumed from sample" in out.stdout
    # the telemetry counts the whole run (as an uninterrupted one), not the part after resume
    whole = tmp_path / "whole"
    cmd[cmd.index(str(report))] = str(whole)
    assert subprocess.run(cmd, capture_output=True, timeout=HANG_SECONDS).returncode == 0
    w = json.loads((whole / "metrics.json").read_text())
    for k in ("steps", "hep_updates"):
        assert m["runs"]["adapted"]["telemetry"][k] == w["runs"]["adapted"]["telemetry"][k], k


def test_repeat_run_says_it_resumes_and_fresh_starts_over(stream, tmp_path, capsys):
    report = tmp_path / "rep"
    cmd = ["deploy", MODEL, "--target", "host", "--budget", "64KiB", "--adapt", stream,
           "--limit", "30", "--report", str(report), "--no-baseline"]
    assert main(cmd) == 0
    assert "starting fresh" in capsys.readouterr().out
    assert main(cmd) == 0
    out = capsys.readouterr().out
    assert "resumed from sample 30 of 30" in out and "--fresh starts over" in out
    m = json.loads((report / "metrics.json").read_text())
    assert m["runs"]["adapted"]["resumed_from"] == 30
    steps = m["runs"]["adapted"]["telemetry"]["steps"]
    assert steps >= 30 * 50
    assert main(cmd + ["--fresh"]) == 0
    assert "starting fresh" in capsys.readouterr().out
    m = json.loads((report / "metrics.json").read_text())
    assert m["runs"]["adapted"]["resumed_from"] == 0
    assert m["runs"]["adapted"]["telemetry"]["steps"] == steps


def test_tflite_target_writes_its_file_and_names_its_row(stream, tmp_path):
    """TFLite: the .tflite it runs is written, the plan's image is that file, its run is
    'deployed' (not 'adapted'), it equals the host engine's frozen run exactly, and LiteRT
    prints nothing on stderr."""
    report = tmp_path / "rep"
    proc = subprocess.run([sys.executable, "-m", "edgelearn", "deploy", MODEL, "--target",
                           "tflite", "--budget", "64KiB", "--adapt", stream, "--limit", "40",
                           "--report", str(report)], capture_output=True, text=True,
                          timeout=HANG_SECONDS)
    assert proc.returncode == 0, proc.stderr
    assert "INFO" not in proc.stderr and "XNNPACK" not in proc.stderr, proc.stderr
    m = json.loads((report / "metrics.json").read_text())
    tfl = report / "deployed_model.tflite"
    assert tfl.stat().st_size == m["plan"]["image_bytes"]
    run_, frozen = m["runs"]["adapted"], m["runs"]["frozen"]
    assert run_["name"] == "deployed" and run_["labels"] == 0
    assert run_["accuracy"] == frozen["accuracy"]
    assert "deployed " in proc.stdout and "adapted " not in proc.stdout


def test_deploy_to_a_board_on_a_serial_url(stream, tmp_path, capsys):
    """serial:URL with a firmware_sim process serving a TCP socket (a board on a port)."""
    proc = subprocess.Popen([sys.executable, "-m", "firmware_sim", "--port",
                             "socket-server://127.0.0.1:0", "--window", "2", "--ram", "65536"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = ""
        deadline = time.time() + HANG_SECONDS
        while time.time() < deadline and not url.startswith("socket://"):
            url = proc.stdout.readline().strip()
        assert url.startswith("socket://"), url
        report = tmp_path / "rep"
        rc = main(["deploy", MODEL, "--target", f"serial:{url}", "--budget", "64KiB",
                   "--adapt", stream, "--limit", "20", "--report", str(report), "--quiet"])
        assert rc == 0, capsys.readouterr().err
        m = json.loads((report / "metrics.json").read_text())
        assert m["memory"]["measured_high_water"] == m["memory"]["planned_total"]
        assert m["runs"]["adapted"]["samples"] == 20
    finally:
        proc.terminate()
        proc.wait(timeout=HANG_SECONDS)


def test_guard_rolls_back_a_diverging_device(stream):
    """A real engine whose head is poisoned (NaN) after some labels is rolled back."""
    from edgelearn.adapt.bundle import load_bundle
    from edgelearn.adapt.guard import GuardParams
    from edgelearn.adapt.loop import LoopConfig, run_adaptation
    from edgelearn.data import load_npz
    from edgelearn.device.engine import EngineConfig
    from edgelearn.targets.host import HostTarget

    class Poisoned(HostTarget):
        taught = 0

        def teach(self, label):
            super().teach(label)
            self.taught += 1
            if self.taught == 6:
                self.engine.head_w[0][0, 0] = np.nan
                self.engine._sync_head_from_arena()

    b = load_bundle(MODEL)
    ds = load_npz(stream)
    t = Poisoned(b.qnet, 65536, b.head, EngineConfig(readout="max"))
    res = run_adaptation(t, ds.x[:60], ds.y[:60],
                         LoopConfig(lpl=False, hep=True, label_fraction=0.5, checkpoint=False,
                                    guard=GuardParams(check_every=10, held_in=0)),
                         progress=False)
    assert res.rollbacks and "non-finite" in res.rollbacks[0]["reason"]
    assert all(np.all(np.isfinite(v)) for k, v in t.get_weights().items() if k.startswith("head"))


def test_adapt_on_a_board_that_keeps_its_model(stream, tmp_path, capsys):
    flash = tmp_path / "board.flash"
    target = f"serial:sim?flash_file={flash}&window=2&ram=65536"
    common = ["--target", target, "--budget", "64KiB", "--quiet"]
    # a fresh board holds no model: adapt refuses and changes nothing
    rc = main(["adapt", MODEL, "--adapt", stream, "--limit", "10"] + common)
    _one_line_error(capsys, rc, "holds no model")
    assert main(["deploy", MODEL] + common) == 0
    report = tmp_path / "rep"
    rc = main(["adapt", MODEL, "--adapt", stream, "--limit", "20", "--report", str(report)]
              + common)
    assert rc == 0, capsys.readouterr().err
    m = json.loads((report / "metrics.json").read_text())
    assert m["runs"]["adapted"]["samples"] == 20
    rc = main(["adapt", "models/speech_digits.onnx", "--adapt", "new_user", "--limit", "5"]
              + common)
    _one_line_error(capsys, rc, "not 'speech_digits.onnx'")


def test_board_upload_gives_deploys_image_so_adapt_finds_it(stream, tmp_path, capsys):
    """`edgelearn board upload MODEL.onnx` quantizes with deploy's calibration (the model's
    .calib.npz), so `edgelearn adapt MODEL` recognises the board's model by its CRC."""
    target = f"sim?flash_file={tmp_path / 'b.flash'}&window=2"
    assert main(["board", "--port", target, "upload", MODEL]) == 0
    capsys.readouterr()
    rc = main(["adapt", MODEL, "--target", f"serial:{target}", "--budget", "64KiB", "--adapt",
               stream, "--limit", "10", "--report", str(tmp_path / "rep"), "--quiet"])
    assert rc == 0, capsys.readouterr().err


def test_quantize_step_keeps_the_head(stream, tmp_path, capsys):
    """The README's quantize step: the quantized model deploys with the model's hEP head."""
    out = tmp_path / "m.q.onnx"
    proc = subprocess.run([sys.executable, "tools/quantize.py", MODEL, "--calib",
                           "models/randman_small.calib.npz", "-o", str(out)],
                          capture_output=True, text=True, timeout=HANG_SECONDS)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "m.q.head.npz").exists()
    report = tmp_path / "rep"
    rc = main(["deploy", str(out), "--budget", "64KiB", "--adapt", stream, "--limit", "20",
               "--labels", "0.5", "--report", str(report)])
    assert rc == 0
    assert "head: m.q.head.npz" in capsys.readouterr().out
    m = json.loads((report / "metrics.json").read_text())
    assert m["runs"]["adapted"]["labels"] == 10 and m["plan"]["config"].endswith("hEP head")


@pytest.mark.parametrize("labels, rule, epoch, hep_updates", [
    ("0", "slow+homeostasis", 8, False), ("0.5", "lpl", 1, True)])
def test_demo_runs_the_setting_measured_best_for_its_labels(labels, rule, epoch, hep_updates,
                                                            tmp_path, capsys):
    """Label-free, the demo runs slow+homeostasis at a learning epoch of 8 and no hEP (the
    setting that beats homeostasis alone, docs/learning-rules.md section 9); with labels the
    default rule and hEP. The report names the rule and epoch that ran."""
    out = tmp_path / "demo"
    assert main(["demo", "--target", "host", "--labels", labels, "--limit", "12",
                 "--report", str(out)]) == 0
    text = capsys.readouterr().out
    assert ("no labels: LPL preset slow+homeostasis" in text) == (labels == "0")
    m = json.loads((out / "metrics.json").read_text())
    assert (m["lpl_rule"], m["lpl_epoch"]) == (rule, epoch)
    tel = m["runs"]["adapted"]["telemetry"]
    assert tel["lpl_updates"] > 0
    assert (tel["hep_updates"] > 0) == hep_updates


@pytest.mark.parametrize("first, second", [
    (["--lpl-epoch", "8"], ["--lpl-epoch", "16"]),
    (["--lpl-epoch", "8"], ["--lpl-epoch", "4"]),
    (["--lpl-rule", "homeostasis"], ["--lpl-rule", "lpl+homeostasis"]),
    ([], ["--lpl-rule", "homeostasis"])])
def test_rerun_with_other_lpl_settings_starts_fresh(first, second, stream, tmp_path, capsys):
    """A repeat run into the same report folder resumes only its own checkpoint: another LPL
    rule or learning epoch (same starting weights and state shapes) is another run. Such a
    checkpoint was once resumed: refused as 'damaged' (step count out of the new warm-up) or,
    worse, continued under the new settings."""
    report = tmp_path / "rep"
    base = ["deploy", MODEL, "--target", "host", "--budget", "64KiB", "--adapt", stream,
            "--limit", "6", "--no-baseline", "--report", str(report)]
    assert main(base + first) == 0
    capsys.readouterr()
    assert main(base + second) == 0
    out = capsys.readouterr().out
    assert "starting fresh: the checkpoint" in out and "resumed" not in out, out
    assert main(base + second) == 0
    assert "resumed from sample 6 of 6" in capsys.readouterr().out
