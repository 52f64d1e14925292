"""bench/bench_substrate.py refuses options it cannot use before any work: one line, exit 2
(an unknown --conditions entry used to be skipped silently, an unknown preset ended in a
traceback after the head was pretrained)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("args, message", [
    (["--conditions", "lpl"], "--conditions: unknown condition(s) lpl (known: hep, lpl+hep)"),
    (["--presets", "bss2,foo"], "--presets: unknown substrate preset 'foo'; choose from "
                                "['bss2', 'ideal', 'pcm']"),
    (["--instances", "0"], "argument --instances: must be an integer >= 1, got 0"),
    # negative sample counts used to mean "all" and negative head epochs an untrained head
    (["--max-train", "-5"], "argument --max-train: must be an integer >= 0, got -5"),
    (["--max-test", "-1"], "argument --max-test: must be an integer >= 0, got -1"),
    (["--head-epochs", "-1"], "argument --head-epochs: must be an integer >= 0, got -1"),
])
def test_bad_option_is_one_line_and_exit_2(args, message):
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_substrate.py"), *args],
                       capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.strip() == (f"bench_substrate: error: {message} "
                                f"(see bench_substrate --help)")
