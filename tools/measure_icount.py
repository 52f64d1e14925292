#!/usr/bin/env python3
"""Instructions per network step of the C firmware on emulated Cortex-M cores, and the fit of
the cycle-cost model (firmware_sim/cycles.py, docs/protocol.md section 14) to them.

For each core (QEMU ``mps2-an385`` Cortex-M3 with the ``icount-cm3`` build, ``mps2-an386``
Cortex-M4F with ``icount-cm4f``; firmware/tests/icount.c) and each workload below, QEMU runs
with ``-icount shift=0`` (one instruction per nanosecond of virtual time, deterministic) and
the harness reports per time step the instructions of ``el_engine_step`` and the activity the
model prices (active inputs and last step's recurrent spikes per layer), inference alone,
with LPL (deployed settings, past the warm-up) on the hidden layer, and with LPL at a learning
epoch of EPOCH steps (the same settings with ``epoch=EPOCH``: the rule once an epoch on the
activities summed over it; run mode ``lpl_epoch8``, its run also records ``lpl_epoch``).

Workloads (network x input, STEPS steps each):

    speech   models/speech_digits.onnx, 64-128(rec)-10: the new-user stream, no input, every
             input at 3
    shd      bench/bench_runtime.py's 700-256(rec)-20, quantized: Bernoulli(p) 0/1 inputs,
             p = 0.02, 0.05, 0.2
    ff       a feed-forward 256-96-16 (seed 2), quantized: Bernoulli(0.1), Bernoulli(0.4)

The fit: per core, the model's constants (c_step, c_neuron, c_scan, c_event, c_value,
c_lpl_neuron, c_lpl_input, c_lpl, c_lpl_acc) by non-negative least squares of the relative
error of the per-run mean instructions per step (every run weighs the same; an epoch run's rule
terms count 1/EPOCH, its sums (n_in + n_out) c_lpl_acc); c_mac = c_value (the C engine
is event-driven only: its dense figure is every input active with values). The measured runs, the fitted constants and
each run's relative residual go to OUT (tests/icount/cortex_m.json); firmware_sim/cycles.py and
firmware/src/el_cycles.c carry the constants rounded to 3 significant digits (this script
prints them), and tests/test_cycle_calibration.py checks the model against the stored counts.

    python tools/measure_icount.py [--out tests/icount/cortex_m.json] [--cores cm3 cm4f]
        [--steps 300] [--check]

--check re-measures and exits 1 if the counts differ from OUT (same compiler only: the
counts depend on arm-none-eabi-gcc's version, which OUT records).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgelearn.atomic import atomic_write_text  # noqa: E402
from edgelearn.kernels import cbuild  # noqa: E402

CORES = {"cm3": ("cortex-m3", "mps2-an385", "icount-cm3"),
         "cm4f": ("cortex-m4", "mps2-an386", "icount-cm4f")}
CONSTANTS = ("c_step", "c_neuron", "c_scan", "c_event", "c_value", "c_lpl_neuron", "c_lpl_input",
             "c_lpl", "c_lpl_acc")
EPOCH = 8          # the learning epoch of the third run of every workload
DEFAULT_OUT = ROOT / "tests" / "icount" / "cortex_m.json"


# ---- workloads ------------------------------------------------------------------------------
def _quantized(net, p: float, seed: int):
    from edgelearn.quant.calibrate import quantize_network
    rng = np.random.default_rng(seed)
    calib = (rng.random((100, 16, net.n_in)) < p).astype(np.float32)
    return quantize_network(net, calib)[0]


def _bernoulli(n_in: int, steps: int, p: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((steps, n_in)) < p).astype(np.int8)


def workloads(steps: int) -> list[tuple[str, object, np.ndarray]]:
    """(name, quantized network, int8 rows [steps, n_in]) of every measured workload."""
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_runtime import make_net

    from edgelearn.adapt.bundle import load_bundle
    from edgelearn.data import load_speech_digits
    from edgelearn.model import Layer, Network

    speech = load_bundle(ROOT / "models" / "speech_digits.onnx").qnet
    x = load_speech_digits("new_user").x
    stream = x.reshape(-1, x.shape[-1])[:steps].astype(np.int8)
    out = [("speech/stream", speech, stream),
           ("speech/none", speech, np.zeros_like(stream)),
           ("speech/all3", speech, np.full_like(stream, 3))]
    shd = _quantized(make_net(), 0.05, 1)
    out += [(f"shd/p{p}", shd, _bernoulli(shd.n_in, steps, p, 3)) for p in (0.02, 0.05, 0.2)]
    rng = np.random.default_rng(2)
    ff = _quantized(Network((Layer("hidden", rng.standard_normal((96, 256)) * 0.2, alpha=0.8,
                                   beta=0.9),
                             Layer("readout", rng.standard_normal((16, 96)) * 0.2, alpha=0.8,
                                   beta=0.9, spiking=False)), name="ff_256_96_16"), 0.2, 2)
    out += [(f"ff/p{p}", ff, _bernoulli(ff.n_in, steps, p, 4)) for p in (0.1, 0.4)]
    return out


# ---- measuring ------------------------------------------------------------------------------
def parse(text: str) -> list[dict]:
    """The harness output: one dict per run (mode, lpl layer, layer shapes, per-step
    instructions and [active, fired] per layer)."""
    runs: list[dict] = []
    for line in text.splitlines():
        f = line.split()
        if not f:
            continue
        if f[0] == "run":
            runs.append({"mode": f[1], "lpl_layer": int(f[4]), "shapes": [], "instructions": [],
                         "activity": []})
        elif f[0] == "layer":
            runs[-1]["shapes"].append([int(f[2]), int(f[3])])
        elif f[0] == "s":
            v = [int(t) for t in f[1:]]
            runs[-1]["instructions"].append(v[0])
            runs[-1]["activity"].append([v[1 + 3 * k: 4 + 3 * k] for k in range(len(v) // 3)])
        elif f[0] == "FAIL":
            raise SystemExit(f"measure_icount: the harness failed: {line}")
    return runs


def measure_one(elf: Path, machine: str, qnet, rows: np.ndarray, layer: int,
                epoch: int = 1) -> list[dict]:
    """Both runs (inference, LPL on ``layer`` at a learning epoch of ``epoch`` steps) of one
    workload under QEMU -icount shift=0."""
    import dataclasses

    from edgelearn.device.engine import default_lpl
    from edgelearn.kernels.image import to_image
    from edgelearn.kernels.lpl_codes import lpl_block
    from edgelearn.rules.base import qlayer_w_shift

    la = qnet.layers[layer]
    block = lpl_block(dataclasses.replace(default_lpl(), epoch=epoch), qlayer_w_shift(la),
                      la.n_out)
    with tempfile.TemporaryDirectory(dir=ROOT) as tmp:
        t = Path(tmp)
        (t / "image.bin").write_bytes(to_image(qnet))
        (t / "rows.bin").write_bytes(np.ascontiguousarray(rows, np.int8).tobytes())
        (t / "block.bin").write_bytes(block)
        rel = [str((t / n).relative_to(ROOT)) for n in ("image.bin", "rows.bin")]
        args = [rel[0], rel[1], str(len(rows)), str((t / "block.bin").relative_to(ROOT)),
                str(layer)]
        semi = ",".join(["enable=on", "target=native", "arg=el_icount"] +
                        [f"arg={a}" for a in args])
        r = subprocess.run(["qemu-system-arm", "-M", machine, "-icount", "shift=0",
                            "-nographic", "-monitor", "none", "-serial", "null",
                            "-semihosting-config", semi, "-kernel", str(elf)],
                           capture_output=True, text=True, timeout=1800, cwd=ROOT)
    if r.returncode != 0 or "run lpl" not in r.stdout:
        raise SystemExit(f"measure_icount: QEMU {machine} failed (exit {r.returncode}): "
                         f"{(r.stdout + r.stderr).strip()[-300:]}")
    return parse(r.stdout)


def compiler_version() -> str:
    out = subprocess.run([cbuild.ARM_CC, "--version"], capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else "unknown"


def measure(cores: list[str], steps: int, progress=print) -> dict:
    data: dict = {"steps": steps, "compiler": compiler_version(), "cores": {}}
    loads = workloads(steps)
    for c in cores:
        core, machine, recipe = CORES[c]
        elf = cbuild.build(recipe)
        runs = []
        for i, (name, qnet, rows) in enumerate(loads):
            t0 = time.perf_counter()
            for run in measure_one(elf, machine, qnet, rows, 0):
                run["workload"] = name
                runs.append(run)
            run = measure_one(elf, machine, qnet, rows, 0, EPOCH)[1]   # its inference: the same
            run.update(workload=name, mode=f"lpl_epoch{EPOCH}", lpl_epoch=EPOCH)
            runs.append(run)
            progress(f"[{c} {i + 1}/{len(loads)}] {name}: "
                     + " / ".join(f"{np.mean(r['instructions']):,.0f}" for r in runs[-3:])
                     + f" instructions per step (inference / + LPL / + LPL epoch {EPOCH}), "
                     f"{time.perf_counter() - t0:.0f} s")
        data["cores"][c] = {"core": core, "machine": machine, "runs": runs}
    return data


# ---- the fit --------------------------------------------------------------------------------
def features(run: dict) -> np.ndarray:
    """Mean per step of the model's terms, in CONSTANTS order (docs/protocol.md section 14)."""
    act = np.asarray(run["activity"], dtype=np.float64)          # [T, L, 3]
    f = dict.fromkeys(CONSTANTS, 0.0)
    f["c_step"] = 1.0
    for k, (n_in, n_out) in enumerate(run["shapes"]):
        f["c_neuron"] += n_out
        f["c_scan"] += n_in
        valued = act[:, k, 2] > 0
        f["c_value"] += (act[:, k, 0] * valued).mean() * n_out
        f["c_event"] += ((act[:, k, 0] * ~valued).mean() + act[:, k, 1].mean()) * n_out
        if run["lpl_layer"] == k:
            epoch = run.get("lpl_epoch", 1)
            f["c_lpl_neuron"] += n_out / epoch
            f["c_lpl_input"] += n_in / epoch
            f["c_lpl"] += n_in * n_out / epoch
            f["c_lpl_acc"] += n_in + n_out if epoch > 1 else 0
    return np.array([f[c] for c in CONSTANTS])


