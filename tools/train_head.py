#!/usr/bin/env python3
"""Train the hEP head that ships beside a model (NAME.head.npz).

The head learns, with exact gradients (implicit differentiation at the free equilibrium, Adam),
to classify the integer network's features: hidden spike rates and readout scores of the
quantized model that `edgelearn deploy` runs (same calibration, so the same integers).

examples:
    python tools/train_head.py models/speech_digits.onnx --data speech --hidden 32 \\
        --epochs 6 --lr 3e-3 --seed 0 -o /tmp/speech_digits.head.npz
    (the shipped head: the same command with -o models/speech_digits.head.npz)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


from edgelearn.adapt.bundle import load_bundle
from edgelearn.atomic import atomic_write_text
from edgelearn.boundary import options as opt
from edgelearn.device.features import head_features
from edgelearn.adapt.head_training import train_head
from edgelearn.data import load_speech_digits
from edgelearn.data.dataset import load_npz
from edgelearn.device.head import DeviceHead
from edgelearn.errors import EdgelearnError
from edgelearn.rules.hep import EnergyHead


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 2)[2])
    p.add_argument("model", help="model .onnx (float: quantized with its calibration data)")
    p.add_argument("--data", choices=("speech", "npz"), required=True)
    p.add_argument("--train-file", help="npz data set (edgelearn.data.save_npz) for --data npz")
    p.add_argument("--test-file", help="optional npz test set to report accuracy on")
    p.add_argument("--calib", help="calibration npz for a float model (array 'x')")
    p.add_argument("--hidden", type=opt.COUNT, default=16,
                   help="hidden units of the head (default 16)")
    p.add_argument("--epochs", type=opt.COUNT, default=8,
                   help="passes over the training set (default 8)")
    p.add_argument("--lr", type=opt.POSITIVE, default=3e-3, help="Adam learning rate (default 3e-3)")
    p.add_argument("--batch", type=opt.COUNT, default=32, help="minibatch size (default 32)")
    p.add_argument("--seed", type=opt.SEED, default=0,
                   help="head initialisation and minibatch order (default 0)")
    p.add_argument("-o", "--out", required=True,
                   help="head file to write (.head.npz; its figures go to the .json beside it)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        bundle = load_bundle(args.model, calib=args.calib)
        readout = bundle.network.meta.get("readout", "max")
        if args.data == "speech":
            train = load_speech_digits("train")
            tests = {"test": load_speech_digits("test"),
                     "new_user": load_speech_digits("new_user")}
        else:
            if not args.train_file:
                raise EdgelearnError("--data npz needs --train-file")
            train = load_npz(args.train_file)
            tests = {"test": load_npz(args.test_file)} if args.test_file else {}
        t0 = time.time()
        f = head_features(bundle.qnet, train.x, bundle.feature_layer, readout)
        n_feat = f.shape[1]
        head = EnergyHead((n_feat, args.hidden, train.n_classes), seed=args.seed)
        dhead = DeviceHead.fit(head, f)
        hist = train_head(head, dhead.normalise(f), train.y, epochs=args.epochs, lr=args.lr,
                          batch=args.batch, seed=args.seed, progress=not args.no_progress)
        result = {"train_accuracy": hist[-1]["train_accuracy"], "seconds": time.time() - t0,
                  "sizes": list(head.sizes), "command": " ".join(sys.argv)}
        for name, ds in tests.items():
            ft = head_features(bundle.qnet, ds.x, bundle.feature_layer, readout)
            result[f"{name}_accuracy"] = head.accuracy(dhead.normalise(ft), ds.y)
        dhead.save(args.out)
        atomic_write_text(Path(args.out).with_suffix(".json"), json.dumps(result, indent=2))
        print(json.dumps(result, indent=2))
    except EdgelearnError as exc:
        print(f"train_head: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
