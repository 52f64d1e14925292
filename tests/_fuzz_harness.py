"""Run hostile cases in a separate, capped process and check the boundary's promise.

    with Worker() as w:
        res = w.run(["info", "bad.onnx"])          # -> Outcome
        check(res, "edgelearn info")                # the property, or AssertionError

The promise (docs/architecture.md, "Bad input"): every case ends with exit code 0, or exit
code 2 and exactly one stderr line ``PROG [SUBCOMMAND]: error: ...`` (progress lines aside); never a
traceback, a warning or an onnxruntime log line before it, never a hang (the case is killed
after ``timeout`` seconds) and never more than RSS_CAP bytes of peak resident memory (the
worker's whole process, measured per case; see tests/_fuzz_worker.py).

Counts per surface are kept in STATS; when FUZZ_STATS names a file, they are added to it (JSON)
at exit, which is how tools/fuzz_report.py collects the figures of docs/results.md.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import selectors
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RSS_CAP = 512 << 20
PROGRESS = ("upload [", "adapt [", "frozen [", "pull [")


@dataclass
class Outcome:
    code: int | None
    stderr: str = ""
    stdout: str = ""
    seconds: float = 0.0
    peak_rss: int = 0
    hang: bool = False
    crash: bool = False

    @property
    def lines(self) -> list[str]:
        """stderr lines that are not progress bars."""
        return [ln for ln in self.stderr.replace("\r", "\n").splitlines()
                if ln.strip() and not ln.lstrip().startswith(PROGRESS)]


class Worker:
    """A long-lived tests/_fuzz_worker.py process; restarted after a hang or crash."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = float(os.environ.get("FUZZ_TIMEOUT", timeout))   # override: FUZZ_TIMEOUT
        self.proc = None
        self._start()

    def _start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH",
                                                                                  ""))
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "_fuzz_worker.py")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, env=env,
                                     cwd=str(ROOT))
        line = self._read(120.0)
        if line is None or not json.loads(line).get("ready"):
            raise RuntimeError("the fuzz worker did not start")

    def _read(self, timeout: float) -> str | None:
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        try:
            if not sel.select(timeout):
                return None
            line = self.proc.stdout.readline()
            return line or None
        finally:
            sel.close()

    def _stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def run(self, argv: list, entry: str = "edgelearn", cwd: str | os.PathLike | None = None,
            limits: dict | None = None, timeout: float | None = None) -> Outcome:
        req = {"entry": entry, "argv": [str(a) for a in argv],
               "cwd": str(cwd) if cwd else None, "limits": limits or {}}
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        try:
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            self._stop()
            return Outcome(None, crash=True)
        line = self._read(timeout or self.timeout)
        if line is None:
            died = self.proc.poll() is not None
            self._stop()
            return Outcome(None, crash=died, hang=not died)
        d = json.loads(line)
        return Outcome(d["code"], d["stderr"], d["stdout"], d["seconds"], d["peak_rss"])

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self._stop()

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


STATS: dict[str, dict] = {}


def record(surface: str, res: Outcome) -> None:
    s = STATS.setdefault(surface, {"tried": 0, "exit0": 0, "exit2": 0, "tracebacks": 0,
                                   "other_exit": 0, "hangs": 0, "crashes": 0, "extra_lines": 0,
                                   "over_rss_cap": 0, "peak_rss_max": 0, "seconds_max": 0.0})
    s["tried"] += 1
    s["hangs"] += res.hang
    s["crashes"] += res.crash
    if res.code == 0:
        s["exit0"] += 1
    elif res.code == 2:
        s["exit2"] += 1
        s["extra_lines"] += len(res.lines) != 1
    elif res.code is not None:
        s["other_exit"] += 1
    s["tracebacks"] += "Traceback" in res.stderr
    s["over_rss_cap"] += res.peak_rss > RSS_CAP
    s["peak_rss_max"] = max(s["peak_rss_max"], res.peak_rss)
    s["seconds_max"] = max(s["seconds_max"], round(res.seconds, 3))


def check(res: Outcome, prog: str, surface: str | None = None, allow_ok: bool = True) -> None:
    """Assert the promise for one case (and count it under ``surface``)."""
    if surface:
        record(surface, res)
    assert not res.hang, f"{prog}: hang (no result within the timeout)"
    assert not res.crash, f"{prog}: the process died"
    assert "Traceback" not in res.stderr, f"{prog}: traceback\n{res.stderr}"
    assert res.code in ((0, 2) if allow_ok else (2,)), \
        f"{prog}: exit code {res.code}\n{res.stderr}"
    if res.code == 2:
        assert len(res.lines) == 1, f"{prog}: expected one stderr line, got\n{res.stderr}"
        assert re.match(rf"{re.escape(prog)}( [\w-]+)*: error: ", res.lines[0]), res.stderr
    assert res.peak_rss <= RSS_CAP, f"{prog}: peak RSS {res.peak_rss >> 20} MiB > " \
                                    f"{RSS_CAP >> 20} MiB"


def _dump_stats() -> None:
    path = os.environ.get("FUZZ_STATS")
    if not path or not STATS:
        return
    p = Path(path)
    old = json.loads(p.read_text()) if p.exists() else {}
    for surface, s in STATS.items():
        o = old.setdefault(surface, dict.fromkeys(s, 0))
        for k, v in s.items():
            o[k] = max(o.get(k, 0), v) if k.endswith("_max") else o.get(k, 0) + v
    p.write_text(json.dumps(old, indent=1, sort_keys=True))


atexit.register(_dump_stats)


class Files(dict):
    """Named seed files and paths of a fuzz module (short repr: hypothesis prints it)."""

    def __repr__(self) -> str:
        return f"<fuzz files in {self.get('folder')}>"


def fuzz_tests(case, strategy, examples: int, long_factor: int = 10):
    """Two hypothesis tests of ``case(worker, files, value)`` on values drawn from
    ``strategy(files)``: the default run (``examples`` inputs, derandomized: the same inputs
    on every machine) and the ``-m slow`` run (``long_factor`` times as many, freshly
    random). Both need module fixtures ``worker`` and ``files``."""
    import pytest
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    common = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck))

    def body(worker, files, data):
        case(worker, files, data.draw(strategy(files)))

    default = settings(max_examples=examples, derandomize=True, **common)(
        given(data=st.data())(body))
    long = pytest.mark.slow(settings(max_examples=examples * long_factor, **common)(
        given(data=st.data())(body)))
    return default, long


def small_stream(folder: Path) -> Path:
    """A 12-sample data set for the bundled randman model (32 channels, 4 voices)."""
    import numpy as np

    from edgelearn.data import Dataset
    from edgelearn.data.dataset import save_npz

    rng = np.random.default_rng(0)
    ds = Dataset((rng.random((12, 20, 32)) < 0.2).astype(np.uint8), np.arange(12) % 4, 4,
                 "fuzz", {"voice": np.arange(12) % 3})
    save_npz(ds, folder / "stream.npz")
    np.save(folder / "x.npy", (rng.random((20, 2, 32)) < 0.2).astype(np.float32))
    return folder / "stream.npz"
