#!/usr/bin/env python3
"""Label-free adaptation under input drift: how much of the accuracy lost to a drift does each
unsupervised method recover, and what does it cost when nothing drifted?

Protocol (everything in one run, paired by seed):

* model: the deployed integer SNN + its (frozen) head, on the host device engine
  (edgelearn.device.engine; the simulated board runs the same engine bit for bit);
* streams: the test split (voices the model never saw) divided into an adaptation stream (60 %)
  and a held-out set (40 %), stratified by digit; each condition passes both through the same
  transform of edgelearn.data.streams (the held-out set through the drift's state at the end of
  the stream): none (the reference), gain (GainDrift), shift (ChannelShift), dead
  (DeadChannels), noise (NoiseSpikes), warp (TimeWarp), tilt (SpectralTilt: 20 dB between
  the lowest and the highest channel, reached linearly over the stream), bank (BankShift: the
  filter bank's tuning moves by 2 channels, linearly over the stream); new_user: the new-user
  split divided per (voice, digit) as in bench/bench_adapt.py; pcm, bss2: undrifted input, the
  weights as the analog substrate computes them. No labels are used for learning;
* methods (all see each stream once, in order, without labels):
  - frozen;
  - input norm: AdaBN-like running statistics of the input channels (per-channel mean and std
    over samples, rate ``--norm-rate``), each sample mapped to the training statistics
    x' = m_train + (x - m) s_train / s, stochastically rounded to counts (host-side);
  - head norm: running statistics of the head's input features replace the training
    normalisation (the engine's ``track_features`` formula, applied host-side);
  - homeostasis: the LPL rule with only its homeostatic term, its state started from the rule's
    statistics on training data (edgelearn.adapt.reference);
  - LPL: the deployed default (lpl_rate.deploy_default: predictive + Hebbian, no homeostasis;
    ``--lpl-eta`` changes its rate);
  - LPL + homeostasis: the LPL terms with the homeostatic term and the reference state;
  - any preset of edgelearn.rules.lpl_presets named in ``--presets`` (method = preset name;
    the reference state when the preset has a per-neuron target);
* metrics: held-out accuracy after the stream (learning off); recovery = (method - frozen) /
  (frozen without drift - frozen) per seed; cost without drift = method - frozen on "none".
  Mean +- standard error over seeds, and wins over seeds against homeostasis.

    python bench/bench_lpl_drift.py --seeds 5
    python bench/bench_lpl_drift.py --model models/speech_digits_lpl.onnx --lpl-eta 1e-6
    python bench/bench_lpl_drift.py --methods frozen,homeostasis --presets slow+homeostasis
    python bench/bench_lpl_drift.py --presets slow+homeostasis --lpl-epoch 8
(``--lpl-epoch K``: every LPL-rule method, presets included, and its float twin run with a
learning epoch of K steps, docs/learning-rules.md section 10.)
Writes reports/bench_lpl_drift.json and reports/bench_lpl_drift.png; prints one line per run.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgelearn.adapt.bundle import load_bundle  # noqa: E402
from edgelearn.adapt.reference import lpl_reference_weights  # noqa: E402
from edgelearn.atomic import atomic_save_png, atomic_write_text  # noqa: E402
from edgelearn.data import load_speech_digits  # noqa: E402
from edgelearn.data.streams import (ChannelShift, DeadChannels, GainDrift, NoiseSpikes,  # noqa: E402
                                    SpectralTilt, TimeWarp, BankShift, holdout,
                                    make_stream)
from edgelearn.device.engine import EngineConfig  # noqa: E402
from edgelearn.device.features import head_features  # noqa: E402
from edgelearn.boundary import OneLineArgumentParser, run_command  # noqa: E402
from edgelearn.boundary import options as opt  # noqa: E402
from edgelearn.errors import OptionError  # noqa: E402
from edgelearn.memory import get_profile  # noqa: E402
from edgelearn.memory.planner import AdaptConfig, HeadShape, plan_deployment, shapes_of  # noqa: E402
from edgelearn.rules import lpl_presets, lpl_rate  # noqa: E402
from edgelearn.targets.host import HostTarget  # noqa: E402

DRIFTS = {"none": None, "gain": GainDrift(1.0), "shift": ChannelShift(k=2),
          "dead": DeadChannels(0.2), "noise": NoiseSpikes(0.2), "warp": TimeWarp(1.0),
          "tilt": SpectralTilt(20.0), "bank": BankShift(2.0), "new_user": None, "pcm": None,
          "bss2": None}
SUBSTRATES = {"pcm": 365 * 86400.0, "bss2": 0.0}   # seconds since programming
HOST_METHODS = ("frozen", "input norm", "head norm")


def lpl_methods(eta: float, lam_hom: float, tau_mean: float | None = None,
                lpl_eta: float | None = None) -> dict[str, lpl_rate.Params]:
    """The LPL-rule methods: parameters (all with the deployed filters and time constants;
    ``tau_mean`` replaces the running mean's and variance's time constant of the homeostasis
    methods; ``lpl_eta`` the learning rate of the LPL method, default the deployed 1e-7)."""
    base = lpl_rate.deploy_default()
    if lpl_eta is not None:
        base = dataclasses.replace(base, eta=lpl_eta)
    hom = dict(lam_hom=lam_hom, rate_target=None, eta=eta)
    if tau_mean:
        hom.update(tau_mean=tau_mean, tau_var=tau_mean)
    return {
        "homeostasis": dataclasses.replace(base, pred=0.0, lam=0.0, **hom),
        "LPL": base,
        "LPL + homeostasis": dataclasses.replace(base, **hom),
    }


# ------------------------------------------------------------------------------- streams

def substrate_qnet(bundle, preset: str, seed: int, calib_x):
    """The integer network a chip computes with (edgelearn.substrate: device instance
    ``seed`` of ``preset``, one read, mismatch; pcm one year after programming), quantized
    with the bundle's calibration inputs: the deployed weights after the analog substrate
    moved them, as the engine runs them."""
    from edgelearn.quant.calibrate import quantize_network
    from edgelearn.substrate import Device, get_preset
    dev = Device.create(get_preset(preset), seed, bundle.network)
    dev.advance_time(SUBSTRATES[preset])
    q, _ = quantize_network(dev.effective_network(),
                            np.swapaxes(calib_x, 0, 1).astype(np.float32))
    return q


def condition_sets(name: str, seed: int, test, new_user, passes: int = 1):
    """(stream x, stream y, held-out x, held-out y) of condition ``name`` for ``seed``; the
    stream visits its samples ``passes`` times (reshuffled)."""
    if name in SUBSTRATES:
        name = "none"
    if name == "new_user":
        adapt, ev = holdout(new_user, 0.4, seed=0, group_key="voice")
        stream = make_stream(adapt, (), seed=seed, group_key="voice",
                             n_samples=passes * len(adapt))
        xs, ys = stream.as_arrays()
        return xs, ys, np.asarray(ev.x), np.asarray(ev.y)
    adapt, ev = holdout(test, 0.4, seed=0)
    tr = DRIFTS[name]
    stream = make_stream(adapt, [tr] if tr else [], seed=seed, n_samples=passes * len(adapt))
    xs, ys = stream.as_arrays()
    xe = np.asarray(ev.x)
    if tr is not None:          # the held-out set through the drift's final state
        n, plan = len(stream), stream._plans[0]
        xe = np.stack([tr.apply(xe[m], n - 1, n, plan, np.random.default_rng([seed, 9, m]))
                       for m in range(len(xe))])
    return xs, ys, xe, np.asarray(ev.y)


# ------------------------------------------------------------------------------- methods

def head_accuracy(qnet, dhead, x, y, readout) -> float:
    f = head_features(qnet, x, readout=readout)
    return float(np.mean(np.argmax(dhead.head.logits(dhead.normalise(f)), axis=1) == y))


def input_norm(xs, xe, ref_mean, ref_std, rate, seed):
    """Causal running per-channel statistics over the stream; returns (normalised stream,
    held-out set normalised with the statistics at the end of the stream)."""
    rng = np.random.default_rng([seed, 7])
    m, v = ref_mean.copy(), ref_std ** 2
    top = 255

    def apply(x):
        s = np.sqrt(np.maximum(v, 1e-6))
        val = np.clip(ref_mean + (x - m) * (ref_std / s), 0, top)
        lo = np.floor(val)
        return (lo + (rng.random(val.shape) < val - lo)).astype(np.uint8)

    out = np.empty_like(xs)
    for i, x in enumerate(xs.astype(np.float64)):
        mu = x.mean(axis=0)
        m += rate * (mu - m)
        v += rate * (((x - m) ** 2).mean(axis=0) - v)
        out[i] = apply(x)
    return out, np.stack([apply(x) for x in xe.astype(np.float64)])


def head_norm(bundle, xs, rate, readout):
    """The head's normalisation after tracking the stream's features (engine formula)."""
    d = bundle.head.copy()
    mean, var = d.mean.astype(np.float64), d.std.astype(np.float64) ** 2
    for f in head_features(bundle.qnet, xs, readout=readout):
        var += rate * ((f - mean) ** 2 - var)
        mean += rate * (f - mean)
    d.mean, d.std = mean.astype(np.float32), np.sqrt(np.maximum(var, 1e-6)).astype(np.float32)
    return d


def adapt_lpl(bundle, params, xs, seed, readout, reference, arena):
    """Adapt on the stream ``xs`` with the LPL rule on every hidden layer (starting state
    ``reference`` if the rule needs one). Returns (adapted integer network, head, mean |dW| in
    int8 LSB, the per-sample predictions made during the stream)."""
    cfg = EngineConfig(readout=readout, lpl_layers=bundle.hidden_names, lpl=params, hep=None,
                       seed=seed + 1)
    t = HostTarget(bundle.qnet, arena, bundle.head, cfg)
    if params.stores_target:
        w = t.get_weights()
        w.update(reference)
        t.set_weights(w)
    w0 = {k: v.copy() for k, v in t.get_weights().items() if k.endswith(".weight")}
    t.set_learning(True, False)
    hits = [t.infer(x).prediction for x in xs]
    t.set_learning(False, False)
    w = t.get_weights()
    moved = float(np.mean([np.abs(w[k].astype(int) - v).mean() for k, v in w0.items()]))
    return t.network(), t.head(), moved, np.asarray(hits)


def run_lpl(bundle, params, xs, xe, ye, seed, readout, reference, arena):
    """:func:`adapt_lpl`, then held-out accuracy: (accuracy, mean |dW| LSB, predictions)."""
    qnet, head, moved, hits = adapt_lpl(bundle, params, xs, seed, readout, reference, arena)
    return head_accuracy(qnet, head, xe, ye, readout), moved, hits


def float_reference(params: lpl_rate.Params, st_q) -> lpl_rate.State:
    """The float twin's starting state: the integer reference state in float units."""
    A, E = params.act_frac, params.ema_frac
    n_in, n_out = st_q.pre_trace.size or st_q.epoch_pre.size or 1, st_q.mean.size
    st = lpl_rate.init(params, st_q.pre_trace.size or n_in, n_out)
    scale = {"mean": A + E, "var": 2 * A + E, "pre_trace": A + E, "post_trace": A + E,
             "target": A + E, "z_prev": A}
    for f, arr in zip(st._fields, st):
        if arr.size and f in scale:
            arr[...] = getattr(st_q, f) / 2.0 ** scale[f]
    st.count[...] = st_q.count
    return st


