"""``edgelearn run MODEL --input X.npy -o Y.npz``: simulate a model on an input sequence."""

from __future__ import annotations

import argparse
import io
import zipfile

import numpy as np

from edgelearn.atomic import atomic_write_bytes
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
    p.add_argument("--dt", type=float, default=None, metavar="SECONDS",
                   help="time step for NIR files")
    p.set_defaults(func=run)


MAX_INPUT_ELEMENTS = 1 << 30


def _check_header(path: str) -> None:
    """Refuse an absurd declared shape before numpy allocates it."""
    try:
        with open(path, "rb") as fh:
            if fh.read(6) != b"\x93NUMPY":
                return  # not .npy: np.load reports it (or it is an .npz)
            fh.seek(0)
            version = np.lib.format.read_magic(fh)
            shape, _, dtype = (np.lib.format.read_array_header_1_0(fh) if version == (1, 0)
                               else np.lib.format.read_array_header_2_0(fh))
    except (ValueError, OSError, EOFError, SyntaxError):
        return
    n = 1
    for d in shape:
        n *= int(d)
    if n > MAX_INPUT_ELEMENTS:
        raise InputError(f"input '{path}' declares shape {tuple(shape)} ({n} elements), limit "
                         f"{MAX_INPUT_ELEMENTS}")


def load_input(path: str) -> np.ndarray:
    """Read X.npy without pickle; InputError on anything else."""
    _check_header(path)
    try:
        arr = np.load(path, allow_pickle=False, mmap_mode=None)
    except FileNotFoundError:
        raise InputError(f"input file '{path}' does not exist") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"input file '{path}' is not a readable .npy array: {line[:120]}") \
            from None
    if not isinstance(arr, np.ndarray):
        raise InputError(f"input file '{path}' holds several arrays (.npz); give one .npy array")
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
