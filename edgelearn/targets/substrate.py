"""The ``substrate`` target: a deployed network running on a simulated analog chip (L3).

    tgt = SubstrateTarget("bss2", seed=0)
    tgt.load(net)                               # program every weight (quantize, clip, noise)
    out, obs = tgt.run(x)                       # x [T, B, n_in]; obs.spikes, obs.membrane (noisy)
    tgt.write_weights("hidden", w)              # the only way to change a weight
    tgt.read_weights()                          # what the chip reports (noisy read)
    tgt.advance_time(3600.0)                    # drift
    tgt.info()

The host never sees the device's true conductances, mismatch or noise-free membranes: it gets
spikes, membranes through the noisy readout, and noisy weight reads, as on a chip.

In-the-loop training (:func:`train_in_loop`, the recipe of Cramer et al. 2022): the forward pass
runs on the device, the measured spikes and membranes go into the software surrogate-gradient
backward pass (:func:`edgelearn.train.backward` with :meth:`Trace.from_measurements`) evaluated
with the host's master weights, Adam updates the master weights, and they are written back
through the device's noisy write path. Learning thereby absorbs the device's mismatch.
"""

from __future__ import annotations

import math
import time

import numpy as np

from edgelearn.errors import DataError, TargetError
from edgelearn.model import Network
from edgelearn.progress import Progress
from edgelearn.substrate import Device, Observation, WriteReport, get_preset
from edgelearn.substrate.mapping import to_weights
from edgelearn.targets.base import SampleResult, Target, Telemetry
from edgelearn.train import (Adam, Trace, TrainConfig, backward, check_dataset, net_readout,
                             parameters, reduce_time, with_parameters)


def weight_bytes(net: Network, preset) -> int:
    """On-chip weight storage in bytes: per synapse ceil(bits_total / 8), with bits_total =
    bits + 1 (sign bit) or 2 bits (differential pair); a continuous analog cell counts 4 bytes."""
    m = get_preset(preset).mapping
    if m.bits is None:
        per = 4 * (2 if m.sign == "differential" else 1)
    else:
        per = math.ceil((m.bits + 1 if m.sign == "sign_bit" else 2 * m.bits) / 8)
    n = sum(layer.weight.size + (0 if layer.recurrent is None else layer.recurrent.size)
            for layer in net.layers)
    return int(n * per)