def run_float_twin(bundle, params, xs, xe, ye, reference, readout):
    """The float twin of :func:`run_lpl` for one LPL layer: the float network (dequantized
    integer network) and the float rule (lpl_rate.epoch_step: lpl_rate.step every step, or
    on the epoch means with a learning epoch), the same starting statistics; the
    summed per-step updates are applied at the end of each sample (they move a weight by far
    less than one int8 LSB per sample). Held-out accuracy of the float network + head."""
    from edgelearn.kernels.lif_fixed import dequantize, quantize_input
    from edgelearn.kernels.lif_float import init_layer_state, layer_step
    from edgelearn.rules import qmath
    from edgelearn.runtime.reference import run

    net = dequantize(bundle.qnet)
    name = bundle.hidden_names[0]
    k = [la.name for la in net.layers].index(name)
    st_q = reference if params.stores_target else {}
    st = lpl_rate.init(params, net.layers[k].n_in, net.layers[k].n_out)
    if st_q:
        st = float_reference(params, lpl_rate.State(*(
            st_q.get(f"state.{name}.lpl.{f}", arr) for f, arr in zip(st._fields, st))))
    w = net.layers[k].weight.astype(np.float64)
    scale = bundle.qnet.input_scale
    for x in xs:
        xi = quantize_input(bundle.qnet, x).astype(np.float64)          # the rule's counts
        layers = list(net.layers)
        layers[k] = layers[k].replace(weight=w)
        dw = np.zeros_like(w)
        states = [init_layer_state(la, 1) for la in layers]
        for t in range(xi.shape[0]):
            h = (xi[t] * scale)[None].astype(np.float32)
            for j, la in enumerate(layers[:k + 1]):
                pre = h
                h, states[j] = layer_step(la, h, states[j])
            d, st = lpl_rate.epoch_step(pre[0] / scale, h[0], st, params)
            if d is not None:
                dw += d
        w = qmath.apply_float(w, dw, params.w_min, params.w_max)
    return float_head_accuracy(bundle, net.replace_layer(name, weight=w), xe, ye, readout)


