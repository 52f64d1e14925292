#!/usr/bin/env python3
"""Does on-device learning close the new-user gap? LPL-only, hEP-only and LPL + hEP vs frozen.

Protocol (one run prints everything side by side):

* data: the bundled new-user split (whisper voices and an unseen accent), divided per
  (voice, digit) into an adaptation stream (60 %) and a held-out evaluation set (40 %) with the
  same speakers (edgelearn.data.streams.holdout);
* frozen: the deployed model (integer SNN + hEP head) with learning off;
* oracle: the same head fine-tuned OFFLINE with exact gradients on ALL labels of the stream
  (Adam, several epochs) - what the head could reach with full supervision;
* on-device runs on the target (default: the simulated board, firmware_sim over a pty): the
  prequential loop over the stream with ``--labels`` (default 10 %) of the labels, LPL every
  sample and/or hEP when a label arrives; then learning off and accuracy on the evaluation set;
* gap closed = (adapted - frozen) / (oracle - frozen), mean over seeds (label mask and order).

    python bench/bench_adapt.py --target sim --seeds 3
Writes reports/bench_adapt.json and reports/bench_adapt.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from edgelearn.adapt.bundle import load_bundle
from edgelearn.device.features import head_features
from edgelearn.adapt.head_training import train_head
from edgelearn.adapt.loop import LoopConfig, run_adaptation
from edgelearn.adapt.session import make_target
from edgelearn.atomic import atomic_save_png, atomic_write_text
from edgelearn.boundary import options as opt
from edgelearn.data import load_speech_digits
from edgelearn.data.streams import holdout, make_stream
from edgelearn.memory import get_profile
from edgelearn.memory.planner import AdaptConfig, HeadShape, plan_deployment, shapes_of
from edgelearn.rules import lpl_presets
from edgelearn.targets.spec import parse_target

CONFIGS = {"LPL only": (True, False), "hEP only": (False, True), "LPL + hEP": (True, True)}


def evaluate(target, x, y) -> float:
    target.set_learning(False, False)
    return float(np.mean([target.infer(xi).prediction == yi for xi, yi in zip(x, y)]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/speech_digits.onnx")
    ap.add_argument("--target", default="sim", help="sim (default) or host")
    ap.add_argument("--budget", default="256KiB")
    ap.add_argument("--labels", type=float, default=0.1)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--oracle-epochs", type=int, default=20)
    ap.add_argument("--limit", type=int, help="shorten the stream (quick check)")
    ap.add_argument("--lpl-eta", type=float, help="LPL learning rate (default: the preset's)")
    ap.add_argument("--lpl-rule", default="lpl", choices=lpl_presets.NAMES,
                    help="LPL preset of the LPL runs (edgelearn.rules.lpl_presets)")
    ap.add_argument("--lpl-epoch", type=opt.power_of_two(1, 64), default=1, metavar="K",
                    help="learning epoch of the LPL runs (lpl_rate.Params.epoch; default 1: "
                         "every step; docs/learning-rules.md section 10)")
    ap.add_argument("--configs", default=",".join(CONFIGS),
                    help=f"comma-separated subset of: {', '.join(CONFIGS)}")
    ap.add_argument("--out", default="reports/bench_adapt")
    args = ap.parse_args(argv)

    bundle = load_bundle(args.model)
    spec = parse_target(args.target)
    readout = bundle.network.meta.get("readout", "max")
    nu = load_speech_digits("new_user")
    adapt_ds, eval_ds = holdout(nu, 0.4, seed=0, group_key="voice")
    ex, ey = eval_ds.x, eval_ds.y
    profile = get_profile("cortex-m4-256k")
    head_shape = HeadShape(bundle.head.head.sizes)
    budget = 256 * 1024 if args.budget == "256KiB" else int(args.budget)
    t_start = time.time()

    # frozen and oracle (offline, exact gradients, all labels of the stream)
    frozen_plan = plan_deployment(shapes_of(bundle.network), budget, profile, AdaptConfig(),
                                  link=spec.has_link, head=head_shape)
    with make_target(parse_target("host"), bundle, frozen_plan, progress=False) as t:
        frozen_eval = evaluate(t, ex, ey)
    fa = head_features(bundle.qnet, adapt_ds.x, bundle.feature_layer, readout)
    fe = head_features(bundle.qnet, ex, bundle.feature_layer, readout)
    oracle = bundle.head.copy()
    t0 = time.time()
    train_head(oracle.head, oracle.normalise(fa), adapt_ds.y, epochs=args.oracle_epochs,
               lr=3e-3, seed=0, progress=False)
    oracle_eval = oracle.head.accuracy(oracle.normalise(fe), ey)
    print(f"frozen eval {100 * frozen_eval:.1f} %, oracle eval {100 * oracle_eval:.1f} % "
          f"(head fine-tuned on all {len(adapt_ds)} labels, {time.time() - t0:.0f} s)",
          flush=True)

    lpl_params = lpl_presets.preset(args.lpl_rule)
    if args.lpl_eta is not None:
        lpl_params = dataclasses.replace(lpl_params, eta=args.lpl_eta)
    lpl_params = dataclasses.replace(lpl_params, epoch=args.lpl_epoch)
    configs = {k.strip(): CONFIGS[k.strip()] for k in args.configs.split(",")}
    results: dict[str, list[dict]] = {k: [] for k in configs}
    curves = {}
    for name, (lpl, hep) in configs.items():
        req = AdaptConfig(lpl_layers=bundle.hidden_names if lpl else (), hep=hep,
                          lpl=lpl_params)
        plan = plan_deployment(shapes_of(bundle.network), budget, profile, req,
                               link=spec.has_link, head=head_shape)
        for seed in range(args.seeds):
            stream = make_stream(adapt_ds, (), seed=seed, group_key="voice",
                                 n_samples=args.limit)
            x, y = stream.as_arrays()
            t0 = time.time()
            with make_target(spec, bundle, plan, seed=seed + 1, progress=False,
                             lpl=lpl_params) as target:
                res = run_adaptation(target, x, y, LoopConfig(lpl=lpl, hep=hep,
                                                              label_fraction=args.labels,
                                                              seed=seed, checkpoint=False),
                                     label=f"{name} seed {seed}", progress=False)
                acc = evaluate(target, ex, ey)
                tel = target.telemetry()
            row = {"seed": seed, "prequential": res.accuracy, "eval": acc,
                   "labels": int(res.labelled.sum()), "rollbacks": len(res.rollbacks),
                   "seconds": time.time() - t0, "high_water": tel.arena_high_water,
                   "plan_total": plan.total_bytes,
                   "learning_over_inference": plan.learning_bytes / plan.inference_bytes}
            results[name].append(row)
            curves.setdefault(name, res.hits)
            print(f"{name:<10} seed {seed}: prequential {100 * res.accuracy:.1f} %, eval "
                  f"{100 * acc:.1f} %, {row['labels']} labels, {row['rollbacks']} rollbacks, "
                  f"{row['seconds']:.0f} s", flush=True)

    gap = oracle_eval - frozen_eval
    summary = {}
    print(f"\n{'run':<10} {'eval acc':>16} {'prequential':>12} {'gap closed':>11}")
    print(f"{'frozen':<10} {100 * frozen_eval:>15.1f}% {'':>12} {0.0:>10.0f}%")
    for name, rows in results.items():
        ev = np.array([r["eval"] for r in rows])
        pq = np.array([r["prequential"] for r in rows])
        closed = (ev - frozen_eval) / gap if gap > 0 else np.zeros_like(ev)
        summary[name] = {"eval_mean": float(ev.mean()), "eval_std": float(ev.std()),
                         "prequential_mean": float(pq.mean()),
                         "gap_closed_mean": float(closed.mean()),
                         "gap_closed_min": float(closed.min()),
                         "learning_over_inference": rows[0]["learning_over_inference"],
                         "high_water": rows[0]["high_water"], "plan_total": rows[0]["plan_total"]}
        print(f"{name:<10} {100 * ev.mean():>9.1f} +- {100 * ev.std():3.1f}% "
              f"{100 * pq.mean():>11.1f}% {100 * closed.mean():>10.0f}%")
    print(f"{'oracle':<10} {100 * oracle_eval:>15.1f}% {'':>12} {100.0:>10.0f}%")
    out = {"target": str(spec), "labels": args.labels, "seeds": args.seeds,
           "lpl_rule": args.lpl_rule, "lpl_epoch": args.lpl_epoch, "lpl": repr(lpl_params),
           "stream": len(adapt_ds) if args.limit is None else args.limit,
           "eval_samples": len(eval_ds), "frozen_eval": frozen_eval, "oracle_eval": oracle_eval,
           "oracle": f"head fine-tuned offline, exact gradients, Adam 3e-3, "
                     f"{args.oracle_epochs} epochs, all {len(adapt_ds)} stream labels",
           "summary": summary, "runs": results, "seconds": time.time() - t_start}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out + ".json", json.dumps(out, indent=2))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from edgelearn.adapt.report import running_mean
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
        names = list(summary)
        a1.bar(names, [100 * summary[n]["eval_mean"] for n in names],
               yerr=[100 * summary[n]["eval_std"] for n in names], color="tab:blue")
        a1.axhline(100 * frozen_eval, color="gray", ls="--", label="frozen")
        a1.axhline(100 * oracle_eval, color="green", ls="--", label="oracle (all labels)")
        a1.set_ylabel("held-out accuracy (%)")
        a1.set_title(f"new user, {int(100 * args.labels)} % labels, {spec}")
        a1.legend()
        for n, hits in curves.items():
            a2.plot(100 * running_mean(hits, 50), label=n)
        a2.set_xlabel("sample")
        a2.set_ylabel("prequential accuracy, last 50 (%)")
        a2.legend()
        atomic_save_png(fig, args.out + ".png", bbox_inches="tight")
    except ImportError:
        pass
    print(f"wrote {args.out}.json and .png ({time.time() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
