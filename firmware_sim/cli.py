"""Argument parsing of the firmware simulator (shared by ``python -m firmware_sim`` and
``edgelearn firmware-sim``, which builds the same command line)."""

from __future__ import annotations

import argparse
import sys

from edgelearn.errors import EdgelearnError
from edgelearn.link.framing import DEFAULT_MAX_PAYLOAD, PROTOCOL_VERSION
from edgelearn.memory.profiles import PROFILES, get_profile, parse_bytes

ALIASES = {"linux": "linux-board"}
LINUX_DEFAULT_RAM = 16 * 1024 * 1024   # the sim's arena for the linux profile (not 512 MiB)
LINUX_DEFAULT_FLASH = 16 * 1024 * 1024  # and its flash file (not 4 GiB)


EXAMPLES = """examples:
  edgelearn firmware-sim --pty                 # prints /dev/pts/N: edgelearn deploy MODEL
                                               #   --target serial:/dev/pts/N --budget 256KiB
  edgelearn firmware-sim --pty --window 2 --max-payload 256 --ram 64KiB \\
      --profile cortex-m0plus-64k --flash-file /tmp/board.flash
  edgelearn firmware-sim --port socket-server://127.0.0.1:0    # prints socket://HOST:PORT
  python -m firmware_sim --pty --baud 115200    # the same program
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="firmware_sim", description=(
        "A simulated edgelearn board: integer kernel, fixed-point LPL, RAM arena, A/B flash, "
        "serial protocol (docs/protocol.md)."), epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--pty", action="store_true",
                       help="serve on a new pseudo-terminal; prints the slave path on stdout")
    where.add_argument("--port", metavar="URL",
                       help="socket-server://HOST:PORT (listen; port 0 picks one and prints "
                            "socket://HOST:PORT), or a device path / pyserial URL to serve")
    p.add_argument("--profile", default="cortex-m4-256k",
                   help=f"board profile: {', '.join(PROFILES)} (alias: linux)")
    p.add_argument("--ram", help="RAM arena size (default: the profile's; linux: 16 MiB), "
                                 "e.g. 256KiB")
    p.add_argument("--flash", help="flash size (default: the profile's; linux: 16 MiB), "
                                   "e.g. 1MiB")
    p.add_argument("--flash-file", help="persist flash here (a restart keeps the last commit)")
    p.add_argument("--baud", type=int, default=0,
                   help="pace both directions to this baud rate, 8N1 (default: unpaced)")
    p.add_argument("--max-payload", type=int, default=DEFAULT_MAX_PAYLOAD,
                   help="largest request payload accepted (bytes)")
    p.add_argument("--window", type=int, default=8, help="requests the host may have in flight")
    p.add_argument("--seed", type=int, default=1, help="device PRNG seed (stochastic rounding)")
    p.add_argument("--protocol-version", type=int, default=PROTOCOL_VERSION,
                   help="protocol version this device speaks (to test mismatches)")
    p.add_argument("--reset-after-bytes", type=int, default=0,
                   help="fault injection: power-cycle after this many received bytes")
    p.add_argument("--exit-on-close", action="store_true",
                   help="exit when the client closes the line (default: wait for the next)")
    p.add_argument("--impl", choices=("python", "c"), default="python",
                   help="python: this simulator; c: the C firmware (firmware/) built for this "
                        "host with the system compiler and run with the same options")
    return p


def board_memory(args: argparse.Namespace) -> tuple[str, int, int]:
    """(profile name, RAM bytes, flash bytes) of the simulated board."""
    profile = get_profile(ALIASES.get(args.profile, args.profile))
    if args.ram:
        ram = parse_bytes(args.ram)
    else:
        ram = min(profile.ram, LINUX_DEFAULT_RAM) if profile.name == "linux-board" \
            else profile.ram
    flash = parse_bytes(args.flash) if args.flash else min(profile.flash, LINUX_DEFAULT_FLASH)
    return profile.name, ram, flash


def make_device(args: argparse.Namespace):
    from firmware_sim.device import Device
    profile, ram, flash = board_memory(args)
    return Device(ram=ram, flash=flash, profile=profile, flash_file=args.flash_file,
                  max_payload=args.max_payload, window=args.window, baud=args.baud,
                  protocol_version=args.protocol_version, seed=args.seed)


def exec_c_firmware(args: argparse.Namespace) -> int:
    """Replace this process by the C firmware's host build with the same options (it prints
    the pty path or socket URL, and SIGUSR1 power-cycles it, as this simulator does)."""
    import os

    from edgelearn.kernels import cbuild
    profile, ram, flash = board_memory(args)
    if args.port and not args.port.startswith("socket-server://"):
        raise ValueError("the C firmware serves --pty or --port socket-server://HOST:PORT")
    exe = str(cbuild.build("device"))
    argv = [exe, "--pty"] if args.pty else [exe, "--port", args.port]
    argv += ["--ram", str(ram), "--flash", str(flash), "--profile", profile,
             "--baud", str(args.baud), "--max-payload", str(args.max_payload),
             "--window", str(args.window), "--seed", str(args.seed),
             "--protocol-version", str(args.protocol_version),
             "--reset-after-bytes", str(args.reset_after_bytes)]
    if args.flash_file:
        argv += ["--flash-file", args.flash_file]
    if args.exit_on_close:
        argv.append("--exit-on-close")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(exe, argv)
    return 0                                   # not reached


def serve(args: argparse.Namespace) -> int:
    if args.impl == "c":
        return exec_c_firmware(args)
    from firmware_sim import server as srv
    device = make_device(args)
    if args.pty:
        port = srv.PtyPort()
    elif args.port.startswith("socket-server://"):
        host, _, num = args.port[len("socket-server://"):].rpartition(":")
        port = srv.TcpPort(host or "127.0.0.1", int(num or 0))
    else:
        port = srv.url_port(args.port)
    server = srv.Server(device, port, baud=args.baud, exit_on_close=args.exit_on_close,
                        reset_after_bytes=args.reset_after_bytes)
    srv.install_signals(server)
    act = device.flash.active()
    device.log(f"{device.profile}: RAM {device.ram} B, flash {device.flash.size} B, "
               f"{'baud ' + str(args.baud) if args.baud else 'unpaced'}, active slot "
               f"{act.slot if act else 'none'}; listening on {port.announce}")
    srv.announce(port.announce)
    try:
        server.run()
    finally:
        port.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return serve(args)
    except (EdgelearnError, ValueError, OSError) as exc:
        print(f"firmware_sim: error: {str(exc).splitlines()[0] if str(exc) else exc!r}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
