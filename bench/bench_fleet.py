"""Benchmark: fleets of the headline model (issue 18).

On models/speech_digits.onnx (budget 256 KiB, 10 % labels, up to --limit samples per device,
population ``new_user@user=accent,drift=none/gain/noise``), in parts (``--parts``):

    throughput   the first --throughput-devices devices with the local engine at workers 1 and
                 2 (fresh each): devices per second, speedup, and the scheduling overhead
    local        --devices devices, local engine, --workers workers: the gain distribution
                 (p1, p5, median, p95) and the scheduling overhead per device
    ray          the same fleet on a one-machine Ray instance (same worker count): every
                 device's record must equal the local engine's (all fields but 'seconds')
    bss2         --bss2-devices devices on substrate:bss2 with mismatch factors 0.5..1.5: the
                 gain distribution; the worst device's `edgelearn deploy` command is run in a
                 subprocess and its metrics compared with the fleet record (exact equality)
    federated    --fed-seeds fleet seeds: --fed-devices devices of half the accents, FedAvg of
                 their heads, --fed-held-out devices of the other accents with the shipped and
                 the FedAvg head (paired); bytes per device on the serial link (once)

Scheduling overhead per device (the baseline is the devices' own compute, measured in the same
run by each worker): (K W - sum_i c_i) / n, with W the fleet's wall time (pool start included),
K workers, c_i device i's compute time (the 'seconds' of its record), n devices; reported as a
fraction of the median c_i and of the mean c_i. The load average (os.getloadavg) is recorded
before and after every part: on a machine shared with other jobs, time the workers spend
waiting for a CPU between devices counts as overhead.

Results: reports/bench_fleet/bench_fleet.json (parts from earlier runs are kept unless rerun)
and bench_fleet.png; each part's fleet report folder is kept under reports/bench_fleet/.

    python bench/bench_fleet.py      # all parts: about 3,400 device runs of ~1-5 s each (hours here)
    python bench/bench_fleet.py --parts throughput,federated --fed-seeds 5
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgelearn.atomic import atomic_save_png, atomic_write_text  # noqa: E402
from edgelearn.fleet.config import FleetConfig, ModelFiles  # noqa: E402
from edgelearn.fleet.engines import LocalEngine, RayEngine  # noqa: E402
from edgelearn.fleet.federated import link_bytes  # noqa: E402
from edgelearn.fleet.report import write_fleet_report  # noqa: E402
from edgelearn.fleet.run import run_fleet  # noqa: E402

MODEL = "models/speech_digits.onnx"      # relative: the commands in the reports are short
STREAMS = "new_user@user=accent,drift=none/gain/noise"
PARTS = ("throughput", "local", "ray", "bss2", "federated")


def config(args, **kw) -> FleetConfig:
    base = dict(model=MODEL, target="host", streams=STREAMS, budget="256KiB", labels=0.1,
                limit=args.limit, devices=args.devices, seed=0)
    base.update(kw)
    return FleetConfig(**base)


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def overhead(store, cfg: FleetConfig, ran: dict, workers: int) -> dict:
    """Scheduling overhead of a fresh fleet run (see the module docstring)."""
    recs = [r for r in store.phase("fleet", cfg.devices)]
    c = [r["seconds"] for r in recs]
    wall = ran["fleet"]["wall_seconds"]
    per = (workers * wall - sum(c)) / len(c)
    return {"devices": len(c), "workers": workers, "wall_seconds": wall,
            "devices_per_second": len(c) / wall, "compute_median_s": statistics.median(c),
            "compute_mean_s": statistics.fmean(c), "overhead_per_device_s": per,
            "overhead_vs_median_compute": per / statistics.median(c),
            "overhead_vs_mean_compute": per / statistics.fmean(c)}


def fleet(cfg: FleetConfig, folder: Path, engine, fresh: bool = True):
    t0 = time.perf_counter()
    store, ran = run_fleet(cfg, folder, engine, progress=True, fresh=fresh)
    doc = write_fleet_report(store, cfg, {"last_run": {"engine": engine.name,
                                                       "workers": engine.workers,
                                                       "phases": ran}})
    return store, ran, doc, time.perf_counter() - t0


def gain_summary(doc: dict) -> dict:
    g = doc["gain"]
    return {"devices_ok": doc["devices"]["ok"], "devices_failed": doc["devices"]["failed"],
            "gain_points": {k: round(100 * g[k], 2) for k in ("p1", "p5", "median", "p95",
                                                              "mean", "min", "max")},
            "frozen_mean": doc["frozen"]["mean"], "adapted_mean": doc["adapted"]["mean"],
            "devices_improved": doc["devices_improved"], "devices_worse": doc["devices_worse"],
            "by_user_median_points": {u: round(100 * s["median"], 2)
                                      for u, s in doc["by_user"].items()},
            "by_drift_median_points": {u: round(100 * s["median"], 2)
                                       for u, s in doc["by_drift"].items()},
            "gain_vs_severity": doc["gain_vs_severity"],
            "gain_vs_mismatch": doc["gain_vs_mismatch"],
            "worst": doc["worst"][:3]}


def part_throughput(args, out: Path) -> dict:
    cfg = config(args, devices=args.throughput_devices)
    res = {"load_before": load()}
    for k in (1, 2):
        store, ran, _, _ = fleet(cfg, out / f"throughput-w{k}", LocalEngine(k))
        res[f"workers_{k}"] = overhead(store, cfg, ran, k)
    res["speedup_2_over_1"] = (res["workers_2"]["devices_per_second"]
                               / res["workers_1"]["devices_per_second"])
    res["load_after"] = load()
    return res


def part_local(args, out: Path) -> dict:
    cfg = config(args)
    lb = load()
    store, ran, doc, _ = fleet(cfg, out / "local", LocalEngine(args.workers))
    return {"load_before": lb, "load_after": load(), **overhead(store, cfg, ran, args.workers),
            **gain_summary(doc)}


def strip(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if k != "seconds"}


def part_ray(args, out: Path) -> dict:
    cfg = config(args)
    lb = load()
    store, ran, doc, _ = fleet(cfg, out / "ray", RayEngine(args.workers))
    local_path = out / "local" / "devices.jsonl"
    res = {"load_before": lb, "load_after": load(), **overhead(store, cfg, ran, args.workers)}
    if local_path.exists():
        local = {}
        for line in local_path.read_text().splitlines():
            r = json.loads(line)
            local[r["device"]] = strip(r)
        ray = {r["device"]: strip(r) for r in store.phase("fleet", cfg.devices)}
        same = sum(1 for i in ray if local.get(i) == ray[i])
        res.update(compared=len(ray), identical=same,
                   differing=[i for i in sorted(ray) if local.get(i) != ray[i]][:20])
    return res


def part_bss2(args, out: Path) -> dict:
    cfg = config(args, target="substrate:bss2", devices=args.bss2_devices, mismatch=(0.5, 1.5))
    lb = load()
    store, ran, doc, _ = fleet(cfg, out / "bss2", LocalEngine(args.workers))
    res = {"load_before": lb, **overhead(store, cfg, ran, args.workers), **gain_summary(doc)}
    worst = doc["worst"][0]
    argv = shlex.split(worst["command"]) + ["--quiet"]
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "edgelearn"] + argv[1:], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ,
                                                               "PYTHONPATH": str(ROOT)})
    rep = Path(argv[argv.index("--report") + 1])
    rep = rep if rep.is_absolute() else ROOT / rep
    m = json.loads((rep / "metrics.json").read_text()) if proc.returncode == 0 else {}
    got = {k: m.get("runs", {}).get(k, {}).get("accuracy") for k in ("adapted", "frozen")}
    res["worst_reproduced"] = {
        "command": worst["command"], "returncode": proc.returncode,
        "fleet": {"adapted": worst["adapted"], "frozen": worst["frozen"]}, "deploy": got,
        "exact": got == {"adapted": worst["adapted"], "frozen": worst["frozen"]},
        "seconds": time.perf_counter() - t0, "stderr": proc.stderr.strip()[-300:]}
    res["load_after"] = load()
    return res


def part_federated(args, out: Path) -> dict:
    seeds = []
    lb = load()
    for s in range(args.fed_seeds):
        cfg = config(args, devices=args.fed_devices, seed=s, federated=0.5,
                     held_out_devices=args.fed_held_out)
        _, _, doc, secs = fleet(cfg, out / f"federated-s{s}", LocalEngine(args.workers),
                                fresh=False)
        fed = doc["federated"]
        seeds.append({"seed": s, "participants": fed["participants"],
                      "held_out_devices": fed["held_out_devices"],
                      "held_out_users": fed["held_out_users"], "seconds": secs,
                      **{f"{w}_{k}": fed[w][k]["mean"] for w in ("frozen", "adapted")
                         for k in ("before", "after")},
                      **{f"{w}_delta_mean": fed[w]["paired_delta"]["mean"]
                         for w in ("frozen", "adapted")},
                      **{f"{w}_better_worse": [fed[w]["devices_better"], fed[w]["devices_worse"]]
                         for w in ("frozen", "adapted")}})
    res = {"load_before": lb, "seeds": seeds, "load_after": load()}
    for w in ("frozen", "adapted"):
        d = [100 * s[f"{w}_delta_mean"] for s in seeds]
        res[f"{w}_delta_points"] = {"per_seed": [round(v, 2) for v in d],
                                    "mean": statistics.fmean(d),
                                    "std": statistics.pstdev(d) if len(d) > 1 else 0.0,
                                    "seeds_better": sum(v > 0 for v in d)}
    cfg = config(args, devices=args.fed_devices, federated=0.5, held_out_devices=1)
    res["link_bytes_per_device"] = link_bytes(cfg, ModelFiles.read(cfg))
    return res


def plot(doc: dict, path: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    tp = doc.get("throughput")
    if tp:
        ks = [1, 2]
        axes[0].bar([str(k) for k in ks], [tp[f"workers_{k}"]["devices_per_second"] for k in ks])
        axes[0].set_xlabel("workers (local engine)")
        axes[0].set_ylabel("devices per second")
        axes[0].set_title(f"throughput, {tp['workers_1']['devices']} devices "
                          f"(speedup {tp['speedup_2_over_1']:.2f}x)", fontsize=9)
    names = [p for p in ("local", "bss2") if p in doc]
    for p in names:
        g = doc[p]["gain_points"]
        axes[1].plot(["p1", "p5", "median", "p95"], [g[k] for k in ("p1", "p5", "median", "p95")],
                     marker="o", label=f"{p} ({doc[p]['devices_ok']} devices)")
    axes[1].axhline(0, color="gray", lw=0.8)
    axes[1].set_ylabel("adaptation gain (points)")
    axes[1].set_title("gain percentiles", fontsize=9)
    if names:
        axes[1].legend()
    fed = doc.get("federated")
    if fed:
        seeds = fed["seeds"]
        x = np.arange(len(seeds))
        for off, key, label in ((-0.2, "frozen_before", "frozen, shipped head"),
                                (0.2, "frozen_after", "frozen, FedAvg head")):
            axes[2].bar(x + off, [100 * s[key] for s in seeds], 0.4, label=label)
        axes[2].set_xticks(x, [f"seed {s['seed']}" for s in seeds])
        axes[2].set_ylabel("held-out devices' accuracy (%)")
        axes[2].set_title("federated round: held-out users", fontsize=9)
        axes[2].legend(fontsize=8)
    atomic_save_png(fig, path, bbox_inches="tight")
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default=",".join(PARTS))
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--throughput-devices", type=int, default=100)
    ap.add_argument("--bss2-devices", type=int, default=500)
    ap.add_argument("--fed-seeds", type=int, default=5)
    ap.add_argument("--fed-devices", type=int, default=60)
    ap.add_argument("--fed-held-out", type=int, default=40)
    ap.add_argument("--out", default=str(ROOT / "reports" / "bench_fleet"))
    args = ap.parse_args()
    os.chdir(ROOT)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "bench_fleet.json"
    doc = json.loads(path.read_text()) if path.exists() else {}
    for part in args.parts.split(","):
        if part not in PARTS:
            ap.error(f"unknown part {part!r}; parts: {', '.join(PARTS)}")
        print(f"== {part}", flush=True)
        t0 = time.perf_counter()
        res = globals()[f"part_{part}"](args, out)
        res["part_seconds"] = time.perf_counter() - t0
        res["settings"] = {k: v for k, v in vars(args).items() if k != "parts"}
        doc[part] = res
        atomic_write_text(path, json.dumps(doc, indent=2, default=float))
        print(json.dumps({k: v for k, v in res.items() if k not in ("worst", "seeds")},
                         indent=1, default=float)[:3000], flush=True)
    plot(doc, out / "bench_fleet.png")
    print(f"wrote {path} and {out / 'bench_fleet.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
