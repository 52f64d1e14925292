#!/usr/bin/env python3
"""Export small third-party SNN step graphs with torch.onnx and record the framework's outputs.

Writes into tests/fixtures/ (default):
  snntorch_synaptic_leaky.onnx / .npz   snnTorch Linear+Synaptic(subtract) -> Linear+Leaky(subtract)
  snntorch_recurrent.onnx / .npz        snnTorch Linear+RSynaptic(zero) -> Linear+RLeaky(subtract),
                                         spikes carried as explicit state
  torch_rlif_zero.onnx / .npz           plain torch module: recurrent CUBA LIF with reset-to-zero
                                         as edgelearn defines it, then a leaky-integrator readout
  snntorch_leaky_zero.onnx / .npz       snnTorch Leaky(reset_mechanism="zero"): its reset keeps the
                                         input of the reset step, which edgelearn's model does not
                                         express -> loads as an opaque model

Each module has the step signature ``forward(x, *state) -> (out, *state)`` (explicit state, no
init_hidden). The .npz holds ``input`` [T, B, n_in] (binary spikes), ``output`` [T, B, n_out],
``spikes/<k>`` and ``membrane/<k>`` per neuron layer k (k = 0, 1, ...), all produced by torch
itself from zero state. Weights, decays and thresholds are dyadic (multiples of 2^-6 / 2^-3)
and the script re-draws the input until every membrane keeps a margin from the threshold, so
the recorded spikes do not hinge on float32 summation order.

Needs torch (pip install torch==2.13.0) and snntorch; edgelearn itself never imports torch.
Usage: python tools/export_torch_fixture.py [--out tests/fixtures]
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgelearn.atomic import atomic_write_bytes  # noqa: E402

T, B = 24, 2
MARGIN = 1e-3


def dyadic(rng: np.random.Generator, shape, scale: float, bits: int = 6) -> torch.Tensor:
    w = np.round(rng.standard_normal(shape) * scale * 2**bits) / 2**bits
    return torch.tensor(w, dtype=torch.float32)


def _set_linear(lin: nn.Linear, rng, scale: float) -> None:
    with torch.no_grad():
        lin.weight.copy_(dyadic(rng, tuple(lin.weight.shape), scale))
        lin.bias.copy_(dyadic(rng, tuple(lin.bias.shape), 0.1))


class SnnTorchNet(nn.Module):
    """snnTorch: Linear -> Synaptic -> Linear -> Leaky, explicit state."""

    def __init__(self, rng, n_in=8, n_hid=12, n_out=4, reset="subtract"):
        super().__init__()
        import snntorch as snn

        self.fc1 = nn.Linear(n_in, n_hid)
        self.fc2 = nn.Linear(n_hid, n_out)
        _set_linear(self.fc1, rng, 0.8)
        _set_linear(self.fc2, rng, 0.8)
        self.lif1 = snn.Synaptic(alpha=0.5, beta=0.875, threshold=1.0, reset_mechanism=reset)
        self.lif2 = snn.Leaky(beta=0.75, threshold=0.5, reset_mechanism=reset)
        self.state_sizes = (n_hid, n_hid, n_out)

    def forward(self, x, syn1, mem1, mem2):
        spk1, syn1, mem1 = self.lif1(self.fc1(x), syn1, mem1)
        spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
        return spk2, syn1, mem1, mem2

    def record(self, out, states):
        syn1, mem1, mem2 = states
        return {"membrane/0": mem1, "membrane/1": mem2,
                "spikes/0": (mem1 > 1.0).float(), "spikes/1": out}


class SnnTorchRecurrent(nn.Module):
    """snnTorch: Linear -> RSynaptic(zero) -> Linear -> RLeaky(subtract); spikes are state."""

    def __init__(self, rng, n_in=8, n_hid=10, n_out=4):
        super().__init__()
        import snntorch as snn

        self.fc1 = nn.Linear(n_in, n_hid)
        self.fc2 = nn.Linear(n_hid, n_out)
        _set_linear(self.fc1, rng, 0.8)
        _set_linear(self.fc2, rng, 0.8)
        self.lif1 = snn.RSynaptic(alpha=0.5, beta=0.875, threshold=1.0, reset_mechanism="zero",
                                  linear_features=n_hid)
        self.lif2 = snn.RLeaky(beta=0.75, threshold=0.5, reset_mechanism="subtract",
                               linear_features=n_out)
        _set_linear(self.lif1.recurrent, rng, 0.4)
        _set_linear(self.lif2.recurrent, rng, 0.4)
        self.state_sizes = (n_hid, n_hid, n_hid, n_out, n_out)

    def forward(self, x, spk1, syn1, mem1, spk2, mem2):
        spk1, syn1, mem1 = self.lif1(self.fc1(x), spk1, syn1, mem1)
        spk2, mem2 = self.lif2(self.fc2(spk1), spk2, mem2)
        return spk2, spk1, syn1, mem1, spk2, mem2

    def record(self, out, states):
        spk1, syn1, mem1, spk2, mem2 = states
        return {"membrane/0": mem1, "membrane/1": mem2, "spikes/0": spk1, "spikes/1": out}


class SnnTorchLeakyZero(nn.Module):
    """snnTorch Leaky with reset-to-zero (not expressible in edgelearn's model)."""

    def __init__(self, rng, n_in=8, n_out=6):
        super().__init__()
        import snntorch as snn

        self.fc = nn.Linear(n_in, n_out)
        _set_linear(self.fc, rng, 0.8)
        self.lif = snn.Leaky(beta=0.75, threshold=1.0, reset_mechanism="zero")
        self.state_sizes = (n_out,)

    def forward(self, x, mem):
        spk, mem = self.lif(self.fc(x), mem)
        return spk, mem

    def record(self, out, states):
        return {"membrane/0": states[0], "spikes/0": out}


class TorchRLifZero(nn.Module):
    """Plain torch: recurrent CUBA LIF, edgelearn's reset-to-zero, then a leaky readout."""

    def __init__(self, rng, n_in=8, n_hid=10, n_out=3):
        super().__init__()
        self.fc1 = nn.Linear(n_in, n_hid)
        self.rec = nn.Linear(n_hid, n_hid, bias=False)
        self.fc2 = nn.Linear(n_hid, n_out, bias=False)
        _set_linear(self.fc1, rng, 0.8)
        with torch.no_grad():
            self.rec.weight.copy_(dyadic(rng, (n_hid, n_hid), 0.4))
            self.fc2.weight.copy_(dyadic(rng, (n_out, n_hid), 0.6))
        self.register_buffer("alpha1", torch.full((n_hid,), 0.625))
        self.register_buffer("beta1", torch.tensor(np.linspace(0.75, 0.9375, n_hid).round(4),
                                                   dtype=torch.float32))
        self.register_buffer("theta1", torch.full((n_hid,), 1.0))
        self.register_buffer("alpha2", torch.full((n_out,), 0.5))
        self.register_buffer("beta2", torch.full((n_out,), 0.875))
        self.state_sizes = (n_hid, n_hid, n_out, n_out)

    def forward(self, x, cur1, mem1, cur2, mem2):
        reset = (mem1 > self.theta1).float()
        cur1 = self.alpha1 * cur1 + self.fc1(x) + self.rec(reset)
        mem1 = (self.beta1 * mem1 + cur1) * (1.0 - reset)
        spk1 = (mem1 > self.theta1).float()
        cur2 = self.alpha2 * cur2 + self.fc2(spk1)
        mem2 = self.beta2 * mem2 + cur2
        return mem2, cur1, mem1, cur2, mem2

    def record(self, out, states):
        cur1, mem1, cur2, mem2 = states
        return {"membrane/0": mem1, "membrane/1": mem2, "spikes/0": (mem1 > 1.0).float()}


def simulate(module, x: np.ndarray):
    """Run the torch module over x [T, B, n_in] from zero state; returns the recording."""
    states = [torch.zeros(x.shape[1], n) for n in module.state_sizes]
    rec: dict[str, list] = {}
    outs = []
    with torch.no_grad():
        for t in range(x.shape[0]):
            out, *states = module(torch.from_numpy(x[t]), *states)
            outs.append(out.numpy().copy())
            for k, v in module.record(out, states).items():
                rec.setdefault(k, []).append(v.numpy().copy())
    data = {"input": x, "output": np.stack(outs)}
    data.update({k: np.stack(v).astype(np.float32) for k, v in rec.items()})
    return data


def margin_ok(module, data, thresholds) -> bool:
    for k, theta in thresholds.items():
        if np.min(np.abs(data[f"membrane/{k}"] - theta)) < MARGIN:
            return False
    return any(data[k].sum() > 0 for k in data if k.startswith("spikes/"))


def export(module, path: Path) -> None:
    n_in = module.fc1.in_features if hasattr(module, "fc1") else module.fc.in_features
    args = (torch.zeros(B, n_in), *[torch.zeros(B, n) for n in module.state_sizes])
    names_in = ["x"] + [f"state{i}" for i in range(len(module.state_sizes))]
    names_out = ["out"] + [f"state{i}_out" for i in range(len(module.state_sizes))]
    buf = io.BytesIO()
    torch.onnx.export(module, args, buf, input_names=names_in, output_names=names_out,
                      dynamic_axes={n: {0: "batch"} for n in names_in + names_out},
                      opset_version=17, dynamo=False)
    atomic_write_bytes(path, buf.getvalue())


def make(name: str, module, thresholds: dict, out_dir: Path, seed: int) -> None:
    module.eval()
    n_in = module.fc1.in_features if hasattr(module, "fc1") else module.fc.in_features
    rng = np.random.default_rng(seed)
    for _attempt in range(200):
        x = (rng.random((T, B, n_in)) < 0.35).astype(np.float32)
        data = simulate(module, x)
        if margin_ok(module, data, thresholds):
            break
    else:
        raise SystemExit(f"{name}: no input sequence with a threshold margin of {MARGIN}")
    export(module, out_dir / f"{name}.onnx")
    buf = io.BytesIO()
    np.savez_compressed(buf, **data)
    atomic_write_bytes(out_dir / f"{name}.npz", buf.getvalue())
    spk = {k: int(v.sum()) for k, v in data.items() if k.startswith("spikes/")}
    print(f"wrote {name}.onnx/.npz  T={T} B={B} spikes per layer {spk}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "tests" / "fixtures"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    make("snntorch_synaptic_leaky", SnnTorchNet(np.random.default_rng(1)), {0: 1.0, 1: 0.5},
         out, seed=11)
    make("snntorch_recurrent", SnnTorchRecurrent(np.random.default_rng(4)), {0: 1.0, 1: 0.5},
         out, seed=14)
    make("torch_rlif_zero", TorchRLifZero(np.random.default_rng(2)), {0: 1.0}, out, seed=12)
    make("snntorch_leaky_zero", SnnTorchLeakyZero(np.random.default_rng(3)), {0: 1.0}, out,
         seed=13)
    return 0


if __name__ == "__main__":
    sys.exit(main())
