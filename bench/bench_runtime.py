#!/usr/bin/env python3
"""Per-step time of sequence inference: numpy reference vs onnxruntime step graph vs Scan.

Network 700-256-20 (recurrent CUBA LIF hidden layer, leaky-integrator readout, the SHD shape),
T = 100 steps of Bernoulli(0.05) input spikes, batch 1 and 64. Each backend runs the same
sequence ``--repeats`` times after one warm-up; the median is reported per time step, with the
ratio numpy / backend (> 1 means faster than numpy). Outputs are checked to agree first.

Usage: python bench/bench_runtime.py [--repeats 15] [--threads 1]
           [--json reports/bench_runtime.json] [--plot reports/bench_runtime.png]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgelearn.atomic import atomic_save_png, atomic_write_text  # noqa: E402
from edgelearn.io import OnnxRuntimeBackend  # noqa: E402
from edgelearn.model import Layer, Network  # noqa: E402
from edgelearn.runtime.reference import run as run_numpy  # noqa: E402


def make_net(seed: int = 0) -> Network:
    rng = np.random.default_rng(seed)
    hid = Layer("hidden", rng.standard_normal((256, 700)) * 0.15, alpha=0.8, beta=0.9,
                recurrent=rng.standard_normal((256, 256)) * 0.05)
    out = Layer("readout", rng.standard_normal((20, 256)) * 0.1, alpha=0.8, beta=0.9,
                spiking=False)
    return Network((hid, out), name="shd_700_256_20")


def median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--json", default=None, help="also write the figures here")
    ap.add_argument("--plot", default=None, help="also draw a bar chart here (.png, matplotlib)")
    args = ap.parse_args(argv)
    net = make_net()
    backends = {"onnxruntime step": OnnxRuntimeBackend(net, "step", threads=args.threads),
                "onnxruntime scan": OnnxRuntimeBackend(net, "scan", threads=args.threads)}
    results = []
    print(f"network {net.n_in}-{net.layers[0].n_out}-{net.n_out} (recurrent hidden), "
          f"T={args.steps}, median of {args.repeats}, onnxruntime threads={args.threads}")
    print(f"{'batch':>5}  {'backend':<18}{'us/step':>10}{'numpy/this':>12}")
    for batch in args.batches:
        x = (np.random.default_rng(1).random((args.steps, batch, net.n_in)) < 0.05) \
            .astype(np.float32)
        ref = run_numpy(net, x)
        for name, be in backends.items():
            rec = be.run(x)
            for k in ref.spikes:
                mismatch = float(np.mean(rec.spikes[k] != ref.spikes[k]))
                if mismatch > 1e-3:
                    print(f"warning: {name} spikes of '{k}' differ from numpy on "
                          f"{mismatch:.2%} of entries")
        t_np = median_time(lambda: run_numpy(net, x), args.repeats) / args.steps
        rows = [("numpy", t_np)]
        for name, be in backends.items():
            rows.append((name, median_time(lambda be=be: be.run(x), args.repeats) / args.steps))
        for name, t in rows:
            print(f"{batch:>5}  {name:<18}{t * 1e6:>10.1f}{t_np / t:>12.2f}")
            results.append({"batch": batch, "backend": name, "seconds_per_step": t,
                            "speedup_vs_numpy": t_np / t})
    if args.json:
        atomic_write_text(args.json, json.dumps({"network": "700-256-20", "T": args.steps,
                                                 "repeats": args.repeats,
                                                 "threads": args.threads,
                                                 "results": results}, indent=1))
        print(f"wrote {args.json}")
    if args.plot:
        plot(results, args.plot)
    return 0


def plot(results: list[dict], path: str) -> None:
    """Bar chart of microseconds per step, one group per batch size."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = sorted({r["batch"] for r in results})
    names = list(dict.fromkeys(r["backend"] for r in results))
    fig, axes = plt.subplots(1, len(batches), figsize=(4 * len(batches), 3.2))
    for ax, b in zip(np.atleast_1d(axes), batches):
        vals = [next(r["seconds_per_step"] for r in results
                     if r["batch"] == b and r["backend"] == n) * 1e6 for n in names]
        ax.bar(range(len(names)), vals, color=["0.5", "tab:blue", "tab:orange"][:len(names)])
        ax.set_xticks(range(len(names)), [n.replace("onnxruntime ", "ort ") for n in names])
        ax.set_title(f"batch {b}")
        ax.set_ylabel("us per time step")
    fig.suptitle("700-256-20 SNN, T=100: sequence inference")
    fig.tight_layout()
    atomic_save_png(fig, path, dpi=100)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