class SubstrateTarget(Target):
    """A network deployed on one device instance made from ``preset`` and ``seed``.

    Args:
        preset: ``"ideal"``, ``"pcm"``, ``"bss2"``, a Preset or a preset dict.
        seed: device instance seed (mismatch, faults, and all noise streams).
        budget: optional on-chip weight memory in bytes (see :func:`weight_bytes`); a network
            that does not fit is refused with :class:`TargetError`.
        readout: ``"max"`` or ``"mean"`` over time (default: the network's meta['readout']).
    """

    name = "substrate"
    capabilities = frozenset({"pull"})

    def __init__(self, preset="bss2", seed: int = 0, budget: int | None = None,
                 readout: str | None = None) -> None:
        self.preset = get_preset(preset)
        self.seed = seed
        self.budget = budget
        self.readout = readout
        self.device: Device | None = None
        self._tele = Telemetry()

    # ---- deployment -------------------------------------------------------------------------
    def load(self, net: Network) -> list[WriteReport]:
        """Create the device for ``net`` and program all weights; returns one report per array."""
        need = weight_bytes(net, self.preset)
        if self.budget is not None and need > self.budget:
            raise TargetError(f"substrate '{self.preset.name}': network '{net.name}' needs "
                              f"{need} B of weight memory, budget {self.budget} B, missing "
                              f"{need - self.budget} B")
        self.device = Device.create(self.preset, self.seed, net)
        self.readout = net_readout(net, self.readout)
        return list(self.device.load_reports)

    @classmethod
    def from_device(cls, device: Device, readout: str | None = None) -> "SubstrateTarget":
        """Wrap an existing (e.g. reloaded) device."""
        tgt = cls(device.preset, device.seed, readout=readout)
        tgt.device = device
        tgt.readout = net_readout(device.base, readout)
        return tgt

    def _dev(self) -> Device:
        if self.device is None:
            raise TargetError("substrate target holds no network; call load(net) first")
        return self.device

    # ---- what a chip offers -----------------------------------------------------------------
    def run(self, x: np.ndarray, record: tuple[str, ...] = ("spikes", "membrane")
            ) -> tuple[np.ndarray, Observation]:
        """Run x [T, n_in] or [T, B, n_in]; returns (output [T, B, n_out], observation)."""
        obs = self._dev().run(x, record)
        self._tele.steps += obs.output.shape[0]
        self._tele.spikes += int(sum(float(s.sum()) for s in obs.spikes.values()))
        return obs.output, obs

    def write_weights(self, layer: str, weight: np.ndarray, recurrent: bool = False,
                      strict: bool = False) -> WriteReport:
        """Program a layer's weights through the device's write path (noise, clip count)."""
        return self._dev().write(layer, weight, recurrent=recurrent, strict=strict)

    def write_bias(self, layer: str, bias: np.ndarray) -> None:
        """Set a layer's (digital, exact) bias."""
        self._dev().write_bias(layer, bias)

    def read_weights(self) -> dict[str, np.ndarray]:
        """One noisy read of every weight array, keyed 'layer' or 'layer.recurrent'."""
        dev = self._dev()
        return {k: dev.read_weights(k.split(".")[0], k.endswith(".recurrent"))
                for k in dev.keys()}

    def advance_time(self, seconds: float) -> None:
        """Let time pass on the device (drift)."""
        self._dev().advance_time(seconds)

    def info(self) -> dict:
        """Preset, seed, device time, arrays, write/clip counters, weight bytes, budget."""
        dev = self._dev()
        return {**dev.info(), "weight_bytes": weight_bytes(dev.base, self.preset),
                "budget": self.budget, "readout": self.readout}

    def save(self, path) -> None:
        """Save the device (see :meth:`Device.save`)."""
        self._dev().save(path)

    # ---- the adaptation-loop interface (edgelearn.targets.base.Target) ----------------------
    def infer(self, x: np.ndarray) -> SampleResult:
        """One sample [T, n_in]: class scores (readout reduced over time), hidden spike counts."""
        out, obs = self.run(np.asarray(x)[:, None, :] if np.ndim(x) == 2 else x,
                            record=("spikes",))
        scores = reduce_time(out, self.readout)[0]
        hidden = [n for n in obs.spikes][-1:] if obs.spikes else []
        feats = obs.spikes[hidden[0]][:, 0].sum(axis=0) if hidden else None
        return SampleResult(int(np.argmax(scores)), scores, feats,
                            int(sum(s.sum() for s in obs.spikes.values())))

    def get_weights(self) -> dict[str, np.ndarray]:
        """The programmed targets (what the write controller knows), keyed like read_weights."""
        dev = self._dev()
        return {k: to_weights(dev.arrays[k]["g_target"], dev.w_max[k], dev.preset.mapping)
                for k in dev.keys()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Write arrays back (each write pays programming noise)."""
        for k, w in weights.items():
            self.write_weights(k.split(".")[0], w, recurrent=k.endswith(".recurrent"))

    def telemetry(self) -> Telemetry:
        self._tele.extra = self.info() if self.device is not None else {}
        return self._tele


def evaluate_on(target: SubstrateTarget, ds, batch_size: int = 256) -> float:
    """Accuracy of the deployed network on data set ``ds`` (x [N, T, C], y [N]) on the device."""
    dev = target._dev()
    x, y = check_dataset(ds, dev.base)
    correct = 0
    for s in range(0, len(y), batch_size):
        xb = np.ascontiguousarray(x[s:s + batch_size].transpose(1, 0, 2), dtype=np.float32)
        out, _ = target.run(xb, record=())
        correct += int(np.sum(reduce_time(out, target.readout).argmax(axis=1)
                              == y[s:s + batch_size]))
    return correct / len(y)


def train_in_loop(target: SubstrateTarget, net: Network, train_ds, cfg: TrainConfig,
                  progress: bool = True, callback=None) -> tuple[Network, list[dict]]:
    """Surrogate-gradient training with the forward pass on the device (see module docstring).

    ``net`` holds the host's master weights (normally the network that was loaded). The master
    weights are kept inside the device's representable range +-w_max, so writes never clip.
    Returns the trained master network (what was last written) and one history dict per epoch:
    loss, train_acc (measured on the device), written (synapses reprogrammed), seconds.
    """
    dev = target._dev()
    x, y = check_dataset(train_ds, net, "training set")
    if [la.name for la in net.layers] != [la.name for la in dev.base.layers]:
        raise DataError(f"network '{net.name}' does not match the deployed network "
                        f"'{dev.base.name}'")
    rng = np.random.default_rng(cfg.seed)
    params = parameters(net)
    opt = Adam(params, cfg.lr, cfg.adam_b1, cfg.adam_b2, cfg.adam_eps)
    n = x.shape[0]
    n_batches = (n + cfg.batch_size - 1) // cfg.batch_size
    bar = Progress(cfg.epochs * n_batches, "in-the-loop", unit="batch", enabled=progress)
    current = with_parameters(net, params)
    history = []
    for epoch in range(cfg.epochs):
        t0 = time.monotonic()
        perm = rng.permutation(n)
        loss_sum, correct, written = 0.0, 0, 0
        for k in range(n_batches):
            idx = perm[k * cfg.batch_size:(k + 1) * cfg.batch_size]
            xb = np.ascontiguousarray(x[idx].transpose(1, 0, 2), dtype=np.float32)
            _, obs = target.run(xb)
            trace = Trace.from_measurements(current, xb, obs.membrane, obs.spikes)
            g = backward(current, trace, y[idx], cfg)
            if not np.isfinite(g.loss):
                raise DataError(f"in-the-loop training diverged in epoch {epoch + 1}, batch "
                                f"{k + 1}: loss {g.loss}; lower lr ({cfg.lr})")
            scale = 1.0
            if cfg.grad_clip > 0:
                norm = g.global_norm()
                scale = min(1.0, cfg.grad_clip / norm) if norm > 0 else 1.0
            opt.step(params, g.layers, scale)
            for name, d in params.items():
                for field_, rec in (("weight", False), ("recurrent", True)):
                    if field_ in d:
                        key = f"{name}.recurrent" if rec else name
                        np.clip(d[field_], -dev.w_max[key], dev.w_max[key], out=d[field_])
                        written += target.write_weights(name, d[field_], recurrent=rec).n_written
                if "bias" in d:
                    target.write_bias(name, d["bias"])
            current = with_parameters(net, params)
            loss_sum += g.loss * len(idx) / n
            correct += int(np.sum(g.logits.argmax(axis=1) == y[idx]))
            bar.update(1, f"epoch {epoch + 1} loss {g.loss:.3f}")
        rec = {"epoch": epoch + 1, "loss": round(loss_sum, 6), "train_acc": round(correct / n, 6),
               "written": written, "seconds": round(time.monotonic() - t0, 3)}
        history.append(rec)
        if callback is not None:
            callback(rec, current)
        opt.lr *= cfg.lr_decay
    bar.close()
    return current, history
