"""``edgelearn run MODEL --input X.npy -o Y.npz``: simulate a model on an input sequence."""

from __future__ import annotations

import argparse
import io

import numpy as np

from edgelearn.atomic import atomic_write_bytes
from edgelearn.boundary import options as opt
from edgelearn.boundary import read_npy
from edgelearn.errors import InputError
from edgelearn.io import OnnxRuntimeBackend, OpaqueModel, load_any
from edgelearn.runtime.reference import as_sequence
from edgelearn.runtime.reference import run as run_reference

EXAMPLES = """examples:
  edgelearn run model.onnx --input x.npy -o y.npz
  edgelearn run model.onnx --input x.npy -o y.npz --backend onnxruntime
  edgelearn run model.nir --dt 1e-3 --input x.npy -o y.npz

X is float [T, n_in] or [T, B, n_in] (bool/int accepted). Y holds 'output' [T, B, n_out] (the
last layer's spikes, or its membrane for a readout) and 'spikes/<layer>' per spiking layer.
"""


def register(sub) -> None:
    p = sub.add_parser(
        "run", help="run a model on an input sequence (numpy or onnxruntime)",
        description="Simulate a model from zero state on the sequence in X.npy and write the "
                    "outputs to Y.npz.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help="ONNX or NIR file")
    p.add_argument("--input", required=True, metavar="X.npy", help="input sequence (.npy)")
    p.add_argument("-o", "--output", required=True, metavar="Y.npz", help="output file (.npz)")
    p.add_argument("--backend", choices=("numpy", "onnxruntime"), default=None,
                   help="numpy reference (default for networks) or onnxruntime (default, and "
                        "the only choice, for opaque graphs)")
    p.add_argument("--graph", choices=("step", "scan"), default="scan",
                   help="onnxruntime graph form (default scan)")
    p.add_argument("--dt", type=opt.POSITIVE, default=None, metavar="SECONDS",
                   help="time step for NIR files")
    p.set_defaults(func=run)


def load_input(path: str) -> np.ndarray:
    """Read X.npy as untrusted input (edgelearn.boundary.read_npy: no pickle, declared size
    checked against the file before allocation); InputError on anything else."""
    arr = read_npy(path, what=f"input file '{path}'", error=InputError)
    if arr.dtype.kind not in "biuf":
        raise InputError(f"input '{path}' must be numeric, got dtype {arr.dtype}")
    return arr


def run(args) -> int:
    model = load_any(args.model, dt=args.dt)
    x = load_input(args.input)
    out: dict[str, np.ndarray] = {}
    if isinstance(model, OpaqueModel):
        if args.backend == "numpy":
            raise InputError(f"'{args.model}' is an opaque graph ({model.why_no_learning}); "
                             f"it runs only with --backend onnxruntime")
        out["output"] = model.run(x)
    else:
        as_sequence(model, x)  # validate shape/dtype/finiteness before any work
        if args.backend == "onnxruntime":
            rec = OnnxRuntimeBackend(model, graph=args.graph).run(x)
        else:
            rec = run_reference(model, x)
        out["output"] = rec.output
        for name, s in rec.spikes.items():
            out[f"spikes/{name}"] = s
    buf = io.BytesIO()
    np.savez(buf, **out)
    atomic_write_bytes(args.output, buf.getvalue())
    T, B = out["output"].shape[:2]
    print(f"wrote {args.output}: output {list(out['output'].shape)}, "
          f"{len(out) - 1} spike recordings, T={T}, B={B}")
    return 0
