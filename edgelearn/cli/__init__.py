"""The ``edgelearn`` command line (L3).

Each subcommand lives in its own module ``edgelearn.cli.cmd_<name>`` exposing
``register(subparsers)``, which adds a parser whose ``func(args) -> int`` does the work.
An :class:`~edgelearn.errors.EdgelearnError` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from edgelearn import __version__
from edgelearn.errors import EdgelearnError

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
    parser = argparse.ArgumentParser(
        prog="edgelearn",
        description="Deploy pretrained spiking networks on edge targets and keep them learning.",
    )
    parser.add_argument("--version", action="version", version=f"edgelearn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"edgelearn.cli.cmd_{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except EdgelearnError as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"edgelearn {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edgelearn {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
