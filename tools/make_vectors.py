#!/usr/bin/env python3
"""Write the shared fixed-point test vectors (tests/vectors/, format in tests/vectors/README.md).

    python tools/make_vectors.py [--out tests/vectors] [--check]

Writes ``fixed.json`` (a manifest) plus the files it lists: ``fixed_primitives.npz`` (rounding,
decay, hash, PRNG, stochastic rounding) and, per LIF case, a device image ``lif_<case>.bin`` and
``lif_<case>.npz`` with the integer input and every expected integer trace (computed by the
reference LIF step, edgelearn.kernels.lif_fixed.reference_step). Everything is
generated from fixed seeds, so re-running reproduces the same arrays. ``--check`` regenerates in
memory and compares with the files on disk (exit 1 on any difference).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np

from edgelearn.atomic import atomic_write_bytes, atomic_write_text
from edgelearn.fixed import (apply_decay, hash32, rng_draw, rng_init, round_shift,
                             stochastic_shift)
from edgelearn.kernels.image import to_image
from edgelearn.kernels.lif_fixed import QLayer, QNetwork
from edgelearn.kernels.lif_kernels import qrun

FORMAT = "edgelearn-vectors"
VERSION = 1


def primitives() -> dict:
    rng = np.random.default_rng(20261129)
    out = {}
    x = np.concatenate([np.arange(-40, 41), rng.integers(-2**30, 2**30, 200)]).astype(np.int64)
    s = np.concatenate([np.arange(81) % 6, rng.integers(0, 20, 200)]).astype(np.int64)
    out["round_shift_x"], out["round_shift_s"] = x, s
    out["round_shift_y"] = np.array([round_shift(a, int(b)) for a, b in zip(x, s)], np.int64)
    dx = np.concatenate([np.arange(-20, 21), rng.integers(-2**15, 2**15, 300)]).astype(np.int64)
    dd = np.concatenate([np.full(41, 3355), rng.integers(0, 4097, 300)]).astype(np.int64)
    out["decay_x"], out["decay_d"], out["decay_y"] = dx, dd, apply_decay(dx, dd)
    hx = np.concatenate([np.arange(16), rng.integers(0, 2**32, 100, dtype=np.uint64)])
    out["hash32_x"], out["hash32_y"] = hx.astype(np.uint64), hash32(hx).astype(np.uint64)
    st = rng_init(12345)
    draws = []
    for n in (5, 1, 10):
        r, st = rng_draw(st, n)
        draws.append(r)
    st2 = rng_init(0xFFFFFFFF)._replace(counter=0xFFFFFFFE)   # counter wrap-around
    r, _ = rng_draw(st2, 4)
    out["rng_seed"] = np.array([12345], np.uint64)
    out["rng_requests"] = np.array([5, 1, 10], np.int64)
    out["rng_draws"] = np.concatenate(draws).astype(np.uint64)
    out["rng_wrap_key_counter"] = np.array([0xFFFFFFFF, 0xFFFFFFFE], np.uint64)
    out["rng_wrap_draws"] = r.astype(np.uint64)
    sx = rng.integers(-5000, 5000, 300).astype(np.int64)
    ss = rng.integers(0, 12, 300).astype(np.int64)
    sr, _ = rng_draw(rng_init(7), 300)
    out["sshift_x"], out["sshift_s"], out["sshift_r"] = sx, ss, sr.astype(np.uint64)
    out["sshift_y"] = np.array([stochastic_shift(a, int(b), c) for a, b, c in zip(sx, ss, sr)],
                               np.int64)
    # the LPL step's inv = (1 << k) // v (numpy int64 floor division, 0 for v = 0)
    r2 = np.random.default_rng(20261207)
    edge = [1, 2, 3, 7, 255, 65535, 65536, 65537, (1 << 31) - 1, 1 << 31, (1 << 32) - 1,
            1 << 32, (1 << 32) + 1, 1 << 40, (1 << 62) - 1, 0, -1, -3, -(1 << 33)]
    kv = [(k, v) for k in (0, 1, 31, 32, 33, 44, 50, 51, 52, 60, 62) for v in edge]
    kv += [(int(k), int(v)) for k, v in zip(r2.integers(0, 63, 300), np.concatenate([
        r2.integers(1, 1 << 32, 200), r2.integers(-(1 << 40), 1 << 40, 100)]))]
    k = np.array([a for a, _ in kv], np.int64)
    v = np.array([b for _, b in kv], np.int64)
    with np.errstate(divide="ignore"):
        y = np.where(v == 0, 0, (np.int64(1) << k) // np.where(v == 0, 1, v))
    out["inv_k"], out["inv_v"], out["inv_y"] = k, v, y.astype(np.int64)
    return out


def _layer(rng, name, n_in, n_out, **kw) -> QLayer:
    w = rng.integers(-127, 128, (n_out, n_in))
    return QLayer(name=name, weight=w, alpha=kw.pop("alpha", rng.integers(2000, 4000, n_out)),
                  beta=kw.pop("beta", rng.integers(3000, 4096, n_out)),
                  threshold=kw.pop("threshold", np.full(n_out, 1500)), **kw)


def lif_cases() -> list[tuple[str, str, QNetwork, np.ndarray]]:
    """(name, description, network, integer input [T, B, n_in]) for each LIF case."""
    cases = []
    rng = np.random.default_rng(1)
    net = QNetwork((_layer(rng, "hidden", 12, 16, w_shift=0, input_scale=0.05),
                    _layer(rng, "readout", 16, 4, spiking=False, threshold=0, w_shift=2)),
                   name="ff_int8", input_scale=0.05, meta={"readout": "max"})
    cases.append(("ff_int8", "feed-forward, int8 inputs, reset subtract, batch 1", net,
                  rng.integers(-8, 9, (40, 1, 12))))
    rng = np.random.default_rng(2)
    net = QNetwork((_layer(rng, "rec", 20, 24, w_shift=-1, v_shift=1, reset="zero",
                           bias=rng.integers(-300, 300, 24),
                           recurrent=rng.integers(-127, 128, (24, 24))),
                    _layer(rng, "out", 24, 5, w_shift=1, threshold=np.full(5, 900))),
                   name="rec_spikes", meta={})
    cases.append(("rec_spikes", "recurrent, reset zero, bias, negative w_shift, binary spike "
                  "inputs, spiking output, batch 3", net,
                  (rng.random((50, 3, 20)) < 0.15).astype(np.int64)))
    rng = np.random.default_rng(3)
    net = QNetwork((_layer(rng, "hot", 8, 10, w_shift=6, threshold=np.full(10, 30000)),
                    _layer(rng, "ro", 10, 3, spiking=False, threshold=0, w_shift=9,
                           beta=np.full(3, 4096), alpha=np.zeros(3, int))),
                   name="saturating")
    cases.append(("saturating", "large shifts: I and U saturate at the int16 limits", net,
                  rng.integers(-127, 128, (30, 2, 8))))
    rng = np.random.default_rng(4)
    net = QNetwork((_layer(rng, "wide", 10, 6, w_shift=14, state_bits=32,
                           threshold=np.full(6, 1 << 24)),
                    _layer(rng, "ro", 6, 2, spiking=False, threshold=0, w_shift=20,
                           state_bits=32)), name="state32")
    cases.append(("state32", "32-bit state", net, rng.integers(-127, 128, (30, 2, 10))))
    rng = np.random.default_rng(5)
    net = QNetwork((_layer(rng, "wide", 300, 260, w_shift=-3, v_shift=-4,
                           bias=rng.integers(300, 900, 260), threshold=np.full(260, 400),
                           recurrent=rng.integers(-127, 128, (260, 260))),
                    _layer(rng, "ro", 260, 70, spiking=False, threshold=0, w_shift=-2)),
                   name="wide")
    cases.append(("wide", "wide layers: most of 300 inputs active and most of 260 recurrent "
                  "neurons firing (more than 256 weight columns per step), 70 readout "
                  "neurons, batch 2", net, (rng.random((12, 2, 300)) < 0.9).astype(np.int64)))
    return cases


def lif_arrays(net: QNetwork, x: np.ndarray) -> dict:
    rec = qrun(net, x, record=("spikes", "current", "membrane"), impl="reference")
    out = {"x": x.astype(np.int64), "output": rec.output}
    for la in net.layers:
        out[f"current__{la.name}"] = rec.current[la.name]
        out[f"membrane__{la.name}"] = rec.membrane[la.name]
        if la.spiking:
            out[f"spikes__{la.name}"] = rec.spikes[la.name].astype(np.int64)
    return out


def npz_bytes(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def build() -> tuple[dict, dict]:
    """(manifest, {file name: bytes or arrays})."""
    files: dict = {"fixed_primitives.npz": primitives()}
    entries = [{
        "name": "fixed_primitives", "kind": "primitives", "file": "fixed_primitives.npz",
        "description": "edgelearn.fixed primitives: round_shift_{x,s,y} (y = round_shift(x, s)); "
                       "decay_{x,d,y} (y = apply_decay(x, d)); hash32_{x,y}; rng_seed, "
                       "rng_requests, rng_draws (draws of successive requests concatenated, "
                       "stream rng_init(seed)); rng_wrap_key_counter, rng_wrap_draws (4 draws "
                       "from key/counter, counter wraps mod 2^32); sshift_{x,s,r,y} (y = "
                       "stochastic_shift(x, s, r)); inv_{k,v,y} (y = (1 << k) // v, numpy "
                       "int64 floor division, 0 for v = 0: the LPL step's inv).",
    }]
    for name, desc, net, x in lif_cases():
        files[f"lif_{name}.bin"] = to_image(net)
        files[f"lif_{name}.npz"] = lif_arrays(net, x)
        entries.append({
            "name": f"lif_{name}", "kind": "lif_network", "description": desc,
            "image": f"lif_{name}.bin", "file": f"lif_{name}.npz",
            "arrays": "x [T, B, n_in] integer input; output [T, B, n_out]; for every layer L: "
                      "current__L, membrane__L [T, B, n] (state after each step) and, for "
                      "spiking layers, spikes__L [T, B, n]; zero initial state",
        })
    manifest = {"format": FORMAT, "version": VERSION, "generator": "tools/make_vectors.py",
                "spec": "docs/fixed-point.md", "dtypes": "all arrays int64 or uint64",
                "vectors": entries}
    return manifest, files


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "tests"
                                         / "vectors"))
    ap.add_argument("--check", action="store_true", help="compare with the files on disk")
    args = ap.parse_args(argv)
    out = Path(args.out)
    manifest, files = build()
    if args.check:
        bad = []
        for name, content in files.items():
            path = out / name
            if not path.is_file():
                bad.append(f"{name}: missing")
            elif isinstance(content, bytes):
                if path.read_bytes() != content:
                    bad.append(f"{name}: differs")
            else:
                with np.load(path, allow_pickle=False) as z:
                    if set(z.files) != set(content) or not all(
                            np.array_equal(z[k], v) for k, v in content.items()):
                        bad.append(f"{name}: arrays differ")
        for b in bad:
            print(f"make_vectors: {b}", file=sys.stderr)
        print(f"make_vectors: {len(files) - len(bad)} of {len(files)} files match")
        return 1 if bad else 0
    for name, content in files.items():
        atomic_write_bytes(out / name, content if isinstance(content, bytes)
                           else npz_bytes(content))
    atomic_write_text(out / "fixed.json", json.dumps(manifest, indent=2) + "\n")
    print(f"make_vectors: wrote {len(files) + 1} files to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
