"""Generate the shared fixed-point test vectors of the learning rules (tests/vectors/rules/).

Each case drives one rule's ``step_fixed`` from its ``init_fixed`` state for a few dozen steps
on seeded integer inputs and records the int8 weights after every step, the per-step stats and
the final state. A firmware that implements docs/learning-rules.md must reproduce every array
bit for bit (tests/test_rules_vectors.py replays them with the numpy implementation).

    python tools/make_rule_vectors.py            write manifest.json + <case>.npz
    python tools/make_rule_vectors.py --check    regenerate in memory and compare with disk
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgelearn.atomic import atomic_write_bytes, atomic_write_text  # noqa: E402
from edgelearn.fixed import rng_init  # noqa: E402
from edgelearn.rules.lpl_codes import EPOCH_FIELDS  # noqa: E402
from edgelearn.rules import istdp, lpl_rate, lpl_spiking, oja, qmath, triplet_stdp  # noqa: E402

OUT = ROOT / "tests" / "vectors" / "rules"
MODULES = {"lpl_rate": lpl_rate, "lpl_spiking": lpl_spiking, "triplet_stdp": triplet_stdp,
           "istdp": istdp, "oja": oja}

# name, rule, params, n_in, n_out, steps, w_shift, description
CASES = [
    ("lpl_rate_basic", "lpl_rate",
     dict(eta=0.05, tau_mean=20.0, tau_var=20.0, warmup=4, w_min=-0.8, w_max=0.8),
     12, 5, 48, 7, "LPL rate form, predictive + Hebbian, full stochastic rounding, bounds"),
    ("lpl_rate_decorr_filters_dither", "lpl_rate",
     dict(eta=0.05, lam_decorr=10.0, tau_mean=30.0, tau_var=15.0, tau_pre=4.0, tau_post=3.0,
          warmup=2, rounding="dither", lam_hom=0.5, rate_target=0.1),
     10, 6, 48, 6.5, "LPL rate form with decorrelation, homeostasis to a fixed target, "
                     "input/output filters, gain, dither rounding, non-integer w_shift"),
    ("lpl_rate_homeostasis", "lpl_rate",
     dict(eta=0.05, lam=0.5, lam_hom=2.0, tau_mean=10.0, tau_var=10.0, warmup=8),
     9, 5, 48, 7, "LPL rate form with per-neuron homeostatic targets taken at the end of "
                  "the warm-up"),
    ("lpl_rate_saturating", "lpl_rate",
     dict(eta=4.0, xi=1e-3, tau_mean=3.0, tau_var=2.0, warmup=0, w_min=-0.25, w_max=0.25),
     6, 4, 32, 7, "LPL rate form driven hard: weight bounds and int32 saturation active"),
    ("lpl_rate_event_spikes", "lpl_rate",
     dict(eta=0.05, tau_mean=20.0, tau_var=20.0, tau_post=5.0, warmup=3, w_min=-0.5,
          w_max=0.5),
     16, 6, 48, 7, "LPL rate form on sparse input spikes (event-driven path: only active "
                   "columns draw PRNG words) with initial weights outside the bounds"),
    ("lpl_spiking_exact", "lpl_spiking",
     dict(eta=1.0, variant="exact", tau_mean=0.05, tau_var=0.02, delay=3e-3),
     8, 4, 64, 7, "spiking LPL, per-synapse eligibility traces (dither-rounded)"),
    ("lpl_spiking_factorised", "lpl_spiking",
     dict(eta=1.0, variant="factorised", tau_mean=0.05, tau_var=0.02, delay=3e-3,
          rounding="dither"),
     8, 4, 64, 7, "spiking LPL, factorised per-neuron traces, dither rounding"),
    ("triplet_stdp", "triplet_stdp", dict(a3_plus=0.05, tau_hom=0.1, w_min=-1.0, w_max=1.0),
     7, 5, 64, 7, "triplet STDP with homeostasis (amplitudes raised to be visible)"),
    ("istdp", "istdp", dict(eta=0.01, w_min=0.0, w_max=1.0), 7, 5, 64, 7,
     "Vogels 2011 inhibitory STDP"),
    ("oja", "oja", dict(eta=0.02, w_min=-2.0, w_max=2.0), 6, 3, 40, 6, "Oja's rule"),
]


def _params_json(p) -> dict:
    out = {}
    for f in dataclasses.fields(p):
        v = getattr(p, f.name)
        if f.name == "epoch" and v == 1:      # added later; its default keeps old entries as is
            continue
        out[f.name] = ("inf" if v == math.inf else "-inf" if v == -math.inf else v)
    return out


def params_from_json(mod, d: dict):
    conv = {k: (math.inf if v == "inf" else -math.inf if v == "-inf" else v) for k, v in d.items()}
    return mod.Params(**conv)


def _inputs(name: str, rule: str, n_in: int, n_out: int, steps: int,
            rng: np.random.Generator) -> dict:
    if rule in ("lpl_rate", "oja"):
        lat = np.cumsum(rng.normal(0, 0.3, (steps, 2)), axis=0)
        x = lat @ rng.normal(0, 1, (2, n_in)) + rng.normal(0, 0.5, (steps, n_in))
        pre = np.clip(np.round(x * 64), -2000, 2000).astype(np.int64)
        post = np.clip(np.round((x @ rng.normal(0, 0.4, (n_in, n_out))) * 64), -3000, 3000)
        d = {"pre": pre, "post": post.astype(np.int64)}
        if "event" in name:         # binary input spikes in Q.8, 15 % active
            d["pre"] = (rng.random((steps, n_in)) < 0.15).astype(np.int64) << 8
        if "filters" in name:       # per-neuron f'(a) in Q.12
            d["gain"] = rng.integers(1024, 4097, (steps, n_out)).astype(np.int64)
        if "saturating" in name:    # extreme int16 activities
            d["pre"] = rng.choice([-32768, 32767, 0, 500], (steps, n_in)).astype(np.int64)
            d["post"] = rng.choice([-32768, 32767, 0, -700], (steps, n_out)).astype(np.int64)
        return d
    d = {"pre": (rng.random((steps, n_in)) < 0.2).astype(np.int64),
         "post": (rng.random((steps, n_out)) < 0.15).astype(np.int64)}
    if rule == "lpl_spiking":
        u = rng.integers(0, 2 * 4096, (steps, n_out))
        d["fprime"] = lpl_spiking.surrogate_q(u, 4096, 10).astype(np.int64)
    return d


def run_case(rule: str, p, n_in: int, n_out: int, w_shift, inputs: dict, w0: np.ndarray,
             seed: int) -> dict:
    """Replay a case with the numpy implementation; returns the recorded arrays."""
    mod = MODULES[rule]
    st = mod.init_fixed(p, n_in, n_out)
    rng = rng_init(seed)
    w = w0.astype(np.int8)
    ws, stats = [], []
    for t in range(inputs["pre"].shape[0]):
        pre, post = inputs["pre"][t], inputs["post"][t]
        if rule == "lpl_rate":
            gain = inputs["gain"][t] if "gain" in inputs else None
            w, st, rng, s = mod.step_fixed(w, pre, post, st, p, rng, w_shift, gain_q=gain)
        elif rule == "lpl_spiking":
            w, st, rng, s = mod.step_fixed(w, pre, post, inputs["fprime"][t], st, p, rng, w_shift)
        else:
            w, st, rng, s = mod.step_fixed(w, pre, post, st, p, rng, w_shift)
        ws.append(w.astype(np.int64))
        stats.append(np.array(s, dtype=np.int64))
    out = {"w": np.stack(ws), "stats": np.stack(stats), "rng_counter": np.array([rng.counter])}
    for name, arr in zip(st._fields, st):
        if name in EPOCH_FIELDS and not np.size(arr):
            continue          # no learning epoch (a rule-level stream has none): not written
        out[f"state__{name}"] = np.asarray(arr).astype(np.int64)
    return out


def generate() -> tuple[dict, dict[str, bytes]]:
    entries, files = [], {}
    for i, (name, rule, kw, n_in, n_out, steps, w_shift, desc) in enumerate(CASES):
        mod = MODULES[rule]
        p = mod.Params(**kw)
        rng = np.random.default_rng(1000 + i)
        inputs = _inputs(name, rule, n_in, n_out, steps, rng)
        lo, hi = qmath.int_bounds(p.w_min, p.w_max, w_shift)
        span = (-128, 127) if "outside" in desc else (max(lo, -60), min(hi, 60))
        w0 = rng.integers(span[0], span[1] + 1, (n_out, n_in)).astype(np.int64)
        seed = 0xC0FFEE + i
        rec = run_case(rule, p, n_in, n_out, w_shift, inputs, w0, seed)
        arrays = {**inputs, "w0": w0, **rec}
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        data = buf.getvalue()
        fname = f"{name}.npz"
        files[fname] = data
        entries.append({
            "name": name, "kind": "rule_stream", "file": f"rules/{fname}", "description": desc,
            "rule": rule, "params": _params_json(p), "w_shift": w_shift, "seed": seed,
            "n_in": n_in, "n_out": n_out, "steps": steps,
            "arrays": sorted(arrays), "sha256": hashlib.sha256(data).hexdigest(),
        })
    manifest = {
        "format": "edgelearn-vectors", "version": 1, "generator": "tools/make_rule_vectors.py",
        "spec": "docs/learning-rules.md",
        "dtypes": "all arrays int64; w [T, n_out, n_in] int8 values after each step; stats "
                  "[T, 4] = (n_changed, n_clipped, n_saturated, skipped); state__<field> the "
                  "final State; rng_counter the PRNG counter after the last step (key = seed)",
        "vectors": entries,
    }
    return manifest, files


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the files on disk")
    args = ap.parse_args(argv)
    manifest, files = generate()
    text = json.dumps(manifest, indent=1) + "\n"
    if args.check:
        bad = []
        if (OUT / "manifest.json").read_text() != text:
            bad.append("manifest.json")
        for fname, data in files.items():
            if not (OUT / fname).exists() or (OUT / fname).read_bytes() != data:
                bad.append(fname)
        if bad:
            print(f"vectors differ from a fresh generation: {', '.join(bad)}", file=sys.stderr)
            return 1
        print(f"{len(files)} rule vectors match")
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for fname, data in files.items():
        atomic_write_bytes(OUT / fname, data)
    atomic_write_text(OUT / "manifest.json", text)
    print(f"wrote {len(files)} vectors to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
