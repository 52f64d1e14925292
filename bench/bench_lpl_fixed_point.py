#!/usr/bin/env python3
"""How far from a fixed point is the deployed LPL rule on each model: its expected update on
training data and on drifted streams (issue 17).

For every model, the integer network (the deployed one) runs each condition's stream (the
streams of bench/bench_lpl_drift.py, seed ``--seed``; "train" = the first ``--samples``
training samples), and the rule's expected per-step update with unit eta is computed in float
from the integer spikes with the deployed filters and Hebbian weight
(edgelearn.train.lpl_aux.device_drift, statistics over the whole stream):

    G_ij = mean_t B_i[t] xf_j[t],   B_i = -(z_i[t] - z_i[t-1]) + lam d_i[t] / (v_i + xi)

Printed per condition: rms(G); the expected mean |dW| over the stream at the deployed eta in
int8 LSB (eta * steps * mean|G| * 2^w_shift, the rule's weight scale); and the cosine between
G on the condition and G on "none" (1 = the drift changes nothing about where the rule
pushes).

    python bench/bench_lpl_fixed_point.py models/speech_digits.onnx models/speech_digits_lpl.onnx
Writes reports/bench_lpl_fixed_point.json and .png.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_lpl_drift import condition_sets, run_cli  # noqa: E402
from edgelearn.adapt.bundle import load_bundle  # noqa: E402
from edgelearn.atomic import atomic_save_png, atomic_write_text  # noqa: E402
from edgelearn.boundary import OneLineArgumentParser  # noqa: E402
from edgelearn.boundary import options as opt  # noqa: E402
from edgelearn.data import load_speech_digits  # noqa: E402
from edgelearn.kernels.lif_fixed import quantize_input  # noqa: E402
from edgelearn.kernels.lif_kernels import qrun  # noqa: E402
from edgelearn.rules import lpl_rate  # noqa: E402
from edgelearn.rules.base import qlayer_w_shift  # noqa: E402
from edgelearn.train.lpl_aux import device_drift, filter_rate  # noqa: E402

CONDITIONS = ("train", "none", "gain", "shift", "dead", "noise", "new_user")


def expected_update(qnet, x: np.ndarray, params: lpl_rate.Params) -> np.ndarray:
    """G [n_out, n_in] of the first hidden layer on samples x [N, T, C] (unit eta)."""
    xq = quantize_input(qnet, np.swapaxes(x, 0, 1))                    # [T, N, C] counts
    s = qrun(qnet, xq, record=("spikes",)).spikes[qnet.layers[0].name]
    return device_drift(s.astype(np.float64), xq.astype(np.float64),
                        filter_rate(params.tau_post), params.lam, params.xi)


def main(argv=None) -> int:
    ap = OneLineArgumentParser(prog="bench_lpl_fixed_point",
                               description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--seed", type=opt.SEED, default=0)
    ap.add_argument("--samples", type=opt.COUNT, default=600,
                    help="training samples for 'train'")
    ap.add_argument("--out", default=str(ROOT / "reports" / "bench_lpl_fixed_point"))
    args = ap.parse_args(argv)
    t0 = time.time()
    params = lpl_rate.deploy_default()
    test, new_user = load_speech_digits("test"), load_speech_digits("new_user")
    train = load_speech_digits("train")
    sets = {"train": np.asarray(train.x[:args.samples])}
    for c in CONDITIONS[1:]:
        sets[c] = condition_sets(c, args.seed, test, new_user)[0]
    out = {}
    for m in args.models:
        b = load_bundle(m)
        ws = qlayer_w_shift(b.qnet.layers[0])
        G = {c: expected_update(b.qnet, x, params) for c, x in sets.items()}
        rows = {}
        for c, g in G.items():
            steps = sets[c].shape[0] * sets[c].shape[1]
            lsb = params.eta * steps * float(np.mean(np.abs(g))) * 2.0 ** ws
            cos = float(np.sum(g * G["none"]) / np.sqrt(np.sum(g * g) * np.sum(G["none"] ** 2)))
            rows[c] = {"rms_G": float(np.sqrt(np.mean(g * g))), "expected_mean_abs_dw_lsb": lsb,
                       "cos_vs_none": cos, "steps": steps}
            print(f"{Path(m).name:<24} {c:<9} rms G {rows[c]['rms_G']:.5f}  expected |dW| "
                  f"{lsb:.3f} LSB at eta {params.eta:g}  cos vs none {cos:+.2f}", flush=True)
        out[Path(m).name] = rows
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out + ".json", json.dumps(
        {"seed": args.seed, "params": {"lam": params.lam, "tau": params.tau_post,
                                       "xi": params.xi, "eta": params.eta},
         "models": out, "seconds": time.time() - t0}, indent=1) + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(8, 3.8))
        w = 0.8 / len(out)
        for j, (name, rows) in enumerate(out.items()):
            ax.bar(np.arange(len(CONDITIONS)) + (j - (len(out) - 1) / 2) * w,
                   [rows[c]["rms_G"] for c in CONDITIONS], w, label=name)
        ax.set_xticks(np.arange(len(CONDITIONS)), CONDITIONS)
        ax.set_ylabel("rms expected LPL update per step (unit eta)")
        ax.legend(fontsize=8)
        atomic_save_png(fig, args.out + ".png", bbox_inches="tight", dpi=120)
    except ImportError:
        pass
    print(f"wrote {args.out}.json ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    run_cli(main, "bench_lpl_fixed_point")
