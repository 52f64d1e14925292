"""``edgelearn firmware-sim ...``: start a simulated board (runs ``python -m firmware_sim``).

edgelearn never imports firmware_sim (it is the device side); this command starts it as a
child process with the same arguments and FIRMWARE_SIM_PROG="edgelearn firmware-sim", so
``edgelearn firmware-sim --help`` shows its options and a bad option is the simulator's one
line ``edgelearn firmware-sim: error: ...`` with its exit code 2.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

EXAMPLES = """examples:
  edgelearn firmware-sim --pty --profile cortex-m4-256k --flash-file /tmp/board.flash
  edgelearn firmware-sim --port socket-server://127.0.0.1:7000 --baud 115200
  edgelearn firmware-sim --pty --ram 64KiB --check   (check the options, serve nothing)
  edgelearn firmware-sim --help          (all options of the simulator)
"""


def register(sub) -> None:
    p = sub.add_parser(
        "firmware-sim", add_help=False, prefix_chars="+",
        help="start a simulated board on a pseudo-terminal or TCP port",
        description="Start the firmware simulator (python -m firmware_sim): integer kernel, "
                    "fixed-point LPL, RAM arena, A/B flash, the serial protocol of "
                    "docs/protocol.md. It prints where to connect on its first stdout line.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments for python -m firmware_sim")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cmd = [sys.executable, "-m", "firmware_sim", *args.args]
    proc = subprocess.Popen(cmd, env=dict(os.environ,
                                          FIRMWARE_SIM_PROG="edgelearn firmware-sim"))
    # forward SIGTERM so the simulator never outlives this command
    old = signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
        return 130
    finally:
        signal.signal(signal.SIGTERM, old)
