"""``edgelearn deploy MODEL --target T --budget B [--adapt STREAM] [--labels FRACTION]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgelearn.boundary import options as opt
from edgelearn.cli.cmd_plan import add_learning_arguments

EXAMPLES = """examples:
  edgelearn deploy models/speech_digits.onnx --target host --budget 256KiB
  edgelearn deploy models/speech_digits.onnx --target sim --budget 256KiB --adapt new_user
  edgelearn deploy models/speech_digits.onnx --target serial:/dev/ttyACM0 --budget 64KiB \\
      --device cortex-m0plus-64k --adapt new_user --labels 0.1
  edgelearn deploy models/speech_digits.onnx --target substrate:bss2 --budget 256KiB \\
      --adapt new_user --limit 300
  edgelearn deploy models/speech_digits.onnx --target tflite --budget 256KiB --adapt new_user
  edgelearn deploy models/speech_digits.onnx --target sim --budget 256KiB --adapt new_user \\
      --fresh                                    # ignore the checkpoint of an earlier run

Streams: new_user (bundled new speakers), speech:SPLIT, or a data set .npz.
Accuracy is prequential: every sample is scored before the model may learn from it (or its
label). The report folder gets metrics.json, accuracy.png, weight_drift.png, memory.png, the
adapted model (adapted_model.onnx, quantized profile, and adapted_model.head.npz; TFLite:
deployed_model.tflite) and a checkpoint from which a killed run resumes (a repeat run resumes
it too and says so; --fresh starts over).
"""


def add_loop_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--adapt", metavar="STREAM", help="run the adaptation loop on this stream")
    p.add_argument("--labels", type=opt.FRACTION, default=0.1, metavar="FRACTION",
                   help="fraction of samples whose label arrives (default 0.1)")
    p.add_argument("--limit", type=opt.COUNT, help="use only the first N samples of the stream")
    p.add_argument("--report", help="report folder (default reports/<model>-<target>)")
    p.add_argument("--seed", type=opt.SEED, default=0, help="stream order, label mask, device seed (default 0)")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the frozen-model run on the same stream")
    p.add_argument("--calib", help="calibration data .npz (array 'x') for a float model")
    p.add_argument("--fresh", action="store_true",
                   help="start over: ignore (delete) the report folder's checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def register(sub) -> None:
    p = sub.add_parser("deploy", help="put a model on a target and optionally adapt it",
                       description="Load and verify a model, quantize it if needed, plan its "
                                   "memory, upload it to the target, verify it by read-back, "
                                   "and optionally run the on-device adaptation loop.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--target", default="host",
                   help="host | sim | serial:URL | substrate[:PRESET] | tflite")
    add_learning_arguments(p)
    add_loop_arguments(p)
    p.set_defaults(func=run)


def say(args, text: str) -> None:
    if not args.quiet:
        print(text, flush=True)


def run(args, upload: bool = True) -> int:
    from edgelearn.adapt.bundle import load_bundle, plan_for, side_file
    from edgelearn.adapt.session import check_lpl_rule, deploy_and_adapt
    from edgelearn.adapt.streams import load_stream
    from edgelearn.atomic import check_folder
    from edgelearn.targets.spec import parse_target

    spec = parse_target(args.target)
    check_lpl_rule(spec, getattr(args, "lpl_rule", "lpl"), getattr(args, "lpl_epoch", 1))
    if args.adapt and args.report:
        check_folder(args.report)      # refuse an unusable report folder before any work
    if spec.kind == "tflite":
        if args.lpl != "none" or not args.no_hep:
            args.lpl, args.no_hep = "none", True   # TFLite has no training
    bundle = load_bundle(args.model, calib=args.calib, dt=args.dt)
    head = f"head: {bundle.head_path.name}" if bundle.head else \
        f"head: none, no {side_file(bundle.source, '.head.npz').name} beside it, so no hEP"
    say(args, f"model {bundle.source.name}: {len(bundle.network.layers)} layers, "
              f"{bundle.network.n_parameters} parameters, quantized to int8 ({head})")
    stream = None
    if args.adapt:
        stream = load_stream(args.adapt, bundle.network.n_in, seed=args.seed, limit=args.limit,
                             segments=True)
    plan = plan_for(bundle, args, link=False)   # a board's link: planned from its HELLO reply
    if spec.kind == "tflite":
        plan.dropped.append("all learning (TensorFlow Lite does not train)")
    report = Path(args.report or f"reports/{bundle.source.stem}-{spec.kind}")
    keep = stream is not None or spec.kind == "tflite"     # TFLite writes its .tflite there
    done = deploy_and_adapt(spec, bundle, plan, None if stream is None else stream[:2],
                            seed=args.seed, labels=args.labels, baseline=not args.no_baseline,
                            report=report if keep else None, upload=upload,
                            progress=not args.quiet, say=lambda text: say(args, text),
                            extra={"model": str(bundle.source), "target": str(spec),
                                   "stream": args.adapt,
                                   "lpl_rule": getattr(args, "lpl_rule", "lpl"),
                                   "lpl_epoch": getattr(args, "lpl_epoch", 1)},
                            fresh=args.fresh,
                            segments=None if stream is None else stream[3])
    if done.metrics is not None:
        print_summary(done.metrics, report, done.saved)
    if not args.quiet:
        print(f"\n{done.plan.table()}")
    if done.metrics is None and done.saved:
        print(f"wrote {', '.join(str(report / f) for f in done.saved)}")
    return 0


def print_summary(metrics: dict, report: Path, saved: list[str]) -> None:
    """The result table: prequential accuracy of each run on the stream, then memory."""
    runs = metrics["runs"]
    loop = metrics["loop"]
    n = next(iter(runs.values()))["samples"]
    print(f"\nresult on the stream '{metrics.get('stream')}': {n} samples, "
          f"{100 * loop['label_fraction']:g} % of them labelled; prequential accuracy (each "
          f"sample scored before the model learns from it)")
    print(f"{'run':<10} {'accuracy':>9} {'samples':>8} {'labels':>7} {'rollbacks':>10}")
    for r in runs.values():
        print(f"{r['name']:<10} {100 * r['accuracy']:>8.1f}% {r['samples']:>8} {r['labels']:>7} "
              f"{len(r['rollbacks']):>10}")
    for r in runs.values():
        if r.get("resumed_from"):
            print(f"{r['name']}: resumed from sample {r['resumed_from']} (checkpoint)")
    print("rollbacks: times the divergence guard put the last good weights back (held-in "
          "accuracy fell or weights went bad)")
    mem = metrics["memory"]
    hw = mem["measured_high_water"]
    measured = f"measured high-water {hw} B" if hw else "no device arena to measure"
    print(f"memory: plan {mem['planned_total']} B, {measured}, budget {mem['budget']} B, "
          f"learning {100 * mem['learning_over_inference']:.1f} % of inference")
    print(f"report: {report}/ ({', '.join(metrics['files'] + saved)})")
    sys.stdout.flush()
