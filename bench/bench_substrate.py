#!/usr/bin/env python3
"""Accuracy of the headline model on simulated analog substrates, over time and device instances.

    python bench/bench_substrate.py                       # headline model, 10 instances, <15 min
    python bench/bench_substrate.py --instances 3 --presets bss2   # quick look
    python bench/bench_substrate.py --model models/randman_small.onnx --conditions hep,lpl+hep

For each preset (bss2, pcm) and each of N device instances (seeds 0..N-1) it measures test
accuracy at log-spaced times after programming (1 s .. 1 year) for:

  deployed    the float model programmed as is
  in-loop     after in-the-loop training (forward on the device, software backward on the
              measured traces, writes through the noisy write path; tools/train_in_loop.py)
  hep         after on-device hEP only: an hEP head trained offline on the float model's
              features ships with the model; on the device its feature statistics are
              re-measured and it keeps learning by real-valued hEP under the device's noise
  lpl+hep     the same after one unsupervised LPL pass over the stream

and prints mean +- std over instances, the float model's accuracy (baseline, same run), and the
share of the accuracy lost to each preset that in-the-loop training recovers
(recovered = (in-loop - deployed) / (float - deployed), means over instances, at the first time).
The target is >= 80 % for bss2 (mismatch). Writes reports/bench_substrate.json and .png.

Model: models/speech_digits.onnx with the bundled speech test set when present, else
models/randman_small.onnx with the Randman split it was trained on (--model overrides).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import importlib.util  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from edgelearn.atomic import atomic_save_png, atomic_write_text  # noqa: E402
from edgelearn.boundary import OneLineArgumentParser, run_command  # noqa: E402
from edgelearn.boundary import options as opt  # noqa: E402
from edgelearn.errors import SubstrateError  # noqa: E402
from edgelearn.io import load_network  # noqa: E402
from edgelearn.progress import Progress  # noqa: E402
from edgelearn.substrate import get_preset  # noqa: E402
from edgelearn.targets.substrate import (AdaptConfig, OnDeviceLearner, SubstrateTarget,  # noqa: E402
                                         copy_head, evaluate_on, pretrain_head, train_in_loop)
from edgelearn.train import TrainConfig, evaluate, net_readout  # noqa: E402

TIMES = (1.0, 60.0, 3600.0, 86400.0, 30 * 86400.0, 365 * 86400.0)
TIME_LABELS = ("1 s", "1 min", "1 h", "1 d", "30 d", "1 y")
CONDITIONS = ("deployed", "in-loop", "hep", "lpl+hep")


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(f"el_tool_{name}", ROOT / "tools" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def default_model() -> Path:
    speech = ROOT / "models" / "speech_digits.onnx"
    return speech if speech.exists() else ROOT / "models" / "randman_small.onnx"


def _subset(ds, n: int, seed: int):
    if n <= 0 or n >= len(ds.y):
        return ds
    idx = np.sort(np.random.default_rng(seed).permutation(len(ds.y))[:n])
    return ds.subset(idx)


def _over_time(target: SubstrateTarget, measure) -> list[float]:
    accs = []
    for t in TIMES:
        target.advance_time(t - target._dev().time_s)
        accs.append(measure())
    return accs


def run_instance(net, preset: str, seed: int, data: dict, args) -> dict:
    test, train = data["test"], data["train"]
    readout = net_readout(net)
    out: dict[str, list[float]] = {}
    t = SubstrateTarget(preset, seed)
    t.load(net)
    out["deployed"] = _over_time(t, lambda: evaluate_on(t, test))
    t = SubstrateTarget(preset, seed)
    t.load(net)
    cfg = TrainConfig(epochs=args.loop_epochs, batch_size=args.batch_size, lr=args.loop_lr,
                      readout=readout, seed=seed)
    train_in_loop(t, net, train, cfg, progress=False)
    out["in-loop"] = _over_time(t, lambda: evaluate_on(t, test))
    for cond, lpl in (("hep", False), ("lpl+hep", True)):
        if cond not in args.conditions:
            continue
        t = SubstrateTarget(preset, seed)
        t.load(net)
        learner = OnDeviceLearner(t, AdaptConfig(lpl=lpl, epochs=args.adapt_epochs, seed=seed),
                                  head=copy_head(data["head"]))
        learner.adapt(train, progress=False)
        out[cond] = _over_time(t, lambda: learner.accuracy(test))
    return out


def summarize(per_instance: list[dict]) -> dict:
    res = {}
    for cond in per_instance[0]:
        a = np.array([r[cond] for r in per_instance])
        res[cond] = {"mean": a.mean(axis=0).round(4).tolist(), "std": a.std(axis=0).round(4).tolist()}
    return res


def plot(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    presets = list(report["presets"])
    fig, axes = plt.subplots(1, len(presets), figsize=(6 * len(presets), 4.2), squeeze=False)
    for ax, p in zip(axes[0], presets):
        s = report["presets"][p]["summary"]
        for cond in s:
            m, sd = np.array(s[cond]["mean"]), np.array(s[cond]["std"])
            ax.plot(TIMES, m, marker="o", label=cond)
            ax.fill_between(TIMES, m - sd, m + sd, alpha=0.2)
        ax.axhline(report["float_accuracy"], color="k", ls="--", lw=1, label="float (software)")
        ax.set_xscale("log")
        ax.set_xticks(TIMES, TIME_LABELS)
        ax.set_xlabel("time after programming")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"{p}: mean +- std over {report['instances']} devices")
        ax.legend(fontsize=8, loc="lower left")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{report['model']} on simulated substrates")
    fig.tight_layout()
    atomic_save_png(fig, path)
    plt.close(fig)


def main(argv=None) -> int:
    ap = OneLineArgumentParser(prog="bench_substrate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None,
                    help="ONNX model (default: models/speech_digits.onnx, else models/randman_small.onnx)")
    ap.add_argument("--presets", default="bss2,pcm",
                    help="comma-separated substrate presets (default: bss2,pcm)")
    ap.add_argument("--instances", type=opt.COUNT, default=10,
                    help="device instances per preset (default: 10)")
    ap.add_argument("--conditions", default="hep,lpl+hep",
                    help="comma-separated on-device conditions to run besides deployed and in-loop: "
                    "hep, lpl+hep (default: hep,lpl+hep)")
    ap.add_argument("--loop-epochs", type=opt.COUNT, default=2,
                    help="in-the-loop training epochs (default: 2)")
    ap.add_argument("--loop-lr", type=opt.POSITIVE, default=5e-4,
                    help="in-the-loop Adam step size (default: 5e-4)")
    ap.add_argument("--batch-size", type=opt.COUNT, default=32,
                    help="in-the-loop minibatch size (default: 32)")
    ap.add_argument("--adapt-epochs", type=opt.COUNT, default=1,
                    help="on-device hEP epochs (default: 1)")
    ap.add_argument("--head-epochs", type=opt.integer(0, None), default=3,
                    help="offline (software) hEP epochs of the head shipped with the model "
                    "(0: its random initialisation; default: 3)")
    ap.add_argument("--max-train", type=opt.integer(0, None), default=2000,
                    help="training samples for in-loop training and adaptation (0 = all; "
                    "default: 2000)")
    ap.add_argument("--max-test", type=opt.integer(0, None), default=0, help="test samples (0 = whole test set, the default)")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "bench_substrate.json",
                    help="JSON report; the PNG goes next to it (default: reports/bench_substrate.json)")
    args = ap.parse_args(argv)
    args.conditions = [c for c in args.conditions.split(",") if c]
    unknown = sorted(set(args.conditions) - {"hep", "lpl+hep"})
    if unknown:
        ap.error(f"--conditions: unknown condition(s) {', '.join(unknown)} (known: hep, lpl+hep)")
    for name in [p for p in args.presets.split(",") if p]:
        try:
            get_preset(name)
        except SubstrateError as exc:
            ap.error(f"--presets: {exc}")
    model = args.model or default_model()
    net = load_network(model)
    task = _tool("train_in_loop").task_data(net)
    data = {"train": _subset(task["train"], args.max_train, 1),
            "test": _subset(task["eval"]["test"], args.max_test, 2)}
    float_acc = evaluate(net, data["test"])
    t_head = time.monotonic()
    data["head"] = pretrain_head(net, data["train"], AdaptConfig(), epochs=args.head_epochs)
    t_head = time.monotonic() - t_head
    presets = [p for p in args.presets.split(",") if p]
    report = {"model": model.name, "float_accuracy": round(float_acc, 4),
              "instances": args.instances, "times_s": list(TIMES),
              "n_train": int(len(data["train"].y)), "n_test": int(len(data["test"].y)),
              "head_pretrain_seconds": round(t_head, 1),
              "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "presets": {}}
    t_start = time.monotonic()
    bar = Progress(len(presets) * args.instances, "bench_substrate", unit="device")
    for p in presets:
        t0 = time.monotonic()
        per = []
        for seed in range(args.instances):
            per.append(run_instance(net, p, seed, data, args))
            bar.update(1, p)
        s = summarize(per)
        dep, loop = s["deployed"]["mean"][0], s["in-loop"]["mean"][0]
        lost = float_acc - dep
        rec = {"summary": s, "per_instance": per, "seconds": round(time.monotonic() - t0, 1),
               "lost_at_1s": round(lost, 4),
               "recovered_by_in_loop": round((loop - dep) / lost, 4) if lost > 0 else None}
        for cond in args.conditions:
            rec[f"recovered_by_{cond}"] = (round((s[cond]["mean"][0] - dep) / lost, 4)
                                           if lost > 0 else None)
        report["presets"][p] = rec
    bar.close()
    report["seconds"] = round(time.monotonic() - t_start, 1)

    print(f"\n{model.name}: float accuracy (software, same run) {float_acc:.4f}; "
          f"{args.instances} device instances; test n={report['n_test']}")
    for p, rec in report["presets"].items():
        print(f"\n[{p}]  ({rec['seconds']} s)")
        print(f"{'condition':12s}" + "".join(f"{lab:>16s}" for lab in TIME_LABELS))
        for cond, st in rec["summary"].items():
            print(f"{cond:12s}" + "".join(f"{m:9.4f}+-{sd:.3f}" for m, sd in
                                          zip(st["mean"], st["std"])))
        r = rec["recovered_by_in_loop"]
        print(f"lost to the substrate at 1 s: {rec['lost_at_1s']:.4f}; in-the-loop training "
              f"recovers {'n/a' if r is None else f'{100 * r:.1f} %'}" +
              "".join(f"; {c} recovers {100 * rec[f'recovered_by_{c}']:.1f} %"
                      for c in args.conditions if rec[f"recovered_by_{c}"] is not None))
    if "bss2" in report["presets"]:
        r = report["presets"]["bss2"]["recovered_by_in_loop"]
        ok = r is not None and r >= 0.8
        report["bss2_recovery_target_met"] = ok
        print(f"\nbss2 recovery target (>= 80 % of the mismatch loss): "
              f"{'MET' if ok else 'NOT MET'} ({'n/a' if r is None else f'{100 * r:.1f} %'})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    png = args.out.with_suffix(".png")
    try:
        plot(report, png)
        print(f"wrote {args.out} and {png} (total {report['seconds']} s)")
    except ImportError:
        print(f"wrote {args.out} (matplotlib missing: no plot; total {report['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_command("bench_substrate", main))
