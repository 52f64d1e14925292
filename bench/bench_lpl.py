"""Benchmark: LPL-only (unsupervised) adaptation of a pretrained hidden layer on a new-user stream.

For the hidden (first) layer of a pretrained network, on a stream the network was not trained
on, this measures:

* few-label linear-probe accuracy on the hidden features (spike counts in 4 time bins), with
  k labels per class (ridge classifier, averaged over label draws), before adaptation and after
  LPL adaptation in float and in fixed point (int8 weights, the integer LIF step);
* the pretrained readout's accuracy on the adapted hidden layer (LPL changes the code the
  readout was trained on; reported as is);
* the rule's extra memory (rule_memory_bytes) and the per-step cost of inference alone vs
  inference + fixed-point LPL (medians, same run).

Data: the speech digits' "new_user" split when a pretrained model with matching inputs exists
in models/ (or --model is given), else Randman with models/randman_small.onnx and a shifted
stream (background noise spikes + a channel shift). Writes reports/bench_lpl.json and
reports/bench_lpl.png. Honest by construction: numbers are printed whatever they show.

    python bench/bench_lpl.py [--data auto|speech|randman] [--model PATH] [--adapt N]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgelearn.atomic import atomic_write_bytes, atomic_write_text  # noqa: E402
from edgelearn.fixed import apply_decay, rng_init, round_shift, saturate  # noqa: E402
from edgelearn.rules import base, lpl_rate, rule_memory_bytes  # noqa: E402

TIME_BINS = 4


# ----------------------------------------------------------------------------- data + model

def load_setup(args):
    from edgelearn.io import load_network
    models = sorted((ROOT / "models").glob("*.onnx"))
    if args.data in ("auto", "speech"):
        try:
            from edgelearn.data import load_speech_digits
            ds = load_speech_digits("new_user")
            cand = [Path(args.model)] if args.model else models
            for path in cand:
                net = load_network(path)
                if net.n_in == ds.n_channels:
                    return net, ds.x, ds.y, ds.n_classes, f"speech_digits/new_user + {path.name}"
            if args.data == "speech":
                raise SystemExit("no model in models/ takes the speech digits' "
                                 f"{ds.n_channels} channels; pass --model")
        except Exception as e:  # noqa: BLE001 (fall back to Randman, say why)
            if args.data == "speech":
                raise
            print(f"speech setup unavailable ({e}); using Randman")
    from edgelearn.data.randman import randman_splits
    from edgelearn.data.streams import ChannelShift, NoiseSpikes, make_stream
    path = Path(args.model) if args.model else ROOT / "models" / "randman_small.onnx"
    net = load_network(path)
    _, test = randman_splits(n_classes=10, n_units=32, n_steps=50, dim_manifold=2, alpha=2.0,
                             samples_per_class=200, seed=0)
    stream = make_stream(test, [NoiseSpikes(0.03), ChannelShift(1.0, wrap=True)],
                         n_samples=len(test), seed=1)
    x, y = stream.as_arrays()
    return net, x, y, test.n_classes, f"randman test split, NoiseSpikes(0.03)+ChannelShift(1.0) + {path.name}"


# ----------------------------------------------------------------------------- hidden layer

def run_float_layer(layer, w, xs):
    """Hidden spikes [N, T, n_out] of the float layer with weight ``w`` (batched over samples)."""
    N, T, _ = xs.shape
    cur = np.zeros((N, w.shape[0]))
    u = np.zeros_like(cur)
    out = np.zeros((N, T, w.shape[0]), np.uint8)
    th = layer.threshold.astype(np.float64)
    for t in range(T):
        reset = (u > th).astype(np.float64)
        cur = layer.alpha * cur + xs[:, t].astype(np.float64) @ w.T
        u = layer.beta * u + cur - th * reset if layer.reset == "subtract" else \
            (layer.beta * u + cur) * (1 - reset)
        out[:, t] = u > th
    return out


def _qshift(acc, s):
    return (acc << s) if s >= 0 else round_shift(acc, -s)


def run_fixed_layer(ql, w_int, xs_int):
    """Integer hidden layer (docs/fixed-point.md equations) with int8 weight ``w_int``."""
    N, T, _ = xs_int.shape
    cur = np.zeros((N, w_int.shape[0]), np.int64)
    u = np.zeros_like(cur)
    out = np.zeros((N, T, w_int.shape[0]), np.uint8)
    th = ql.threshold.astype(np.int64)
    wt = w_int.astype(np.int64).T
    for t in range(T):
        reset = (u > th).astype(np.int64)
        cur = saturate(apply_decay(cur, ql.alpha) + _qshift(xs_int[:, t] @ wt, ql.w_shift),
                       ql.state_bits)
        u = apply_decay(u, ql.beta) + cur
        u = u - th * reset if ql.reset == "subtract" else u * (1 - reset)
        u = saturate(u, ql.state_bits)
        out[:, t] = u > th
    return out


def features(spikes):
    N, T, M = spikes.shape
    b = np.array_split(np.arange(T), TIME_BINS)
    return np.concatenate([spikes[:, idx].sum(1) for idx in b], axis=1).astype(np.float64)


def probe_accuracy(F, y, n_classes, k, repeats, seed=0):
    """Ridge classifier on k labels per class, tested on the rest; mean and std over draws."""
    rng = np.random.default_rng(seed)
    accs = []
    for _ in range(repeats):
        tr = np.concatenate([rng.choice(np.flatnonzero(y == c), k, replace=False)
                             for c in range(n_classes)])
        te = np.setdiff1d(np.arange(len(y)), tr)
        mu, sd = F[tr].mean(0), F[tr].std(0) + 1e-6
        X = np.hstack([(F - mu) / sd, np.ones((len(y), 1))])
        Y = np.eye(n_classes)[y[tr]]
        A = X[tr]
        coef = np.linalg.solve(A.T @ A + 1.0 * np.eye(A.shape[1]), A.T @ Y)
        accs.append(float(np.mean(np.argmax(X[te] @ coef, 1) == y[te])))
    return float(np.mean(accs)), float(np.std(accs))


def readout_accuracy(net, hidden_spikes, y):
    """The pretrained readout (remaining layers, float) on given hidden spikes."""
    from edgelearn.model import Network
    from edgelearn.runtime.reference import run
    rest = Network(net.layers[1:], name="rest", dt=net.dt, meta=net.meta)
    out = run(rest, np.transpose(hidden_spikes, (1, 0, 2)).astype(np.float32)).output
    score = out.max(0) if net.meta.get("readout", "max") == "max" else out.mean(0)
    return float(np.mean(np.argmax(score, 1) == y))


# ----------------------------------------------------------------------------- adaptation

def adapt_float(layer, w0, xs, p):
    w = w0.astype(np.float64).copy()
    st = lpl_rate.init(p, w.shape[1], w.shape[0])
    cur = np.zeros(w.shape[0])
    u = np.zeros_like(cur)
    th = layer.threshold.astype(np.float64)
    lo, hi = p.w_min, p.w_max
    for x in xs:
        for xt in x.astype(np.float64):
            reset = (u > th).astype(np.float64)
            cur = layer.alpha * cur + w @ xt
            u = layer.beta * u + cur - th * reset
            s = (u > th).astype(np.float64)
            dw, st = lpl_rate.step(xt, s, st, p)
            w = np.clip(w + dw, lo, hi)
    return w


def adapt_fixed(ql, w_int, xs_int, p, w_shift, pre_scale, with_lpl=True, seed=7):
    """Streaming integer inference of the hidden layer (+ fixed LPL every step).

    Returns (w_int, per-step seconds)."""
    A = p.act_frac
    st = lpl_rate.init_fixed(p, w_int.shape[1], w_int.shape[0])
    rng = rng_init(seed)
    cur = np.zeros(w_int.shape[0], np.int64)
    u = np.zeros_like(cur)
    th = ql.threshold.astype(np.int64)
    w = w_int.copy()
    t0 = time.perf_counter()
    n = 0
    for x in xs_int:
        pre_all = np.round(x * pre_scale * (1 << A)).astype(np.int64)
        for xt, pre in zip(x.astype(np.int64), pre_all):
            reset = (u > th).astype(np.int64)
            cur = saturate(apply_decay(cur, ql.alpha) + _qshift(w.astype(np.int64) @ xt,
                                                                ql.w_shift), ql.state_bits)
            u = saturate(apply_decay(u, ql.beta) + cur - th * reset, ql.state_bits)
            s = (u > th).astype(np.int64)
            if with_lpl:
                w, st, rng, _ = lpl_rate.step_fixed(w, pre, s << A, st, p, rng, w_shift)
            n += 1
    return w, (time.perf_counter() - t0) / max(n, 1)


# ----------------------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=("auto", "speech", "randman"), default="auto")
    ap.add_argument("--model", default=None)
    ap.add_argument("--adapt", type=int, default=300, help="unlabelled adaptation samples")
    ap.add_argument("--eta", type=float, default=1e-4)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--shots", default="1,5,20")
    ap.add_argument("--out", default=str(ROOT / "reports" / "bench_lpl.json"))
    args = ap.parse_args(argv)

    from edgelearn.quant.calibrate import quantize_network
    net, x, y, n_classes, source = load_setup(args)
    layer = net.layers[0]
    n_adapt = min(args.adapt, len(y) // 2)
    xa, xe, ye = x[:n_adapt], x[n_adapt:], y[n_adapt:]
    print(f"source: {source}; hidden {layer.n_in}->{layer.n_out}; adapt on {n_adapt} "
          f"unlabelled samples x {x.shape[1]} steps; probe on {len(ye)}")

    qnet, _ = quantize_network(net, np.transpose(x[:64], (1, 0, 2)).astype(np.float32))
    ql = qnet.layers[0]
    w_shift = base.qlayer_w_shift(ql)
    lsb = 2.0 ** -w_shift
    pre_scale = qnet.input_scale
    xa_int = np.rint(xa / qnet.input_scale).astype(np.int64)
    xe_int = np.rint(xe / qnet.input_scale).astype(np.int64)
    p = lpl_rate.Params(eta=args.eta, tau_mean=1000.0, tau_var=1000.0, tau_pre=10.0,
                        tau_post=10.0, var_init=0.01, warmup=1000, xi=1e-4,
                        w_min=-128 * lsb, w_max=127 * lsb, rounding="dither")
    print(f"w_shift {w_shift:.3f} (LSB {lsb:.4g}), input_scale {pre_scale:.4g}")

    shots = [int(s) for s in args.shots.split(",")]
    result = {"source": source, "n_adapt": n_adapt, "n_eval": int(len(ye)),
              "hidden": [layer.n_in, layer.n_out], "params": {
                  k: (str(v) if isinstance(v, float) and not np.isfinite(v) else v)
                  for k, v in dataclasses.asdict(p).items()},
              "extra_bytes_fixed": rule_memory_bytes(p, layer.n_in, layer.n_out),
              "extra_bytes_float": rule_memory_bytes(p, layer.n_in, layer.n_out, fixed=False),
              "weight_bytes_int8": layer.n_in * layer.n_out}

    t0 = time.perf_counter()
    w_float = adapt_float(layer, layer.weight, xa, p)
    t_float = time.perf_counter() - t0
    w_fixed, step_lpl = adapt_fixed(ql, ql.weight, xa_int, p, w_shift, pre_scale)
    _, step_inf = adapt_fixed(ql, ql.weight, xa_int[: max(20, n_adapt // 5)], p, w_shift,
                              pre_scale, with_lpl=False)
    p_full = dataclasses.replace(p, rounding="full")
    _, step_full = adapt_fixed(ql, ql.weight, xa_int[: max(20, n_adapt // 5)], p_full, w_shift,
                               pre_scale)
    result["timing"] = {"inference_step_s": step_inf, "inference_plus_lpl_dither_step_s":
                        step_lpl, "inference_plus_lpl_full_step_s": step_full,
                        "ratio_dither": step_lpl / step_inf, "ratio_full": step_full / step_inf,
                        "float_adaptation_s": t_float}
    drift = {"float_mean_abs_dw": float(np.abs(w_float - layer.weight).mean() / lsb),
             "fixed_mean_abs_dw_lsb": float(np.abs(w_fixed.astype(np.int64)
                                                   - ql.weight.astype(np.int64)).mean())}
    result["weight_change_lsb"] = drift

    variants = {
        "before_float": run_float_layer(layer, layer.weight.astype(np.float64), xe),
        "after_float_lpl": run_float_layer(layer, w_float, xe),
        "before_fixed": run_fixed_layer(ql, ql.weight, xe_int),
        "after_fixed_lpl": run_fixed_layer(ql, w_fixed, xe_int),
    }
    result["probe"] = {}
    result["readout"] = {}
    result["hidden_rate"] = {}
    for name, spikes in variants.items():
        F = features(spikes)
        result["probe"][name] = {str(k): probe_accuracy(F, ye, n_classes, k, args.repeats)
                                 for k in shots}
        result["hidden_rate"][name] = float(spikes.mean())
        if name.endswith("float") or name.endswith("float_lpl"):
            result["readout"][name] = readout_accuracy(net, spikes, ye)
    print(f"extra memory: {result['extra_bytes_fixed']} B fixed "
          f"({result['extra_bytes_float']} B float) for {result['weight_bytes_int8']} B of "
          f"int8 weights")
    print("per step: inference {:.1f} us, +LPL dither {:.1f} us (x{:.2f}), +LPL full {:.1f} us "
          "(x{:.2f})".format(step_inf * 1e6, step_lpl * 1e6, step_lpl / step_inf,
                             step_full * 1e6, step_full / step_inf))
    print(f"weight change: float {drift['float_mean_abs_dw']:.2f} LSB, fixed "
          f"{drift['fixed_mean_abs_dw_lsb']:.2f} LSB (mean |dW|)")
    print("probe accuracy (mean +- std over label draws), k labels per class:")
    for name, d in result["probe"].items():
        row = "  ".join(f"k={k}: {m * 100:5.1f} +- {s * 100:4.1f}" for k, (m, s) in d.items())
        print(f"  {name:16s} {row}   hidden rate {result['hidden_rate'][name]:.3f}")
    for name, a in result["readout"].items():
        print(f"  pretrained readout on {name}: {a * 100:.1f} %")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=1) + "\n")
    try:
        import io
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for i, (name, d) in enumerate(result["probe"].items()):
            ms = [d[str(k)][0] * 100 for k in shots]
            ss = [d[str(k)][1] * 100 for k in shots]
            ax.errorbar(np.arange(len(shots)) + (i - 1.5) * 0.08, ms, ss, marker="o", label=name,
                        capsize=3)
        ax.set_xticks(range(len(shots)), [f"{k}/class" for k in shots])
        ax.set_ylabel("linear-probe accuracy (%)")
        ax.set_title(f"LPL-only adaptation: {source[:60]}", fontsize=8)
        ax.legend(fontsize=7)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=120)
        atomic_write_bytes(out.with_suffix(".png"), buf.getvalue())
        print(f"wrote {out} and {out.with_suffix('.png')}")
    except ImportError:
        print(f"wrote {out} (matplotlib missing: no plot)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
