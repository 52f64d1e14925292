"""`edgelearn fleet` end to end: records, report, reproduction by `edgelearn deploy`, resume
after a real kill, failures, engines (local, Ray) and the federated round."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from edgelearn.cli import main
from edgelearn.data import Dataset, save_npz
from edgelearn.data.randman import randman_splits
from edgelearn.fleet.config import FleetConfig, ModelFiles
from edgelearn.fleet.engines import InlineEngine
from edgelearn.fleet.federated import fedavg
from edgelearn.fleet.run import run_fleet
from edgelearn.fleet.store import RESULTS, read_records
from tests._hang import HANG_SECONDS

MODEL = "models/randman_small.onnx"
VOICES = ["a+x", "a+y", "b+x", "b+y", "c+x", "c+y"]


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    """The Randman test split with six made-up voices (so users can be drawn)."""
    _, te = randman_splits(n_classes=10, n_units=32, n_steps=50, dim_manifold=2, alpha=2.0,
                           samples_per_class=200, seed=0)
    ds = Dataset(te.x, te.y, te.n_classes, "toy voices",
                 {"voice": np.arange(len(te)) % len(VOICES), "voices": VOICES})
    path = tmp_path_factory.mktemp("v") / "voices.npz"
    save_npz(ds, path)
    return str(path)


def _fleet_args(stream, report, n=6, *more):
    return ["fleet", MODEL, "--devices", str(n), "--target", "host", "--budget", "64KiB",
            "--streams", f"{stream}@user=voice,drift=none/noise:0..0.05", "--limit", "24",
            "--labels", "0.25", "--report", str(report), "--quiet", *more]


def _records(report):
    lines = (report / RESULTS).read_text().splitlines()
    return [json.loads(line) for line in lines]


def _strip(rec):
    return {k: v for k, v in rec.items() if k != "seconds"}


def test_fleet_records_report_and_worst_device_reproduces(voices, tmp_path, capsys):
    report = tmp_path / "fleet"
    assert main(_fleet_args(voices, report, 6, "--engine", "inline")) == 0
    out = capsys.readouterr().out
    recs = _records(report)
    assert sorted(r["device"] for r in recs) == list(range(6))
    assert all(r["status"] == "ok" and r["samples"] == 24 and r["labels"] == 6 for r in recs)
    assert all(r["gain"] == r["adapted"] - r["frozen"] for r in recs)
    assert {r["user"] for r in recs} <= set(VOICES)
    doc = json.loads((report / "fleet_report.json").read_text())
    gains = [r["gain"] for r in recs]
    assert doc["gain"]["p5"] == pytest.approx(np.percentile(gains, 5))
    assert doc["gain"]["median"] == pytest.approx(np.median(gains))
    assert doc["devices"] == {"requested": 6, "finished": 6, "ok": 6, "failed": 0}
    for name in ("gain_hist.png", "gain_cdf.png", "gain_by_user.png"):
        assert (report / name).stat().st_size > 1000, name
    assert "gain (points): p1" in out and "worst device" in out
    # the worst device, rerun alone by its `edgelearn deploy` command, gives the same figures
    worst = doc["worst"][0]
    assert worst["gain"] == min(gains)
    argv = shlex.split(worst["command"])
    assert argv[:2] == ["edgelearn", "deploy"]
    assert main(argv[1:] + ["--quiet"]) == 0
    m = json.loads((report / "worst" / f"device-{worst['device']:06d}" / "metrics.json")
                   .read_text())
    assert m["runs"]["adapted"]["accuracy"] == worst["adapted"]
    assert m["runs"]["frozen"]["accuracy"] == worst["frozen"]


def test_substrate_worst_device_reproduces_exactly(tmp_path):
    """A bss2 fleet with a mismatch range: the deploy command rebuilds the same chip."""
    report = tmp_path / "bss2"
    assert main(["fleet", "models/speech_digits.onnx", "--devices", "2", "--target",
                 "substrate:bss2", "--budget", "256KiB", "--mismatch", "0.5..1.5",
                 "--streams", "new_user@user=accent,drift=none/gain", "--limit", "12",
                 "--labels", "0.25", "--engine", "inline", "--report", str(report),
                 "--quiet"]) == 0
    doc = json.loads((report / "fleet_report.json").read_text())
    worst = doc["worst"][0]
    assert "@mismatch=" in worst["target"]
    assert main(shlex.split(worst["command"])[1:] + ["--quiet"]) == 0
    m = json.loads((report / "worst" / f"device-{worst['device']:06d}" / "metrics.json")
                   .read_text())
    assert m["runs"]["adapted"]["accuracy"] == worst["adapted"]
    assert m["runs"]["frozen"]["accuracy"] == worst["frozen"]


def test_resume_runs_only_missing_devices_and_cuts_a_torn_line(voices, tmp_path):
    report = tmp_path / "fleet"
    cfg = FleetConfig(model=MODEL, target="host", streams=f"{voices}@user=voice", budget="64KiB",
                      limit=16, devices=3)
    store, ran = run_fleet(cfg, report, InlineEngine(), progress=False)
    assert ran["fleet"]["ran"] == 3
    before = (report / RESULTS).read_bytes()
    with open(report / RESULTS, "ab") as fh:          # a kill in the middle of a write
        fh.write(b'{"device": 3, "phase": "fle')
    grown = FleetConfig(**{**cfg.to_json(), "devices": 5})
    store, ran = run_fleet(grown, report, InlineEngine(), progress=False)
    assert ran["fleet"]["ran"] == 2                   # devices 3 and 4 only
    data = (report / RESULTS).read_bytes()
    assert data.startswith(before)                    # finished devices kept, byte for byte
    recs = _records(report)
    assert [r["device"] for r in recs] == [0, 1, 2, 3, 4]
    # a grown fleet's devices are the devices a fresh fleet of that size gets
    fresh = tmp_path / "fresh"
    run_fleet(grown, fresh, InlineEngine(), progress=False)
    assert sorted(map(_strip, _records(fresh)), key=lambda r: r["device"]) == \
        [_strip(r) for r in recs]


def test_report_folder_of_another_fleet_is_refused(voices, tmp_path, capsys):
    report = tmp_path / "fleet"
    assert main(_fleet_args(voices, report, 2, "--engine", "inline")) == 0
    capsys.readouterr()
    rc = main(_fleet_args(voices, report, 2, "--engine", "inline", "--seed", "5"))
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "holds another fleet" in err, err
    assert main(_fleet_args(voices, report, 2, "--engine", "inline", "--seed", "5",
                            "--fresh")) == 0
    assert len(_records(report)) == 2


def test_lpl_rule_reaches_the_devices_the_identity_and_the_worst_command(voices, tmp_path,
                                                                         capsys):
    """`edgelearn fleet --lpl-rule R` plans every device with rule R (it was once accepted and
    ignored), is part of the fleet's identity, and the worst device's command repeats it."""
    from edgelearn.fleet.worker import Worker
    from edgelearn.rules import lpl_presets

    report = tmp_path / "homeo"
    assert main(_fleet_args(voices, report, 2, "--engine", "inline",
                            "--lpl-rule", "homeostasis")) == 0
    conf = json.loads((report / "fleet.json").read_text())["config"]
    cfg = FleetConfig.from_json(conf)
    assert cfg.lpl_rule == "homeostasis"
    worker = Worker(cfg, ModelFiles.read(cfg))
    try:
        assert worker.plan.requested.lpl == lpl_presets.preset("homeostasis")
        assert worker.plan.requested.lpl != lpl_presets.preset("lpl")
    finally:
        worker.close()
    files = ModelFiles.read(cfg)
    default = FleetConfig.from_json(dict(conf, lpl_rule="lpl"))
    assert cfg.identity(files) != default.identity(files)
    worst = json.loads((report / "fleet_report.json").read_text())["worst"][0]
    argv = shlex.split(worst["command"])
    assert argv[argv.index("--lpl-rule") + 1] == "homeostasis"
    assert main(argv[1:] + ["--quiet"]) == 0
    m = json.loads((report / "worst" / f"device-{worst['device']:06d}" / "metrics.json")
                   .read_text())
    assert m["runs"]["adapted"]["accuracy"] == worst["adapted"]
    capsys.readouterr()
    assert main(_fleet_args(voices, report, 2, "--engine", "inline")) == 2
    assert "holds another fleet" in capsys.readouterr().err


def test_a_nir_model_needs_dt_and_its_worst_command_repeats_it(voices, tmp_path, capsys):
    """NIR stores no time step: `--dt` reaches every worker and the deploy command."""
    import shutil
    nir_model = tmp_path / "rs.nir"
    assert main(["convert", MODEL, "-o", str(nir_model)]) == 0
    for suffix in (".head.npz", ".calib.npz"):
        shutil.copy(MODEL.replace(".onnx", suffix), tmp_path / f"rs{suffix}")
    args = _fleet_args(voices, tmp_path / "nir", 2, "--engine", "inline")
    args[1] = str(nir_model)
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert f"'{nir_model}' is a NIR file" in err and "--dt" in err, err
    assert main(args + ["--dt", "1e-3"]) == 0
    worst = json.loads((tmp_path / "nir" / "fleet_report.json").read_text())["worst"][0]
    argv = shlex.split(worst["command"])
    assert argv[argv.index("--dt") + 1] == "0.001"
    assert main(argv[1:] + ["--quiet"]) == 0
    m = json.loads((tmp_path / "nir" / "worst" / f"device-{worst['device']:06d}" /
                    "metrics.json").read_text())
    assert m["runs"]["adapted"]["accuracy"] == worst["adapted"]


@pytest.mark.parametrize("args, needle", [
    (["--streams", "new_user@user=planet"], "user='planet'"),
    (["--streams", "new_user@drift=dead:0..3"], "DeadChannels severity"),
    (["--target", "tflite"], "a fleet runs on host, sim or substrate"),
    (["--mismatch", "0.5..1.5"], "--mismatch needs a substrate target"),
    (["--target", "substrate:bss2", "--mismatch", "1..20"], "gain_sigma must be <= 2.0"),
    (["--engine", "spark"], "unknown engine 'spark'"),
    (["--budget", "1KiB"], "inference alone needs"),
    (["--streams", "new_user@user=voice"], "has 64 channels but the model expects 32"),
    (["--labels", "1.5"], "argument --labels: must be a finite number in [0.0, 1.0]"),
    (["--mismatch", "a..b"], "expected LO..HI"),
    (["--lpl-rule", "oja"], "argument --lpl-rule: invalid choice"),
    (["--target", "substrate:bss2", "--lpl-rule", "homeostasis"],
     "the substrate target runs its own LPL settings"),
    (["--lpl-epoch", "6"], "argument --lpl-epoch: must be a power of two"),
    (["--target", "substrate:bss2", "--lpl-epoch", "2"], "leave --lpl-epoch at 1"),
])
def test_bad_fleet_input_is_one_line(args, needle, tmp_path, capsys):
    base = ["fleet", MODEL, "--devices", "2", "--budget", "64KiB", "--engine", "inline",
            "--report", str(tmp_path / "r"), "--quiet"]
    rc = main(base + args)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert needle in err, err
    assert not (tmp_path / "r" / RESULTS).exists()


def test_failed_devices_are_recorded_and_retried_on_request(voices, tmp_path, monkeypatch):
    import edgelearn.fleet.worker as worker
    real = worker.deploy_and_adapt
    calls = []

    def flaky(spec, bundle, plan, stream, *, seed, **kw):
        calls.append(seed)
        if seed % 2:
            raise RuntimeError(f"board {seed} caught fire\nsecond line")
        return real(spec, bundle, plan, stream, seed=seed, **kw)

    monkeypatch.setattr(worker, "deploy_and_adapt", flaky)
    cfg = FleetConfig(model=MODEL, target="host", streams=voices, budget="64KiB", limit=8,
                      devices=6)
    store, _ = run_fleet(cfg, tmp_path, InlineEngine(), progress=False)
    failed = [r for r in store.phase("fleet") if r["status"] == "failed"]
    assert failed and all(r["error"] == f"RuntimeError: board {r['seed']} caught fire"
                          for r in failed)
    n = len(calls)
    run_fleet(cfg, tmp_path, InlineEngine(), progress=False)
    assert len(calls) == n                            # finished (even failed) are not rerun
    monkeypatch.setattr(worker, "deploy_and_adapt", real)
    store, ran = run_fleet(cfg, tmp_path, InlineEngine(), progress=False, retry_failed=True)
    assert ran["fleet"]["ran"] == len(failed)
    assert all(r["status"] == "ok" for r in store.phase("fleet"))
    from edgelearn.fleet.report import write_fleet_report
    doc = write_fleet_report(store, cfg)
    assert doc["devices"]["ok"] == 6


def test_a_killed_fleet_loses_no_finished_device_and_reruns_none(voices, tmp_path):
    report = tmp_path / "fleet"
    cmd = [sys.executable, "-m", "edgelearn"] + _fleet_args(voices, report, 12, "--workers", "2")
    cmd.remove("--quiet")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    results = report / RESULTS
    deadline = time.time() + HANG_SECONDS
    while time.time() < deadline and (not results.exists()
                                      or results.read_bytes().count(b"\n") < 3):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)               # the driver and its worker processes
    proc.wait()
    proc.stderr.close()
    before = read_records(results)
    assert 3 <= len(before) < 12, "the kill came too late to test anything"
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=HANG_SECONDS)
    assert out.returncode == 0, out.stderr
    assert "devices" in out.stderr and "failed 0" in out.stderr and "eta" in out.stderr
    recs = _records(report)
    devices = [r["device"] for r in recs]
    assert sorted(devices) == list(range(12))         # each device exactly once
    kept = {r["device"]: r for r in recs}
    assert all(kept[i] == r for (_, i), r in before.items())
    doc = json.loads((report / "fleet_report.json").read_text())
    assert doc["last_run"]["phases"]["fleet"]["ran"] == 12 - len(before)


@pytest.mark.slow
def test_ray_engine_gives_the_local_engine_results(voices, tmp_path):
    """Ray (a local instance) and the process pool: identical per-device records (slow: Ray
    takes about 10 s to start; bench/bench_fleet.py compares whole fleets)."""
    for engine in ("local", "ray"):
        assert main(_fleet_args(voices, tmp_path / engine, 4, "--engine", engine,
                                "--workers", "2")) == 0
    local = sorted(map(_strip, _records(tmp_path / "local")), key=lambda r: r["device"])
    ray = sorted(map(_strip, _records(tmp_path / "ray")), key=lambda r: r["device"])
    assert local == ray and len(local) == 4


def test_fedavg_weights_heads_by_labels_seen():
    from edgelearn.device.head import DeviceHead
    base = DeviceHead.load("models/randman_small.head.npz")
    arr = {f"head.W{k}": W for k, W in enumerate(base.head.weights)}
    arr.update({f"head.b{k}": b for k, b in enumerate(base.head.biases)})
    a = {k: (v + 1.0).astype(np.float32) for k, v in arr.items()}
    b = {k: (v - 2.0).astype(np.float32) for k, v in arr.items()}
    new = fedavg(base, [(3, a), (1, b), (0, {k: v + 100 for k, v in arr.items()})])
    for k in range(len(base.head.weights)):
        want = base.head.weights[k] + (3 * 1.0 + 1 * -2.0) / 4
        np.testing.assert_allclose(new.head.weights[k], want, atol=1e-5)
        np.testing.assert_allclose(new.head.biases[k], base.head.biases[k] + 0.25, atol=1e-5)
    assert np.array_equal(new.mean, base.mean) and np.array_equal(new.std, base.std)


def test_federated_round_holds_out_users_and_uses_the_new_head(voices, tmp_path):
    report = tmp_path / "fed"
    cfg = FleetConfig(model=MODEL, target="host", streams=f"{voices}@user=voice",
                      budget="64KiB", limit=24, labels=0.5, devices=4, federated=0.5,
                      held_out_devices=2)
    store, ran = run_fleet(cfg, report, InlineEngine(), progress=False)
    assert ran["held_out"]["ran"] == 2 and ran["held_out_fedavg"]["ran"] == 2
    part = {r["user"] for r in store.phase("fleet")}
    held = {r["user"] for r in store.phase("held_out")}
    assert part and held and not part & held
    assert [_strip(r)["stream"] for r in store.phase("held_out")] == \
        [r["stream"] for r in store.phase("held_out_fedavg")]
    # the new base head is the labels-weighted average of the stored updates
    from edgelearn.device.head import DeviceHead
    from edgelearn.fleet.federated import HEAD_FILE, base_head, read_update
    recs = store.phase("fleet")
    want = fedavg(base_head(ModelFiles.read(cfg)),
                  [(r["labels"], read_update(report, r)) for r in recs])
    got = DeviceHead.load(report / HEAD_FILE)
    for W1, W2 in zip(want.head.weights, got.head.weights):
        assert np.array_equal(W1, W2)
    assert not np.array_equal(got.head.weights[0], base_head(ModelFiles.read(cfg)).head.weights[0])
    from edgelearn.fleet.report import write_fleet_report
    doc = write_fleet_report(store, cfg)
    fed = doc["federated"]
    assert fed["held_out_devices"] == 2 and fed["participants"] == 4
    assert set(fed["held_out_users"]) == held
    assert (report / "federated.png").exists()


def test_link_bytes_of_a_round_are_measured_on_a_simulated_board(voices):
    from edgelearn.fleet.federated import link_bytes
    cfg = FleetConfig(model=MODEL, target="host", streams=voices, budget="64KiB")
    lb = link_bytes(cfg, ModelFiles.read(cfg))
    assert lb["up"] > lb["head_payload"] > 0 and lb["down"] > lb["head_payload"]
    assert lb["total"] == lb["up"] + lb["down"]


def test_store_refuses_a_damaged_line_before_the_tail(tmp_path):
    path = tmp_path / RESULTS
    path.write_bytes(b'{"device": 0, "phase": "fleet"}\nnot json\n{"device": 1, "phase": "f"}\n')
    from edgelearn.errors import DataError
    with pytest.raises(DataError, match="line 2 is not a device record"):
        read_records(path)


def test_lpl_epoch_reaches_the_plan_the_identity_and_the_device_command(voices):
    """`edgelearn fleet --lpl-epoch K` plans the devices with epoch K (as `edgelearn deploy`
    does), is part of the identity only when not 1 (older fleets keep theirs), and the
    command that reruns a device repeats it."""
    from edgelearn.adapt.bundle import load_bundle, plan_for
    from edgelearn.fleet.report import deploy_command

    base = dict(model=MODEL, target="host", streams=f"{voices}@user=voice", budget="64KiB")
    one, eight = FleetConfig(**base), FleetConfig(**base, lpl_epoch=8)
    files = ModelFiles.read(one)
    assert one.identity(files) != eight.identity(files)
    assert one.identity(files) == FleetConfig.from_json(
        {k: v for k, v in one.to_json().items() if k != "lpl_epoch"}).identity(files)
    bundle = load_bundle(MODEL)
    assert plan_for(bundle, eight, link=False).config.lpl.epoch == 8
    assert plan_for(bundle, one, link=False).config.lpl.epoch == 1
    rec = {"target": "host", "stream": "s.npz", "seed": 3}
    argv = shlex.split(deploy_command(eight, rec, "r"))
    assert argv[argv.index("--lpl-epoch") + 1] == "8"
    assert "--lpl-epoch" not in deploy_command(one, rec, "r")


@pytest.mark.parametrize("epoch", [8.0, "8", 3, 0, True, None])
def test_fleet_json_lpl_epoch_must_be_an_integer_power_of_two(epoch, voices):
    """A fleet.json edited by hand: lpl_epoch 8.0 or "8" is refused when read (it once passed,
    gave the fleet another identity than 8 and a device command with '--lpl-epoch 8.0' that
    `edgelearn deploy` refuses)."""
    from edgelearn.errors import DataError
    d = FleetConfig(model=MODEL, target="host", streams=f"{voices}@user=voice",
                    budget="64KiB").to_json()
    with pytest.raises(DataError, match="--lpl-epoch must be a power of two in 1..64"):
        FleetConfig.from_json({**d, "lpl_epoch": epoch})
