#!/usr/bin/env python3
"""The C LPL step alone: instructions per step (callgrind) and CPU time per step, on the
streams of bench/bench_native.py, without Python in the measured process.

Workloads (written to a temporary folder, run by bench/lpl_step_driver.c compiled with the
shared library's sources and flags):

    bench      700-256(rec)-20 (bench_native's network and quantization), LPL default_lpl()
               on the hidden layer; 300 warm-up steps of Bernoulli(0.05) input (seed 9), then
               bench_native's batch-1 input (seed 3, T = 100) as REPS samples
    headline   models/speech_digits.onnx 64-128(rec)-10, LPL on the hidden layer; warm-up the
               last three new-user samples as one, then the first new-user sample REPS times

    python bench/bench_lpl_step.py --callgrind [--march x86-64-v3] [--reps 10]
        instructions per step of el_lpl_step and el_net_step1 (inclusive; callgrind's
        statistics zeroed after the warm-up), and "engine rest": el_engine_step's inclusive
        count less those two (the engine's own per-step work: input copy, spike counts,
        readout, counters); build flags -O3 -g, and -march=x86-64-v3 for ``lib`` (valgrind
        has no AVX-512; ``--march`` changes it; ``lib-scalar`` keeps the compiler's default)
    python bench/bench_lpl_step.py [--reps 201]
        medians of process CPU time per step, the engine with LPL on and off (-march=native,
        the library's flags); the LPL step costs the difference. Timings on a busy machine are
        noise: the load average is printed.
    --only bench|headline runs one workload. Bad input (--reps < 1, --callgrind without
    valgrind) is one line on stderr and exit 2.

Both modes run the library's build (recipe ``lib``: vectorised) and its scalar build (recipe
``lib-scalar``: no auto-vectorisation, no -march=native) and check that both give the same
checksum of the layer's weights, the LPL state and the PRNG counter.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from edgelearn.boundary import OneLineArgumentParser, run_command  # noqa: E402
from edgelearn.boundary import options as opt  # noqa: E402
from edgelearn.errors import InputError  # noqa: E402
from edgelearn.kernels import cbuild  # noqa: E402
from edgelearn.kernels.image import to_image  # noqa: E402
from edgelearn.kernels.lpl_codes import lpl_block  # noqa: E402
from edgelearn.rules.base import qlayer_w_shift  # noqa: E402
from edgelearn.rules.lpl_rate import deploy_default  # noqa: E402

BUILDS = ("lib", "lib-scalar")


def workloads() -> dict[str, dict]:
    """name -> image, block, layer, n_in, layer sizes, warm-up and measured input (int16)."""
    from bench_runtime import make_net

    from edgelearn.adapt.bundle import load_bundle
    from edgelearn.data import load_speech_digits
    from edgelearn.quant.calibrate import quantize_network

    out = {}
    net = make_net()
    calib = (np.random.default_rng(1).random((100, 16, net.n_in)) < 0.05).astype(np.float32)
    qnet, _ = quantize_network(net, calib)
    warm = np.random.default_rng(9).random((300, net.n_in)) < 0.05
    x = (np.random.default_rng(3).random((100, 1, net.n_in)) < 0.05)[:, 0]
    out["bench"] = (qnet, warm, x)
    q = load_bundle(ROOT / "models" / "speech_digits.onnx").qnet
    ds = load_speech_digits("new_user")
    out["headline"] = (q, np.concatenate(list(ds.x[-3:])), ds.x[0])
    res = {}
    for name, (qn, w, xx) in out.items():
        hid = qn.layers[0]
        res[name] = {"image": to_image(qn), "layer": 0, "n_in": qn.n_in,
                     "block": lpl_block(deploy_default(), qlayer_w_shift(hid), hid.n_out),
                     "sizes": (hid.n_in, hid.n_out), "warm": np.asarray(w, np.int16),
                     "x": np.asarray(xx, np.int16)}
    return res


def build_driver(recipe: str, march: str | None, debug: bool, folder: Path) -> Path:
    """bench/lpl_step_driver.c with a library recipe's sources and flags (-march replaced)."""
    cmd, _ = cbuild.command(recipe)
    flags = [f for f in cmd[1:] if f.startswith("-") and f not in ("-I", "-shared", "-fPIC")]
    if march and recipe == "lib":
        flags = [f for f in flags if not f.startswith("-march=")] + [f"-march={march}"]
    if debug:
        flags.append("-g")
    srcs = [str(cbuild.firmware_dir() / s) for s in cbuild.recipes(cmd[0])[recipe].sources]
    out = folder / f"lpl_step_driver-{recipe}"
    subprocess.run([cmd[0], *flags, "-I", str(cbuild.firmware_dir() / "src"), *srcs,
                    str(ROOT / "bench" / "lpl_step_driver.c"), "-o", str(out), "-lm",
                    "-lpthread"], check=True)
    return out


