#!/usr/bin/env python3
"""Online training of an hEP head under state noise: oscillating real hEP vs centered EP.

Same features, head, learning rate and sample order for every estimator (Randman features of
models/randman_small.onnx, as in bench/bench_hep.py); one epoch of single-sample updates; test
accuracy evaluated noise-free. Real hEP runs in the continuous-oscillation mode (the paper's:
beta = b cos(theta) moves while the network relaxes and the accumulators integrate over
``--periods`` periods), which spends about 5x the relaxation steps of centered EP.

    python bench/bench_hep_online_noise.py --sigmas 0.1 0.3 --seeds 0 1
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

from edgelearn.atomic import atomic_write_text
from edgelearn.rules.hep import EnergyHead, OnlineHEP, StateNoise

ROOT = Path(__file__).resolve().parents[1]


def features():
    spec = importlib.util.spec_from_file_location("bench_hep", ROOT / "bench" / "bench_hep.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.snn_features()


def run(data, estimator, amplitude, sigma, seed, **osc) -> tuple[float, float]:
    Xtr, ytr, Xte, yte = data
    head = EnergyHead((Xtr.shape[1], 64, 10), seed=seed)
    learner = OnlineHEP(head, lr=0.02, amplitude=amplitude, nudges=4, estimator=estimator,
                        noise=StateNoise(sigma, np.random.default_rng(seed + 7)), **osc)
    for i in np.random.default_rng(seed).permutation(len(Xtr)):
        learner.update(Xtr[i], int(ytr[i]))
    return head.accuracy(Xte, yte), learner.relax_steps / max(learner.updates, 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0.1, 0.3])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--periods", type=int, default=4)
    ap.add_argument("--out", default="reports/bench_hep_online_noise.json")
    args = ap.parse_args(argv)
    data = features()
    runs = {"centered b=1": ("centered", 1.0, {}), "centered b=2": ("centered", 2.0, {}),
            f"real hEP oscillating b=2, {args.periods} periods":
                ("hep", 2.0, {"mode": "oscillating", "periods": args.periods})}
    out = []
    for sigma in args.sigmas:
        for seed in args.seeds:
            row = {"sigma": sigma, "seed": seed}
            for name, (est, b, kw) in runs.items():
                acc, steps = run(data, est, b, sigma, seed, **kw)
                row[name] = {"test_accuracy": acc, "relax_steps_per_update": steps}
            best_c = max(row["centered b=1"]["test_accuracy"], row["centered b=2"]["test_accuracy"])
            hep = row[list(runs)[-1]]["test_accuracy"]
            row["hep_minus_best_centered"] = hep - best_c
            out.append(row)
            print(f"sigma {sigma} seed {seed}: " + ", ".join(
                f"{k} {100 * v['test_accuracy']:.2f} % ({v['relax_steps_per_update']:.0f} steps)"
                for k, v in row.items() if isinstance(v, dict))
                + f"; hEP - best centered {100 * row['hep_minus_best_centered']:+.2f} pt",
                flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