def float_features(bundle, net, x, readout) -> np.ndarray:
    """The head's input features [N, F] from the float network ``net`` (dequantized integer
    network) on samples ``x`` [N, T, C]. The network gets the integer input the device
    computes with, x_int * input_scale, x_int = quantize_input(x) (counts clipped to the
    signed ``input_bits`` range: at most 7 on the speech model), so that the float twin and
    the integer network see the same input (a gain drift pushes counts past the clip)."""
    from edgelearn.kernels.lif_fixed import quantize_input
    from edgelearn.runtime.reference import run
    xi = quantize_input(bundle.qnet, x) * bundle.qnet.input_scale
    rec = run(net, np.swapaxes(xi, 0, 1).astype(np.float32), record=("spikes",))
    rates = rec.spikes[bundle.feature_layer].sum(axis=0) / x.shape[1]
    out = rec.output.mean(axis=0) if readout == "mean" else rec.output.max(axis=0)
    return np.concatenate([rates, out], axis=1).astype(np.float64)


def float_head_accuracy(bundle, net, x, y, readout) -> float:
    """The head on :func:`float_features` of the float network ``net``."""
    d = bundle.head
    f = float_features(bundle, net, x, readout)
    return float(np.mean(np.argmax(d.head.logits(d.normalise(f)), axis=1) == y))


