"""``edgelearn info MODEL``: layers, shapes, neuron constants, parameter counts, sizes."""

from __future__ import annotations

import argparse
import json

import numpy as np

from edgelearn.boundary import options as opt
from edgelearn.io import OpaqueModel
from edgelearn.io.model_file import load_any_model

EXAMPLES = """examples:
  edgelearn info models/speech_digits.onnx
  edgelearn info models/randman_small.onnx --json
  edgelearn info exported.nir --dt 1e-3
  edgelearn info model.q.onnx                 # quantized profile (tools/quantize.py -o)
  edgelearn info model.bin                    # device image (tools/quantize.py --image)
"""


def register(sub) -> None:
    p = sub.add_parser(
        "info", help="describe a model file (layers, constants, sizes)",
        description="Describe an ONNX (edgelearn profile, quantized profile or third-party "
                    "step graph), NIR or device-image (.bin) model: layers, shapes, neuron constants, parameter "
                    "counts and the bytes the parameters take at float32 and int8; for a "
                    "quantized model also the integer input it takes (signed input_bits, "
                    "their range and input_scale; JSON keys input_bits, input_scale).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL",
                   help="ONNX (float or quantized profile), NIR, or device image (.bin)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--dt", type=opt.POSITIVE, default=None, metavar="SECONDS",
                   help="time step for NIR files (NIR stores none)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the onnxruntime-vs-numpy verification on load")
    p.set_defaults(func=run)


def _const(arr: np.ndarray):
    lo, hi = float(np.min(arr)), float(np.max(arr))
    return lo if lo == hi else [lo, hi]


def describe_quantized(qnet) -> dict:
    """JSON-ready description of an integer QNetwork (bytes as stored on a device)."""
    layers, params, nbytes = [], 0, 0
    for la in qnet.layers:
        n = la.weight.size + (0 if la.recurrent is None else la.recurrent.size)
        nb = 0 if la.bias is None else la.bias.size
        params += n + nb
        nbytes += n + 4 * nb
        layers.append({"name": la.name, "kind": la.kind, "n_in": la.n_in, "n_out": la.n_out,
                       "reset": la.reset if la.spiking else None, "w_shift": int(la.w_shift),
                       "state_bits": int(la.state_bits), "parameters": n + nb})
    return {"kind": "quantized", "name": qnet.name, "dt": qnet.dt, "n_in": qnet.n_in,
            "n_out": qnet.n_out, "input_bits": int(qnet.input_bits),
            "input_scale": float(qnet.input_scale), "layers": layers, "parameters": params,
            "bytes_float32": 4 * params, "bytes_int8": nbytes, "learning": True}


def describe(model) -> dict:
    """A JSON-ready description of a Network, OpaqueModel or QNetwork."""
    if hasattr(model, "input_bits"):
        return describe_quantized(model)
    if isinstance(model, OpaqueModel):
        return {"kind": "opaque", "name": model.name, "n_in": model.n_in, "n_out": model.n_out,
                "states": len(model.state_names), "learning": False,
                "why_no_learning": model.why_no_learning}
    layers = []
    for la in model.layers:
        d = {"name": la.name, "kind": la.kind, "n_in": la.n_in, "n_out": la.n_out,
             "alpha": _const(la.alpha), "beta": _const(la.beta),
             "parameters": la.n_parameters, "bias": la.bias is not None}
        if la.spiking:
            d["threshold"] = _const(la.threshold)
            d["reset"] = la.reset
        layers.append(d)
    n = model.n_parameters
    return {"kind": "network", "name": model.name, "dt": model.dt, "n_in": model.n_in,
            "n_out": model.n_out, "layers": layers, "parameters": n,
            "bytes_float32": 4 * n, "bytes_int8": n, "meta": dict(model.meta), "learning": True}


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else f"{v[0]:.4g}..{v[1]:.4g}"


def run(args) -> int:
    info = describe(load_any_model(args.model, args.dt, not args.no_verify))
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    if info["kind"] == "opaque":
        print(f"{args.model}: opaque step graph '{info['name']}', {info['n_in']} inputs -> "
              f"{info['n_out']} outputs, {info['states']} state tensors")
        print(f"inference only (onnxruntime); learning unavailable: {info['why_no_learning']}")
        return 0
    if info["kind"] == "quantized":
        print(f"{args.model}: quantized network '{info['name']}', dt {info['dt']:g} s, "
              f"{info['n_in']} inputs -> {info['n_out']} outputs")
        lim = 1 << (info["input_bits"] - 1)
        print(f"  input: signed {info['input_bits']}-bit integers [{-lim}, {lim - 1}], "
              f"input_scale {info['input_scale']:g} (docs/fixed-point.md section 4)")
        for d in info["layers"]:
            print(f"  {d['name']:<16}{d['kind']:<9}{d['n_in']:>5} ->{d['n_out']:>4}  "
                  f"w_shift {d['w_shift']:>3}  state {d['state_bits']}-bit  "
                  f"reset {d['reset'] or '-'}")
        print(f"parameters {info['parameters']}: {info['bytes_int8']} bytes as stored (int8 "
              f"weights, int32 biases), {info['bytes_float32']} bytes at float32")
        return 0
    print(f"{args.model}: network '{info['name']}', dt {info['dt']:g} s, "
          f"{info['n_in']} inputs -> {info['n_out']} outputs")
    print(f"{'layer':<16}{'kind':<9}{'shape':>11}  {'alpha':>16}{'beta':>16}"
          f"{'threshold':>16}  {'reset':<9}{'params':>9}")
    for d in info["layers"]:
        print(f"{d['name']:<16}{d['kind']:<9}{d['n_in']:>5} ->{d['n_out']:>4}  "
              f"{_fmt(d['alpha']):>16}{_fmt(d['beta']):>16}"
              f"{_fmt(d['threshold']) if 'threshold' in d else '-':>16}  "
              f"{d.get('reset', '-'):<9}{d['parameters']:>9}")
    print(f"parameters {info['parameters']} (weights, recurrent weights, biases): "
          f"{info['bytes_float32']} bytes at float32, {info['bytes_int8']} bytes at int8")
    return 0
