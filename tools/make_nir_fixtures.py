#!/usr/bin/env python3
"""Make the NIR fixtures written by snnTorch's own exporter (tests/fixtures/snntorch_*.nir).

Two 20-16-4 networks, made with snnTorch 1.0.0 and exported with ``snntorch.export_to_nir``
(NIR stores no dt; snnTorch writes its time constants for dt = 1e-4 s):

    snntorch_lif.nir       Linear -> Leaky -> Linear -> Leaky           (NIR LIF nodes)
    snntorch_cubalif.nir   Linear -> Synaptic -> Linear -> Synaptic     (NIR CubaLIF nodes)

Beside each, ``<name>.npz`` holds a seeded input spike train ``x`` [T, B, 20] and the spikes
of both neuron layers that snnTorch's own importer (``snntorch.import_from_nir``) produces from
the file: ``hidden`` [T, B, 16] and ``output`` [T, B, 4]. tests/test_nir_snntorch.py checks
that edgelearn's import reproduces them exactly, and also against ``nir_reference``, a forward
Euler simulation of the NIR equations written from the NIR node definitions (below).

    pip install torch==2.13.0 snntorch==1.0.0 nirtorch==2.6
    python tools/make_nir_fixtures.py [--out tests/fixtures]
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

T, BATCH, SIZES, DT = 60, 4, (20, 16, 4), 1e-4


def build(kind: str, seed: int):
    """A snnTorch 20-16-4 net of Leaky ('lif') or Synaptic ('cubalif') layers: per-neuron
    decays (NIR's type inference needs vector parameters), one threshold per layer (snnTorch's
    importer accepts no other)."""
    import snntorch as snn
    import torch

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    mods = []
    for n_in, n_out in zip(SIZES, SIZES[1:]):
        fc = torch.nn.Linear(n_in, n_out)
        with torch.no_grad():
            fc.weight.copy_(torch.randn(n_out, n_in, generator=g) * 1.2 / n_in ** 0.5)
            fc.bias.copy_(torch.randn(n_out, generator=g) * 0.05)
        beta = 0.75 + 0.2 * torch.rand(n_out, generator=g)
        thr = torch.full((n_out,), 0.8 if n_out == SIZES[-1] else 1.0)   # importer: one per layer
        if kind == "lif":
            neuron = snn.Leaky(beta=beta, threshold=thr, init_hidden=True,
                               output=n_out == SIZES[-1])
        else:
            alpha = 0.5 + 0.3 * torch.rand(n_out, generator=g)
            neuron = snn.Synaptic(alpha=alpha, beta=beta, threshold=thr, init_hidden=True,
                                  output=n_out == SIZES[-1])
        mods += [fc, neuron]
    return torch.nn.Sequential(*mods)


def snntorch_spikes(graph, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spikes of both neuron layers of ``snntorch.import_from_nir(graph)`` on x [T, B, n]:
    the imported module is stepped T times (its neurons keep their own state) and the hidden
    layer's spikes are read with a forward hook on it."""
    import torch
    from snntorch.import_nir import import_from_nir

    net = import_from_nir(graph)
    hidden: list[np.ndarray] = []
    neuron = net.get_submodule("1")
    neuron.register_forward_hook(lambda mod, args, out: hidden.append(
        (out[0] if isinstance(out, tuple) else out).numpy().copy()))
    output = []
    with torch.no_grad():
        for t in range(x.shape[0]):
            out, _ = net(torch.as_tensor(x[t], dtype=torch.float32))
            output.append((out[0] if isinstance(out, tuple) else out).numpy().copy())
    return np.stack(hidden).astype(np.uint8), np.stack(output).astype(np.uint8)


def nir_reference(graph, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward-Euler simulation of a chain Input -> Affine -> (LIF|CubaLIF) -> ... -> Output,
    written from the NIR node equations (dt = DT):

        CubaLIF  I <- I + dt/tau_syn (-I + w_in a),   a = W s + b
                 v <- v + dt/tau_mem (v_leak - v + r I)
        LIF      v <- v + dt/tau (v_leak - v + r a)
        spike where v > v_threshold, then v <- v_reset (same step)."""
    nodes = dict(graph.nodes)
    succ = {s: d for s, d in graph.edges}
    name, s = "input", x.astype(np.float64)
    layers = []
    while True:
        proj = succ[name]
        if type(nodes[proj]).__name__ == "Output":
            break
        neu = succ[proj]
        layers.append((nodes[proj], nodes[neu]))
        name = neu
    outs = []
    states = [(np.zeros((x.shape[1], len(np.atleast_1d(n.v_threshold)))),) * 2
              for _, n in layers]
    spikes = [np.zeros((x.shape[0],) + st[0].shape, np.uint8) for st in states]
    for t in range(x.shape[0]):
        h = s[t]
        for k, (p, n) in enumerate(layers):
            a = h @ np.asarray(p.weight, np.float64).T + np.asarray(p.bias, np.float64)
            cur, v = states[k]
            if type(n).__name__ == "CubaLIF":
                cur = cur + DT / n.tau_syn * (-cur + n.w_in * a)
                v = v + DT / n.tau_mem * (n.v_leak - v + n.r * cur)
            else:
                v = v + DT / n.tau * (n.v_leak - v + n.r * a)
            z = v > n.v_threshold
            v = np.where(z, n.v_reset, v)
            states[k] = (cur, v)
            spikes[k][t] = z
            h = z.astype(np.float64)
        outs.append(h)
    return spikes[0], spikes[1]


def make(kind: str, out: Path, seed: int) -> dict:
    import nir
    import torch
    from snntorch.export_nir import export_to_nir

    net = build(kind, seed)
    graph = export_to_nir(net, torch.zeros(SIZES[0]))
    buf = io.BytesIO()
    nir.write(buf, graph)
    path = out / f"snntorch_{kind}.nir"
    path.write_bytes(buf.getvalue())
    graph = nir.read(path)
    rng = np.random.default_rng(seed)
    x = (rng.random((T, BATCH, SIZES[0])) < 0.25).astype(np.uint8)
    hidden, output = snntorch_spikes(graph, x)
    ref_h, ref_o = nir_reference(graph, x)
    with open(out / f"snntorch_{kind}.npz", "wb") as fh:
        np.savez(fh, x=x, hidden=hidden, output=output)
    return {"file": path.name, "hidden_rate": float(hidden.mean()),
            "output_rate": float(output.mean()),
            "reference_differs": int((ref_h != hidden).sum() + (ref_o != output).sum())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "tests" /
                                        "fixtures"))
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for seed, kind in enumerate(("lif", "cubalif")):
        print(make(kind, out, seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
