"""Benchmark: per-step cost of streaming adaptation on the host runtime (issue 9 goal: <= 2x).

On the headline model (models/speech_digits.onnx, quantized by load_bundle) and the bundled
new-user stream, the host target (edgelearn.device.engine via HostTarget) runs the same samples
in one process, configurations interleaved within every repeat:

    (a) inference alone                         LPL planned but off
    (b) inference + LPL every step              the fast in-place LPL step (LPLRateFast)
    (c) (b) + hEP on 10 % of the samples        only when the bundle has a head; one sample in
                                                ten over the whole run (the counter runs on
                                                across repeats), reported as total time /
                                                total steps (a median of repeats would pick
                                                repeats without a label)
    (r) inference + reference LPL               lpl_rate.step_fixed + QLayer rebuild (the old
                                                hot path, for comparison; fewer samples)
    (e) inference + LPL with a learning epoch   ``--lpl-epoch K`` > 1: (b) with Params.epoch K
                                                (the rule runs every K steps on the sums;
                                                docs/learning-rules.md section 10)

LPL is past its warm-up in (b), (c), (r) (the warm-up steps skip the weight rule and would
flatter the ratio). Per repeat the time per step is wall-clock (perf_counter) and CPU time
of this thread (thread_time, less sensitive to other processes on a shared machine); the
figures are medians over repeats, and the ratio (b)/(a) is given both as the ratio of medians
and as the median of the per-repeat (paired) ratios, in CPU time (the computation itself) and
in wall-clock time (also the waiting when other processes share the CPUs; on an idle machine
the two agree). The load average is recorded.
Writes reports/bench_adapt_cost.json. ``--profile`` prints where the time of (b) goes.

    python bench/bench_adapt_cost.py [--repeats 7] [--samples 4] [--profile] [--lpl-epoch 8]
"""

from __future__ import annotations

import argparse
import dataclasses
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgelearn.adapt.bundle import load_bundle  # noqa: E402
from edgelearn.atomic import atomic_write_text  # noqa: E402
from edgelearn.data import load_speech_digits  # noqa: E402
from edgelearn.device.engine import EngineConfig, default_lpl  # noqa: E402
from edgelearn.targets.host import HostTarget  # noqa: E402

ARENA = 1 << 20


def make_target(b, lpl: bool, hep: bool, reference: bool = False, lpl_params=None
                ) -> HostTarget:
    cfg = EngineConfig(lpl_layers=b.hidden_names, hep=EngineConfig().hep if hep else None,
                       lpl=lpl_params or default_lpl())
    t = HostTarget(b.qnet, ARENA, b.head if hep else None, cfg)
    if reference:                       # the pre-fast hot path: step_fixed + QLayer rebuild
        e = t.engine
        e._fast = {}
        e.layers = list(b.qnet.layers)
    t.set_learning(lpl, hep)
    return t


