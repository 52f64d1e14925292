"""bench/bench_native.py refuses counts it cannot use before any work: one line, exit 2
(--repeats 0 used to end in a statistics.median traceback)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("option", ["--repeats", "--steps"])
def test_non_positive_count_is_one_line_and_exit_2(option):
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_native.py"), option, "0"],
                       capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip() == (f"bench_native: error: argument {option}: must be an integer "
                                f">= 1, got 0 (see bench_native --help)")
