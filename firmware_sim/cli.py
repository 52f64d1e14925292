"""Argument parsing of the firmware simulator (shared by ``python -m firmware_sim`` and
``edgelearn firmware-sim``, which runs it with the same command line and FIRMWARE_SIM_PROG set
to its own name, so messages and help name the command the user typed).

Every option is checked while parsing (its range is the field it fills in the HELLO reply of
docs/protocol.md, or what the simulator can serve), and every error - a bad option, a port that
cannot be opened, a flash file that cannot be written - goes through the project's one error
path (edgelearn.boundary.run_command): one stderr line ``PROG: error: MESSAGE``, exit code 2.
``--check`` does everything up to serving (options, board, flash file, port) and exits.
"""

from __future__ import annotations

import argparse
import os
import sys

from edgelearn.boundary import OneLineArgumentParser, run_command
from edgelearn.boundary import options as opt
from edgelearn.errors import EdgelearnError, OptionError
from edgelearn.link.framing import DEFAULT_MAX_PAYLOAD, MAX_PAYLOAD_LIMIT, PROTOCOL_VERSION
from edgelearn.memory.profiles import PROFILES, get_profile, parse_bytes
from firmware_sim.device import MIN_MAX_PAYLOAD

ALIASES = {"linux": "linux-board"}
LINUX_DEFAULT_RAM = 16 * 1024 * 1024   # the sim's arena for the linux profile (not 512 MiB)
LINUX_DEFAULT_FLASH = 16 * 1024 * 1024  # and its flash file (not 4 GiB)
U32 = 2**32 - 1                         # RAM, flash, baud and seed are u32 on the wire
PROG_ENV = "FIRMWARE_SIM_PROG"
SOCKET_SERVER = "socket-server://"


EXAMPLES = """examples:
  edgelearn firmware-sim --pty                 # prints /dev/pts/N: edgelearn deploy MODEL
                                               #   --target serial:/dev/pts/N --budget 256KiB
  edgelearn firmware-sim --pty --window 2 --max-payload 256 --ram 64KiB \\
      --profile cortex-m0plus-64k --flash-file /tmp/board.flash
  edgelearn firmware-sim --port socket-server://127.0.0.1:0    # prints socket://HOST:PORT
  edgelearn firmware-sim --pty --ram 64KiB --check   # checks the options, serves nothing
  python -m firmware_sim --pty --baud 115200    # the same program
"""


def port_url(text: str) -> str:
    """--port: ``socket-server://[HOST]:PORT`` (PORT 0..65535; no HOST: 127.0.0.1), or a
    device path / pyserial URL (opened when serving starts)."""
    if text.startswith(SOCKET_SERVER):
        host_port(text)
    elif not text.strip():
        raise argparse.ArgumentTypeError("expected socket-server://HOST:PORT, a device path or "
                                         "a URL, got ''")
    return text


def host_port(url: str) -> tuple[str, int]:
    """(host, port) of ``socket-server://[HOST]:PORT``; ArgumentTypeError when malformed."""
    host, sep, num = url[len(SOCKET_SERVER):].rpartition(":")
    if not sep or not num.isascii() or not num.isdigit() or len(num) > 5 or int(num) > 65535:
        raise argparse.ArgumentTypeError(f"expected socket-server://HOST:PORT with PORT in "
                                         f"0..65535, got {url[:80]!r}")
    return host or "127.0.0.1", int(num)


def size(text: str) -> int:
    """--ram/--flash: a size such as 262144 or 256KiB, 1 B .. 2^32-1 B."""
    try:
        value = parse_bytes(text)
    except EdgelearnError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value > U32:
        raise argparse.ArgumentTypeError(f"must be at most {U32} B (a u32 on the wire), got "
                                         f"{text[:40]!r}")
    return value


