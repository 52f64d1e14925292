#!/usr/bin/env python3
"""In-the-loop training on a simulated analog substrate (forward on the device, backward in software).

    python tools/train_in_loop.py models/randman_small.onnx --preset bss2 --seed 0 --epochs 3
    python tools/train_in_loop.py models/speech_digits.onnx --preset pcm --epochs 2 \\
        --out-device dev.npz --out-model trained.onnx --json report.json

The network is deployed on a device instance (preset + seed), its accuracy measured on the
device, then trained with surrogate-gradient BPTT whose forward pass runs on the device (measured
spikes and noisy membrane readouts feed the software backward pass) and whose updated weights
are written back through the device's noisy write path. The data set is the one the model was
trained on: the exact tools/train.py command stored in the model's metadata is replayed for its
data arguments (randman or speech); ``--data npz --train-file ... --test-file ...`` overrides.
Bad input: one line on stderr and exit code 2.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from edgelearn.atomic import atomic_write_text  # noqa: E402
from edgelearn.errors import DataError, EdgelearnError  # noqa: E402
from edgelearn.substrate import PRESETS  # noqa: E402
from edgelearn.targets.substrate import SubstrateTarget, evaluate_on, train_in_loop  # noqa: E402
from edgelearn.train import TrainConfig, evaluate, net_readout  # noqa: E402


def _train_tool():
    spec = importlib.util.spec_from_file_location("edgelearn_tools_train", ROOT / "tools" / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def task_data(net, data: str | None = None, train_file: str | None = None,
              test_files: tuple[str, ...] = ()) -> dict:
    """The data of a model: {'train': Dataset, 'eval': {name: Dataset}}.

    Replays the data arguments of the tools/train.py command in ``net.meta['command']`` unless
    ``data='npz'`` (then ``train_file`` and ``test_files`` name edgelearn Dataset npz files).
    """
    tool = _train_tool()
    if data == "npz":
        argv = ["--data", "npz", "--train-file", str(train_file or "")]
        for t in test_files:
            argv += ["--test-file", t]
    else:
        command = net.meta.get("command", "")
        words = shlex.split(command)
        if "--data" not in words:
            raise DataError(f"model '{net.name}' carries no tools/train.py command in its "
                            f"metadata; pass --data npz --train-file ... --test-file ...")
        argv = words[words.index("tools/train.py") + 1:] if "tools/train.py" in words \
            else words[2:]
    args = tool.build_parser().parse_args(argv + ([] if "--out" in argv else ["--out", "x.onnx"]))
    d = tool.load_data(args)
    return {"train": d["train"], "eval": d["eval"]}


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the option help, the examples as written."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tools/train_in_loop.py", description=__doc__.splitlines()[0],
                                epilog="examples:\n" + "\n".join(
                                    line for line in __doc__.split("\n\n")[1].splitlines()),
                                formatter_class=_Formatter)
    p.add_argument("model", help="ONNX model in the edgelearn profile")
    p.add_argument("--preset", default="bss2", choices=sorted(PRESETS), help="substrate preset")
    p.add_argument("--seed", type=int, default=0, help="device instance seed")
    p.add_argument("--epochs", type=int, default=3, help="passes over the training set")
    p.add_argument("--batch-size", type=int, default=32, help="minibatch size")
    p.add_argument("--lr", type=float, default=5e-4, help="Adam step size")
    p.add_argument("--surrogate-scale", type=float, default=10.0,
                   help="steepness of the surrogate spike derivative")
    p.add_argument("--train-seed", type=int, default=0, help="seed of the minibatch order")
    p.add_argument("--data", choices=("model", "npz"), default="model",
                   help="model: the data named by the model's training command")
    p.add_argument("--train-file", help="training data set (.npz) with --data npz")
    p.add_argument("--test-file", action="append", default=[],
                   help="evaluation data set (.npz) with --data npz; repeatable")
    p.add_argument("--out-device", help="save the trained device (.npz)")
    p.add_argument("--out-model", help="save the trained master network (.onnx)")
    p.add_argument("--json", help="write a JSON report here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except EdgelearnError as exc:
        print(f"train_in_loop: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2


def run(args) -> int:
    from edgelearn.io import load_network, save_onnx

    net = load_network(args.model)
    data = task_data(net, "npz" if args.data == "npz" else None, args.train_file,
                     tuple(args.test_file))
    readout = net_readout(net)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      readout=readout, surrogate_scale=args.surrogate_scale,
                      seed=args.train_seed)
    target = SubstrateTarget(args.preset, args.seed)
    target.load(net)
    report = {"model": args.model, "preset": args.preset, "seed": args.seed,
              "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
              "float": {k: evaluate(net, ds, readout) for k, ds in data["eval"].items()},
              "before": {k: evaluate_on(target, ds) for k, ds in data["eval"].items()}}
    t0 = time.monotonic()

    def show(rec, _net):
        print(f"epoch {rec['epoch']} loss {rec['loss']:.4f} train_acc (on device) "
              f"{rec['train_acc']:.4f} written {rec['written']} ({rec['seconds']:.1f} s)",
              file=sys.stderr)

    trained, history = train_in_loop(target, net, data["train"], cfg,
                                     progress=not args.no_progress, callback=show)
    report["seconds"] = round(time.monotonic() - t0, 2)
    report["after"] = {k: evaluate_on(target, ds) for k, ds in data["eval"].items()}
    report["history"] = history
    report["device"] = target.info()
    rows = [("float model (software)", report["float"]), ("deployed as is", report["before"]),
            ("after in-the-loop training", report["after"])]
    names = list(data["eval"])
    print(f"{'':30s}" + "".join(f"{n:>12s}" for n in names))
    for label, acc in rows:
        print(f"{label:30s}" + "".join(f"{acc[n]:12.4f}" for n in names))
    if args.out_device:
        target.save(args.out_device)
    if args.out_model:
        save_onnx(trained, args.out_model)
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
