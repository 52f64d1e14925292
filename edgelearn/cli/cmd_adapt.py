"""``edgelearn adapt MODEL --target serial:URL --adapt STREAM``: the adaptation loop on a board
that already holds MODEL (deployed earlier with ``edgelearn deploy``; checked by image CRC)."""

from __future__ import annotations

import argparse

from edgelearn.cli.cmd_deploy import add_loop_arguments
from edgelearn.cli.cmd_plan import add_learning_arguments

EXAMPLES = """examples:
  edgelearn deploy models/speech_digits.onnx --target "serial:sim?flash_file=/tmp/board.flash" \\
      --budget 256KiB
  edgelearn adapt models/speech_digits.onnx --target "serial:sim?flash_file=/tmp/board.flash" \\
      --budget 256KiB --adapt new_user
  edgelearn adapt models/speech_digits.onnx --target serial:/dev/ttyACM0 --budget 256KiB \\
      --adapt new_user --labels 0.2
"""


def register(sub) -> None:
    p = sub.add_parser("adapt", help="run the adaptation loop on a board that holds the model",
                       description=__doc__.split("\n\n")[0].replace("\n", " "),
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="the model the board holds (its head and engine settings)")
    p.add_argument("--target", required=True, help="serial:URL of the board")
    add_learning_arguments(p)
    add_loop_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from edgelearn.cli import cmd_deploy
    from edgelearn.errors import TargetError
    from edgelearn.targets.spec import parse_target

    spec = parse_target(args.target)
    if spec.kind != "serial":
        raise TargetError(f"edgelearn adapt needs a board that keeps its model (serial:URL); "
                          f"target '{spec.kind}' holds nothing between runs: use edgelearn "
                          f"deploy --adapt")
    if not args.adapt:
        raise TargetError("edgelearn adapt needs --adapt STREAM")
    return cmd_deploy.run(args, upload=False)
