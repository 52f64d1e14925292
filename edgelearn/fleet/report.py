"""The fleet report: the distribution of the adaptation gain over the devices (L3).

Written into the report folder from devices.jsonl (so it can be rebuilt at any time):
``fleet_report.json`` (schema in docs/fleet.md) and, with matplotlib, ``gain_hist.png``,
``gain_cdf.png``, ``gain_by_user.png`` (user=voice|accent fleets), ``gain_by_drift.png``
(fleets with drift), ``gain_by_mismatch.png`` (fleets with a mismatch range) and
``federated.png`` (federated fleets).

Gain of a device = adapted - frozen prequential accuracy on its own stream (fractions; the
plots show percentage points). Percentiles are ``numpy.percentile(gains, q)`` (linear
interpolation) over the devices whose status is "ok".
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np

from edgelearn.atomic import atomic_save_png, atomic_write_text
from edgelearn.fleet.config import FleetConfig
from edgelearn.fleet.store import Store
from edgelearn.fleet.worker import FLEET, HELD_OUT, HELD_OUT_FEDAVG

REPORT = "fleet_report.json"
PERCENTILES = {"p1": 1, "p5": 5, "median": 50, "p95": 95}
WORST = 10


def deploy_command(cfg: FleetConfig, rec: dict, report: str) -> str:
    """The `edgelearn deploy` command that reruns device ``rec`` alone (same figures)."""
    args = ["edgelearn", "deploy", cfg.model, "--target", rec["target"], "--budget", cfg.budget]
    if cfg.device:
        args += ["--device", cfg.device]
    if cfg.dt is not None:
        args += ["--dt", repr(cfg.dt)]
    if cfg.lpl != "all":
        args += ["--lpl", cfg.lpl]
    if cfg.lpl_rule != "lpl":
        args += ["--lpl-rule", cfg.lpl_rule]
    if cfg.lpl_epoch != 1:
        args += ["--lpl-epoch", str(cfg.lpl_epoch)]
    if cfg.no_hep:
        args.append("--no-hep")
    args += ["--adapt", rec["stream"], "--labels", repr(cfg.labels), "--limit", str(cfg.limit),
             "--seed", str(rec["seed"]), "--report", report]
    return " ".join(shlex.quote(a) for a in args)


def stats(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {"n": 0}
    out = {"n": int(v.size), "mean": float(v.mean()), "min": float(v.min()),
           "max": float(v.max())}
    out.update({k: float(np.percentile(v, q)) for k, q in PERCENTILES.items()})
    return out


def grouped(recs: list[dict], key: str) -> dict:
    groups: dict = {}
    for r in recs:
        groups.setdefault(str(r[key]), []).append(r["gain"])
    return {g: stats(v) for g, v in sorted(groups.items())}


def correlation(x, y) -> float | None:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def federated_summary(store: Store, cfg: FleetConfig) -> dict:
    """Held-out devices with the shipped head (before) and the FedAvg head (after), paired."""
    held = range(cfg.devices, cfg.devices + cfg.held_out_devices)
    before = {r["device"]: r for r in store.phase(HELD_OUT) if r["device"] in held}
    after = {r["device"]: r for r in store.phase(HELD_OUT_FEDAVG) if r["device"] in held}
    both = sorted(i for i in before if i in after and before[i].get("status") == "ok"
                  and after[i].get("status") == "ok")
    out = {"held_out_devices": len(both),
           "participants": sum(1 for r in store.phase(FLEET, cfg.devices)
                               if r.get("status") == "ok"),
           "held_out_users": sorted({before[i]["user"] for i in both if before[i]["user"]})}
    for what in ("frozen", "adapted"):
        b = np.array([before[i][what] for i in both])
        a = np.array([after[i][what] for i in both])
        out[what] = {"before": stats(b), "after": stats(a), "paired_delta": stats(a - b),
                     "devices_better": int(np.sum(a > b)), "devices_worse": int(np.sum(a < b))}
    return out


def build_report(store: Store, cfg: FleetConfig, extra: dict | None = None) -> dict:
    """The report document (see docs/fleet.md) from the store's records."""
    recs = store.phase(FLEET, cfg.devices)
    ok = [r for r in recs if r.get("status") == "ok"]
    failed = [r for r in recs if r.get("status") != "ok"]
    gains = [r["gain"] for r in ok]
    worst = sorted(ok, key=lambda r: (r["gain"], r["device"]))[:WORST]
    doc = {
        "fleet": cfg.to_json(),
        "devices": {"requested": cfg.devices, "finished": len(recs), "ok": len(ok),
                    "failed": len(failed)},
        "gain": stats(gains),
        "frozen": stats([r["frozen"] for r in ok]),
        "adapted": stats([r["adapted"] for r in ok]),
        "devices_improved": int(sum(g > 0 for g in gains)),
        "devices_worse": int(sum(g < 0 for g in gains)),
        "worst": [{k: r[k] for k in ("device", "gain", "frozen", "adapted", "seed", "stream",
                                     "target", "user", "drift", "severity", "mismatch")}
                  | {"command": deploy_command(cfg, r, str(store.folder / "worst"
                                                           / f"device-{r['device']:06d}"))}
                  for r in worst],
        "by_user": grouped(ok, "user") if any(r["user"] for r in ok) else {},
        "by_drift": grouped(ok, "drift"),
        "gain_vs_severity": correlation([r["severity"] for r in ok], gains),
        "gain_vs_mismatch": correlation([r["mismatch"] or 0.0 for r in ok], gains),
        "failures": [{"device": r["device"], "error": r.get("error", "")} for r in failed[:20]],
        "device_seconds": stats([r["seconds"] for r in ok]),
    }
    if cfg.federated:
        doc["federated"] = federated_summary(store, cfg)
    doc.update(extra or {})
    return doc


