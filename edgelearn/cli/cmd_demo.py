"""``edgelearn demo``: the main job on the bundled model and a simulated board.

Deploys models/speech_digits.onnx to a firmware simulator on a pseudo-terminal within a
256 KiB budget (Cortex-M4 profile) and adapts it on the bundled new-user stream with 10 %
labels: the plan, the upload, progress, a before/after table and the report folder.

Each case runs the setting measured best for it (docs/learning-rules.md section 9): with labels,
the default LPL preset and hEP; with --labels 0, no hEP and LPL preset slow+homeostasis at a
learning epoch of 8 steps (the label-free setting that beats homeostasis alone on the new
user, a sensor gain change and a spectral tilt). The substrate target runs its own LPL and keeps
the default rule.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgelearn.boundary import options as opt
from edgelearn.errors import ModelFileError

EXAMPLES = """examples:
  edgelearn demo                         # simulated board, 256 KiB, new-user stream, 10 % labels
  edgelearn demo --target host --limit 300
  edgelearn demo --labels 0.2 --report reports/demo-20
  edgelearn demo --labels 0 --report reports/demo-unlabelled   # label-free: slow+homeostasis, epoch 8
"""

LABEL_FREE_RULE = "slow+homeostasis"      # docs/learning-rules.md section 9
LABEL_FREE_EPOCH = 8


def bundled_model() -> Path:
    root = Path(__file__).resolve().parents[2]
    path = root / "models" / "speech_digits.onnx"
    if not path.exists():
        raise ModelFileError(f"bundled model not found at {path}: run the demo from a source "
                             f"checkout (pip install -e .)")
    return path


def register(sub) -> None:
    p = sub.add_parser("demo", help="deploy the bundled model to a simulated board and adapt",
                       description=__doc__.split("\n\n")[1].replace("\n", " "),
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", default="sim", help="sim (default), host, substrate[:PRESET]")
    p.add_argument("--budget", default="256KiB",
                   help="RAM budget in bytes, KiB/MiB accepted (default 256KiB)")
    p.add_argument("--device", default="cortex-m4-256k",
                   help="device profile (default cortex-m4-256k; edgelearn plan --list-devices)")
    p.add_argument("--labels", type=opt.FRACTION, default=0.1, metavar="FRACTION",
                   help="fraction of samples whose label arrives (default 0.1)")
    p.add_argument("--limit", type=opt.COUNT, help="use only the first N samples of the stream")
    p.add_argument("--report", default="reports/demo", help="report folder (default reports/demo)")
    p.add_argument("--seed", type=opt.SEED, default=0,
                   help="stream order, label mask, device seed (default 0)")
    p.add_argument("--fresh", action="store_true",
                   help="start over instead of resuming the report folder's checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def run(args) -> int:
    from edgelearn.cli import cmd_deploy
    from edgelearn.targets.spec import parse_target

    label_free = args.labels == 0 and parse_target(args.target).kind != "substrate"
    ns = argparse.Namespace(
        model=str(bundled_model()), target=args.target, budget=args.budget, device=args.device,
        lpl="all", no_hep=label_free, adapt="new_user",
        lpl_rule=LABEL_FREE_RULE if label_free else "lpl",
        lpl_epoch=LABEL_FREE_EPOCH if label_free else 1,
        labels=args.labels, limit=args.limit, report=args.report, seed=args.seed,
        no_baseline=False, calib=None, dt=None, fresh=args.fresh, quiet=args.quiet)
    if label_free and not args.quiet:
        print(f"no labels: LPL preset {LABEL_FREE_RULE} at a learning epoch of "
              f"{LABEL_FREE_EPOCH} steps, no hEP (the label-free setting measured best, "
              f"docs/learning-rules.md section 9)", flush=True)
    return cmd_deploy.run(ns)
