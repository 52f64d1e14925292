#!/usr/bin/env python3
"""Benchmark and cross-runtime check of the integer kernel.

    python bench/bench_fixed.py [--quick] [--out reports/bench_fixed.json]

1. Per-step time of the integer kernel (optimised: dense and auto; and the reference step) vs
   the float reference, batch 1 and 64, on a 700 -> 256 -> 20 network (the ANCHORS
   speed-probe size) with 5 % input activity.
2. Event-driven vs dense accumulation of the first layer at input activity 1..50 %, batch 1 and
   64, and the crossover activity (where the event path stops being faster).
3. Bit identity on test data: integer kernel vs onnxruntime (quantized ONNX), LiteRT and
   TFLite Micro (.tflite) on the shipped models found in models/ (randman_small,
   speech_digits), plus the TFLM arena each needs, and int8 vs float accuracy.
Prints medians and ratios; writes JSON (+ PNG of part 2 when matplotlib is available).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgelearn.atomic import atomic_save_png, atomic_write_text  # noqa: E402
from edgelearn.kernels.lif_fast import accumulate_dense, accumulate_event  # noqa: E402
from edgelearn.kernels.lif_fixed import init_qnetwork_state, quantize_input  # noqa: E402
from edgelearn.kernels.lif_kernels import qnetwork_step, qrun  # noqa: E402
from edgelearn.model import Layer, Network  # noqa: E402
from edgelearn.quant import evaluate, quantize_network  # noqa: E402
from edgelearn.runtime.reference import init_state, step  # noqa: E402


def median_time(fn, repeat: int, inner: int) -> float:
    """Median over ``repeat`` runs of the mean time of ``inner`` calls (seconds)."""
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        ts.append((time.perf_counter() - t0) / inner)
    return float(np.median(ts))


def speed_net(seed: int = 0) -> Network:
    rng = np.random.default_rng(seed)
    return Network((Layer("hidden", rng.normal(0, 3 / np.sqrt(700), (256, 700)), alpha=0.82,
                          beta=0.9),
                    Layer("readout", rng.normal(0, 1 / np.sqrt(256), (20, 256)), alpha=0.82,
                          beta=0.9, spiking=False)), name="speed700", meta={"readout": "max"})


def bench_steps(repeat: int) -> dict:
    net = speed_net()
    rng = np.random.default_rng(1)
    calib = (rng.random((50, 16, 700)) < 0.05).astype(np.float32)
    qnet, _ = quantize_network(net, calib)
    res = {}
    for batch in (1, 64):
        x = (rng.random((batch, 700)) < 0.05).astype(np.float32)
        xi = x.astype(np.int64)
        fs, qs = init_state(net, batch), init_qnetwork_state(qnet, batch)
        t_float = median_time(lambda: step(net, x, fs), repeat, 50)
        t_int = median_time(lambda: qnetwork_step(qnet, xi, qs, mode="dense"), repeat, 50)
        t_auto = median_time(lambda: qnetwork_step(qnet, xi, qs, mode="auto"), repeat, 50)
        t_ref = median_time(lambda: qnetwork_step(qnet, xi, qs, impl="reference"), repeat, 10)
        res[f"batch{batch}"] = {"float_us": 1e6 * t_float, "int_dense_us": 1e6 * t_int,
                                "int_auto_us": 1e6 * t_auto, "int_over_float": t_int / t_float,
                                "int_reference_us": 1e6 * t_ref,
                                "reference_over_auto": t_ref / t_auto}
        print(f"step 700-256-20 batch {batch:>2}: float {1e6 * t_float:8.1f} us, int dense "
              f"{1e6 * t_int:8.1f} us ({t_int / t_float:.2f}x float), int auto "
              f"{1e6 * t_auto:8.1f} us, int reference {1e6 * t_ref:8.1f} us "
              f"({t_ref / t_auto:.1f}x auto)")
    return res


def bench_event(repeat: int) -> dict:
    rng = np.random.default_rng(2)
    qnet, _ = quantize_network(speed_net(), (rng.random((20, 8, 700)) < 0.05).astype(np.float32))
    la = qnet.layers[0]
    acts = [0.01, 0.02, 0.05, 0.10, 0.20, 0.30, 0.50]
    res = {}
    for batch in (1, 64):
        rows = []
        for a in acts:
            x = (rng.random((batch, 700)) < a).astype(np.int64)
            td = median_time(lambda: accumulate_dense(la, x), repeat, 100)
            te = median_time(lambda: accumulate_event(la, x), repeat, 100)
            rows.append({"activity": a, "dense_us": 1e6 * td, "event_us": 1e6 * te,
                         "event_over_dense": te / td})
            print(f"layer 700->256 batch {batch:>2} activity {100 * a:4.0f} %: dense "
                  f"{1e6 * td:7.1f} us, event {1e6 * te:7.1f} us (event/dense {te / td:.2f})")
        cross = None
        for r0, r1 in zip(rows, rows[1:]):
            if r0["event_over_dense"] < 1 <= r1["event_over_dense"]:
                l0, l1 = np.log(r0["event_over_dense"]), np.log(r1["event_over_dense"])
                cross = r0["activity"] + (r1["activity"] - r0["activity"]) * (-l0) / (l1 - l0)
        if rows[0]["event_over_dense"] >= 1:
            cross = 0.0
        print(f"  crossover at batch {batch}: "
              + ("event never faster" if cross == 0.0 else
                 "event faster everywhere measured" if cross is None else f"{100 * cross:.1f} %"))
        res[f"batch{batch}"] = {"rows": rows, "crossover_activity": cross}
    return res


def load_model_and_data(spec: str):
    """``name`` (models/<name>.onnx) or ``name=PATH``; the name picks the data set."""
    from edgelearn.io import load_network

    name, _, path = spec.partition("=")
    path = Path(path) if path else ROOT / "models" / f"{name}.onnx"
    if not path.is_file():
        return None
    net = load_network(path)
    if name == "randman_small":
        from edgelearn.data.randman import randman_splits
        train, test = randman_splits(n_classes=10, n_units=32, n_steps=50, dim_manifold=2,
                                     alpha=2.0, samples_per_class=200, seed=0)
    else:
        from edgelearn.data import load_speech_digits
        train, test = load_speech_digits("train"), load_speech_digits("test")
    tr = np.transpose(np.asarray(train.x), (1, 0, 2)).astype(np.float32)
    te = np.transpose(np.asarray(test.x), (1, 0, 2)).astype(np.float32)
    return net, tr, te, np.asarray(test.y)


def bench_runtimes(names, n_test: int | None, tflm: bool) -> dict:
    import onnxruntime as ort

    from edgelearn.io.onnx_quant import build_quant_model
    from edgelearn.io.tflite_export import tflite_bytes
    from edgelearn.io.tflite_runtime import TfliteStepper, probe_tflm_arena, run_sequence

    out = {}
    for spec in names:
        name = spec.partition("=")[0]
        loaded = load_model_and_data(spec)
        if loaded is None:
            print(f"{spec}: model file not found, skipped")
            continue
        net, tr, te, y = loaded
        calib = tr[:, :256]
        qnet, rep = quantize_network(net, calib)
        if n_test:
            te, y = te[:, :n_test], y[:n_test]
        ev = evaluate(net, qnet, te, y, report=rep)
        x = quantize_input(qnet, te)
        ref = qrun(qnet, x, record=("spikes",))
        spiking = [la.name for la in qnet.layers if la.spiking]

        def agreement(got: dict) -> dict:
            d = {"output": float(np.mean(got["output"] == ref.output))}
            for k in spiking:
                d[k] = float(np.mean(got[f"{k}.spikes"] == ref.spikes[k]))
            return d

        res = {"n_test": int(te.shape[1]), "float_accuracy": ev["float_accuracy"],
               "int_accuracy": ev["fixed_accuracy"], "warnings": rep.warnings,
               "spike_agreement_float_vs_int": ev["spike_agreement"]}
        model = build_quant_model(qnet).SerializeToString()
        sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        names_o = [o.name for o in sess.get_outputs()]
        B = x.shape[1]
        state = {i.name: np.zeros((B, int(i.shape[1])), np.float32) for i in sess.get_inputs()
                 if i.name != "input"}
        got: dict = {}
        for t in range(x.shape[0]):
            o = dict(zip(names_o, sess.run(None, {"input": x[t].astype(np.float32), **state})))
            state = {n: o[n[:-3] + "_out"] for n in state}
            for k, v in o.items():
                if not k.endswith("_out"):
                    got.setdefault(k, []).append(v)
        res["onnxruntime"] = agreement({k: np.stack(v) for k, v in got.items()})
        print(f"{name}: float {100 * ev['float_accuracy']:.2f} %, int8 "
              f"{100 * ev['fixed_accuracy']:.2f} % on {B} test samples; onnxruntime identical "
              f"neuron-steps {res['onnxruntime']}")
        tfl = tflite_bytes(qnet, batch=B)
        res["litert"] = agreement(run_sequence(TfliteStepper(tfl, "litert"), x))
        print(f"{name}: LiteRT identical neuron-steps {res['litert']}")
        if tflm:
            tfl1 = tflite_bytes(qnet, batch=1)
            arena = probe_tflm_arena(tfl1)
            res["tflm_arena_bytes"] = arena
            nb = B                # TFLM runs the batch-1 graph sample by sample
            st = TfliteStepper(tfl1, "tflm", arena=arena)
            outs: dict = {}
            for b in range(nb):
                for k, v in run_sequence(st, x[:, b:b + 1]).items():
                    outs.setdefault(k, []).append(v)
            g = {k: np.concatenate(v, axis=1) for k, v in outs.items()}
            d = {"output": float(np.mean(g["output"] == ref.output[:, :nb]))}
            for k in spiking:
                d[k] = float(np.mean(g[f"{k}.spikes"] == ref.spikes[k][:, :nb]))
            res["tflm"] = d
            res["tflm_samples"] = nb
            print(f"{name}: TFLM (arena {arena} B) identical neuron-steps on {nb} samples {d}")
        out[name] = res
    return out


def plot(event: dict, path: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for key, r in event.items():
        a = [100 * row["activity"] for row in r["rows"]]
        ax.plot(a, [row["dense_us"] for row in r["rows"]], "o-", label=f"dense {key}")
        ax.plot(a, [row["event_us"] for row in r["rows"]], "s--", label=f"event {key}")
    ax.set_xlabel("input activity (%)")
    ax.set_ylabel("time per layer step (us)")
    ax.set_yscale("log")
    ax.set_title("700->256 int8 layer: event-driven vs dense")
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_save_png(fig, path, dpi=120)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, 100 test samples")
    ap.add_argument("--no-tflm", action="store_true", help="skip TFLite Micro")
    ap.add_argument("--models", default="randman_small,speech_digits",
                    help="comma-separated NAME or NAME=PATH (NAME picks the data set: "
                         "randman_small or speech_digits)")
    ap.add_argument("--out", default=str(ROOT / "reports" / "bench_fixed.json"))
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    repeat = 5 if args.quick else 15
    result = {"steps": bench_steps(repeat), "event_vs_dense": bench_event(repeat)}
    try:
        import tflite_micro  # noqa: F401
        tflm = not args.no_tflm
    except ImportError:
        tflm = False
        print("tflite-micro not installed: TFLM part skipped")
    result["runtimes"] = bench_runtimes(args.models.split(","), 100 if args.quick else None, tflm)
    out = Path(args.out)
    atomic_write_text(out, json.dumps(result, indent=2))
    plot(result["event_vs_dense"], out.with_suffix(".png"))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