def write_fleet_report(store: Store, cfg: FleetConfig, extra: dict | None = None) -> dict:
    """Write fleet_report.json and the plots; returns the document (with "files")."""
    doc = build_report(store, cfg, extra)
    ok = [r for r in store.phase(FLEET, cfg.devices) if r.get("status") == "ok"]
    files = []
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:   # plotting is an extra
        doc["plots"] = "matplotlib not installed: pip install 'edgelearn[plot]'"
        plt = None
    if plt is not None and ok:
        files = _plots(plt, store.folder, doc, ok, store, cfg)
    doc["files"] = files + [REPORT]
    atomic_write_text(store.folder / REPORT, json.dumps(doc, indent=2))
    return doc


def _save(plt, fig, folder: Path, name: str, files: list) -> None:
    atomic_save_png(fig, folder / name, bbox_inches="tight")
    plt.close(fig)
    files.append(name)


def _plots(plt, folder: Path, doc: dict, ok: list[dict], store: Store, cfg: FleetConfig
           ) -> list[str]:
    files: list[str] = []
    pts = 100 * np.array([r["gain"] for r in ok])
    g = doc["gain"]
    marks = [(k, 100 * g[k]) for k in PERCENTILES]
    title = f"{len(ok)} devices, {cfg.target}, {cfg.streams}"

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(pts, bins=min(60, max(10, len(ok) // 10)), color="tab:blue", alpha=0.8)
    for (name, v), c in zip(marks, ("red", "orange", "black", "green")):
        ax.axvline(v, color=c, ls="--", label=f"{name} {v:+.1f}")
    ax.set_xlabel("adaptation gain (adapted - frozen accuracy, points)")
    ax.set_ylabel("devices")
    ax.set_title(title, fontsize=9)
    ax.legend()
    _save(plt, fig, folder, "gain_hist.png", files)

    fig, ax = plt.subplots(figsize=(7, 4))
    xs = np.sort(pts)
    ax.step(xs, np.arange(1, xs.size + 1) / xs.size, where="post")
    for (name, v), c in zip(marks, ("red", "orange", "black", "green")):
        ax.axvline(v, color=c, ls="--", label=f"{name} {v:+.1f}")
    ax.set_xlabel("adaptation gain (points)")
    ax.set_ylabel("fraction of devices with gain <= x")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    _save(plt, fig, folder, "gain_cdf.png", files)

    if doc["by_user"]:
        users = sorted(doc["by_user"], key=lambda u: doc["by_user"][u]["median"])
        data = [[100 * r["gain"] for r in ok if r["user"] == u] for u in users]
        fig, ax = plt.subplots(figsize=(min(24, 3 + 0.25 * len(users)), 4.5))
        ax.boxplot(data)
        ax.set_xticks(range(1, len(users) + 1), users, rotation=90,
                      fontsize=7 if len(users) > 20 else 9)
        ax.axhline(0, color="gray", lw=0.8)
        ax.set_ylabel("adaptation gain (points)")
        ax.set_title(f"gain per user (sorted by median), {len(ok)} devices", fontsize=9)
        _save(plt, fig, folder, "gain_by_user.png", files)

    if any(r["drift"] != "none" for r in ok):
        fig, ax = plt.subplots(figsize=(7, 4))
        for kind in sorted({r["drift"] for r in ok}):
            sel = [r for r in ok if r["drift"] == kind]
            ax.scatter([r["severity"] for r in sel], [100 * r["gain"] for r in sel], s=8,
                       alpha=0.6, label=f"{kind} (median {100 * doc['by_drift'][kind]['median']:+.1f})")
        ax.axhline(0, color="gray", lw=0.8)
        ax.set_xlabel("drift severity")
        ax.set_ylabel("adaptation gain (points)")
        ax.set_title("gain vs drift", fontsize=9)
        ax.legend(fontsize=8)
        _save(plt, fig, folder, "gain_by_drift.png", files)

    if cfg.mismatch is not None and cfg.mismatch[0] < cfg.mismatch[1]:
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.scatter([r["mismatch"] for r in ok], pts, s=8, alpha=0.6)
        ax.axhline(0, color="gray", lw=0.8)
        ax.set_xlabel("mismatch factor (x the preset's sigmas)")
        ax.set_ylabel("adaptation gain (points)")
        ax.set_title(f"gain vs mismatch (r = {doc['gain_vs_mismatch']})", fontsize=9)
        _save(plt, fig, folder, "gain_by_mismatch.png", files)

    fed = doc.get("federated")
    if fed and fed["held_out_devices"]:
        fig, ax = plt.subplots(figsize=(7, 4))
        labels, before, after = [], [], []
        for what in ("frozen", "adapted"):
            labels.append(what)
            before.append(100 * fed[what]["before"]["mean"])
            after.append(100 * fed[what]["after"]["mean"])
        x = np.arange(len(labels))
        ax.bar(x - 0.2, before, 0.4, label="shipped head")
        ax.bar(x + 0.2, after, 0.4, label="FedAvg head")
        ax.set_xticks(x, labels)
        ax.set_ylabel("mean accuracy of held-out devices (%)")
        ax.set_title(f"federated round: {fed['participants']} devices -> "
                     f"{fed['held_out_devices']} held-out devices", fontsize=9)
        ax.legend()
        _save(plt, fig, folder, "federated.png", files)
    return files
