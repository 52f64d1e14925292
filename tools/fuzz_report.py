#!/usr/bin/env python3
"""The fuzz figures of docs/results.md ("Hostile input"): run the fuzz tests and count, per
reader and per command-line surface, the inputs tried and how each ended.

    python tools/fuzz_report.py            the long run (pytest -m slow, 3,370 inputs, ~5 min here)
    python tools/fuzz_report.py --quick    the bounded default run of the test suite (~1 min)
    python tools/fuzz_report.py --out DIR  where fuzz.json and fuzz.png go (reports/fuzz)

The counts come from tests/_fuzz_harness.py (each case runs in a worker process with a
512 MiB peak-RSS cap and a 90 s timeout); the script prints a Markdown table, writes the counts
as JSON and a PNG of inputs tried and peak RSS per surface. Exit code: pytest's (0 when every
case kept the promise).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TESTS = ["tests/test_fuzz_readers.py", "tests/test_fuzz_options.py"]
RSS_CAP_MIB = 512


def run_fuzz(slow: bool, stats: Path) -> int:
    env = dict(os.environ, FUZZ_STATS=str(stats),
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "-W", "ignore::DeprecationWarning", *TESTS]
    if slow:
        cmd[4:4] = ["-m", "slow"]
    print("running:", " ".join(cmd[1:]), flush=True)
    return subprocess.call(cmd, cwd=ROOT, env=env)


def table(stats: dict) -> str:
    rows = ["| surface | inputs | exit 0 | exit 2 (one line) | other exit | tracebacks | hangs "
            "| crashes | peak RSS (max) | slowest case |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    total = {k: 0 for k in ("tried", "exit0", "exit2", "other_exit", "tracebacks", "hangs",
                            "crashes")}
    for name in sorted(stats):
        s = stats[name]
        for k in total:
            total[k] += s[k]
        rows.append(f"| {name} | {s['tried']} | {s['exit0']} | {s['exit2'] - s['extra_lines']} "
                    f"| {s['other_exit']} | {s['tracebacks']} | {s['hangs']} | {s['crashes']} "
                    f"| {s['peak_rss_max'] / 2**20:.0f} MiB | {s['seconds_max']:.2f} s |")
    peak = max((s["peak_rss_max"] for s in stats.values()), default=0)
    rows.append(f"| **all** | **{total['tried']}** | {total['exit0']} | {total['exit2']} | "
                f"{total['other_exit']} | {total['tracebacks']} | {total['hangs']} | "
                f"{total['crashes']} | {peak / 2**20:.0f} MiB (cap {RSS_CAP_MIB}) | |")
    return "\n".join(rows)


def plot(stats: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgelearn.atomic import atomic_save_png

    names = sorted(stats)
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 0.45 * len(names) + 1.5), sharey=True)
    y = range(len(names))
    ok = [stats[n]["exit0"] for n in names]
    refused = [stats[n]["exit2"] for n in names]
    a.barh(y, ok, color="tab:green", label="exit 0 (accepted)")
    a.barh(y, refused, left=ok, color="tab:blue", label="exit 2, one line (refused)")
    bad = [stats[n]["tried"] - stats[n]["exit0"] - stats[n]["exit2"] for n in names]
    a.barh(y, bad, left=[o + r for o, r in zip(ok, refused)], color="tab:red",
           label="anything else")
    a.set_yticks(list(y), names, fontsize=8)
    a.set_xlabel("inputs tried")
    a.legend(fontsize=8, loc="lower right")
    b.barh(y, [stats[n]["peak_rss_max"] / 2**20 for n in names], color="tab:gray")
    b.axvline(RSS_CAP_MIB, color="tab:red", ls="--", label=f"cap {RSS_CAP_MIB} MiB")
    b.set_xlabel("peak RSS of the process per case, max (MiB)")
    b.legend(fontsize=8, loc="lower right")
    fig.suptitle("Hostile input fuzzing: every case ends in exit 0 or one error line")
    fig.tight_layout()
    atomic_save_png(fig, path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="the default (bounded) run only")
    ap.add_argument("--out", default=str(ROOT / "reports" / "fuzz"), help="output folder")
    args = ap.parse_args(argv)
    from edgelearn.atomic import atomic_write_text

    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        stats_path = Path(tmp) / "stats.json"
        t0 = time.time()
        code = run_fuzz(not args.quick, stats_path)
        minutes = (time.time() - t0) / 60
        stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    out.mkdir(parents=True, exist_ok=True)
    doc = {"run": "quick" if args.quick else "slow", "minutes": round(minutes, 1),
           "pytest_exit": code, "rss_cap_mib": RSS_CAP_MIB, "surfaces": stats}
    atomic_write_text(out / "fuzz.json", json.dumps(doc, indent=1, sort_keys=True))
    if stats:
        plot(stats, out / "fuzz.png")
    print(table(stats))
    print(f"\n{sum(s['tried'] for s in stats.values())} inputs in {minutes:.1f} min; "
          f"pytest exit {code}; wrote {out / 'fuzz.json'} and {out / 'fuzz.png'}")
    return code


if __name__ == "__main__":
    sys.exit(main())
