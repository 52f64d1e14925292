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

    python bench/bench_lpl.py [--data auto|speech|randman] [--model PATH] [--configs ...]
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

from edgelearn.atomic import atomic_save_png, atomic_write_text  # noqa: E402
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
    from edgelearn.data.streams import NoiseSpikes, TimeWarp, make_stream
    path = Path(args.model) if args.model else ROOT / "models" / "randman_small.onnx"
    net = load_network(path)
    _, test = randman_splits(n_classes=10, n_units=32, n_steps=50, dim_manifold=2, alpha=2.0,
                             samples_per_class=200, seed=0)
    shift = [NoiseSpikes(0.005), TimeWarp(0.1)]
    x, y = make_stream(test, shift, seed=1).as_arrays()
    return (net, x, y, test.n_classes,
            f"randman test split through NoiseSpikes(0.005)+TimeWarp(0.1), {path.name}")


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
        cur = layer.alpha * cur + xs[:, t].astype(np.float64) @ w.T + _extra_float(layer, reset)
        u = layer.beta * u + cur - th * reset if layer.reset == "subtract" else \
            (layer.beta * u + cur) * (1 - reset)
        out[:, t] = u > th
    return out


def _extra_float(layer, reset):
    """Bias and recurrent input V R of the float layer (fixed during LPL: only W learns)."""
    extra = 0.0 if layer.bias is None else layer.bias.astype(np.float64)
    if layer.recurrent is not None:
        extra = extra + reset @ layer.recurrent.astype(np.float64).T
    return extra


def _extra_fixed(ql, reset):
    extra = 0 if ql.bias is None else ql.bias.astype(np.int64)
    if ql.recurrent is not None:
        extra = extra + _qshift(reset @ ql.recurrent.astype(np.int64).T, ql.v_shift)
    return extra


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
        cur = saturate(apply_decay(cur, ql.alpha) + _qshift(xs_int[:, t] @ wt, ql.w_shift)
                       + _extra_fixed(ql, reset), ql.state_bits)
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
            cur = layer.alpha * cur + w @ xt + _extra_float(layer, reset)
            u = layer.beta * u + cur - th * reset if layer.reset == "subtract" else \
                (layer.beta * u + cur) * (1 - reset)
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
                                                                ql.w_shift)
                           + _extra_fixed(ql, reset), ql.state_bits)
            u = apply_decay(u, ql.beta) + cur
            u = saturate(u - th * reset if ql.reset == "subtract" else u * (1 - reset),
                         ql.state_bits)
            s = (u > th).astype(np.int64)
            if with_lpl:
                w, st, rng, _ = lpl_rate.step_fixed(w, pre, s << A, st, p, rng, w_shift)
            n += 1
    return w, (time.perf_counter() - t0) / max(n, 1)


# ----------------------------------------------------------------------------- main

def scaling_timing(sizes, steps=100, activity=0.05, seed=0):
    """Median per-step seconds: integer matvec (the kernel's exact float32 BLAS path) vs the
    fixed LPL step, dense (filtered inputs) and event-driven (sparse input spikes)."""
    rng = np.random.default_rng(seed)
    rows = []
    for n_in, n_out in sizes:
        w = rng.integers(-20, 21, (n_out, n_in)).astype(np.int8)
        wf = w.astype(np.float32)
        spikes = (rng.random((steps, n_in)) < activity).astype(np.int64)
        post = (rng.random((steps, n_out)) < activity).astype(np.int64) << 8
        t_inf = []
        for t in range(steps):
            t0 = time.perf_counter()
            _ = (wf @ spikes[t].astype(np.float32)).astype(np.int64)
            t_inf.append(time.perf_counter() - t0)
        row = {"n_in": n_in, "n_out": n_out, "inference_s": float(np.median(t_inf))}
        for label, tau_pre, rounding in (("dense_dither", 10.0, "dither"),
                                         ("dense_full", 10.0, "full"),
                                         ("event_full", 0.0, "full")):
            p = lpl_rate.Params(warmup=0, tau_pre=tau_pre, tau_post=10.0, rounding=rounding)
            st = lpl_rate.init_fixed(p, n_in, n_out)
            r = rng_init(1)
            ww = w.copy()
            ts = []
            for t in range(steps):
                t0 = time.perf_counter()
                ww, st, r, _ = lpl_rate.step_fixed(ww, spikes[t] << 8, post[t], st, p, r, 7.0)
                ts.append(time.perf_counter() - t0)
            row[label + "_s"] = float(np.median(ts))
        rows.append(row)
    return rows