def write(folder: Path, name: str, w: dict) -> list[str]:
    files = {}
    for key in ("image", "block", "warm", "x"):
        p = folder / f"{name}.{key}"
        data = w[key]
        p.write_bytes(data if isinstance(data, bytes) else data.tobytes())
        files[key] = str(p)
    return [files["image"], files["block"], str(w["layer"]), str(w["n_in"]),
            str(w["sizes"][0]), str(w["sizes"][1]), files["warm"], files["x"]]


def inclusive(ann: str, fn: str) -> int:
    m = re.search(r"^\s*([\d,]+)\s+\([\d.\s]+%\)\s+\S*:" + fn + r"\b", ann, re.M)
    if not m:
        raise SystemExit(f"bench_lpl_step: no inclusive count for {fn} in callgrind's output")
    return int(m.group(1).replace(",", ""))


def count(driver: Path, args: list[str], reps: int, folder: Path) -> dict:
    out = folder / "callgrind.out"
    r = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        str(driver), "count", *args, str(reps)], capture_output=True,
                       text=True, check=True)
    steps, check, zeroed = re.search(r"steps (\d+) checksum (\w+) zeroed (\d)",
                                     r.stdout).groups()
    if zeroed != "1":
        raise SystemExit("bench_lpl_step: the driver was built without valgrind/callgrind.h "
                         "(it could not leave the warm-up out of the counts)")
    ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", str(out)],
                         capture_output=True, text=True, check=True).stdout
    n = int(steps)
    lpl, net = inclusive(ann, "el_lpl_step"), inclusive(ann, "el_net_step1")
    return {"lpl": lpl / n, "net": net / n,
            "rest": (inclusive(ann, "el_engine_step") - lpl - net) / n, "checksum": check}


def timing(driver: Path, args: list[str], reps: int) -> dict:
    r = subprocess.run([str(driver), "time", *args, str(reps)], capture_output=True, text=True,
                       check=True)
    on, off = (float(v) for v in re.search(r"on ([\d.]+) off ([\d.]+)", r.stdout).groups())
    c = re.search(r"checksum (\w+)", subprocess.run(
        [str(driver), "count", *args, "1"], capture_output=True, text=True,
        check=True).stdout).group(1)
    return {"on": on, "off": off, "lpl": on - off, "checksum": c}


def main(argv=None) -> int:
    ap = OneLineArgumentParser(prog="bench_lpl_step", description=__doc__.split("\n\n")[0])
    ap.add_argument("--callgrind", action="store_true", help="count instructions (valgrind)")
    ap.add_argument("--march", default=None,
                    help="-march of the build (default: x86-64-v3 with --callgrind, else the "
                         "library's)")
    ap.add_argument("--reps", type=opt.COUNT, default=None,
                    help="samples counted (default 10) or timing rounds (default 201)")
    ap.add_argument("--only", choices=("bench", "headline"), default=None)
    args = ap.parse_args(argv)
    if args.callgrind and not shutil.which("valgrind"):
        raise InputError("--callgrind needs valgrind")
    march = args.march or ("x86-64-v3" if args.callgrind else None)
    reps = args.reps or (10 if args.callgrind else 201)
    print(f"load average {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs); build "
          f"-march={march or 'as the library'}{' -g' if args.callgrind else ''}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        drivers = {b: build_driver(b, march, args.callgrind, folder) for b in BUILDS}
        for name, w in workloads().items():
            if args.only and name != args.only:
                continue
            a = write(folder, name, w)
            res = {b: (count(d, a, reps, folder) if args.callgrind else timing(d, a, reps))
                   for b, d in drivers.items()}
            sums = {r["checksum"] for r in res.values()}
            if len(sums) != 1:
                raise SystemExit(f"bench_lpl_step: {name}: the builds differ: {sorted(sums)}")
            for b, r in res.items():
                if args.callgrind:
                    print(f"{name:<9} {b:<10} instructions/step: LPL {r['lpl']:,.0f}  network "
                          f"{r['net']:,.0f}  engine rest {r['rest']:,.0f}  "
                          f"(checksum {r['checksum']})")
                else:
                    print(f"{name:<9} {b:<10} us/step (CPU, median of {reps}): LPL on "
                          f"{r['on']:.3f}  off {r['off']:.3f}  LPL {r['lpl']:.3f}  "
                          f"(checksum {r['checksum']})")
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_command("bench_lpl_step", main))