# ------------------------------------------------------------------------------- summary

def stats(v) -> dict:
    v = np.asarray(v, dtype=np.float64)
    se = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else 0.0
    return {"mean": float(v.mean()), "se": se, "values": v.tolist()}


def summarise(acc: dict, conditions, methods) -> dict:
    """Per condition and method: accuracy, change vs frozen, recovery, wins vs homeostasis."""
    out = {}
    none = np.asarray(acc["none"]["frozen"]) if "none" in acc else None
    for c in conditions:
        fr = np.asarray(acc[c]["frozen"])
        out[c] = {}
        for m in methods:
            a = np.asarray(acc[c][m])
            row = {"accuracy": stats(a), "vs_frozen": stats(a - fr)}
            if none is not None and c not in ("none",):
                lost = none - fr if c != "new_user" else None
                if lost is not None and np.all(lost > 0):
                    row["recovery"] = stats((a - fr) / lost)
            if m.endswith(" (float)") and m[:-8] in acc[c]:
                row["float_minus_fixed"] = stats(a - np.asarray(acc[c][m[:-8]]))
            if "homeostasis" in acc[c] and m != "homeostasis":
                h = np.asarray(acc[c]["homeostasis"])
                row["vs_homeostasis"] = stats(a - h)
                row["wins_vs_homeostasis"] = int(np.sum(a > h))
            out[c][m] = row
    return out


def plot(summary, conditions, methods, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(conditions)), 4.2))
    w = 0.8 / len(methods)
    for j, m in enumerate(methods):
        mu = [100 * summary[c][m]["accuracy"]["mean"] for c in conditions]
        se = [100 * summary[c][m]["accuracy"]["se"] for c in conditions]
        ax.bar(np.arange(len(conditions)) + (j - (len(methods) - 1) / 2) * w, mu, w, yerr=se,
               label=m, capsize=2)
    if "none" in summary:
        ax.axhline(100 * summary["none"]["frozen"]["accuracy"]["mean"], color="gray", ls="--",
                   lw=1, label="frozen, no drift")
    ax.set_xticks(np.arange(len(conditions)), conditions)
    ax.set_ylabel("held-out accuracy after the stream (%)")
    ax.set_title("label-free adaptation under drift (mean +- s.e. over seeds)")
    ax.legend(fontsize=7, ncol=2)
    lo = min(100 * summary[c][m]["accuracy"]["mean"] for c in conditions for m in methods)
    ax.set_ylim(max(0, lo - 10), 100)
    atomic_save_png(fig, path, bbox_inches="tight", dpi=120)
    return True