def fit(runs: list[dict]) -> dict[str, float]:
    """Non-negative least-squares constants minimising the relative error of every run's mean
    instructions per step (a constant the data drive below zero is held at zero and the rest
    refitted: no term of the model may earn instructions back)."""
    A = np.array([features(r) for r in runs])
    y = np.array([np.mean(r["instructions"]) for r in runs])
    free = np.ones(len(CONSTANTS), bool)
    while True:
        coef = np.zeros(len(CONSTANTS))
        coef[free], *_ = np.linalg.lstsq(A[:, free] / y[:, None], np.ones(len(y)), rcond=None)
        if coef.min() >= 0:
            return dict(zip(CONSTANTS, (float(c) for c in coef)))
        free[int(np.argmin(coef))] = False


def rounded(constants: dict[str, float]) -> dict[str, float]:
    return {k: float(f"{v:.3g}") for k, v in constants.items()}


def summarise(data: dict) -> None:
    """Add each core's fitted constants and the relative residual of every run."""
    for c, d in data["cores"].items():
        const = rounded(fit(d["runs"]))
        d["fit"] = const
        for r in d["runs"]:
            pred = float(features(r) @ np.array([const[k] for k in CONSTANTS]))
            meas = float(np.mean(r["instructions"]))
            r["mean_instructions"] = meas
            r["model"] = pred
            r["relative_residual"] = pred / meas - 1.0


