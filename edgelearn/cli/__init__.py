"""The ``edgelearn`` command line (L3).

Each subcommand lives in its own module ``edgelearn.cli.cmd_<name>`` exposing
``register(subparsers)``, which adds a parser whose ``func(args) -> int`` does the work.
An :class:`~edgelearn.errors.EdgelearnError` (a usage error included) becomes one line on
stderr and exit code 2, in edgelearn.boundary.run_command.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from edgelearn import __version__
from edgelearn.boundary import OneLineArgumentParser, run_command

COMMANDS = (
    "demo",
    "adapt",
    "deploy",
    "fleet",
    "plan",
    "info",
    "convert",
    "run",
    "export_tflite",
    "data",
    "firmware_sim",
    "board",
)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="edgelearn",
        description="Deploy pretrained spiking networks on edge targets and keep them learning.",
        epilog="examples:\n"
               "  edgelearn demo                 # the bundled model on a simulated board\n"
               "  edgelearn info models/speech_digits.onnx\n"
               "  edgelearn plan models/speech_digits.onnx --budget 64KiB "
               "--device cortex-m0plus-64k\n"
               "  edgelearn deploy models/speech_digits.onnx --target sim --budget 256KiB "
               "--adapt new_user\n"
               "  edgelearn COMMAND --help       # each command's options and examples\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"edgelearn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"edgelearn.cli.cmd_{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    prog = ["edgelearn"]

    def work() -> int:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        prog[0] = f"edgelearn {args.command}"
        return args.func(args)

    return run_command(lambda: prog[0], work)


if __name__ == "__main__":
    sys.exit(main())
