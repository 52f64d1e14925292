"""Where the devices of a fleet run: a local process pool, or Ray (L3).

Both engines run :class:`edgelearn.fleet.worker.Worker` in K worker processes (each loads the
model once) and yield (task, record, update) as devices finish, in completion order; the driver
records them. A task is (phase, device index, base head bytes or None, keep update).

    inline         in the driver's own process, one device after another (debugging, tests)
    local          concurrent.futures.ProcessPoolExecutor, 'spawn' start method, K processes
    ray            a Ray instance started here (this machine's CPUs; Ray's local mode no longer
                   exists in Ray 2.x, so "local" means a one-machine Ray cluster), K actors
    ray:ADDRESS    an existing Ray cluster (ray.init(address=ADDRESS)), K actors; its workers
                   need edgelearn installed, the model travels with the tasks

At most 2 K tasks are in flight, so a stopped run leaves little work behind and the driver's
memory stays flat.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.util
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from edgelearn.errors import TargetError
from edgelearn.fleet.config import FleetConfig, ModelFiles
from edgelearn.fleet.worker import THREAD_ENV, Worker, pin_threads

Task = tuple  # (phase, index, head bytes | None, keep_update)

_WORKER: Worker | None = None


def _init_worker(cfg_json: dict, files: ModelFiles) -> None:
    global _WORKER
    _WORKER = Worker(FleetConfig.from_json(cfg_json), files)
    # remove the worker's model copy when a pool process exits normally
    multiprocessing.util.Finalize(_WORKER, _WORKER.close, exitpriority=10)


def _run_task(task: Task) -> tuple:
    phase, i, head, keep = task
    rec, update = _WORKER.run(phase, i, head, keep)
    return task, rec, update


def parse_engine(text: str) -> tuple[str, str]:
    """``"local"`` -> ("local", ""), ``"ray"`` -> ("ray", ""), ``"ray:ADDR"`` -> ("ray", ADDR)."""
    kind, _, arg = str(text).partition(":")
    if kind not in ("inline", "local", "ray") or (kind != "ray" and arg):
        raise TargetError(f"unknown engine {text!r}; use local, ray, ray:ADDRESS or inline")
    return kind, arg


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else (os.cpu_count() or 1))


class InlineEngine:
    """Devices one after another in this process (no worker processes)."""

    name = "inline"
    workers = 1

    def run(self, cfg: FleetConfig, files: ModelFiles, tasks: Iterable[Task]) -> Iterator[tuple]:
        _init_worker(cfg.to_json(), files)
        try:
            for task in tasks:
                yield _run_task(task)
        finally:
            _WORKER.close()


class LocalEngine:
    """K worker processes on this machine (no dependency beyond the standard library)."""

    name = "local"

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise TargetError(f"--workers must be >= 1, got {workers}")
        self.workers = workers

    def run(self, cfg: FleetConfig, files: ModelFiles, tasks: Iterable[Task]) -> Iterator[tuple]:
        pin_threads()   # inherited by the spawned workers before they import numpy
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(cfg.to_json(), files)) as pool:
            pending = set()
            todo = iter(tasks)
            try:
                for task in todo:
                    pending.add(pool.submit(_run_task, task))
                    if len(pending) >= 2 * self.workers:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for f in done:
                            yield f.result()
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in done:
                        yield f.result()
            finally:
                for f in pending:
                    f.cancel()


class RayEngine:
    """K Ray actors, each holding a Worker (extra ``[fleet]``: pip install 'edgelearn[fleet]')."""

    name = "ray"

    def __init__(self, workers: int | None, address: str = "") -> None:
        try:
            import ray
        except ImportError:
            raise TargetError("--engine ray needs Ray: pip install 'edgelearn[fleet]'") from None
        self.ray = ray
        self.address = address
        self.workers = workers

    def run(self, cfg: FleetConfig, files: ModelFiles, tasks: Iterable[Task]) -> Iterator[tuple]:
        ray = self.ray
        env = {"env_vars": {name: "1" for name in THREAD_ENV}}
        started = not ray.is_initialized()
        if started:
            kwargs = {"address": self.address} if self.address else \
                {"num_cpus": self.workers or default_workers()}
            try:
                ray.init(include_dashboard=False, log_to_driver=False, logging_level="error",
                         configure_logging=False, runtime_env=env, **kwargs)
            except Exception as exc:   # ConnectionError, RuntimeError, ValueError ...
                text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise TargetError(f"cannot start or reach Ray ({self.address or 'local'}): "
                                  f"{text}") from None
        try:
            k = self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
            actor = ray.remote(num_cpus=1)(_RayWorker)
            actors = [actor.remote(cfg.to_json(), files) for _ in range(k)]
            free = list(actors) * 2
            running: dict = {}
            todo = iter(tasks)
            exhausted = False
            while True:
                while free and not exhausted:
                    task = next(todo, None)
                    if task is None:
                        exhausted = True
                        break
                    a = free.pop()
                    running[a.run.remote(task)] = a
                if not running:
                    break
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    free.append(running.pop(ref))
                    yield ray.get(ref)
            ray.get([a.close.remote() for a in actors])
        finally:
            if started:
                ray.shutdown()


class _RayWorker:
    """A Ray actor around one Worker."""

    def __init__(self, cfg_json: dict, files: ModelFiles) -> None:
        _init_worker(cfg_json, files)

    def run(self, task: Task) -> tuple:
        return _run_task(task)

    def close(self) -> None:
        _WORKER.close()


def make_engine(text: str, workers: int | None):
    kind, address = parse_engine(text)
    if kind == "inline":
        return InlineEngine()
    if kind == "local":
        return LocalEngine(workers or default_workers())
    return RayEngine(workers, address)
