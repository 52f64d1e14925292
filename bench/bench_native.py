#!/usr/bin/env python3
"""Per-step time of the C fast path (the firmware's kernel as a shared library) against the
numpy integer kernel, onnxruntime's Scan graph, snnTorch, Norse and a plain compiled C loop,
all measured in one run, interleaved.

Network 700-256(rec)-20 (bench/bench_runtime.py's: recurrent CUBA LIF hidden layer, leaky
readout), T = 100 steps of Bernoulli(0.05) input spikes, batch 1 and 64; the integer paths run
its quantized twin (edgelearn.quant.quantize_network), the float peers the float network.
The headline model (models/speech_digits.onnx, 64-128(rec)-10, the new-user stream) runs on
the C engine and on the numpy device engine (edgelearn.device.engine), inference alone and
with LPL on the hidden layer (the deployed LPL settings, past the warm-up).
The C engine also runs with LPL at a learning epoch of 8 (the rule once every 8 steps on the
activities summed over them; lpl_rate.Params.epoch), the same network and stream.

    C fast path        edgelearn.kernels.native (one call per sequence; LPL: the C engine);
                       batch 1 on one thread, batch 64 on 1 and 2 threads (the batch split
                       across POSIX threads, c_fast_inference_1t / _2t)
    plain C loop       bench/native_loop.c: the same integer step with no generality, compiled
                       with the same compiler and flags as the library
    numpy              edgelearn.kernels.lif_kernels.qrun (the optimised numpy kernel)
    onnxruntime scan   edgelearn.io.OnnxRuntimeBackend(net, "scan") (float), 1 and 2 threads
    snnTorch 1.0.0     RSynaptic + Synaptic, torch no_grad, 1 and 2 threads
    Norse 1.1.0        LIFRecurrentCell + LICell, torch no_grad, 1 and 2 threads

Each measurement is the per-step time of one whole sequence; configurations are interleaved
within every repeat and the median over repeats is reported with ratios. Each run starts once
the process is idle (settle(): onnxruntime's and torch's thread pools spin for tens of
milliseconds after a run, which would otherwise be charged to the next run) and one untimed run
of the same configuration (warm core and caches). Every run is timed in
wall-clock time and in CPU time of this process (all its threads); the goals at batch 1 (all
paths single-threaded) are judged on CPU time, which a shared machine inflates least, the
batch-64 goal on wall-clock time with the same thread budget: the C path on 2 threads against
the faster of onnxruntime's 1- and 2-thread Scan (the 1-thread ratios are reported too). The
C thread counts are in the JSON ("c_threads"). The load average is
recorded. Peers that cannot be imported are listed and skipped. Writes
reports/bench_native.json and reports/bench_native.png.

    python bench/bench_native.py [--repeats 11] [--quick]
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_runtime import make_net  # noqa: E402

from edgelearn.atomic import atomic_save_png, atomic_write_text  # noqa: E402
from edgelearn.boundary import OneLineArgumentParser, run_command  # noqa: E402
from edgelearn.boundary import options as opt  # noqa: E402
from edgelearn.kernels import cbuild, native  # noqa: E402
from edgelearn.kernels.image import to_image  # noqa: E402
from edgelearn.kernels.lif_kernels import qrun  # noqa: E402
from edgelearn.kernels.lpl_codes import lpl_block  # noqa: E402
from edgelearn.quant.calibrate import quantize_network  # noqa: E402
from edgelearn.rules.base import qlayer_w_shift  # noqa: E402

GOALS = {"snntorch_over_c_lpl_b1": 50.0, "ort_over_c_lpl_b1": 4.0, "c_lpl_over_loop_b1": 2.0,
         "lpl_over_inference_b1": 1.5, "ort_over_c_b64": 1.0}
#: threads of the C fast path per batch size (the batch-64 goal: the same 2-thread budget)
C_THREADS = {1: (1,), 64: (1, 2)}
AT_MOST = ("c_lpl_over_loop_b1", "lpl_over_inference_b1")
#: the learning epoch of the "C + LPL, epoch" row, and its ratios with the goal each is held to
EPOCH = 8
EPOCH_GOALS = {f"lpl_epoch{EPOCH}_over_inference_b1": "lpl_over_inference_b1",
               f"ort_over_c_lpl_epoch{EPOCH}_b1": "ort_over_c_lpl_b1"}


# ---- the plain compiled loop -----------------------------------------------------------------
class LoopLayer(ctypes.Structure):
    _fields_ = [("n_in", ctypes.c_int), ("n_out", ctypes.c_int), ("w_shift", ctypes.c_int),
                ("v_shift", ctypes.c_int), ("spiking", ctypes.c_int),
                ("wT", ctypes.c_void_p), ("vT", ctypes.c_void_p), ("alpha", ctypes.c_void_p),
                ("beta", ctypes.c_void_p), ("thr", ctypes.c_void_p)]


def plain_loop(qnet):
    """bench/native_loop.c compiled like the library; returns run(x [T, B, n_in]) -> out."""
    cmd, lib_path = cbuild.command("lib")
    flags = [f for f in cmd[1:] if f.startswith("-") and f not in ("-I",)]
    out = lib_path.with_name(lib_path.stem + "-loop.so")
    if not out.exists():
        subprocess.run([cmd[0], *flags, str(ROOT / "bench" / "native_loop.c"), "-o", str(out)],
                       check=True)
    lib = ctypes.CDLL(str(out))
    keep, layers = [], []
    for la in qnet.layers:
        if la.reset != "subtract" or la.bias is not None or la.state_bits != 16:
            raise SystemExit("the plain loop runs reset-by-subtraction 16-bit layers only")
        arrs = [np.ascontiguousarray(la.weight.T, np.int8),
                None if la.recurrent is None else np.ascontiguousarray(la.recurrent.T, np.int8),
                la.alpha.astype(np.int32), la.beta.astype(np.int32), la.threshold.astype(np.int32)]
        keep += arrs
        p = [None if a is None else a.ctypes.data for a in arrs]
        layers.append(LoopLayer(la.n_in, la.n_out, la.w_shift, la.v_shift, int(la.spiking), *p))
    arr = (LoopLayer * len(layers))(*layers)
    n_max = max(la.n_out for la in qnet.layers)

    def run(x: np.ndarray) -> np.ndarray:
        T, B, _ = x.shape
        xs = np.ascontiguousarray(x, np.uint8)
        L = len(layers)
        cur = np.zeros((L, B, n_max), np.int32)
        mem = np.zeros((L, B, n_max), np.int32)
        spk = np.zeros((L, B, n_max), np.uint8)
        out = np.zeros((T, B, qnet.n_out), np.int32)
        acc, rec, lst = (np.zeros(max(n_max, qnet.n_in), np.int32) for _ in range(3))
        lib.loop_run(arr, L, T, B, xs.ctypes.data_as(ctypes.c_void_p),
                     cur.ctypes.data_as(ctypes.c_void_p), mem.ctypes.data_as(ctypes.c_void_p),
                     spk.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p),
                     acc.ctypes.data_as(ctypes.c_void_p), rec.ctypes.data_as(ctypes.c_void_p),
                     lst.ctypes.data_as(ctypes.c_void_p))
        return out
    run.keep = (keep, arr)
    return run


# ---- torch peers -----------------------------------------------------------------------------
def torch_peers(net) -> tuple[dict, list[str]]:
    """{name: run(x float32 [T, B, n_in])} for snnTorch and Norse; and what failed to import."""
    peers, missing = {}, []
    try:
        import torch
    except ImportError as exc:
        return peers, [f"torch ({exc})"]
    hid, out = net.layers
    W1, V1, W2 = (torch.tensor(a, dtype=torch.float32) for a in (hid.weight, hid.recurrent,
                                                                  out.weight))
    a1, b1 = float(np.mean(hid.alpha)), float(np.mean(hid.beta))
    a2, b2 = float(np.mean(out.alpha)), float(np.mean(out.beta))
    try:
        import snntorch as snn

        fc1 = torch.nn.Linear(net.n_in, 256, bias=False)
        fc2 = torch.nn.Linear(256, net.n_out, bias=False)
        fc1.weight.data, fc2.weight.data = W1, W2
        lif1 = snn.RSynaptic(alpha=a1, beta=b1, all_to_all=True, linear_features=256,
                             threshold=1.0, reset_mechanism="subtract")
        lif1.recurrent.weight.data = V1
        lif1.recurrent.bias.data.zero_()
        lif2 = snn.Synaptic(alpha=a2, beta=b2, threshold=1e9, reset_mechanism="none")

        def run_snntorch(x):
            with torch.no_grad():
                xt = torch.from_numpy(x)
                spk1, syn1, mem1 = lif1.init_rsynaptic()
                syn2, mem2 = lif2.init_synaptic()
                for t in range(xt.shape[0]):
                    spk1, syn1, mem1 = lif1(fc1(xt[t]), spk1, syn1, mem1)
                    _, syn2, mem2 = lif2(fc2(spk1), syn2, mem2)
                return mem2
        peers["snntorch"] = run_snntorch
    except Exception as exc:      # noqa: BLE001 - any import/API failure: report, skip
        missing.append(f"snntorch ({type(exc).__name__}: {str(exc)[:80]})")
    try:
        from norse.torch import LICell, LIFParameters, LIFRecurrentCell, LIParameters

        p1 = LIFParameters(tau_syn_inv=torch.tensor(1 - a1) * 1000,
                           tau_mem_inv=torch.tensor(1 - b1) * 1000,
                           v_th=torch.tensor(1.0), v_leak=torch.tensor(0.0),
                           v_reset=torch.tensor(0.0))
        cell1 = LIFRecurrentCell(net.n_in, 256, p=p1, dt=1e-3, autapses=True)
        cell1.input_weights.data, cell1.recurrent_weights.data = W1, V1
        fc2n = torch.nn.Linear(256, net.n_out, bias=False)
        fc2n.weight.data = W2
        cell2 = LICell(p=LIParameters(tau_syn_inv=torch.tensor(1 - a2) * 1000,
                                      tau_mem_inv=torch.tensor(1 - b2) * 1000), dt=1e-3)

        def run_norse(x):
            with torch.no_grad():
                xt = torch.from_numpy(x)
                s1 = s2 = None
                for t in range(xt.shape[0]):
                    z, s1 = cell1(xt[t], s1)
                    o, s2 = cell2(fc2n(z), s2)
                return o
        peers["norse"] = run_norse
    except Exception as exc:      # noqa: BLE001
        missing.append(f"norse ({type(exc).__name__}: {str(exc)[:80]})")
    return peers, missing


# ---- measurement -----------------------------------------------------------------------------
def settle(window: float = 0.02, limit: float = 2.0) -> None:
    """Wait until this process is idle: onnxruntime's intra-op pool (and torch's) spin-wait for
    tens of milliseconds after a run (measured: a 2-thread Scan session keeps process CPU at
    2.2x wall-clock for 5 ms after its run and 1.8x after 20 ms), which would be charged to the
    next measurement's process CPU time and take the second core from it. Sleeps in `window`
    steps until a window costs under 10 % CPU, at most `limit` seconds."""
    end = time.perf_counter() + limit
    while time.perf_counter() < end:
        c0 = time.process_time()
        time.sleep(window)
        if time.process_time() - c0 < 0.1 * window:
            return


def timed(fn) -> tuple[float, float]:
    """(wall-clock, process CPU) seconds of fn(), run once untimed after the process is idle
    (the pools of the previous configuration have stopped spinning; the core and caches are
    warm again for this one), then timed."""
    settle()
    fn()
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def main(argv=None) -> int:
    ap = OneLineArgumentParser(prog="bench_native", description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=opt.COUNT, default=11, help="timed runs per configuration")
    ap.add_argument("--steps", type=opt.COUNT, default=100, help="time steps T per run")
    ap.add_argument("--quick", action="store_true", help="3 repeats (a smoke run)")
    ap.add_argument("--out", default=str(ROOT / "reports" / "bench_native.json"))
    args = ap.parse_args(argv)
    repeats = 3 if args.quick else args.repeats
    T = args.steps
    load0 = os.getloadavg()
    lib = native.library()
    if lib is None:
        raise SystemExit(f"bench_native: the C library is unavailable: "
                         f"{native.unavailable_reason()}")
    from edgelearn.device.engine import default_lpl
    from edgelearn.io import OnnxRuntimeBackend

    net = make_net()
    rng = np.random.default_rng(1)
    calib = (rng.random((T, 16, net.n_in)) < 0.05).astype(np.float32)
    qnet, _ = quantize_network(net, calib)
    image = to_image(qnet)
    lpl = default_lpl()
    hid = qnet.layers[0]
    block = lpl_block(lpl, qlayer_w_shift(hid), hid.n_out)
    block_epoch = lpl_block(dataclasses.replace(lpl, epoch=EPOCH), qlayer_w_shift(hid),
                            hid.n_out)
    loop = plain_loop(qnet)
    peers, missing = torch_peers(net)
    import torch
    print(f"network 700-256(rec)-20, T={T}, 5 % input spikes; C flags "
          f"{' '.join(f for f in cbuild.command('lib')[0] if f.startswith(('-O', '-m')))}; "
          f"load average {load0[0]:.2f} ({os.cpu_count()} CPUs)")
    if missing:
        print("peers not measured (not importable): " + "; ".join(missing))
    results: dict[str, dict[str, dict[str, list[float]]]] = {"wall": {}, "cpu": {}}

    def record(batch: int, name: str, seconds: tuple[float, float]) -> None:
        for metric, sec in zip(("wall", "cpu"), seconds):
            results[metric].setdefault(f"b{batch}", {}).setdefault(name, []).append(
                1e6 * sec / T)

    for batch in (1, 64):
        x = (np.random.default_rng(2 + batch).random((T, batch, net.n_in)) < 0.05)
        xi, xf = x.astype(np.int64), x.astype(np.float32)
        want = qrun(qnet, xi).output
        cfgs = {}
        for threads in C_THREADS[batch]:
            nn_ = native.NativeNetwork(lib, image, batch, threads)
            nn_.reset()
            got = nn_.run(xi, [la.n_out for la in qnet.layers], False)["output"]
            if not np.array_equal(got, want):
                raise SystemExit(f"bench_native: the C path on {threads} threads disagrees "
                                 f"with the numpy kernel")
            name = "c_fast_inference" if batch == 1 else f"c_fast_inference_{threads}t"
            cfgs[name] = lambda nn_=nn_: (nn_.reset(), nn_.run(xi, [256, 20], False))
        if not np.array_equal(loop(xi), want):
            raise SystemExit("bench_native: the plain C loop disagrees with the numpy kernel")
        cfgs.update({"plain_c_loop": lambda: loop(xi), "numpy_kernel": lambda: qrun(qnet, xi)})
        if batch == 1:
            eng = native.NativeEngine(lib, image, {0: block}, seed=1)
            eng.set_learning(True, 1, 0)
            warm = (np.random.default_rng(9).random((300, net.n_in)) < 0.05).astype(np.int64)
            eng.begin()
            eng.run(warm)                                  # past the LPL warm-up (200 steps)
            eng_ep = native.NativeEngine(lib, image, {0: block_epoch}, seed=1)
            eng_ep.set_learning(True, 1, 0)
            eng_ep.begin()
            eng_ep.run(warm)                               # past the warm-up (25 epochs)
            eng_off = native.NativeEngine(lib, image, {0: block}, seed=1)
            cfgs["c_engine_inference"] = lambda: (eng_off.begin(), eng_off.run(xi[:, 0]))
            cfgs["c_engine_inference_lpl"] = lambda: (eng.begin(), eng.run(xi[:, 0]))
            cfgs[f"c_engine_inference_lpl_epoch{EPOCH}"] = lambda: (eng_ep.begin(),
                                                                    eng_ep.run(xi[:, 0]))
        for threads in (1, 2):
            be = OnnxRuntimeBackend(net, "scan", threads=threads)
            cfgs[f"ort_scan_{threads}t"] = lambda be=be: be.run(xf)
            for name, fn in peers.items():
                def run_peer(fn=fn, threads=threads):
                    torch.set_num_threads(threads)
                    fn(xf)
                cfgs[f"{name}_{threads}t"] = run_peer
        for fn in cfgs.values():                        # warm-up
            fn()
        for r in range(repeats):
            order = list(cfgs) if r % 2 == 0 else list(reversed(cfgs))
            for name in order:
                record(batch, name, timed(cfgs[name]))
        print(f"\nbatch {batch}: us per step, median of {repeats}: wall-clock / process CPU")
        wall = {k: statistics.median(v) for k, v in results["wall"][f"b{batch}"].items()}
        cpu = {k: statistics.median(v) for k, v in results["cpu"][f"b{batch}"].items()}
        for k in sorted(cpu, key=cpu.get):
            print(f"  {k:<32}{wall[k]:>10.2f}{cpu[k]:>10.2f}")
    medians = {m: {b: {k: statistics.median(v) for k, v in d.items()} for b, d in r.items()}
               for m, r in results.items()}
    headline = headline_model(lib, repeats)
    m1, w64 = medians["cpu"]["b1"], medians["wall"]["b64"]
    c_lpl = m1["c_engine_inference_lpl"]
    c_ep = m1[f"c_engine_inference_lpl_epoch{EPOCH}"]
    ratios = {
        "snntorch_over_c_lpl_b1": m1.get("snntorch_1t", float("nan")) / c_lpl,
        "norse_over_c_lpl_b1": m1.get("norse_1t", float("nan")) / c_lpl,
        "ort_over_c_lpl_b1": m1["ort_scan_1t"] / c_lpl,
        "c_lpl_over_loop_b1": c_lpl / m1["plain_c_loop"],
        "c_inference_over_loop_b1": m1["c_fast_inference"] / m1["plain_c_loop"],
        "lpl_over_inference_b1": c_lpl / m1["c_engine_inference"],
        f"lpl_epoch{EPOCH}_over_inference_b1": c_ep / m1["c_engine_inference"],
        f"ort_over_c_lpl_epoch{EPOCH}_b1": m1["ort_scan_1t"] / c_ep,
        "ort_over_c_b64": min(w64["ort_scan_1t"], w64["ort_scan_2t"])
        / w64["c_fast_inference_2t"],
        "ort_1t_over_c_1t_b64": w64["ort_scan_1t"] / w64["c_fast_inference_1t"],
        "ort_2t_over_c_2t_b64": w64["ort_scan_2t"] / w64["c_fast_inference_2t"],
        "c_1t_over_c_2t_b64": w64["c_fast_inference_1t"] / w64["c_fast_inference_2t"],
        "numpy_over_c_b1": m1["numpy_kernel"] / m1["c_fast_inference"],
    }
    met = {k: (ratios[k] <= g if k in AT_MOST else ratios[k] >= g) for k, g in GOALS.items()}
    # the epoch rows against the goals of the per-step rows (reported, not counted in met)
    epoch_met = {k: (ratios[k] <= GOALS[g] if g in AT_MOST else ratios[k] >= GOALS[g])
                 for k, g in EPOCH_GOALS.items()}
    load1 = os.getloadavg()
    print("\nratios (goal):")
    for k, v in ratios.items():
        g = EPOCH_GOALS.get(k, k)
        tag = ""
        if g in GOALS:
            ok = epoch_met[k] if k in EPOCH_GOALS else met[k]
            tag = (f"  goal {'<=' if g in AT_MOST else '>='} {GOALS[g]:g}: "
                   f"{'met' if ok else 'NOT met'}")
        print(f"  {k:<34}{v:>9.2f}{tag}")
    print(f"load average at end {load1[0]:.2f}")
    out = {"network": "700-256(rec)-20", "T": T, "input_activity": 0.05, "repeats": repeats,
           "lpl": "edgelearn.device.engine.default_lpl()", "load_average_start": load0,
           "load_average_end": load1, "cpus": os.cpu_count(), "peers_missing": missing,
           "us_per_step_median": medians, "us_per_step_all": results, "ratios": ratios,
           "goals": GOALS, "goals_met": met,
           "epoch": EPOCH, "epoch_goals": EPOCH_GOALS, "epoch_goals_met": epoch_met, "headline": headline,
           "c_threads": {f"b{b}": list(t) for b, t in C_THREADS.items()},
           "timing": "batch-1 goals on process CPU time, batch-64 goal on wall-clock time"}
    path = Path(args.out)
    atomic_write_text(path, json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")
    plot(medians["cpu"], headline, path.with_suffix(".png"))
    return 0


def headline_model(lib, repeats: int) -> dict:
    """The speech model on its new-user stream: C engine vs the numpy device engine,
    inference alone and with LPL (deployed settings, past the warm-up), us per step."""
    from edgelearn.adapt.bundle import load_bundle
    from edgelearn.data import load_speech_digits
    from edgelearn.device.engine import Engine, EngineConfig, default_lpl
    from edgelearn.memory.arena import Arena

    b = load_bundle(ROOT / "models" / "speech_digits.onnx")
    q = b.qnet
    ds = load_speech_digits("new_user")
    xs = ds.x[:10]
    steps = int(xs.shape[0] * xs.shape[1])
    k = 0
    blk = lpl_block(default_lpl(), qlayer_w_shift(q.layers[k]), q.layers[k].n_out)
    readout = q.meta.get("readout", "max")
    paths = {}
    for lpl_on in (False, True):
        ce = native.NativeEngine(lib, to_image(q), {k: blk}, readout=readout, seed=1)
        ce.set_learning(lpl_on, 1, 0)
        pe = Engine(q, Arena(1 << 22), None, EngineConfig(lpl_layers=(q.layers[k].name,),
                                                          hep=None, readout=readout, seed=1))
        pe.set_learning(lpl_on, False)
        for x in ds.x[-3:]:                             # past the warm-up
            ce.begin()
            ce.run(x)
            pe.run_sample(x)
        tag = "inference_lpl" if lpl_on else "inference"

        def c_run(ce=ce):
            for x in xs:
                ce.begin()
                ce.run(x)

        def py_run(pe=pe):
            for x in xs:
                pe.run_sample(x)
        paths[f"c_engine_{tag}"] = c_run
        paths[f"numpy_engine_{tag}"] = py_run
    times = {k: [] for k in paths}
    for r in range(repeats):
        for name in (list(paths) if r % 2 == 0 else list(reversed(paths))):
            times[name].append(1e6 * timed(paths[name])[1] / steps)
    med = {k: statistics.median(v) for k, v in times.items()}
    print("\nheadline model 64-128(rec)-10, new-user stream, us per step (process CPU), median:")
    for k, v in med.items():
        print(f"  {k:<28}{v:>10.2f}")
    return {"model": "speech_digits", "us_per_step_median": med,
            "c_lpl_over_inference": med["c_engine_inference_lpl"] / med["c_engine_inference"],
            "numpy_over_c_inference_lpl": med["numpy_engine_inference_lpl"]
            / med["c_engine_inference_lpl"]}


def plot(medians: dict, headline: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, (b, med) in zip(axes[:2], medians.items()):
        names = sorted(med, key=med.get)
        ax.barh(range(len(names)), [med[n] for n in names],
                color=["tab:green" if n.startswith(("c_", "plain")) else "0.6" for n in names])
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("us per time step (log)")
        ax.set_title(f"700-256(rec)-20, batch {b[1:]} (CPU time)")
    med = headline["us_per_step_median"]
    names = list(med)
    axes[2].barh(range(len(names)), [med[n] for n in names],
                 color=["tab:green" if n.startswith("c_") else "0.6" for n in names])
    axes[2].set_yticks(range(len(names)), names, fontsize=8)
    axes[2].set_xlabel("us per time step")
    axes[2].set_title("speech_digits 64-128(rec)-10, batch 1")
    fig.tight_layout()
    atomic_save_png(fig, str(path), dpi=100)
    print(f"wrote {path}")


if __name__ == "__main__":
    raise SystemExit(run_command("bench_native", main))
