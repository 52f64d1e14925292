"""``edgelearn plan MODEL --budget B [--device PROFILE] [--json]``: print the memory plan."""

from __future__ import annotations

import argparse
import json

EXAMPLES = """examples:
  edgelearn plan models/speech_digits.onnx --budget 256KiB
  edgelearn plan models/speech_digits.onnx --budget 24KiB --device cortex-m0plus-64k --json
  edgelearn plan models/speech_digits.onnx --budget 256KiB --target sim
"""


class ListDevices(argparse.Action):
    """``--list-devices``: print the device profiles and exit (like --version)."""

    def __init__(self, option_strings, dest, **kw) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kw)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from edgelearn.memory.profiles import DEFAULT_PROFILE, PROFILES, format_bytes
        for p in PROFILES.values():
            mark = "  (default)" if p.name == DEFAULT_PROFILE else ""
            print(f"{p.name:<18} RAM {format_bytes(p.ram):>10}  flash {format_bytes(p.flash):>10}"
                  f"  {'FPU' if p.fpu else 'no FPU':<6}  {p.description}{mark}")
        parser.exit(0)


def add_learning_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by plan, deploy and adapt that say what to adapt."""
    from edgelearn.boundary import options as opt
    from edgelearn.rules import lpl_presets

    p.add_argument("--budget", required=True, help="RAM budget in bytes (KiB/MiB accepted)")
    p.add_argument("--device", default=None,
                   help="device profile (default: cortex-m4-256k; see --list-devices)")
    p.add_argument("--list-devices", action=ListDevices,
                   help="list the device profiles (RAM, flash, FPU) and exit")
    p.add_argument("--dt", type=opt.POSITIVE, default=None, metavar="SECONDS",
                   help="time step in seconds of a NIR model file (NIR stores none)")
    p.add_argument("--lpl", default="all", metavar="LAYERS",
                   help="hidden layers LPL adapts: 'all', 'last', 'none' or comma-separated names")
    p.add_argument("--lpl-rule", default="lpl", choices=lpl_presets.NAMES,
                   help="LPL settings (docs/learning-rules.md section 9): the paper's terms "
                        "(default), homeostasis towards the training statistics, both, or "
                        "homeostasis with the slowness term (slow+homeostasis)")
    p.add_argument("--lpl-epoch", type=opt.power_of_two(1, 64), default=1, metavar="K",
                   help="run the LPL rule once every K time steps on the activities summed "
                        "over them (a power of two, 1..64; default 1: every step; "
                        "docs/learning-rules.md section 10)")
    p.add_argument("--no-hep", action="store_true", help="do not train the hEP head")


def register(sub) -> None:
    p = sub.add_parser("plan", help="print the memory plan of a model under a budget",
                       description="Plan which buffers a deployment needs and what can be "
                                   "adapted within a RAM budget.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="model file (.onnx in the edgelearn profile, or NIR)")
    add_learning_arguments(p)
    p.add_argument("--target", default="host",
                   help="host | sim | serial:URL | substrate[:PRESET] | tflite; board targets "
                        "add link buffers: serial:URL asks the board (HELLO) for its link "
                        "settings, sim assumes the protocol defaults (window 8, 1024 B)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from edgelearn.adapt.bundle import load_bundle, plan_for
    from edgelearn.adapt.session import check_lpl_rule
    from edgelearn.targets.spec import parse_target

    spec = parse_target(args.target)
    check_lpl_rule(spec, args.lpl_rule, args.lpl_epoch)
    bundle = load_bundle(args.model, quantize=False, dt=args.dt)
    plan = plan_for(bundle, args)
    if spec.kind == "serial":
        plan = board_plan(spec, bundle, plan)
    if args.json:
        print(json.dumps(plan.to_json(), indent=2))
    else:
        print(plan.table())
    return 0


def board_plan(spec, bundle, plan):
    """``plan`` made for the link the board at ``spec`` reports in its HELLO reply."""
    from edgelearn.adapt.bundle import replan_for_board
    from edgelearn.targets.board import BoardTarget

    with BoardTarget.connect(spec, plan) as board:
        info = board.client.info
        return replan_for_board(bundle, plan, info.window, info.max_payload, info.ram)
