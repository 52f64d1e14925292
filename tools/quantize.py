#!/usr/bin/env python3
"""Post-training quantization of a float edgelearn model to the integer format.

    python tools/quantize.py MODEL.onnx --calib DATA.npz -o OUT.onnx [--image OUT.bin]
                             [--test DATA.npz] [--state-bits 16] [--headroom 0.5]
                             [--percentile 100] [--shift LAYER=K ...] [--calib-samples 256]
                             [--json REPORT.json]

DATA.npz holds ``x`` [N, T, C] (uint8 spike counts or float32 values; the edgelearn data set
format) and, for --test, labels ``y`` [N]. Writes the quantized ONNX step graph (runs in
onnxruntime, bit-exact with the integer kernel) and optionally the device image, then prints
the report: chosen shifts, range used, saturation per layer (warnings name the layer and the
clipped fraction), float vs int accuracy and spike agreement on the test data. The model's
hEP head (MODEL.head.npz, if any) is copied beside the output (OUT.head.npz), where
`edgelearn deploy OUT.onnx` looks for it; its features are in threshold units, so the head
fits the quantized model.
Exit code 0 on success, 2 on bad input (one line on stderr).

examples:
    python tools/quantize.py models/randman_small.onnx --calib models/randman_small.calib.npz
        -o /tmp/randman_small.q.onnx --image /tmp/randman_small.bin
    edgelearn data stream speech:train /tmp/train.npz        # TRAIN/TEST .npz (x, y)
    edgelearn data stream speech:test /tmp/test.npz
    python tools/quantize.py models/speech_digits.onnx --calib /tmp/train.npz
        --test /tmp/test.npz -o /tmp/speech_digits.q.onnx --image /tmp/speech_digits.bin
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from edgelearn.adapt.bundle import side_file
from edgelearn.atomic import atomic_write_bytes, atomic_write_text
from edgelearn.boundary import OneLineArgumentParser, run_command
from edgelearn.boundary import options as opt
from edgelearn.data.dataset import read_npz_arrays
from edgelearn.errors import DataError, InputError, ModelFileError
from edgelearn.io import load_network
from edgelearn.io.model_file import file_kind
from edgelearn.io.onnx_load import read_model_file
from edgelearn.io.onnx_quant import build_quant_model, is_quantized_model
from edgelearn.kernels.image import to_image
from edgelearn.quant import evaluate, format_report, quantize_network


def read_data(path: str, need_labels: bool = False, limit: int | None = None):
    """x as [T, N, C] float32 (and y [N] or None) from an .npz with keys x (and y); the file
    is read as untrusted input (sizes checked before allocation, no pickle)."""
    arrays = read_npz_arrays(path)
    x, y = arrays.get("x"), arrays.get("y")
    if x is None:
        raise DataError(f"data file '{path}' has no array 'x' (keys: {sorted(arrays)})")
    if x.ndim != 3 or x.dtype.kind not in "biuf":
        raise InputError(f"data file '{path}': x must be numbers [N, T, C] (samples, time, "
                         f"channels), got {x.dtype} of shape {x.shape}")
    if need_labels and y is None:
        raise DataError(f"data file '{path}' has no labels 'y' (needed for --test)")
    if limit:
        x = x[:limit]
        y = None if y is None else y[:limit]
    return np.ascontiguousarray(np.transpose(x, (1, 0, 2))).astype(np.float32), y


def parse_shifts(items: list[str]) -> dict:
    out = {}
    for item in items or []:
        name, sep, val = item.partition("=")
        try:
            out[name] = int(val)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise InputError(f"--shift expects LAYER=INT, got {item!r}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = OneLineArgumentParser(prog="quantize", description=__doc__.split("\n\n")[0],
                               epilog=__doc__[__doc__.index("examples:"):],
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="float model (.onnx in the edgelearn profile)")
    ap.add_argument("--calib", required=True, help="calibration data .npz (x [N, T, C])")
    ap.add_argument("-o", "--out", required=True, help="quantized ONNX file to write")
    ap.add_argument("--image", help="also write the device image here")
    ap.add_argument("--test", help="test data .npz (x, y) for the accuracy report")
    ap.add_argument("--state-bits", type=int, default=16, choices=(16, 32),
                    help="state width; the ONNX/TFLite step graphs need 16 (default)")
    ap.add_argument("--headroom", type=opt.real(0.0, 4.0, lo_open=True), default=0.5,
                    help="fraction of the state range calibration peaks may use (default 0.5)")
    ap.add_argument("--percentile", type=opt.real(50.0, 100.0), default=100.0,
                    help="peak statistic of |I|, |U| on the calibration data (default: max)")
    ap.add_argument("--shift", action="append", metavar="LAYER=K",
                    help="force a layer's weight shift (expert; may saturate)")
    ap.add_argument("--calib-samples", type=opt.COUNT, default=256,
                    help="use at most this many calibration samples (default 256)")
    ap.add_argument("--json", help="write the report as JSON here")
    return run_command("quantize", lambda: quantize(ap.parse_args(argv)))


def quantize(args: argparse.Namespace) -> int:
    if not Path(args.model).is_file():
        raise ModelFileError(f"model file '{args.model}' does not exist")
    if file_kind(args.model) == "onnx" and is_quantized_model(read_model_file(args.model,
                                                                               check=False)[0]):
        raise ModelFileError(f"'{args.model}' is already quantized; quantize the float model "
                             f"instead")
    net = load_network(args.model)
    calib, _ = read_data(args.calib, limit=args.calib_samples)
    qnet, report = quantize_network(net, calib, state_bits=args.state_bits,
                                    headroom=args.headroom, percentile=args.percentile,
                                    shifts=parse_shifts(args.shift))
    if args.test:
        x, y = read_data(args.test, need_labels=True)
        evaluate(net, qnet, x, y, report=report)
    atomic_write_bytes(args.out, build_quant_model(qnet).SerializeToString())
    if args.image:
        atomic_write_bytes(args.image, to_image(qnet))
    head, out_head = side_file(Path(args.model), ".head.npz"), side_file(Path(args.out),
                                                                        ".head.npz")
    if head.is_file() and head.resolve() != out_head.resolve():
        atomic_write_bytes(out_head, head.read_bytes())
        print(f"hEP head: copied {head} to {out_head} (edgelearn deploy looks for it there)")
    print(format_report(report))
    for w in report.warnings:
        print(f"quantize: warning: {w}", file=sys.stderr)
    if args.json:
        atomic_write_text(args.json, json.dumps(report.as_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
