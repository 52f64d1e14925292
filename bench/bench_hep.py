#!/usr/bin/env python3
"""Real-valued hEP vs EP baselines vs complex hEP: gradient accuracy, noise, steps, online training.

Part 1 (gradients): random 16-32-10 heads (training init, ``--seeds`` seeds, batch 8 of uniform
features, random labels) in two families: 'init' (coupling 0.5, the default) and 'strong'
(coupling 1.0, unprojected: a head near its multistability fold), plus 'trained' 64-64-10
heads (trained online with exact gradients for 2 epochs on the SNN features of part 2). For each estimator (one-sided
EP, centered EP, real hEP with 4/6/8 distinct nudges, real hEP on the DESIGN's Lobatto grids
M = 10/12, the continuous oscillation, and, for comparison only, complex hEP with N = 4/6/8
points, implemented here and nowhere in the library) and each amplitude in 0.1..2: median
relative error and cosine against the exact implicit gradient; under state noise sigma (damped
dynamics, fixed schedule, ``--repeats`` draws) as well. The physical relaxation steps each
estimator needs (damped dynamics, g = 0.5, to max residual 1e-6, warm starts) are counted on
seed 0. "Usable" = median relative error <= 0.1; the largest usable amplitude (noise-free) and
the usable window (noisy) are printed per estimator.

Part 2 (online training, SNN features): hidden spike rates (2 time pools, z-scored) of the
pretrained models/randman_small.onnx on its Randman split; a 64-64-10 head trained online, one
sample per update, with exact gradients, real hEP, centered and one-sided EP, noise-free and
under state noise; test accuracy per epoch.

Part 3: time of one single-sample hEP update on a 128-64-10 head; learning memory in bytes.

Usage: python bench/bench_hep.py [--seeds 5] [--repeats 3] [--epochs 2] [--quick]
           [--json reports/bench_hep.json] [--plot reports/bench_hep.png]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgelearn.atomic import atomic_save_png, atomic_write_text
from edgelearn.rules.hep import (
    EnergyHead,
    OnlineHEP,
    RelaxParams,
    StateNoise,
    cosine_scheme,
    hep_memory_bytes,
    hep_scheme,
    oscillating_gradient,
)
from edgelearn.rules.hep import energy as en

AMPS = [0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0]
USABLE = 0.1


# ------------------------------------------------------------- complex hEP (comparison only)
def _csoftmax(o):
    e = np.exp(o - o.real.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _cphi(head, x, z, beta, onehot, sl):
    zs = [z[:, s] for s in sl]
    ss = [np.tanh(v) for v in zs[:-1]] + [zs[-1]]
    K = len(head.weights)
    out, prev = [], x
    for k in range(K):
        inp = prev @ head.weights[k].T + head.biases[k]
        if k + 1 < K:
            inp = inp + ss[k + 1] @ head.weights[k + 1]
        else:
            inp = inp - beta * (_csoftmax(zs[k]) - onehot)
        out.append(inp)
        prev = ss[k]
    return np.concatenate(out, axis=1), ss


def complex_hep(head, x, y, b, N, sigma=0.0, rng=None, dyn_tol=None, noisy_steps=60, avg=20):
    """Complex hEP: beta_k = b e^{i 2 pi k / N}; grad = Re (1/(N b)) sum_k g_k e^{-i theta_k}.

    Noise-free: Newton in complex arithmetic (continuation around the circle), or damped
    dynamics to ``dyn_tol`` for step counting; noisy: damped dynamics with complex state noise."""
    assert head.activation == "tanh"
    x = np.asarray(x, float)
    B = x.shape[0]
    onehot = np.zeros((B, head.n_out))
    onehot[np.arange(B), y] = 1
    sl = en.layout(head.sizes)
    A = en.coupling_matrix(head.weights, head.sizes)
    free = head.relaxer(None, None).relax(x, steps=2 * noisy_steps if sigma else None,
                                          solver="dynamics" if dyn_tol else None)
    z = free.z.astype(np.result_type(free.z, 1j))
    steps = free.iterations
    accW = [np.zeros(W.shape, z.dtype) for W in head.weights]
    accb = [np.zeros(bb.shape, z.dtype) for bb in head.biases]
    ok = True
    for k in range(N):
        th = 2 * np.pi * k / N
        beta = b * np.exp(1j * th)
        if sigma > 0 or dyn_tol:
            cap = noisy_steps if sigma > 0 else 20000
            sacc = None
            for t in range(cap):
                ph, _ = _cphi(head, x, z, beta, onehot, sl)
                if dyn_tol and np.abs(ph - z).max() < dyn_tol:
                    break
                z = z + 0.5 * (ph - z)
                steps += 1
                if sigma > 0:
                    z = z + sigma * (rng.standard_normal(z.shape) + 1j * rng.standard_normal(z.shape))
                    if t >= cap - avg:
                        s = [np.tanh(z[:, s_]) for s_ in sl[:-1]] + [z[:, sl[-1]]]
                        sacc = s if sacc is None else [a + c for a, c in zip(sacc, s)]
            ss = [a / avg for a in sacc] if sigma > 0 else \
                [np.tanh(z[:, s_]) for s_ in sl[:-1]] + [z[:, sl[-1]]]
            if dyn_tol and not np.abs(_cphi(head, x, z, beta, onehot, sl)[0] - z).max() < dyn_tol:
                ok = False
        else:
            for it in range(80):
                ph, _ = _cphi(head, x, z, beta, onehot, sl)
                R = z - ph
                if np.abs(R).max() < 1e-11:
                    break
                d = np.ones_like(z)
                h = sl[-1].start
                d[:, :h] = 1.0 / np.cosh(z[:, :h]) ** 2
                J = en.jacobian(A, d, _csoftmax(z[:, sl[-1]]), beta, sl[-1])
                z = z + np.linalg.solve(J, -R[:, :, None])[:, :, 0]
                steps += 1
            else:
                ok = False
            ss = [np.tanh(z[:, s_]) for s_ in sl[:-1]] + [z[:, sl[-1]]]
        c = np.exp(-1j * th) / (N * b)
        prev = x
        for kk in range(len(head.weights)):
            accW[kk] += -c * (ss[kk].T @ prev) / B
            accb[kk] += -c * ss[kk].mean(axis=0)
            prev = ss[kk]
    flat = np.concatenate([a.real.ravel() for a in accW + accb])
    return flat, steps, ok


# ------------------------------------------------------------------------------- part 1
def estimators(nudge_sets=(4, 6, 8)):
    out = {"one-sided EP": ("ep", False), "centered EP": ("ep", True)}
    for D in nudge_sets:
        out[f"real hEP {D} nudges"] = ("scheme", hep_scheme(D))
    out["real hEP M=10 (Lobatto, 6)"] = ("scheme", cosine_scheme(10))
    out["real hEP M=12 (Lobatto, 6)"] = ("scheme", cosine_scheme(12))
    out["real hEP oscillating H=5"] = ("osc", 5)
    for N in (4, 6, 8):
        out[f"complex hEP N={N}"] = ("complex", N)
    return out


def run_estimator(head, kind, arg, x, y, b, sigma, rng, relax=None):
    """Returns (flat gradient, relaxation steps, converged)."""
    noise = StateNoise(sigma, rng) if sigma > 0 else None
    if relax is not None:
        head = EnergyHead(head.sizes, weights=head.weights, biases=head.biases, relax=relax,
                          max_coupling=None)
    if kind == "complex":
        return complex_hep(head, x, y, b, arg, sigma, rng,
                           dyn_tol=relax.tol if relax is not None else None)
    if kind == "ep":
        g = head.ep_gradient(x, y, b, centered=arg, noise=noise)
    elif kind == "scheme":
        g = head.estimate(x, y, b, arg, noise=noise)
    else:
        g = oscillating_gradient(head, x, y, b, period=128, substeps=8, harmonics=arg,
                                 noise=noise)
    return g.flat(), g.info["relax_steps"], bool(g.info["converged"])


def trained_heads(data, seeds, epochs=2):
    """64-64-10 heads trained online with exact gradients on the SNN features (lr 0.02);
    each evaluated on 8 training samples."""
    Xtr, ytr, Xte, yte = data
    out = []
    for seed in range(seeds):
        head = EnergyHead((Xtr.shape[1], 64, 10), seed=seed)
        rng = np.random.default_rng(seed)
        for _ in range(epochs):
            for i in rng.permutation(len(Xtr)):
                head.apply(head.exact_gradient(Xtr[i], int(ytr[i])), 0.02)
        idx = rng.choice(len(Xtr), 8, replace=False)
        x, y = Xtr[idx], ytr[idx]
        out.append((head, x, y, head.exact_gradient(x, y).flat()))
        print(f"  trained head seed {seed}: test acc {head.accuracy(Xte, yte):.4f}, "
              f"||A|| {head.coupling_norm():.3f}", file=sys.stderr, flush=True)
    return out


def part_gradients(seeds, repeats, noises, quick, data):
    ests = estimators()
    fams = {"init": {"coupling": 0.5}, "strong": {"coupling": 1.0, "max_coupling": None},
            "trained": None}
    amps = AMPS if not quick else [0.2, 0.5, 1.0, 2.0]
    res = {}
    for fam, kw in fams.items():
        res[fam] = {}
        heads = []
        if kw is None:
            heads = trained_heads(data, max(1, seeds // 2 if quick else seeds))
        for seed in range(seeds if kw is not None else 0):
            head = EnergyHead((16, 32, 10), seed=seed, **kw)
            rng = np.random.default_rng(100 + seed)
            x, y = rng.uniform(0, 1, (8, 16)), rng.integers(0, 10, 8)
            heads.append((head, x, y, head.exact_gradient(x, y).flat()))
        for name, (kind, arg) in ests.items():
            rows = {}
            for sigma in (noises if fam != "strong" else [0.0]):
                for b in amps:
                    errs, coss, steps, conv = [], [], [], True
                    reps = 1 if sigma == 0 else repeats
                    for si, (head, x, y, ex) in enumerate(heads):
                        for r in range(reps):
                            rng = np.random.default_rng(1000 * si + r)
                            g, st, ok = run_estimator(head, kind, arg, x, y, b, sigma, rng)
                            conv &= ok
                            errs.append(float(np.linalg.norm(g - ex) / np.linalg.norm(ex)))
                            coss.append(float(g @ ex / (np.linalg.norm(g) * np.linalg.norm(ex)
                                                        + 1e-300)))
                    if sigma == 0:  # physical steps: damped dynamics to 1e-6 on seed 0
                        head, x, y, _ = heads[0]
                        _, st, _ = run_estimator(head, kind, arg, x, y, b, 0.0, None,
                                                 relax=RelaxParams(solver="dynamics", tol=1e-6,
                                                                   max_steps=20000))
                        steps.append(st)
                    rows[f"{sigma}|{b}"] = {
                        "sigma": sigma, "amplitude": b, "median_rel_err": statistics.median(errs),
                        "max_rel_err": max(errs), "median_cos": statistics.median(coss),
                        "dynamics_steps": steps[0] if steps else None, "converged": conv}
            res[fam][name] = rows
            print(f"  [{fam}] {name} done", file=sys.stderr, flush=True)
    return res, amps


def usable_summary(res, amps, noises):
    out = {}
    for fam, ests in res.items():
        out[fam] = {}
        for name, rows in ests.items():
            out[fam][name] = {}
            for sigma in noises:
                if f"{sigma}|{amps[0]}" not in rows:
                    continue
                ok = [b for b in amps if rows[f"{sigma}|{b}"]["median_rel_err"] <= USABLE]
                out[fam][name][str(sigma)] = [min(ok), max(ok)] if ok else None
    return out


def print_tables(res, amps, noises, usable):
    for fam, ests in res.items():
        for sigma in noises:
            if f"{sigma}|{amps[0]}" not in next(iter(ests.values())):
                continue
            print(f"\n== {fam} heads, state noise sigma={sigma}: median relative error "
                  f"(median cosine) vs exact; steps = damped-dynamics steps (seed 0, noise-free)")
            print(f"{'estimator':30s}" + "".join(f"{'b=' + str(b):>17s}" for b in amps)
                  + "   usable b")
            for name, rows in ests.items():
                cells = []
                for b in amps:
                    r = rows[f"{sigma}|{b}"]
                    cells.append(f"{r['median_rel_err']:9.1e} ({r['median_cos']:.3f})"[:17]
                                 .rjust(17))
                u = usable[fam][name].get(str(sigma))
                print(f"{name:30s}" + "".join(cells) + f"   {u}")
            if sigma == 0:
                print(f"{'steps':30s}" + "".join(f"{'':>17s}" for _ in range(0)))
                for name, rows in ests.items():
                    print(f"  {name:28s}" + "".join(
                        f"{rows[f'{sigma}|{b}']['dynamics_steps']!s:>17s}" for b in amps))


# ------------------------------------------------------------------------------- part 2
def snn_features(pools: int = 2):
    """(Xtr, ytr, Xte, yte): z-scored hidden spike rates of models/randman_small.onnx."""
    from edgelearn.data.randman import randman_splits
    from edgelearn.io import load_network
    from edgelearn.runtime.reference import run
    root = Path(__file__).resolve().parents[1]
    net = load_network(str(root / "models" / "randman_small.onnx"))
    tr, te = randman_splits(n_classes=10, n_units=32, n_steps=50, dim_manifold=2, alpha=2.0,
                            samples_per_class=200, seed=0)

    def feats(ds):
        s = run(net, np.transpose(ds.x, (1, 0, 2)).astype(np.float64),
                record=("spikes",)).spikes[net.layers[0].name]
        T = s.shape[0]
        return np.concatenate([s[i * T // pools:(i + 1) * T // pools].mean(0)
                               for i in range(pools)], axis=1)

    Xtr, Xte = feats(tr), feats(te)
    mu, sd = Xtr.mean(0), Xtr.std(0) + 1e-3
    return (Xtr - mu) / sd, tr.y, (Xte - mu) / sd, te.y


def train_online(data, estimator, amplitude, sigma, epochs, seed=0, lr=0.02, nudges=6,
                 hidden=64):
    Xtr, ytr, Xte, yte = data
    head = EnergyHead((Xtr.shape[1], hidden, 10), seed=seed)
    noise = StateNoise(sigma, np.random.default_rng(seed + 7)) if sigma > 0 else None
    learner = OnlineHEP(head, lr=lr, amplitude=amplitude, nudges=nudges, estimator=estimator,
                        noise=noise)
    rng = np.random.default_rng(seed)
    accs = []
    t0 = time.perf_counter()
    for _ in range(epochs):
        for i in rng.permutation(len(Xtr)):
            learner.update(Xtr[i], int(ytr[i]))
        accs.append(head.accuracy(Xte, yte))  # evaluation is noise-free
    return {"test_acc": accs, "final": accs[-1], "seconds": time.perf_counter() - t0,
            "nonconverged": learner.nonconverged,
            "steps_per_update": learner.relax_steps / max(learner.updates, 1)}


def part_online(epochs, sigmas, quick, data):
    """Noise-free: exact vs real hEP (6 nudges, b 0.5) vs centered EP (b 0.5). Under each state
    noise sigma > 0: real hEP (4 nudges: the smallest noise gain, b 2) vs centered EP at b 0.5,
    1 and 2 vs one-sided EP at b 1 (evaluation always noise-free)."""
    runs = []
    for sigma in sigmas:
        if sigma == 0:
            runs += [("exact", 0.5, 6, 0.0), ("hep", 0.5, 6, 0.0), ("centered", 0.5, 6, 0.0)]
        else:
            runs += [("hep", 2.0, 4, sigma), ("centered", 0.5, 6, sigma),
                     ("centered", 1.0, 6, sigma), ("centered", 2.0, 6, sigma)]
            if not quick:
                runs += [("hep", 1.0, 4, sigma), ("one-sided", 1.0, 6, sigma)]
    out = {}
    for est, b, nudges, sigma in runs:
        key = f"{est}{'' if est != 'hep' else nudges} b={b} sigma={sigma}"
        out[key] = {"estimator": est, "amplitude": b, "nudges": nudges, "sigma": sigma,
                    **train_online(data, est, b, sigma, epochs, nudges=nudges)}
        r = out[key]
        print(f"  online {key:32s} test acc per epoch {[round(a, 4) for a in r['test_acc']]}"
              f"  ({r['seconds']:.0f} s, {r['steps_per_update']:.0f} relax steps/update, "
              f"{r['nonconverged']} non-converged)", flush=True)
    return out


# ------------------------------------------------------------------------------- part 3
def part_speed():
    head = EnergyHead((128, 64, 10), seed=0)
    rng = np.random.default_rng(0)
    xs = rng.uniform(0, 1, (41, 128))
    head.hep_update(xs[0], 0, 0.01)
    ts = []
    for i in range(1, 41):
        t0 = time.perf_counter()
        g = head.hep_update(xs[i], i % 10, 0.01)
        ts.append(time.perf_counter() - t0)
    ex = []
    for i in range(1, 21):
        t0 = time.perf_counter()
        head.exact_gradient(xs[i], i % 10)
        ex.append(time.perf_counter() - t0)
    return {"hep_update_ms_median": 1e3 * statistics.median(ts),
            "exact_gradient_ms_median": 1e3 * statistics.median(ex),
            "newton_iterations_per_update": g.info["relax_steps"],
            "memory_bytes_128_64_10": hep_memory_bytes(head)}


def plot(path, res, amps, online):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sigmas = sorted({r["sigma"] for r in next(iter(res["init"].values())).values()})
    panels = [("strong", 0.0), ("trained", 0.0)] + [("init", s) for s in sigmas if s > 0]
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(4.6 * (len(panels) + 1), 4.2))
    for ax, (fam, sigma) in zip(axes, panels):
        for name, rows in res[fam].items():
            ys = [rows[f"{sigma}|{b}"]["median_rel_err"] for b in amps]
            ls = "--" if "complex" in name else ("-" if "real" in name else ":")
            ax.loglog(amps, np.maximum(ys, 1e-12), ls, marker="o", ms=3, label=name)
        ax.axhline(USABLE, color="gray", lw=0.5)
        ax.set_title(f"{fam} heads, state noise {sigma}")
        ax.set_xlabel("amplitude b")
        ax.set_ylabel("median relative error vs exact")
    axes[0].legend(fontsize=6)
    ax = axes[-1]
    for key, r in online.items():
        ax.plot(range(1, len(r["test_acc"]) + 1), r["test_acc"], marker="o", label=key)
    ax.set_title("online training on SNN features (test acc.)")
    ax.set_xlabel("epoch")
    ax.legend(fontsize=6)
    fig.tight_layout()
    atomic_save_png(fig, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.01, 0.05])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--online-noise", type=float, nargs="+", default=[0.0, 0.1, 0.3])
    ap.add_argument("--quick", action="store_true", help="fewer amplitudes and runs")
    ap.add_argument("--skip-online", action="store_true")
    ap.add_argument("--json", default="reports/bench_hep.json")
    ap.add_argument("--plot", default="reports/bench_hep.png")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    speed = part_speed()
    print(f"single-sample hEP update, 128-64-10 head, 6 nudges: "
          f"{speed['hep_update_ms_median']:.2f} ms median "
          f"(exact gradient {speed['exact_gradient_ms_median']:.2f} ms); learning memory "
          f"{speed['memory_bytes_128_64_10']['extra_state_bytes']} B beyond the "
          f"{speed['memory_bytes_128_64_10']['weights_bytes']} B of float32 weights")
    data = snn_features()
    res, amps = part_gradients(args.seeds, args.repeats, args.noise, args.quick, data)
    usable = usable_summary(res, amps, args.noise)
    print_tables(res, amps, args.noise, usable)
    online = {} if args.skip_online else part_online(args.epochs, args.online_noise, args.quick, data)
    out = {"speed": speed, "amplitudes": amps, "usable_threshold": USABLE, "gradients": res,
           "usable": usable, "online": online, "seconds": time.perf_counter() - t0,
           "args": vars(args)}
    if args.json:
        atomic_write_text(args.json, json.dumps(out, indent=1))
    if args.plot:
        try:
            plot(args.plot, res, amps, online)
        except ImportError:
            print("matplotlib missing: no plot", file=sys.stderr)
    print(f"\nwrote {args.json} {args.plot} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