def profile_name(text: str) -> str:
    """--profile: a board profile's name (or an alias)."""
    try:
        return get_profile(ALIASES.get(text, text)).name
    except EdgelearnError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser(prog: str = "firmware_sim") -> argparse.ArgumentParser:
    p = OneLineArgumentParser(prog=prog, description=(
        "A simulated edgelearn board: integer kernel, fixed-point LPL, RAM arena, A/B flash, "
        "serial protocol (docs/protocol.md)."), epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--pty", action="store_true",
                       help="serve on a new pseudo-terminal; prints the slave path on stdout")
    where.add_argument("--port", metavar="URL", type=port_url,
                       help="socket-server://HOST:PORT (listen; port 0 picks one and prints "
                            "socket://HOST:PORT), or a device path / pyserial URL to serve")
    p.add_argument("--profile", default="cortex-m4-256k", type=profile_name,
                   help=f"board profile: {', '.join(PROFILES)} (alias: linux)")
    p.add_argument("--ram", type=size, help="RAM arena size, 1 B .. 2^32-1 B (default: the "
                                            "profile's; linux: 16 MiB), e.g. 256KiB")
    p.add_argument("--flash", type=size, help="flash size, 2176 B .. 2^32-1 B (default: the "
                                              "profile's; linux: 16 MiB), e.g. 1MiB")
    p.add_argument("--flash-file", help="persist flash here (a restart keeps the last commit)")
    p.add_argument("--baud", type=opt.integer(0, U32), default=0,
                   help="pace both directions to this baud rate, 8N1 (default: unpaced)")
    p.add_argument("--max-payload", type=opt.integer(MIN_MAX_PAYLOAD, MAX_PAYLOAD_LIMIT),
                   default=DEFAULT_MAX_PAYLOAD,
                   help=f"largest request payload accepted, {MIN_MAX_PAYLOAD}..{MAX_PAYLOAD_LIMIT}"
                        f" bytes")
    p.add_argument("--window", type=opt.integer(1, 64), default=8,
                   help="requests the host may have in flight, 1..64")
    p.add_argument("--seed", type=opt.integer(0, U32), default=1,
                   help="device PRNG seed (stochastic rounding), 0..2^32-1")
    p.add_argument("--protocol-version", type=opt.integer(0, 255), default=PROTOCOL_VERSION,
                   help="protocol version this device speaks, 0..255 (to test mismatches)")
    p.add_argument("--reset-after-bytes", type=opt.integer(0, 2**63 - 1), default=0,
                   help="fault injection: power-cycle after this many received bytes")
    p.add_argument("--exit-on-close", action="store_true",
                   help="exit when the client closes the line (default: wait for the next)")
    p.add_argument("--impl", choices=("python", "c"), default="python",
                   help="python: this simulator; c: the C firmware (firmware/) built for this "
                        "host with the system compiler and run with the same options")
    p.add_argument("--check", action="store_true",
                   help="check the options, create the board (flash file included) and open "
                        "the port (--impl c: build the firmware), print one line and exit 0 "
                        "without serving")
    return p


def board_memory(args: argparse.Namespace) -> tuple[str, int, int]:
    """(profile name, RAM bytes, flash bytes) of the simulated board."""
    profile = get_profile(args.profile)
    if args.ram:
        ram = args.ram
    else:
        ram = min(profile.ram, LINUX_DEFAULT_RAM) if profile.name == "linux-board" \
            else profile.ram
    flash = args.flash or min(profile.flash, LINUX_DEFAULT_FLASH)
    return profile.name, ram, flash


def make_device(args: argparse.Namespace):
    from firmware_sim.device import Device
    profile, ram, flash = board_memory(args)
    return Device(ram=ram, flash=flash, profile=profile, flash_file=args.flash_file,
                  max_payload=args.max_payload, window=args.window, baud=args.baud,
                  protocol_version=args.protocol_version, seed=args.seed)


def open_port(args: argparse.Namespace):
    """The port of --pty / --port (PortError with the reason when it cannot be opened)."""
    from firmware_sim import server as srv
    if args.pty:
        return srv.PtyPort()
    if args.port.startswith(SOCKET_SERVER):
        return srv.TcpPort(*host_port(args.port))
    return srv.url_port(args.port)


def exec_c_firmware(args: argparse.Namespace) -> int:
    """Replace this process by the C firmware's host build with the same options (it prints
    the pty path or socket URL, and SIGUSR1 power-cycles it, as this simulator does)."""
    from edgelearn.kernels import cbuild
    profile, ram, flash = board_memory(args)
    if args.port and not args.port.startswith(SOCKET_SERVER):
        raise OptionError("--impl c serves --pty or --port socket-server://HOST:PORT, got "
                          f"--port {args.port[:80]!r}")
    exe = str(cbuild.build("device"))
    if args.check:
        make_device(args)                      # the same limits (flash size, flash file)
        open_port(args).close()
        print(f"{PROG}: options ok ({exe}; {profile}, RAM {ram} B, flash {flash} B)")
        return 0
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
    port = open_port(args)
    if args.check:
        port.close()
        print(f"{PROG}: options ok ({device.profile}, RAM {device.ram} B, flash "
              f"{device.flash.size} B, port {port.announce})")
        return 0
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
    except OSError as exc:
        raise srv.PortError(f"port {port.announce} failed: {exc.strerror or exc}") from None
    finally:
        port.close()
    return 0


PROG = os.environ.get(PROG_ENV) or "firmware_sim"


def main(argv: list[str] | None = None) -> int:
    return run_command(PROG, lambda: serve(build_parser(PROG).parse_args(argv)))