def main(argv=None) -> int:
    ap = OneLineArgumentParser(prog="bench_lpl_drift", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "speech_digits.onnx"))
    ap.add_argument("--seeds", type=opt.COUNT, default=5)
    ap.add_argument("--conditions", default=",".join(DRIFTS),
                    help=f"comma-separated subset of {', '.join(DRIFTS)}")
    ap.add_argument("--methods", default=None, help="comma-separated subset of the methods")
    ap.add_argument("--eta", type=opt.real(0.0), default=3e-7, help="learning rate of the LPL rule "
                    "in the homeostasis methods")
    ap.add_argument("--lpl-eta", type=opt.real(0.0), default=None, help="learning rate of the LPL "
                    "method (default: the deployed lpl_rate.deploy_default().eta, 1e-7)")
    ap.add_argument("--lam-hom", type=opt.real(0.0), default=0.25, help="homeostasis weight")
    ap.add_argument("--tau-mean", type=opt.POSITIVE, default=None,
                    help="time constant (steps) of the running mean and variance of the "
                         "homeostasis methods (default: the deployed 2000)")
    ap.add_argument("--presets", default="",
                    help="comma-separated presets of edgelearn.rules.lpl_presets to add as "
                         f"methods (named as the preset; one of {', '.join(lpl_presets.NAMES)})")
    ap.add_argument("--lpl-epoch", type=opt.power_of_two(1, 64), default=1, metavar="K",
                    help="learning epoch of every LPL-rule method, presets included, and of "
                         "their float twins (lpl_rate.Params.epoch; default 1: every step)")
    ap.add_argument("--passes", type=opt.COUNT, default=1, help="visits of each stream sample")
    ap.add_argument("--norm-rate", type=opt.FRACTION, default=0.02,
                    help="per-sample rate of the running statistics (input and head norm)")
    ap.add_argument("--float-twin", action="store_true",
                    help="also run the float twin of every LPL-rule method ('<method> (float)')")
    ap.add_argument("--limit", type=opt.COUNT, help="first N samples of each stream (quick check)")
    ap.add_argument("--out", default=str(ROOT / "reports" / "bench_lpl_drift"))
    args = ap.parse_args(argv)
    conditions = [c.strip() for c in args.conditions.split(",")]
    unknown = set(conditions) - set(DRIFTS)
    if unknown:
        raise OptionError(f"--conditions: unknown {sorted(unknown)}; choose from "
                          f"{', '.join(DRIFTS)}")

    t_start = time.time()
    presets = list(dict.fromkeys(n.strip() for n in args.presets.split(",") if n.strip()))
    extra = {n: lpl_presets.preset(n) for n in presets}    # refuses an unknown name first
    clash = set(presets) & (set(lpl_methods(args.eta, args.lam_hom)) | set(HOST_METHODS))
    if clash:
        raise OptionError(f"--presets: {sorted(clash)} clash with the bench's own methods")
    bundle = load_bundle(args.model)
    readout = bundle.network.meta.get("readout", "max")
    test, new_user = load_speech_digits("test"), load_speech_digits("new_user")
    train = load_speech_digits("train")
    reference_x = bundle.reference_inputs()          # what a deployment measures on
    ref_x = train.x.astype(np.float64)
    ref_mean, ref_std = ref_x.mean(axis=(0, 1)), ref_x.std(axis=(0, 1))
    del ref_x
    rule = lpl_methods(args.eta, args.lam_hom, args.tau_mean, args.lpl_eta)
    rule.update(extra)
    rule = {m: dataclasses.replace(p, epoch=args.lpl_epoch) for m, p in rule.items()}
    references = {m: lpl_reference_weights(bundle.qnet, EngineConfig(
        readout=readout, lpl_layers=bundle.hidden_names, lpl=p, hep=None), reference_x)
        for m, p in rule.items()}
    methods = list(HOST_METHODS) + list(rule)
    floats = ["frozen (float)"] + [f"{m} (float)" for m in rule]
    if args.methods:
        methods = list(dict.fromkeys([m.strip() for m in args.methods.split(",")] + presets))
        unknown = set(methods) - set(HOST_METHODS) - set(rule) - set(floats)
        if unknown or "frozen" not in methods:
            raise OptionError(f"--methods: unknown {sorted(unknown)} (frozen is required)")
    if args.float_twin:
        methods += [f for f in floats if f == "frozen (float)" or f[:-8] in methods]
    arena = 512 * 1024
    # the memory the planner charges for LPL on the deployed board (no head learning)
    profile = get_profile("cortex-m4-256k")
    memory = {}
    for m in rule:
        plan = plan_deployment(shapes_of(bundle.network), 256 * 1024, profile,
                               AdaptConfig(lpl_layers=bundle.hidden_names, hep=False,
                                           lpl=rule[m]),
                               link=True, head=HeadShape(bundle.head.head.sizes))
        memory[m] = {"learning_bytes": plan.learning_bytes,
                     "inference_bytes": plan.inference_bytes,
                     "learning_over_inference": plan.learning_bytes / plan.inference_bytes}
    acc = {c: {m: [] for m in methods} for c in conditions}
    moved = {c: {m: [] for m in methods} for c in conditions}
    runs = []
    n_runs = len(conditions) * args.seeds * len(methods)
    k = 0
    for seed in range(args.seeds):
        for c in conditions:
            xs, ys, xe, ye = condition_sets(c, seed, test, new_user, args.passes)
            b = bundle
            if c in SUBSTRATES:
                b = dataclasses.replace(bundle, qnet=substrate_qnet(bundle, c, seed,
                                                                     reference_x))
            if args.limit:
                xs, ys = xs[:args.limit], ys[:args.limit]
            for m in methods:
                t0 = time.time()
                k += 1
                dw = 0.0
                if m == "frozen":
                    a = head_accuracy(b.qnet, b.head, xe, ye, readout)
                elif m == "input norm":
                    _, xn = input_norm(xs, xe, ref_mean, ref_std, args.norm_rate, seed)
                    a = head_accuracy(b.qnet, b.head, xn, ye, readout)
                elif m == "head norm":
                    a = head_accuracy(b.qnet, head_norm(b, xs, args.norm_rate, readout), xe, ye,
                                      readout)
                elif m == "frozen (float)":
                    from edgelearn.kernels.lif_fixed import dequantize
                    a = float_head_accuracy(b, dequantize(b.qnet), xe, ye, readout)
                elif m.endswith(" (float)"):
                    a = run_float_twin(b, rule[m[:-8]], xs, xe, ye, references[m[:-8]], readout)
                else:
                    a, dw, _ = run_lpl(b, rule[m], xs, xe, ye, seed, readout, references[m],
                                       arena)
                acc[c][m].append(a)
                moved[c][m].append(dw)
                runs.append({"seed": seed, "condition": c, "method": m, "accuracy": a,
                             "mean_abs_weight_change_lsb": dw, "seconds": time.time() - t0})
                print(f"[{k}/{n_runs}] seed {seed} {c:<8} {m:<18} held-out {100 * a:5.1f} % "
                      f"(frozen {100 * acc[c]['frozen'][-1]:5.1f} %) |dW| {dw:.2f} LSB "
                      f"{time.time() - t0:.0f} s, total {time.time() - t_start:.0f} s",
                      flush=True)
    summary = summarise(acc, conditions, methods)
    print(f"\n{'condition':<9} " + " ".join(f"{m:>22}" for m in methods))
    for c in conditions:
        cells = []
        for m in methods:
            r = summary[c][m]
            cell = f"{100 * r['accuracy']['mean']:5.1f}+-{100 * r['accuracy']['se']:.1f}"
            if "recovery" in r and m != "frozen":
                cell += f" ({100 * r['recovery']['mean']:+.0f}%)"
            cells.append(f"{cell:>22}")
        print(f"{c:<9} " + " ".join(cells))
    print("(accuracy % mean +- s.e. over seeds; in brackets: share of the loss to the drift "
          "recovered)")
    out = {"model": Path(args.model).name, "seeds": args.seeds, "conditions": conditions,
           "lpl_epoch": args.lpl_epoch,
           "methods": methods, "drifts": {c: repr(DRIFTS[c]) for c in conditions},
           "lpl_params": {m: dataclasses.asdict(p) for m, p in rule.items() if m in methods},
           "norm_rate": args.norm_rate, "memory": memory,
           "stream_samples": {c: int(len(condition_sets(c, 0, test, new_user, args.passes)[0]))
                              for c in conditions} if not args.limit else args.limit,
           "summary": summary, "runs": runs, "seconds": time.time() - t_start}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out + ".json", json.dumps(out, indent=1, default=str) + "\n")
    drawn = plot(summary, conditions, methods, args.out + ".png")
    print(f"wrote {args.out}.json" + (" and .png" if drawn else "") +
          f" ({time.time() - t_start:.0f} s)")
    return 0


def run_cli(main_fn, name: str) -> None:
    """Exit with main_fn()'s status; bad input (EdgelearnError, usage errors of a
    OneLineArgumentParser included) is one line on stderr, exit 2
    (edgelearn.boundary.run_command)."""
    raise SystemExit(run_command(name, main_fn))


if __name__ == "__main__":
    run_cli(main, "bench_lpl_drift")