def dump(data: dict) -> str:
    """JSON text: the summary indented, one line per run."""
    def one(v) -> str:
        return json.dumps(v, separators=(",", ":"))
    cores = []
    for c, d in data["cores"].items():
        head = {k: v for k, v in d.items() if k != "runs"}
        runs = ",\n    ".join(one(r) for r in d["runs"])
        cores.append(f'  {one(c)}: {one(head)[:-1]},\n   "runs": [\n    {runs}]}}')
    top = {k: v for k, v in data.items() if k != "cores"}
    return one(top)[:-1] + ',\n "cores": {\n' + ",\n".join(cores) + "}}\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--cores", nargs="+", default=list(CORES), choices=list(CORES))
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--check", action="store_true",
                    help="re-measure and compare with OUT instead of writing it")
    args = ap.parse_args(argv)
    data = measure(args.cores, args.steps)
    summarise(data)
    out = Path(args.out)
    if args.check:
        old = json.loads(out.read_text())
        if old["compiler"] != data["compiler"]:
            print(f"measure_icount: {out} was measured with {old['compiler']}, this compiler is "
                  f"{data['compiler']}: counts not comparable", file=sys.stderr)
            return 1
        bad = [f"{c} {r['workload']} {r['mode']}" for c in args.cores
               for r, o in zip(data["cores"][c]["runs"], old["cores"][c]["runs"])
               if r["instructions"] != o["instructions"]]
        if bad:
            print(f"measure_icount: counts differ from {out}: {', '.join(bad)}", file=sys.stderr)
            return 1
        print(f"{out}: the same counts")
        return 0
    for c, d in data["cores"].items():
        print(f"{c} ({d['core']}): " + ", ".join(f"{k} {v:g}" for k, v in d["fit"].items()))
        for r in d["runs"]:
            print(f"  {r['workload']:<14}{r['mode']:<11}{r['mean_instructions']:>12,.0f}"
                  f"{r['model']:>12,.0f}{100 * r['relative_residual']:>+8.1f} %")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, dump(data))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
