"""The fleet driver: run the devices not finished yet, record each as it finishes (L3).

Phases, in order (a resumed run skips every (phase, device) already in devices.jsonl):

1. ``fleet``: devices 0..N-1.
2. federated fleets only (``FleetConfig.federated`` > 0): FedAvg of the fleet devices' adapted
   heads (edgelearn.fleet.federated) -> ``federated/base.head.npz``; then the held-out
   devices N..N+H-1 (users that took no part) run twice, phase ``held_out`` with the shipped
   head and ``held_out_fedavg`` with the new base head.

Progress: one line with devices done / failed, elapsed time and ETA (from this run's rate).
"""

from __future__ import annotations

import time
from pathlib import Path

from edgelearn.fleet.config import FleetConfig, ModelFiles
from edgelearn.fleet.store import Store
from edgelearn.fleet.worker import FLEET, HELD_OUT, HELD_OUT_FEDAVG, Worker
from edgelearn.progress import Progress


def run_tasks(store: Store, engine, cfg: FleetConfig, files: ModelFiles, tasks: list,
              label: str, progress: bool, total: int) -> dict:
    """Run ``tasks`` on ``engine``, appending each finished device to ``store``."""
    bar = Progress(total, label, unit="devices", enabled=progress,
                   initial=total - len(tasks))
    failed = sum(1 for r in store.records.values() if r.get("status") != "ok")
    t0 = time.perf_counter()
    count = 0
    for _task, rec, update in engine.run(cfg, files, tasks):
        store.append(rec, update)
        count += 1
        failed += rec.get("status") != "ok"
        bar.update(1, postfix=f"failed {failed}")
    bar.close()
    return {"ran": count, "wall_seconds": time.perf_counter() - t0}


def run_fleet(cfg: FleetConfig, report: str | Path, engine, progress: bool = True,
              fresh: bool = False, retry_failed: bool = False) -> tuple[Store, dict]:
    """Run (or resume) the fleet ``cfg`` with results in ``report``; returns the store and
    what ran: {phase: {"ran": devices run now, "wall_seconds": ...}} (the report itself is
    written by edgelearn.fleet.report)."""
    files = ModelFiles.read(cfg)
    Worker(cfg, files).close()      # model, plan and users checked here: one clear error
    store = Store.open(report, cfg, files, fresh=fresh)
    keep = cfg.keep_updates or cfg.federated > 0
    ran = {}
    done = store.finished(FLEET, retry_failed)
    tasks = [(FLEET, i, None, keep) for i in range(cfg.devices) if i not in done]
    ran[FLEET] = run_tasks(store, engine, cfg, files, tasks, "fleet", progress, cfg.devices)
    if cfg.federated:
        from edgelearn.fleet.federated import fedavg_head
        head = fedavg_head(store, cfg, files)
        held = range(cfg.devices, cfg.devices + cfg.held_out_devices)
        for phase, base in ((HELD_OUT, None), (HELD_OUT_FEDAVG, head)):
            done = store.finished(phase, retry_failed)
            tasks = [(phase, i, base, False) for i in held if i not in done]
            ran[phase] = run_tasks(store, engine, cfg, files, tasks, phase.replace("_", "-"),
                                   progress, len(held))
    return store, ran
