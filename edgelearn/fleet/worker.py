"""What a fleet worker runs for one device: `edgelearn deploy` on that device's settings (L3).

A :class:`Worker` loads the model and plans its memory once (both depend only on the fleet),
then runs devices one after another through :func:`edgelearn.adapt.session.deploy_and_adapt`,
the function `edgelearn deploy` calls, with the device's deploy seed, stream and target
(:mod:`edgelearn.fleet.population`). A device's result is a JSON-able record; what goes wrong
in one device is recorded as its failure and does not stop the worker.

Record fields (docs/fleet.md): device, phase, status ("ok" | "failed"), seed, stream, target,
user, drift, severity, mismatch, head ("shipped", or the first 16 hex digits of the SHA-256 of
the base head file the device started from), and for "ok": samples, labels, frozen, adapted (prequential
accuracies, 0..1), gain (= adapted - frozen), rollbacks, lpl_updates, hep_updates,
planned_bytes, high_water_bytes, seconds (compute time of the device in the worker); for
"failed": error (one line).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from edgelearn.adapt.bundle import load_bundle, plan_for
from edgelearn.adapt.session import deploy_and_adapt
from edgelearn.adapt.streams import load_dataset, load_stream, split_source
from edgelearn.device.head import DeviceHead
from edgelearn.errors import EdgelearnError
from edgelearn.fleet.config import FleetConfig, ModelFiles
from edgelearn.fleet.population import derive_device, list_users, parse_population, split_users
from edgelearn.targets.spec import parse_target

#: the phase of the fleet's own devices; a federated fleet adds HELD_OUT and HELD_OUT_FEDAVG
FLEET, HELD_OUT, HELD_OUT_FEDAVG = "fleet", "held_out", "held_out_fedavg"
PHASES = (FLEET, HELD_OUT, HELD_OUT_FEDAVG)
#: BLAS thread pools pinned to one thread in every worker (results must not depend on them)
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def head_bytes(head: DeviceHead) -> bytes:
    """A DeviceHead as the bytes of its .npz file."""
    with tempfile.TemporaryDirectory() as tmp:
        head.save(Path(tmp) / "h.npz")
        return (Path(tmp) / "h.npz").read_bytes()


def head_arrays(weights: dict[str, np.ndarray]) -> bytes:
    """The head arrays ('head.W0', 'head.b0', ...) of a target's weights as .npz bytes."""
    buf = io.BytesIO()
    np.savez(buf, **{k: v for k, v in sorted(weights.items()) if k.startswith("head.")})
    return buf.getvalue()


class Worker:
    """Runs devices of one fleet (in whatever process holds it)."""

    def __init__(self, cfg: FleetConfig, files: ModelFiles) -> None:
        self.cfg = cfg
        self.tmp = Path(tempfile.mkdtemp(prefix="edgelearn-fleet-"))
        model, stream_file = files.materialise(self.tmp)
        try:
            self.bundle = load_bundle(model, dt=cfg.dt)
        except EdgelearnError as exc:      # name the model as given, not the worker's copy
            raise type(exc)(str(exc).replace(str(model), cfg.model)) from None
        self.plan = plan_for(self.bundle, cfg, link=False)   # as edgelearn deploy plans
        self.spec_source = cfg.stream_source
        self.local_source = str(stream_file) if stream_file is not None else self.spec_source
        self.population = parse_population(cfg.streams)
        fixed = ",".join(f"{k}={v}" for k, v in self.population.fixed)
        try:            # the source, its fixed options and its channels, checked once
            load_stream(self.local_source + ("@" + fixed if fixed else ""),
                        self.bundle.network.n_in, limit=1)
        except EdgelearnError as exc:
            raise type(exc)(str(exc).replace(self.local_source, self.spec_source)) from None
        users = list_users(self.population, load_dataset(self.local_source))
        if cfg.federated:
            self.users, self.held_out_users = split_users(users, cfg.seed, cfg.federated)
        else:
            self.users, self.held_out_users = users, users
        self._heads: dict[str, DeviceHead] = {}

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def device(self, phase: str, i: int):
        """The :class:`~edgelearn.fleet.population.Device` of ``phase`` and index ``i``."""
        users = self.users if phase == FLEET else self.held_out_users
        return derive_device(self.population, users, self.cfg.target, self.cfg.seed, i,
                             self.cfg.mismatch)

    def _head(self, data: bytes) -> DeviceHead:
        key = hashlib.sha256(data).hexdigest()
        if key not in self._heads:
            path = self.tmp / f"{key}.head.npz"
            path.write_bytes(data)
            self._heads[key] = DeviceHead.load(path)
        return self._heads[key]

    def run(self, phase: str, i: int, head: bytes | None = None,
            keep_update: bool = False) -> tuple[dict, bytes | None]:
        """Run device ``i`` of ``phase`` (with base head ``head`` if given); returns its
        record and, with ``keep_update``, its adapted head arrays (.npz bytes)."""
        dev = self.device(phase, i)
        rec = {"device": int(i), "phase": phase, "seed": dev.seed, "stream": dev.stream,
               "target": dev.target, "user": dev.user, "drift": dev.drift,
               "severity": dev.severity, "mismatch": dev.mismatch,
               "head": "shipped" if head is None else hashlib.sha256(head).hexdigest()[:16]}
        t0 = time.perf_counter()
        try:
            bundle = self.bundle if head is None else \
                dataclasses.replace(self.bundle, head=self._head(head))
            _, opts = split_source(dev.stream)
            local = self.local_source + ("@" + opts if opts else "")
            x, y, _ = load_stream(local, bundle.network.n_in, seed=dev.seed,
                                  limit=self.cfg.limit)
            done = deploy_and_adapt(parse_target(dev.target), bundle, self.plan, (x, y),
                                    seed=dev.seed, labels=self.cfg.labels, progress=False,
                                    keep_weights=keep_update)
        except Exception as exc:  # bad input or a bug in one device must not end the fleet
            return self._failed(rec, exc, t0, self.local_source, self.spec_source), None
        m = done.metrics
        ad, fr = m["runs"]["adapted"], m["runs"]["frozen"]
        tel = ad["telemetry"]
        rec.update(status="ok", samples=ad["samples"], labels=ad["labels"],
                   frozen=fr["accuracy"], adapted=ad["accuracy"],
                   gain=ad["accuracy"] - fr["accuracy"], rollbacks=len(ad["rollbacks"]),
                   lpl_updates=tel.get("lpl_updates", 0), hep_updates=tel.get("hep_updates", 0),
                   planned_bytes=m["memory"]["planned_total"],
                   high_water_bytes=m["memory"]["measured_high_water"],
                   seconds=time.perf_counter() - t0)
        update = head_arrays(done.weights) if keep_update else None
        return rec, update

    @staticmethod
    def _failed(rec: dict, exc: Exception, t0: float, local: str, source: str) -> dict:
        """A failed device's record: the error's first line (naming the stream as given)."""
        text = str(exc).splitlines()[0] if str(exc) else ""
        return dict(rec, status="failed", seconds=time.perf_counter() - t0,
                    error=f"{type(exc).__name__}: {text.replace(local, source)}")


def pin_threads() -> None:
    """One BLAS thread (set before numpy loads in a new worker process)."""
    for name in THREAD_ENV:
        os.environ.setdefault(name, "1")
