#!/usr/bin/env python3
"""Is label-free LPL limited by int8 rounding or by what it optimises? Pure LPL at several rates,
fixed point on the device engine vs its float twin, under input drift.

The float twin (bench_lpl_drift.run_float_twin: the float network and the float rule, updates
summed exactly) is the limit of keeping a latent weight of unbounded precision beside the int8
weight (the "master weight" idea): if the float twin does not recover what the drift took,
finer weights will not either. Each LPL run is compared with the frozen network it started
from: the fixed rule with the integer network, the float twin with the float (dequantized)
network, whose accuracy under a drift can differ by several points from the integer one's.
Also measured: how far the hidden layer's firing rates on the
held-out set are from its rates on training data (rate error, the quantity the homeostatic
term restores), for frozen, the homeostasis preset and LPL.

Protocol: the streams, held-out sets and engine runs of bench/bench_lpl_drift.py (same seeds);
LPL = lpl_presets.preset("lpl") (= lpl_rate.deploy_default) with eta replaced; homeostasis =
lpl_presets.preset("homeostasis") from the training-data reference state.

    rate error = mean_i | r_i(held-out, adapted network) - r_i(training inputs, deployed network) |

with r_i the spike rate of hidden neuron i (spikes per step, averaged over samples and steps;
the training inputs are the bundle's calibration samples, as a deployment measures them).

    python bench/bench_lpl_rates.py --seeds 2 --etas 1e-7,1e-6,1e-5
Writes reports/bench_lpl_rates.json and .png; prints one line per run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bench.bench_lpl_drift as drift  # noqa: E402
from edgelearn.adapt.bundle import load_bundle  # noqa: E402
from edgelearn.adapt.reference import lpl_reference_weights  # noqa: E402
from edgelearn.atomic import atomic_save_png, atomic_write_text  # noqa: E402
from edgelearn.data import load_speech_digits  # noqa: E402
from edgelearn.device.engine import EngineConfig  # noqa: E402
from edgelearn.device.features import head_features  # noqa: E402
from edgelearn.kernels.lif_fixed import dequantize  # noqa: E402
from edgelearn.rules import lpl_presets  # noqa: E402


def hidden_rates(qnet, x, readout, n_hidden) -> np.ndarray:
    """Per hidden neuron spike rate (spikes per step) averaged over the samples ``x``."""
    return head_features(qnet, x, readout=readout)[:, :n_hidden].mean(axis=0)


def plot(summary, conditions, etas, path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, len(conditions), figsize=(3.2 * len(conditions), 3.4),
                             sharey=True, squeeze=False)
    for ax, c in zip(axes[0], conditions):
        s = summary[c]
        for key, style in (("fixed", "o-"), ("float", "s--")):
            if all(key in s[f"{e:g}"] for e in etas):
                ax.errorbar(etas, [100 * s[f"{e:g}"][key]["mean"] for e in etas],
                            [100 * s[f"{e:g}"][key]["se"] for e in etas], fmt=style,
                            label=f"LPL {key}", capsize=2)
        for key, color in (("frozen", "gray"), ("frozen_float", "tab:orange"),
                           ("homeostasis", "tab:green")):
            if key in s:
                ax.axhline(100 * s[key]["mean"], color=color, ls=":",
                           label=key.replace("_", " "))
        ax.set_xscale("log")
        ax.set_title(c)
        ax.set_xlabel("LPL eta")
    axes[0][0].set_ylabel("held-out accuracy (%)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("pure LPL: fixed point vs float twin (mean +- s.e. over seeds)")
    atomic_save_png(fig, path, bbox_inches="tight", dpi=120)
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "speech_digits.onnx"))
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--etas", default="1e-7,1e-6,1e-5", help="comma-separated LPL rates")
    ap.add_argument("--conditions", default="gain,dead,noise,none,shift",
                    help="comma-separated subset of bench_lpl_drift's conditions "
                         "(substrates excluded)")
    ap.add_argument("--no-float", action="store_true", help="skip the float twin")
    ap.add_argument("--limit", type=int, help="first N samples of each stream (quick check)")
    ap.add_argument("--out", default=str(ROOT / "reports" / "bench_lpl_rates"))
    args = ap.parse_args(argv)
    etas = [float(e) for e in args.etas.split(",")]
    conditions = [c.strip() for c in args.conditions.split(",")]
    bad = [c for c in conditions if c not in drift.DRIFTS or c in drift.SUBSTRATES]
    if bad:
        raise SystemExit(f"unknown or unsupported conditions {bad}")

    t_start = time.time()
    b = load_bundle(args.model)
    readout = b.network.meta.get("readout", "max")
    test, new_user = load_speech_digits("test"), load_speech_digits("new_user")
    n_hidden = b.qnet.layer(b.feature_layer).n_out
    r_train = hidden_rates(b.qnet, b.reference_inputs(), readout, n_hidden)
    hom = lpl_presets.preset("homeostasis")
    reference = lpl_reference_weights(b.qnet, EngineConfig(
        readout=readout, lpl_layers=b.hidden_names, lpl=hom, hep=None), b.reference_inputs())
    arena = 512 * 1024
    runs = []

    def record(seed, c, method, eta, acc, qnet=None, xe=None, moved=0.0, kind="fixed"):
        err = (float(np.abs(hidden_rates(qnet, xe, readout, n_hidden) - r_train).mean())
               if qnet is not None else None)
        runs.append({"seed": seed, "condition": c, "method": method, "eta": eta, "kind": kind,
                     "accuracy": acc, "rate_error": err, "mean_abs_weight_change_lsb": moved})
        print(f"seed {seed} {c:<8} {method:<11} {kind:<5} eta {eta or 0:.0e} held-out "
              f"{100 * acc:5.1f} %" + (f" rate error {err:.4f}" if err is not None else "")
              + f" |dW| {moved:.2f} LSB, total {time.time() - t_start:.0f} s", flush=True)

    for seed in range(args.seeds):
        for c in conditions:
            xs, _, xe, ye = drift.condition_sets(c, seed, test, new_user)
            xs = xs[:args.limit] if args.limit else xs
            record(seed, c, "frozen", None, drift.head_accuracy(b.qnet, b.head, xe, ye, readout),
                   b.qnet, xe)
            if not args.no_float:
                record(seed, c, "frozen", None,
                       drift.float_head_accuracy(b, dequantize(b.qnet), xe, ye, readout),
                       kind="float")
            qnet, head, moved, _ = drift.adapt_lpl(b, hom, xs, seed, readout, reference, arena)
            record(seed, c, "homeostasis", hom.eta,
                   drift.head_accuracy(qnet, head, xe, ye, readout), qnet, xe, moved)
            for eta in etas:
                p = dataclasses.replace(lpl_presets.preset("lpl"), eta=eta)
                qnet, head, moved, _ = drift.adapt_lpl(b, p, xs, seed, readout, {}, arena)
                record(seed, c, "LPL", eta, drift.head_accuracy(qnet, head, xe, ye, readout),
                       qnet, xe, moved)
                if not args.no_float:
                    record(seed, c, "LPL", eta,
                           drift.run_float_twin(b, p, xs, xe, ye, {}, readout), kind="float")

    summary = {}
    for c in conditions:
        rows = [r for r in runs if r["condition"] == c]
        pick = lambda m, k="fixed", e=None, f="accuracy": [  # noqa: E731
            r[f] for r in rows if r["method"] == m and r["kind"] == k
            and (e is None or r["eta"] == e)]
        summary[c] = {"frozen": drift.stats(pick("frozen")),
                      "homeostasis": drift.stats(pick("homeostasis")),
                      "rate_error": {"frozen": drift.stats(pick("frozen", f="rate_error")),
                                     "homeostasis": drift.stats(pick("homeostasis",
                                                                     f="rate_error"))}}
        if not args.no_float:
            summary[c]["frozen_float"] = drift.stats(pick("frozen", "float"))
        for e in etas:
            cell = {"fixed": drift.stats(pick("LPL", "fixed", e)),
                    "rate_error": drift.stats(pick("LPL", "fixed", e, "rate_error")),
                    "weight_change_lsb": drift.stats(pick("LPL", "fixed", e,
                                                          "mean_abs_weight_change_lsb"))}
            fx = np.asarray(pick("LPL", "fixed", e))
            cell["fixed_vs_frozen"] = drift.stats(fx - np.asarray(pick("frozen")))
            if not args.no_float:
                fl = np.asarray(pick("LPL", "float", e))
                cell["float"] = drift.stats(fl)
                cell["float_vs_frozen_float"] = drift.stats(fl - np.asarray(pick("frozen",
                                                                                 "float")))
                cell["float_minus_fixed"] = drift.stats(fl - fx)
            summary[c][f"{e:g}"] = cell
    print(f"\n{'condition':<9} {'frozen':>7} {'homeost.':>8} " + " ".join(
        f"{'LPL ' + format(e, 'g'):>22}" for e in etas)
          + "   (LPL - frozen in points: fixed / float twin - float network; rate error)")
    for c in conditions:
        s = summary[c]
        cells = []
        for e in etas:
            k = s[f"{e:g}"]
            fl = (f"/{100 * k['float_vs_frozen_float']['mean']:+5.1f}" if "float" in k
                  else "")
            cells.append(f"{100 * k['fixed_vs_frozen']['mean']:+5.1f}{fl} "
                         f"({k['rate_error']['mean']:.3f})")
        print(f"{c:<9} {100 * s['frozen']['mean']:6.1f}% {100 * s['homeostasis']['mean']:7.1f}% "
              + " ".join(f"{x:>22}" for x in cells))
    out = {"model": Path(args.model).name, "seeds": args.seeds, "etas": etas,
           "conditions": conditions, "homeostasis": dataclasses.asdict(hom),
           "lpl": dataclasses.asdict(lpl_presets.preset("lpl")), "summary": summary,
           "limit": args.limit, "runs": runs, "seconds": time.time() - t_start}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out + ".json", json.dumps(out, indent=1, default=str) + "\n")
    drawn = plot(summary, conditions, etas, args.out + ".png")
    print(f"wrote {args.out}.json" + (" and .png" if drawn else "")
          + f" ({time.time() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