def adaptation_run(net, layer, ql, xa, xa_int, xe, xe_int, ye, n_classes, p, w_shift,
                   pre_scale, shots, repeats):
    t0 = time.perf_counter()
    w_float = adapt_float(layer, layer.weight, xa, p)
    t_float = time.perf_counter() - t0
    w_fixed, step_lpl = adapt_fixed(ql, ql.weight, xa_int, p, w_shift, pre_scale)
    lsb = 2.0 ** -w_shift
    res = {"eta": p.eta, "float_adaptation_s": t_float, "fixed_step_s": step_lpl,
           "mean_abs_dw_lsb": {
               "float": float(np.abs(w_float - layer.weight).mean() / lsb),
               "fixed": float(np.abs(w_fixed.astype(np.int64) - ql.weight).mean())}}
    variants = {"after_float_lpl": run_float_layer(layer, w_float, xe),
                "after_fixed_lpl": run_fixed_layer(ql, w_fixed, xe_int)}
    res["probe"], res["hidden_rate"] = {}, {}
    for name, spikes in variants.items():
        F = features(spikes)
        res["probe"][name] = {str(k): probe_accuracy(F, ye, n_classes, k, repeats)
                              for k in shots}
        res["hidden_rate"][name] = float(spikes.mean())
        res.setdefault("silent_neurons", {})[name] = int((spikes.mean((0, 1)) < 1e-3).sum())
    res["readout_after_float_lpl"] = readout_accuracy(net, variants["after_float_lpl"], ye)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=("auto", "speech", "randman"), default="auto")
    ap.add_argument("--model", default=None)
    ap.add_argument("--adapt-frac", type=float, default=0.5,
                    help="fraction of the stream used (unlabelled) for adaptation")
    ap.add_argument("--passes", type=int, default=3, help="passes over the adaptation part")
    ap.add_argument("--configs",
                    default="1e-5:1:0,1e-5:0.03:10,1e-5:0.3:0:10:3:n,1e-5:0.3:0:10:3:r,"
                            "1e-5:0:0:10:3:r,1e-5:0.3:0:0:3:r",
                    help="comma-separated eta:lam:lam_decorr[:tau_pre[:lam_hom[:target]]] LPL "
                         "settings. tau_pre 0 = event-driven on raw input spikes (default 10 "
                         "steps); lam_hom > 0 adds rate homeostasis towards target: n = each "
                         "neuron's own warm-up mean, r = the layer's mean rate on the adaptation "
                         "stream before adaptation (one value for all neurons), or a number")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--shots", default="1,5,10")
    ap.add_argument("--sizes", default="32x32,128x256,700x256")
    ap.add_argument("--out", default=str(ROOT / "reports" / "bench_lpl.json"))
    args = ap.parse_args(argv)

    from edgelearn.quant.calibrate import quantize_network
    net, x, y, n_classes, source = load_setup(args)
    layer = net.layers[0]
    n_adapt = int(len(y) * args.adapt_frac)
    xa = np.concatenate([x[:n_adapt]] * args.passes)
    xe, ye = x[n_adapt:], y[n_adapt:]
    print(f"source: {source}; hidden {layer.n_in}->{layer.n_out}; adaptation: {n_adapt} "
          f"unlabelled samples x {args.passes} passes x {x.shape[1]} steps; probe pool "
          f"{len(ye)} samples")
    qnet, _ = quantize_network(net, np.transpose(x[:64], (1, 0, 2)).astype(np.float32))
    ql = qnet.layers[0]
    w_shift = base.qlayer_w_shift(ql)
    lsb = 2.0 ** -w_shift
    pre_scale = qnet.input_scale
    xa_int = np.rint(xa / pre_scale).astype(np.int64)
    xe_int = np.rint(xe / pre_scale).astype(np.int64)
    shots = [int(k) for k in args.shots.split(",")]

    rate0 = float(run_float_layer(layer, layer.weight.astype(np.float64), x[:n_adapt]).mean())

    def params(eta, lam=1.0, decorr=0.0, tau_pre=10.0, lam_hom=0.0, target="n"):
        rt = None if target == "n" else rate0 if target == "r" else float(target)
        return lpl_rate.Params(eta=float(eta), lam=float(lam), lam_decorr=float(decorr),
                               lam_hom=float(lam_hom), rate_target=rt, tau_mean=1000.0,
                               tau_var=1000.0, tau_pre=float(tau_pre), tau_post=10.0,
                               var_init=0.01,
                               warmup=1000, xi=1e-4, w_min=-128 * lsb, w_max=127 * lsb,
                               rounding="dither")

    configs = [tuple(c.split(":")) for c in args.configs.split(",")]
    p0 = params(*configs[0])
    result = {"source": source, "n_adapt": n_adapt, "passes": args.passes,
              "n_eval": int(len(ye)), "hidden": [layer.n_in, layer.n_out],
              "w_shift": w_shift, "params": {k: (str(v) if isinstance(v, float)
                                                 and not np.isfinite(v) else v)
                                             for k, v in dataclasses.asdict(p0).items()},
              "extra_bytes_fixed": rule_memory_bytes(p0, layer.n_in, layer.n_out),
              "extra_bytes_float": rule_memory_bytes(p0, layer.n_in, layer.n_out, fixed=False),
              "weight_bytes_int8": layer.n_in * layer.n_out}
    before = {"before_float": run_float_layer(layer, layer.weight.astype(np.float64), xe),
              "before_fixed": run_fixed_layer(ql, ql.weight, xe_int)}
    result["before"] = {name: {str(k): probe_accuracy(features(sp), ye, n_classes, k,
                                                      args.repeats) for k in shots}
                        for name, sp in before.items()}
    result["readout_before_float"] = readout_accuracy(net, before["before_float"], ye)
    result["rate_before_adaptation_stream"] = rate0
    result["silent_neurons_before"] = int((before["before_float"].mean((0, 1)) < 1e-3).sum())
    result["hidden_rate_before"] = float(before["before_float"].mean())
    n_time = max(20, n_adapt // 5)
    _, step_inf = adapt_fixed(ql, ql.weight, xa_int[:n_time], p0, w_shift, pre_scale,
                              with_lpl=False)
    result["inference_step_s"] = step_inf
    result["runs"] = []
    for cfg in configs:
        pc = params(*cfg)
        res = adaptation_run(net, layer, ql, xa, xa_int, xe, xe_int, ye, n_classes,
                             pc, w_shift, pre_scale, shots, args.repeats)
        res["label"] = (f"eta={pc.eta:g} lam={pc.lam:g} dec={pc.lam_decorr:g}"
                        + (f" hom={pc.lam_hom:g}" if pc.lam_hom else "")
                        + ("" if not pc.lam_hom else " tgt=own" if pc.rate_target is None
                           else f" tgt={pc.rate_target:.3f}")
                        + (" event" if pc.tau_pre == 0 else ""))
        res["extra_bytes_fixed"] = rule_memory_bytes(pc, layer.n_in, layer.n_out)
        result["runs"].append(res)
        print(f"{res['label']}: done (fixed step {res['fixed_step_s'] * 1e6:.0f} us, "
              f"{res['extra_bytes_fixed']} B)")
    sizes = [tuple(int(v) for v in sz.split("x")) for sz in args.sizes.split(",")]
    result["scaling"] = scaling_timing(sizes)

    print(f"\nextra memory of LPL on the {layer.n_in}->{layer.n_out} hidden layer: "
          f"{result['extra_bytes_fixed']} B fixed ({result['extra_bytes_float']} B float) "
          f"vs {result['weight_bytes_int8']} B of int8 weights")
    fmt = lambda d: "  ".join(f"k={k}: {m * 100:5.1f}+-{s * 100:4.1f}"  # noqa: E731
                              for k, (m, s) in d.items())
    print("linear probe on hidden features (mean+-std over label draws; k labels per class):")
    for name, d in result["before"].items():
        print(f"  {name:52s} {fmt(d)}")
    print(f"  (silent hidden neurons before: {result['silent_neurons_before']} of "
          f"{layer.n_out}; mean rate on the adaptation stream {rate0:.3f})")
    for r in result["runs"]:
        for name, d in r["probe"].items():
            print(f"  {name[6:] + ' ' + r['label']:52s} {fmt(d)}   rate "
                  f"{r['hidden_rate'][name]:.3f} silent {r['silent_neurons'][name]:3d}  mean|dW| "
                  f"{r['mean_abs_dw_lsb'][name[6:11]]:.1f} LSB")
    print(f"pretrained readout: before {result['readout_before_float'] * 100:.1f} %, after "
          + ", ".join(f"{r['label']}: {r['readout_after_float_lpl'] * 100:.1f} %"
                      for r in result["runs"]))
    print(f"streaming step of this hidden layer: inference {step_inf * 1e6:.0f} us; inference "
          "+ fixed LPL: " + ", ".join(f"{r['label']}: {r['fixed_step_s'] * 1e6:.0f} us "
                                      f"(x{r['fixed_step_s'] / step_inf:.1f})"
                                      for r in result["runs"]))
    print("per-step scaling (median us): size, int matvec, LPL dense dither, dense full, "
          "event-driven full (5 % input spikes)")
    for r in result["scaling"]:
        print(f"  {r['n_in']}x{r['n_out']}: {r['inference_s'] * 1e6:7.1f} "
              f"{r['dense_dither_s'] * 1e6:8.1f} {r['dense_full_s'] * 1e6:8.1f} "
              f"{r['event_full_s'] * 1e6:8.1f}   ratios x{r['dense_dither_s'] / r['inference_s']:.0f}"
              f" x{r['dense_full_s'] / r['inference_s']:.0f} x{r['event_full_s'] / r['inference_s']:.0f}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=1) + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"wrote {out} (matplotlib missing: no plot)")
        return 0
    fig, axes = plt.subplots(1, len(shots), figsize=(3.2 * len(shots), 3.2), sharey=True)
    xs = np.arange(len(result["runs"]))
    labels = [r["label"].replace(" ", "\n") for r in result["runs"]]
    for ax, k in zip(np.atleast_1d(axes), shots):
        for name, style in (("float", "o"), ("fixed", "s")):
            m = [r["probe"][f"after_{name}_lpl"][str(k)][0] * 100 for r in result["runs"]]
            e = [r["probe"][f"after_{name}_lpl"][str(k)][1] * 100 for r in result["runs"]]
            ax.errorbar(xs + (0.05 if name == "fixed" else -0.05), m, e, fmt=style, capsize=3,
                        label=f"after LPL ({name})")
            b = result["before"][f"before_{name}"][str(k)][0] * 100
            ax.axhline(b, ls=":", color="C0" if name == "float" else "C1",
                       label=f"before ({name})")
        ax.set_xticks(xs, labels, fontsize=6)
        ax.set_title(f"{k} label(s) per class", fontsize=9)
    np.atleast_1d(axes)[0].set_ylabel("linear-probe accuracy (%)")
    np.atleast_1d(axes)[0].legend(fontsize=6)
    fig.suptitle(source[:90], fontsize=7)
    fig.tight_layout()
    atomic_save_png(fig, out.with_suffix(".png"), dpi=120)
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
