"""bench/bench_lpl_step.py: the C LPL step timed without Python on the library's build and
its scalar build, which must leave the same checksum; bad input is one line and exit 2."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*argv):
    return subprocess.run([sys.executable, str(ROOT / "bench" / "bench_lpl_step.py"), *argv],
                          capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_bad_reps_is_one_line_and_exit_2():
    r = _run("--reps", "0")
    assert r.returncode == 2
    assert r.stderr.strip() == ("bench_lpl_step: error: argument --reps: must be an integer "
                                ">= 1, got 0 (see bench_lpl_step --help)")


@pytest.mark.slow
def test_lib_and_lib_scalar_leave_the_same_checksum():
    """Two driver builds (about a minute): the headline model's LPL step timed on both; the
    lines carry the same checksum of weights, LPL state and PRNG (timings are not judged)."""
    r = _run("--reps", "3", "--only", "headline")
    assert r.returncode == 0, r.stderr
    rows = re.findall(r"headline\s+(lib|lib-scalar)\s+us/step .*\(checksum (\w+)\)", r.stdout)
    assert [b for b, *_ in rows] == ["lib", "lib-scalar"], r.stdout
    assert rows[0][1] == rows[1][1]
