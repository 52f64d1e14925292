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
from edgelearn.kernels.native import MAX_THREADS
from edgelearn.runtime.reference import as_sequence
from edgelearn.runtime.reference import run as run_reference

EXAMPLES = """examples:
  edgelearn run model.onnx --input x.npy -o y.npz
  edgelearn run model.onnx --input x.npy -o y.npz --backend onnxruntime
  edgelearn run model.nir --dt 1e-3 --input x.npy -o y.npz
  edgelearn run model.q.onnx --input x.npy -o y.npz        # quantized (tools/quantize.py -o)
  edgelearn run model.bin --input x.npy -o y.npz           # device image (--image)

X is float [T, n_in] or [T, B, n_in] (bool/int accepted). Y holds 'output' [T, B, n_out] (the
last layer's spikes, or its membrane for a readout; for a quantized model the integer membrane
in state units: times the layer's scale for the float model's units) and 'spikes/<layer>' per
spiking layer.

A quantized model (tools/quantize.py: quantized-profile ONNX or device image .bin) runs its
integer network (docs/fixed-point.md): by default on the C kernel of firmware/ loaded as a
shared library (built on first use with the system compiler; the numpy integer kernel, after a
one-line notice, when that is not possible), or with --backend numpy. The C kernel runs the B
sequences of X on --threads threads (default: $EDGELEARN_THREADS if set, which must then be an
integer from 1 to 64, else the CPUs this process may use, at most 64; never more than B); the
outputs are the same for any thread count. X that holds only integers (any dtype) is the
integer input itself and must fit the model's signed input_bits (edgelearn info MODEL shows
them); other float X is quantized first: floor(x / input_scale + 1/2), saturated to input_bits
(docs/fixed-point.md section 4).
"""


def register(sub) -> None:
    p = sub.add_parser(
        "run", help="run a model on an input sequence (numpy or onnxruntime)",
        description="Simulate a model from zero state on the sequence in X.npy and write the "
                    "outputs to Y.npz.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL",
                   help="ONNX (float or quantized profile), NIR, or device image (.bin)")
    p.add_argument("--input", required=True, metavar="X.npy", help="input sequence (.npy)")
    p.add_argument("-o", "--output", required=True, metavar="Y.npz", help="output file (.npz)")
    p.add_argument("--backend", choices=("numpy", "onnxruntime", "c"), default=None,
                   help="numpy reference (default for float networks), onnxruntime (default, "
                        "and the only choice, for opaque graphs), or c: the C integer kernel "
                        "(default for quantized models; numpy runs their integer kernel)")
    p.add_argument("--threads", type=opt.integer(1, MAX_THREADS), default=None, metavar="N",
                   help="threads of the C kernel, which splits the batch among them (default: "
                        "$EDGELEARN_THREADS, an integer 1..64, else the CPUs this process may "
                        "use, at most 64; the outputs do not depend on it)")
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


def _quantized(path: str) -> bool:
    """A quantized-profile ONNX file or a device image (magic ELQN)."""
    from edgelearn.io.model_file import file_kind
    from edgelearn.io.onnx_load import read_model_file
    from edgelearn.io.onnx_quant import is_quantized_model
    from edgelearn.kernels.image import MAGIC

    kind = file_kind(path)
    with open(path, "rb") as fh:
        if fh.read(len(MAGIC)) == MAGIC:
            return True
    return kind == "onnx" and str(path).endswith(".onnx") and is_quantized_model(
        read_model_file(path, check=False)[0])


def run_integer(args, x: np.ndarray) -> dict[str, np.ndarray]:
    """The integer network of a quantized model: C kernel (default) or numpy."""
    from edgelearn.io.model_file import load_any_model
    from edgelearn.kernels import lif_fixed, lif_kernels

    if args.backend == "onnxruntime":
        raise InputError(f"'{args.model}' is a quantized model: it runs its integer network "
                         f"with --backend c (default) or numpy")
    qnet = load_any_model(args.model)
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise InputError("input contains NaN or Inf")
    if x.dtype.kind == "f" and np.any(x != np.round(x)):
        x = lif_fixed.quantize_input(qnet, x)
    seq = lif_fixed.as_int_sequence(qnet, x)
    rec = lif_kernels.qrun(qnet, seq, impl="optimised" if args.backend == "numpy" else "native",
                           threads=args.threads)
    out = {"output": rec.output}
    for name, s in rec.spikes.items():
        out[f"spikes/{name}"] = s
    return out


def run(args) -> int:
    x = load_input(args.input)
    if _quantized(args.model):
        out = run_integer(args, x)
        return _write(args, out)
    if args.backend == "c":
        raise InputError(f"'{args.model}' is a float model; --backend c runs quantized models "
                         f"(tools/quantize.py)")
    model = load_any(args.model, dt=args.dt)
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
    return _write(args, out)


def _write(args, out: dict[str, np.ndarray]) -> int:
    buf = io.BytesIO()
    np.savez(buf, **out)
    atomic_write_bytes(args.output, buf.getvalue())
    T, B = out["output"].shape[:2]
    print(f"wrote {args.output}: output {list(out['output'].shape)}, "
          f"{len(out) - 1} spike recordings, T={T}, B={B}")
    return 0