def run(t: HostTarget, xs, ys=None, hep_every: int = 0, first: int = 0
        ) -> tuple[float, float, int, int]:
    """Seconds (wall, thread CPU), steps and labels taught for the samples ``xs``; with
    ``hep_every`` the sample numbered ``first + i`` of the whole run is taught when that number
    is a multiple of ``hep_every``."""
    steps = taught = 0
    w0, c0 = time.perf_counter(), time.thread_time()
    for i, x in enumerate(xs):
        t.infer(x)
        steps += x.shape[0]
        if hep_every and (first + i) % hep_every == 0:
            t.teach(int(ys[i]))
            taught += 1
    return time.perf_counter() - w0, time.thread_time() - c0, steps, taught


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "speech_digits.onnx"))
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--samples", type=int, default=4, help="samples per config per repeat")
    ap.add_argument("--reference-samples", type=int, default=1,
                    help="samples per repeat for the reference LPL path (0: skip)")
    ap.add_argument("--profile", action="store_true", help="profile config (b)")
    ap.add_argument("--eta", type=float, default=None,
                    help="LPL learning rate instead of default_lpl()'s (e.g. 1e-4: every step "
                         "moves ~15 %% of the weights, the dense update path)")
    ap.add_argument("--lpl-epoch", type=int, default=1, choices=(1, 2, 4, 8, 16, 32, 64),
                    help="also time (e): LPL with this learning epoch (default 1: not run)")
    ap.add_argument("--out", default=str(ROOT / "reports" / "bench_adapt_cost.json"))
    args = ap.parse_args(argv)

    load0 = os.getloadavg()
    b = load_bundle(args.model)
    ds = load_speech_digits("new_user")
    x, y = ds.x, ds.y
    T = x.shape[1]
    active = float(np.mean(x > 0))
    print(f"model {Path(args.model).name}: " + " -> ".join(
        [str(b.qnet.n_in)] + [f"{la.n_out}{'(rec)' if la.recurrent is not None else ''}"
                              for la in b.qnet.layers])
        + f"; stream new_user {x.shape[0]} samples x T={T}, {100 * active:.1f} % of input "
        f"channels active per step; LPL on {b.hidden_names}")
    print(f"load average at start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} "
          f"({os.cpu_count()} CPUs)")

    lp = default_lpl() if args.eta is None else dataclasses.replace(default_lpl(), eta=args.eta)
    print(f"LPL: eta={lp.eta:g} lam={lp.lam:g} tau_pre/post={lp.tau_pre:g}/{lp.tau_post:g} "
          f"rounding={lp.rounding} warmup={lp.warmup}")
    configs = {"a_inference": make_target(b, False, False, lpl_params=lp),
               "b_inference_lpl": make_target(b, True, False, lpl_params=lp)}
    if b.head is not None:
        configs["c_lpl_hep10"] = make_target(b, True, True, lpl_params=lp)
    if args.lpl_epoch > 1:
        configs["e_inference_lpl_epoch"] = make_target(
            b, True, False, lpl_params=dataclasses.replace(lp, epoch=args.lpl_epoch))
    if args.reference_samples:
        configs["r_reference_lpl"] = make_target(b, True, False, reference=True, lpl_params=lp)
    warm = x[-3:]                        # past the LPL warm-up (200 steps) before timing
    for name, t in configs.items():
        run(t, warm if name != "a_inference" else warm[:1], y[-3:])

    times = {k: {"wall": [], "cpu": []} for k in configs}
    totals = {k: {"wall": 0.0, "cpu": 0.0, "steps": 0, "samples": 0, "taught": 0}
              for k in configs}
    n = args.samples
    for r in range(args.repeats):
        xs = x[(r * n) % (x.shape[0] - 3 - n):][:n]
        ys = y[(r * n) % (x.shape[0] - 3 - n):][:n]
        order = list(configs) if r % 2 == 0 else list(reversed(configs))
        for name in order:
            t = configs[name]
            if name == "r_reference_lpl":
                w, c, s, k = run(t, xs[:args.reference_samples])
            elif name == "c_lpl_hep10":
                w, c, s, k = run(t, xs, ys, hep_every=10, first=totals[name]["samples"])
            else:
                w, c, s, k = run(t, xs)
            times[name]["wall"].append(1e6 * w / s)
            times[name]["cpu"].append(1e6 * c / s)
            tot = totals[name]
            tot["wall"] += w
            tot["cpu"] += c
            tot["steps"] += s
            tot["samples"] += s // T
            tot["taught"] += k

    med = {k: {m: statistics.median(v[m]) for m in ("wall", "cpu")} for k, v in times.items()}
    if "c_lpl_hep10" in totals:          # total time / total steps (see the module docstring)
        tot = totals["c_lpl_hep10"]
        med["c_lpl_hep10"] = {m: 1e6 * tot[m] / tot["steps"] for m in ("wall", "cpu")}
        print(f"(c) taught {tot['taught']} of {tot['samples']} samples "
              f"({100 * tot['taught'] / max(tot['samples'], 1):.1f} %)")
    ratios = {}
    for m in ("wall", "cpu"):
        paired = [bb / aa for aa, bb in zip(times["a_inference"][m], times["b_inference_lpl"][m])]
        ratios[m] = {"ratio_of_medians": med["b_inference_lpl"][m] / med["a_inference"][m],
                     "median_paired_ratio": statistics.median(paired)}
    load1 = os.getloadavg()
    print(f"\nper-step time, median of {args.repeats} repeats ({n} samples = {n * T} steps "
          f"per config per repeat)")
    print(f"{'config':<22}{'wall us/step':>14}{'cpu us/step':>14}{'x inference (wall)':>20}")
    for k, v in med.items():
        print(f"{k:<22}{v['wall']:>14.1f}{v['cpu']:>14.1f}"
              f"{v['wall'] / med['a_inference']['wall']:>20.2f}")
    ok_cpu = ratios["cpu"]["ratio_of_medians"] <= 2.0
    ok_wall = ratios["wall"]["ratio_of_medians"] <= 2.0
    print(f"\n(b)/(a): wall {ratios['wall']['ratio_of_medians']:.2f} (paired "
          f"{ratios['wall']['median_paired_ratio']:.2f}), cpu "
          f"{ratios['cpu']['ratio_of_medians']:.2f} (paired "
          f"{ratios['cpu']['median_paired_ratio']:.2f}); goal <= 2.0: "
          f"{'met' if ok_cpu else 'NOT met'} in CPU time, "
          f"{'met' if ok_wall else 'NOT met'} in wall-clock time (wall time includes waiting "
          f"for the CPU when the machine is shared)")
    if "e_inference_lpl_epoch" in med:
        for m in ("wall", "cpu"):
            paired = [ee / aa for aa, ee in zip(times["a_inference"][m],
                                                times["e_inference_lpl_epoch"][m])]
            paired_b = [ee / bb for bb, ee in zip(times["b_inference_lpl"][m],
                                                  times["e_inference_lpl_epoch"][m])]
            ratios[f"epoch_{m}"] = {
                "e_over_a": med["e_inference_lpl_epoch"][m] / med["a_inference"][m],
                "e_over_a_paired": statistics.median(paired),
                "e_over_b": med["e_inference_lpl_epoch"][m] / med["b_inference_lpl"][m],
                "e_over_b_paired": statistics.median(paired_b)}
        r = ratios["epoch_cpu"]
        print(f"(e) learning epoch {args.lpl_epoch}: (e)/(a) cpu {r['e_over_a']:.2f} (paired "
              f"{r['e_over_a_paired']:.2f}), (e)/(b) cpu {r['e_over_b']:.2f} (paired "
              f"{r['e_over_b_paired']:.2f}); wall (e)/(a) "
              f"{ratios['epoch_wall']['e_over_a']:.2f}")
    if "r_reference_lpl" in med:
        print(f"reference LPL path / fast LPL path (wall): "
              f"{med['r_reference_lpl']['wall'] / med['b_inference_lpl']['wall']:.1f}x")
    print(f"load average at end: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")

    prof_text = None
    if args.profile:
        t = configs["b_inference_lpl"]
        pr = cProfile.Profile()
        pr.enable()
        run(t, x[:n])
        pr.disable()
        s = io.StringIO()
        pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(18)
        prof_text = s.getvalue()
        print(prof_text)

    out = {"model": Path(args.model).name, "lpl": dataclasses.asdict(lp),
           "lpl_epoch": args.lpl_epoch, "stream": "speech_digits/new_user", "T": T,
           "input_activity": active, "repeats": args.repeats, "samples_per_repeat": n,
           "load_average_start": load0, "load_average_end": load1, "cpus": os.cpu_count(),
           "us_per_step_median": med, "us_per_step_all": times, "ratio_b_over_a": ratios,
           "totals": totals,
           "goal": 2.0, "goal_met_cpu": bool(ok_cpu), "goal_met_wall": bool(ok_wall), "profile_b": prof_text}
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
