"""``edgelearn convert IN -o OUT``: NIR or ONNX in; edgelearn-profile ONNX out, or NIR when
OUT ends in ``.nir``."""

from __future__ import annotations

import argparse

from edgelearn.boundary import options as opt
from edgelearn.errors import ModelFileError
from edgelearn.io import OpaqueModel, load_any, save_onnx

EXAMPLES = """examples:
  edgelearn convert snn.nir --dt 1e-3 -o snn.onnx
  edgelearn convert torch_export.onnx -o snn.onnx            # third-party step graph
  edgelearn convert snn.onnx --graph scan -o snn_scan.onnx   # whole-sequence Scan graph
  edgelearn convert models/randman_small.onnx -o randman_small.nir   # NIR out
"""


def register(sub) -> None:
    p = sub.add_parser(
        "convert", help="convert NIR or ONNX to an edgelearn-profile ONNX or a NIR file",
        description="Read a NIR file or an ONNX file (edgelearn profile or a third-party step "
                    "graph such as torch.onnx of snnTorch), verify it, and write an "
                    "edgelearn-profile ONNX file (step graph by default), or a NIR file when "
                    "OUT ends in .nir (time constants for the network's dt; see "
                    "docs/onnx-profile.md, 'NIR'). The output file appears only when "
                    "everything succeeded.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="IN", help="NIR or ONNX file")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output file: .onnx (edgelearn profile) or .nir")
    p.add_argument("--dt", type=opt.POSITIVE, default=None, metavar="SECONDS",
                   help="time step in seconds (required for NIR input; overrides ONNX dt)")
    p.add_argument("--graph", choices=("step", "scan"), default="step",
                   help="ONNX out: one-timestep graph with explicit state (default) or Scan "
                        "sequence graph")
    p.set_defaults(func=run)


def run(args) -> int:
    model = load_any(args.input, dt=args.dt)
    if isinstance(model, OpaqueModel):
        raise ModelFileError(f"'{args.input}' cannot be converted: {model.why_no_learning}")
    if args.dt is not None and model.dt != args.dt:
        model = model.replace(dt=float(args.dt))
    if str(args.output).lower().endswith(".nir"):
        if args.graph != "step":
            raise ModelFileError("--graph applies to ONNX output; a .nir file has no graph kind")
        from edgelearn.io import save_nir
        save_nir(model, args.output)
        what = f"NIR, dt {model.dt:g} s"
    else:
        save_onnx(model, args.output, graph=args.graph)
        what = f"{args.graph} graph"
    print(f"wrote {args.output}: network '{model.name}', {len(model.layers)} layers, "
          f"{model.n_parameters} parameters, {what}")
    return 0
