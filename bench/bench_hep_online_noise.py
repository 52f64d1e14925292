#!/usr/bin/env python3
"""Online training of an hEP head under white state noise: real hEP vs centered EP, per amplitude.

Data: the head features of the shipped speech model (edgelearn.device.features.head_features:
last-hidden-layer spike rates and readout scores, 138 values per sample, z-scored on the
training split). The training split is cut into 3,500 training and 500 validation samples;
accuracy is reported on the 1,000-sample test split. Every run trains a fresh 138-32-10
EnergyHead (seed s), one epoch of single-sample updates in the same order, lr 0.02, under
additive white state noise of ``--sigma`` per relaxation step; evaluation is noise-free.

Estimators: centered EP (nudges +-b), real hEP with 4 distinct nudges (Chebyshev-Gauss nodes
of b cos(theta)) and real hEP on the low-noise nodes +-b, +-b/2 (schemes.low_noise_scheme: the
least noise any real scheme exact to third order can have), each over an amplitude grid, with the same relaxation schedule per phase
(``--phase-steps`` damped-dynamics steps, readout averaged over the last ``--average``). The
exact gradient without noise is the ceiling. Two comparisons, paired by seed:

* equal amplitude: each real-hEP variant minus centered EP at each b both ran at;
* best against best: for each estimator the amplitude with the highest mean validation accuracy
  (test accuracy never chooses anything), then test accuracy minus test accuracy.

Prints a periodic progress line; writes JSON and a PNG (accuracy against amplitude).

    python bench/bench_hep_online_noise.py [--sigma 1.0] [--seeds 0 .. 11] [--quick] [--reuse JSON]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgelearn.atomic import atomic_save_png, atomic_write_text  # noqa: E402
from edgelearn.rules.hep import (  # noqa: E402
    EnergyHead,
    OnlineHEP,
    RelaxParams,
    StateNoise,
    low_noise_scheme,
)

CENTERED_AMPS = [1.0, 2.0, 3.0, 4.0, 6.0, 8.0]
HEP_AMPS = [2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0]
LOW_NOISE_AMPS = [4.0, 6.0, 8.0, 12.0, 16.0]
ESTIMATORS = {"centered": "centered EP", "hep": "real hEP, 4 nudges",
              "hep-low-noise": "real hEP, low-noise nodes"}
N_VALIDATION = 500
_DATA = None


def speech_features():
    """(Xtr, ytr, Xva, yva, Xte, yte): z-scored head features of models/speech_digits.onnx."""
    from edgelearn.adapt.bundle import load_bundle
    from edgelearn.device.features import head_features
    from edgelearn.data import load_speech_digits
    bundle = load_bundle(ROOT / "models" / "speech_digits.onnx")
    readout = bundle.network.meta.get("readout", "max")
    train, test = load_speech_digits("train"), load_speech_digits("test")
    f_tr = head_features(bundle.qnet, train.x, bundle.feature_layer, readout)
    f_te = head_features(bundle.qnet, test.x, bundle.feature_layer, readout)
    n = len(f_tr) - N_VALIDATION
    mu, sd = f_tr[:n].mean(0), f_tr[:n].std(0) + 1e-3
    z = lambda f: (f - mu) / sd  # noqa: E731
    return z(f_tr[:n]), train.y[:n], z(f_tr[n:]), train.y[n:], z(f_te), test.y


def _init(data):
    global _DATA
    _DATA = data


def train_one(job: dict) -> dict:
    """One online-training run; job: estimator, amplitude, sigma, seed, nudges, steps, average."""
    Xtr, ytr, Xva, yva, Xte, yte = _DATA
    n_train = job.get("n_train") or len(Xtr)
    head = EnergyHead((Xtr.shape[1], 32, 10), seed=job["seed"],
                      relax=RelaxParams(noisy_steps=job["steps"], average=job["average"]))
    noise = (StateNoise(job["sigma"], np.random.default_rng(job["seed"] + 7))
             if job["sigma"] > 0 else None)
    low = job["estimator"] == "hep-low-noise"
    learner = OnlineHEP(head, lr=0.02, amplitude=job["amplitude"], nudges=job["nudges"],
                        estimator="hep" if low else job["estimator"], noise=noise,
                        scheme=low_noise_scheme() if low else None)
    t0 = time.perf_counter()
    for i in np.random.default_rng(job["seed"]).permutation(len(Xtr))[:n_train]:
        learner.update(Xtr[i], int(ytr[i]))
    return {**job, "validation_accuracy": head.accuracy(Xva, yva),
            "test_accuracy": head.accuracy(Xte, yte), "test_loss": head.loss(Xte, yte),
            "relax_steps_per_update": learner.relax_steps / max(learner.updates, 1),
            "nonconverged": learner.nonconverged, "seconds": time.perf_counter() - t0}


def _mean_se(values) -> tuple[float, float]:
    v = list(values)
    se = statistics.stdev(v) / len(v) ** 0.5 if len(v) > 1 else float("nan")
    return statistics.fmean(v), se


def _paired(d: list[float]) -> dict:
    m, se = _mean_se(d)
    return {"mean": m, "se": se, "per_seed": d, "wins": sum(x > 0 for x in d), "n": len(d)}


def summarise(runs: list[dict], seeds: list[int]) -> dict:
    """Per-amplitude means, paired equal-amplitude differences (each hEP variant minus centered
    EP) and the best-vs-best comparison (amplitudes chosen on validation accuracy)."""
    def acc(est, b, key="test_accuracy"):
        return [r[key] for s in seeds for r in runs
                if r["estimator"] == est and r["amplitude"] == b and r["seed"] == s]

    amps = {est: sorted({r["amplitude"] for r in runs if r["estimator"] == est})
            for est in ESTIMATORS}
    per_amp = {est: {str(b): dict(zip(("mean", "se"), _mean_se(acc(est, b)))) for b in amps[est]}
               for est in ESTIMATORS}
    best = {est: max(amps[est], key=lambda b: statistics.fmean(acc(est, b, "validation_accuracy")))
            for est in ESTIMATORS}
    equal, best_vs_best = {}, {}
    for est in ("hep", "hep-low-noise"):
        equal[est] = {str(b): _paired([x - y for x, y in zip(acc(est, b), acc("centered", b))])
                      for b in amps[est] if b in amps["centered"]}
        best_vs_best[est] = _paired([x - y for x, y in zip(acc(est, best[est]),
                                                             acc("centered", best["centered"]))])
    exact = [r["test_accuracy"] for r in runs if r["estimator"] == "exact"]
    return {"per_amplitude": per_amp, "equal_amplitude_minus_centered": equal,
            "best_amplitude": best, "best_vs_best_minus_centered": best_vs_best,
            "exact_noise_free": dict(zip(("mean", "se"), _mean_se(exact)))}


def plot(summary: dict, sigma: float, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for est, label in ESTIMATORS.items():
        pa = summary["per_amplitude"][est]
        b = [float(k) for k in pa]
        ax.errorbar(b, [100 * v["mean"] for v in pa.values()],
                    yerr=[100 * v["se"] for v in pa.values()], marker="o", capsize=3, label=label)
    ax.axhline(100 * summary["exact_noise_free"]["mean"], color="k", ls="--",
               label="exact gradient, no noise")
    ax.set_xlabel("amplitude b")
    ax.set_ylabel("test accuracy after 1 epoch (%)")
    ax.set_title(f"online head training, state noise sigma = {sigma} (mean +- SE over seeds)")
    ax.legend()
    fig.tight_layout()
    atomic_save_png(fig, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sigma", type=float, default=1.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(12)))
    ap.add_argument("--phase-steps", type=int, default=60)
    ap.add_argument("--average", type=int, default=50)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="300 training samples, 2 seeds")
    ap.add_argument("--reuse", help="a JSON of an earlier run: its runs with the same settings "
                    "are kept, not rerun (to add seeds)")
    ap.add_argument("--json", default="reports/bench_hep_online_noise.json")
    ap.add_argument("--plot", default="reports/bench_hep_online_noise.png")
    args = ap.parse_args(argv)
    seeds = args.seeds[:2] if args.quick else args.seeds
    base = {"sigma": args.sigma, "nudges": 4, "steps": args.phase_steps,
            "average": args.average, "n_train": 300 if args.quick else None}
    jobs = [{**base, "estimator": "exact", "amplitude": 1.0, "sigma": 0.0, "seed": s}
            for s in seeds]
    grids = {"centered": CENTERED_AMPS, "hep": HEP_AMPS, "hep-low-noise": LOW_NOISE_AMPS}
    jobs += [{**base, "estimator": est, "amplitude": b, "seed": s}
             for est, grid in grids.items() for s in seeds for b in grid]
    runs = []
    if args.reuse:
        try:
            with open(args.reuse, encoding="utf-8") as f:
                old = json.load(f)["runs"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"bench_hep_online_noise: error: --reuse {args.reuse}: not a JSON written by "
                  f"this bench ({exc})", file=sys.stderr)
            return 2
        def key(j):  # noqa: E306
            return tuple(j.get(k) for k in ("estimator", "amplitude", "sigma", "seed", "nudges",
                                            "steps", "average", "n_train"))
        wanted = {key(j) for j in jobs}
        runs = [r for r in old if key(r) in wanted]
        have = {key(r) for r in runs}
        jobs = [j for j in jobs if key(j) not in have]
        print(f"reusing {len(runs)} runs from {args.reuse}; {len(jobs)} to run", flush=True)
    data = speech_features()
    t0, n_reused = time.time(), len(runs)
    with Pool(args.workers, initializer=_init, initargs=(data,)) as pool:
        for r in pool.imap_unordered(train_one, jobs):
            runs.append(r)
            print(f"[{len(runs)}/{len(jobs) + n_reused} {time.time() - t0:.0f} s] {r['estimator']} "
                  f"b={r['amplitude']} seed {r['seed']}: test {100 * r['test_accuracy']:.1f} % "
                  f"({r['relax_steps_per_update']:.0f} steps/update)", flush=True)
    summary = summarise(runs, seeds)
    print(f"\nstate noise sigma {args.sigma}, seeds {seeds}; test accuracy, mean +- SE "
          f"(exact gradient, no noise: {100 * summary['exact_noise_free']['mean']:.1f} %)")
    print(f"{'b':>5} {'centered EP':>13} {'real hEP 4':>13} {'low-noise hEP':>13}   "
          f"hEP 4 - centered (wins)  low-noise - centered (wins)")
    for b in sorted(set(CENTERED_AMPS) | set(HEP_AMPS) | set(LOW_NOISE_AMPS)):
        cells = []
        for est in ESTIMATORS:
            v = summary["per_amplitude"][est].get(str(b))
            cells.append(f"{100 * v['mean']:5.1f} +- {100 * v['se']:3.1f}" if v else "-")
        for est in ("hep", "hep-low-noise"):
            e = summary["equal_amplitude_minus_centered"][est].get(str(b))
            cells.append(f"{100 * e['mean']:+5.1f} +- {100 * e['se']:3.1f} ({e['wins']}/{e['n']})"
                         if e else "")
        print(f"{b:5g} {cells[0]:>13} {cells[1]:>13} {cells[2]:>13}   {cells[3]:>23}  "
              f"{cells[4]:>27}")
    best = summary["best_amplitude"]
    print(f"amplitude chosen on validation: centered EP b={best['centered']}, real hEP 4 "
          f"b={best['hep']}, low-noise b={best['hep-low-noise']}")
    for est in ("hep", "hep-low-noise"):
        bb = summary["best_vs_best_minus_centered"][est]
        print(f"  {ESTIMATORS[est]} - centered EP, test, best against best: "
              f"{100 * bb['mean']:+.2f} +- {100 * bb['se']:.2f} points, ahead in "
              f"{bb['wins']}/{bb['n']} seeds")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.json, json.dumps({"settings": vars(args), "summary": summary,
                                             "runs": runs}, indent=2))
    try:
        plot(summary, args.sigma, args.plot)
    except ImportError:
        print("matplotlib missing: no plot", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
