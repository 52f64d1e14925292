"""``edgelearn export-tflite MODEL -o model.tflite``: the integer step graph as a .tflite file.

MODEL is a quantized network: a quantized ONNX file (tools/quantize.py -o) or a device image
(tools/quantize.py --image). The .tflite graph takes ``input`` and the per-layer state
(``<layer>.current_in``, ``<layer>.membrane_in``) and returns ``output``, spikes and the new state;
all tensors are float32 holding integers, computed exactly (docs/fixed-point.md).
"""

from __future__ import annotations

import argparse

from edgelearn.boundary import options as opt

EXAMPLES = """examples:
  python tools/quantize.py models/randman_small.onnx --calib train.npz -o rm_q.onnx
  edgelearn export-tflite rm_q.onnx -o rm_q.tflite --check --arena
"""


def register(sub) -> None:
    p = sub.add_parser("export-tflite", help="write a quantized model's step graph as .tflite",
                       description="Write the integer step graph of a quantized model as a "
                                   "TFLite flatbuffer (no TensorFlow needed).",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="quantized model: .onnx from tools/quantize.py or a device image")
    p.add_argument("-o", "--out", required=True, help=".tflite file to write")
    p.add_argument("--batch", type=opt.integer(1, 4096), default=1,
                   help="fixed batch size of the graph (1..4096, default 1)")
    p.add_argument("--check", action="store_true",
                   help="run random integer inputs through LiteRT (and TFLM if installed) and "
                        "compare with the integer kernel bit for bit")
    p.add_argument("--arena", action="store_true",
                   help="probe the TFLite Micro arena size the model needs (child processes)")
    p.set_defaults(func=run)


def run(args) -> int:
    from edgelearn.io.onnx_quant import load_quantized
    from edgelearn.io.tflite_export import tflite_bytes
    from edgelearn.atomic import atomic_write_bytes
    from edgelearn.errors import InputError

    if args.batch < 1:
        raise InputError(f"--batch must be >= 1, got {args.batch}")
    qnet = load_quantized(args.model)
    data = tflite_bytes(qnet, batch=args.batch)
    atomic_write_bytes(args.out, data)
    print(f"wrote {args.out}: {len(data)} bytes, {len(qnet.layers)} layers, batch {args.batch}")
    if args.check:
        from edgelearn.io.tflite_runtime import check_tflite
        for backend, steps, agree in check_tflite(qnet, data, batch=args.batch):
            print(f"check {backend}: {steps} steps, bit-identical: {agree}")
    if args.arena:
        from edgelearn.io.tflite_runtime import probe_tflm_arena
        print(f"TFLite Micro arena needed: {probe_tflm_arena(data)} bytes")
    return 0
