"""Fuzzing the command-line options (issue 14, host side): every command with random option
values - valid ones, and numbers, words and symbols that are not - in a capped worker process
(tests/_fuzz_harness.py). Property: exit 0, or exit 2 with one stderr line; never a traceback,
a hang (the case is killed after 90 s) or a peak RSS above 512 MiB. Default run bounded and
derandomized (120 option sets of the quick commands, 12 of demo, fleet and firmware-sim, whose
cases take seconds each); ``-m slow`` ten times as many, freshly random.

Every command is fuzzed. Option values that ask for legitimately long work are fuzzed through
parsing (a bad one is refused there) and then overridden by a bounded one (argparse: the last
occurrence wins): board timeouts of minutes, deploys of whole data sets (``demo``'s and
``fleet``'s ``--limit``), fleets of many devices, workers or held-out devices. ``firmware-sim``
always runs with ``--check`` (the board is built and its port opened, nothing is served), and
``demo`` starts on ``--target host`` (a fuzzed ``--target`` may replace it).
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import strategies as st

import hostile_files as hf
from _fuzz_harness import Files, Worker, check, fuzz_tests, small_stream

ROOT = hf.ROOT
MODEL = ROOT / "models" / "randman_small.onnx"
CALIB = ROOT / "models" / "randman_small.calib.npz"
_counter = itertools.count()

GARBAGE = st.sampled_from(["", "-1", "0", "1", "-0", "1e308", "1e-300", "nan", "inf", "-inf",
                           "9" * 400, "0x10", "1_000", " ", "--", "None", "é", "3e38",
                           "2147483648", "-2147483649", "1.5", "256KiB", "speech:train"])
NUMBERS = (st.integers(-2**70, 2**70).map(str)
           | st.floats(allow_nan=True, allow_infinity=True).map(repr))
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",),
                                      blacklist_characters="\x00"), max_size=12)


def value(valid):
    """A valid value 4 times in 5 (so that commands with several options still get past
    parsing and do their work), else a hostile one."""
    hostile = st.one_of(GARBAGE, NUMBERS, TEXT)
    return st.integers(0, 4).flatmap(lambda k: hostile if k == 4 else valid)


def floats(lo, hi):
    return st.floats(lo, hi, allow_nan=False).map(repr)


def ints(lo, hi):
    return st.integers(lo, hi).map(str)


@pytest.fixture(scope="module")
def worker():
    with Worker(timeout=90) as w:
        yield w


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz_options")
    small_stream(folder)
    from edgelearn.io.onnx_quant import load_qnetwork
    from edgelearn.kernels.image import to_image
    quantized = hf.make_quantized_onnx(folder)
    (folder / "m.bin").write_bytes(to_image(load_qnetwork(quantized)))
    return Files(folder=folder, stream=folder / "stream.npz", x=folder / "x.npy",
                 quantized=quantized, image=folder / "m.bin", nir=hf.make_nir(folder))


def _parsers():
    """{'info': parser, ..., 'data stream': parser, 'board info': parser, ...} of the real
    command line, so that options other helpers add are fuzzed too."""
    from edgelearn.cli import build_parser

    def subs(parser):
        return next((a.choices for a in parser._actions
                     if a.__class__.__name__ == "_SubParsersAction"), {})
    out = {}
    for name, sp in subs(build_parser()).items():
        out[name] = sp
        for inner, isp in subs(sp).items():
            out[f"{name} {inner}"] = isp
    return out


def _firmware_sim_parser():
    """``edgelearn firmware-sim`` hands its arguments to the simulator: fuzz the simulator's
    own options (the parser it runs with under that name)."""
    from firmware_sim.cli import build_parser
    return build_parser("edgelearn firmware-sim")


PARSERS = {**_parsers(), "firmware-sim": _firmware_sim_parser()}
PROFILES = st.sampled_from(["cortex-m4-256k", "cortex-m0plus-64k", "cortex-m7-1m", "linux-board",
                            "pdp11"])
BUDGETS = st.sampled_from(["256KiB", "64KiB", "24KiB", "1KiB", "1MiB", "1", "1.5MiB", "1PiB"])
# valid values of options by name (an option not listed: its choices, or its default)
VALID = {
    "--budget": BUDGETS, "--device": PROFILES,
    "--lpl": st.sampled_from(["all", "last", "none", "hidden0", "readout", "x,y"]),
    "--labels": floats(0, 1), "--limit": ints(1, 12), "--seed": ints(0, 2**31 - 1),
    "--calib": st.sampled_from([str(CALIB)]), "--dt": floats(1e-6, 1.0), "--batch": ints(1, 8),
    "--n": ints(1, 50), "--by": st.sampled_from(["voice", "speaker", "accent"]),
    "--gain-drift": floats(0, 2), "--shift": floats(0, 2), "--dead": floats(0, 1),
    "--noise": floats(0, 1), "--warp": floats(0, 1), "--time-pools": ints(1, 20),
    "--baudrate": ints(300, 10**6), "--timeout": floats(0.001, 0.02), "--retries": ints(0, 2),
    "--chunk": ints(1, 4096), "--calib-rate": floats(0, 1), "--state-bits": st.sampled_from(
        ["16", "32"]), "--verify": st.sampled_from(["readback", "crc", "none"]),
    "--target": st.sampled_from(["host", "tflite", "mars", "substrate:nope"]),
    # fleet (its --devices, --workers and --held-out-devices are bounded in command())
    "--devices": ints(1, 3), "--workers": ints(1, 2), "--held-out-devices": ints(0, 2),
    "--engine": st.sampled_from(["inline", "local", "slurm", "local:2"]),
    "--federated": floats(0, 0.9), "--mismatch": st.sampled_from(["0.5..1.5", "1.2", "2..1",
                                                                   "0.1..9", "x..1"]),
    # firmware-sim
    "--ram": st.sampled_from(["64KiB", "256KiB", "2KiB", "1", "5GiB", "1PiB", "0"]),
    "--flash": st.sampled_from(["1MiB", "64KiB", "3000", "2175", "5GiB", "1e3"]),
    "--window": ints(1, 64), "--max-payload": ints(128, 4096), "--baud": ints(0, 10**7),
    "--protocol-version": ints(0, 255), "--reset-after-bytes": ints(0, 10**6),
    "--profile": st.sampled_from(["cortex-m4-256k", "cortex-m0plus-64k", "linux", "linux-board",
                                  "pdp11"]),
}
PORTS = st.sampled_from(["socket-server://127.0.0.1:0", "socket-server://127.0.0.1:99999",
                         "socket-server://127.0.0.1", "socket-server://192.0.2.1:0",
                         "socket-server://:0", "loop://", "/dev/null/tty", "/no/such/tty", ""])
# options whose valid values mean long work (a board to start, a 10 s arena probe) or that
# the base command line already sets (paths)
FIXED = {"--report", "--adapt", "--input", "--output", "--out", "--port", "--arena", "--check",
         "--help", "--quiet", "--no-baseline", "--streams", "--flash-file"}


def options(draw, command: str) -> list[str]:
    """A random subset of ``command``'s options with fuzzed values, sometimes an unknown
    option too."""
    argv = []
    for action in PARSERS[command]._actions:
        flag = action.option_strings[-1] if action.option_strings else None
        if flag is None or flag in FIXED or not draw(st.booleans()):
            continue
        if action.nargs == 0:
            argv.append(flag)
            continue
        valid = VALID.get(flag)
        if valid is None and action.choices:
            valid = st.sampled_from([str(c) for c in action.choices])
        if valid is None:
            valid = st.just(str(action.default)) if action.default is not None else GARBAGE
        argv += [flag, draw(value(valid))]
    if draw(st.integers(0, 9)) == 9:
        argv.append(draw(st.sampled_from(["--frobnicate", "-x", "--budget", "--seed=", "-"])))
    return argv


def _out(env, suffix):
    return env["folder"] / f"out{next(_counter)}{suffix}"


QUICK = ("info", "plan", "deploy", "run", "convert", "export-tflite", "data", "board",
         "quantize")
# seconds per case even when bounded (demo deploys the bundled speech model and plots; fleet
# runs two deploys; firmware-sim starts a simulator process): fuzzed with fewer cases
HEAVY = ("demo", "fleet", "firmware-sim")


def command(draw, env, commands=QUICK) -> tuple[list, str]:
    cmd = draw(st.sampled_from(commands))
    models = st.sampled_from([MODEL, env["quantized"], env["nir"], env["image"],
                              ROOT / "tests" / "fixtures" / "snntorch_synaptic_leaky.onnx",
                              env["folder"] / "missing.onnx", env["folder"]])
    if cmd == "info":
        return ["info", draw(models), *options(draw, "info")], cmd
    if cmd == "plan":
        return ["plan", draw(models), "--budget", draw(value(BUDGETS)),
                *options(draw, "plan")], cmd
    if cmd == "deploy":
        return ["deploy", MODEL, "--budget", draw(value(BUDGETS)), "--quiet", "--no-baseline",
                "--report", _out(env, "_report"), "--adapt", env["stream"],
                *options(draw, "deploy")], cmd
    if cmd == "run":
        return ["run", draw(models), "--input", draw(value(st.just(str(env["x"])))), "-o",
                _out(env, ".npz"), *options(draw, "run")], cmd
    if cmd == "convert":
        return ["convert", draw(models), "-o", draw(value(st.sampled_from(
            [str(_out(env, ".onnx")), str(env["folder"]), "/proc/x.onnx"]))),
                *options(draw, "convert")], cmd
    if cmd == "export-tflite":
        return ["export-tflite", draw(st.sampled_from([env["quantized"], env["image"], MODEL])),
                "-o", _out(env, ".tflite"), *options(draw, "export-tflite")], cmd
    if cmd == "data":
        sources = value(st.sampled_from([str(env["stream"]), "speech:new_user", "randman:3",
                                         "speech:dev", "x.csv"]))
        action = draw(st.sampled_from(["info", "stream", "baseline"]))
        if action == "info":
            return ["data", "info", draw(sources), *options(draw, "data info")], cmd
        if action == "stream":
            return ["data", "stream", draw(sources), _out(env, ".npz"),
                    *options(draw, "data stream")], cmd
        return ["data", "baseline", str(env["stream"]), *options(draw, "data baseline")], cmd
    if cmd == "board":
        # fuzzed --timeout/--retries are parsed (and refused when invalid); valid ones are then
        # overridden (argparse: the last wins), since minutes of retries are not a bug
        action = draw(st.sampled_from([["info"], ["reset"], ["pull", "-o", str(_out(env, ".bin"))],
                                       ["upload", str(env["image"])]]))
        return ["board", "--port", "loop://", *options(draw, "board"), "--timeout", "0.01",
                "--retries", "1", *action, *options(draw, f"board {action[0]}")], cmd
    if cmd == "demo":
        return ["demo", "--target", "host", "--report", _out(env, "_demo"), "--quiet",
                *options(draw, "demo"), "--limit", "2"], cmd
    if cmd == "fleet":
        streams = value(st.sampled_from([str(env["stream"]), f"{env['stream']}@drift=gain",
                                         f"{env['stream']}@user=voice", "new_user", "nope@x"]))
        return ["fleet", draw(models), "--devices", "2", "--budget", draw(value(BUDGETS)),
                "--engine", "inline", "--streams", draw(streams), "--report",
                _out(env, "_fleet"), "--quiet", *options(draw, "fleet"), "--limit", "3",
                "--devices", "2", "--workers", "1", "--held-out-devices",
                draw(st.sampled_from(["0", "1"]))], cmd
    if cmd == "firmware-sim":
        where = draw(st.sampled_from([["--pty"], ["--port", draw(value(PORTS))]]))
        flash_file = draw(value(st.sampled_from([str(env["folder"] / "b.flash"),
                                                 str(env["folder"]), "/proc/x.flash"])))
        return ["firmware-sim", *where, *options(draw, "firmware-sim"), "--flash-file",
                flash_file, "--check"], cmd
    return [MODEL, "--calib", draw(value(st.just(str(CALIB)))), "-o", _out(env, ".onnx"),
            *quantize_options(draw)], cmd


def quantize_options(draw) -> list[str]:
    spec = {"--headroom": floats(0.01, 4), "--percentile": floats(50, 100),
            "--calib-samples": ints(1, 300), "--state-bits": st.sampled_from(["16", "32"]),
            "--shift": st.sampled_from(["hidden0=3", "readout=-2", "nope=1", "hidden0=x"])}
    argv = []
    for flag, valid in spec.items():
        if draw(st.booleans()):
            argv += [flag, draw(value(valid))]
    return argv


def option_case(worker, env, argv_cmd) -> None:
    argv, cmd = argv_cmd
    if cmd == "quantize":
        res = worker.run(argv, entry="quantize", cwd=env["folder"])
        check(res, "quantize", "options: tools/quantize.py")
    else:
        res = worker.run(argv, cwd=env["folder"])
        check(res, "edgelearn", f"options: edgelearn {cmd}")


test_fuzz_options, test_fuzz_options_long = fuzz_tests(
    option_case, lambda env: st.composite(lambda draw: command(draw, env))(), 120)
test_fuzz_heavy_options, test_fuzz_heavy_options_long = fuzz_tests(
    option_case, lambda env: st.composite(lambda draw: command(draw, env, HEAVY))(), 12)
