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
from dataclasses import dataclass

import numpy as np

from edgelearn.device.features import feature_vector
from edgelearn.device.head import DeviceHead
from edgelearn.errors import DataError, ModelError, TargetError
from edgelearn.model import Network, feature_layer_index
from edgelearn.progress import Progress
from edgelearn.rules import lpl_rate
from edgelearn.rules.hep.head import EnergyHead
from edgelearn.substrate import Device, Observation, WriteReport, get_preset
from edgelearn.substrate.hooks import head_hooks
from edgelearn.substrate.mapping import to_weights
from edgelearn.targets.base import SampleResult, Target, Telemetry
from edgelearn.train import (Adam, Trace, TrainConfig, backward, check_dataset, forward,
                             net_readout, parameters, reduce_time, with_parameters)


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
    @property
    def capabilities(self) -> frozenset:  # type: ignore[override]
        return frozenset({"pull", "lpl", "hep"}) if self.learner is not None \
            else frozenset({"pull"})

    learner = None
    _learn = (False, False)
    _last_raw = None

    def attach_learner(self, cfg: "AdaptConfig | None" = None, calibration_x=None,
                       head: "EnergyHead | DeviceHead | None" = None) -> "OnDeviceLearner":
        """Put an :class:`OnDeviceLearner` (LPL + hEP head) on the device for :meth:`infer` /
        :meth:`teach`. ``head``: a pretrained head; a :class:`DeviceHead` (what a model ships
        with, ``NAME.head.npz``) brings its feature normalisation, which is then used as is.
        ``calibration_x`` [N, T, C] measures the normalisation on the device instead."""
        self.learner = OnDeviceLearner(self, cfg or AdaptConfig(), head)
        if calibration_x is not None:
            self.learner.calibrate(np.asarray(calibration_x))
        return self.learner

    def set_learning(self, lpl: bool, hep: bool) -> None:
        if (lpl or hep) and self.learner is None:
            raise TargetError("substrate target has no on-device learner; call "
                              "attach_learner() first")
        self._learn = (bool(lpl), bool(hep))

    def infer(self, x: np.ndarray) -> SampleResult:
        """One sample [T, n_in]: class scores, spike counts of the last hidden layer.

        With a learner attached the scores are the hEP head's (on the device's features), and
        LPL adapts the hidden layer if learning is on."""
        xb = np.asarray(x, dtype=np.float32)
        xb = xb[:, None, :] if xb.ndim == 2 else xb
        if self.learner is None:
            out, obs = self.run(xb, record=("spikes",))
            scores = reduce_time(out, self.readout)[0]
            hidden = list(obs.spikes)[-1:]
            feats = obs.spikes[hidden[0]][:, 0].sum(axis=0) if hidden else None
            return SampleResult(int(np.argmax(scores)), scores, feats,
                                int(sum(s.sum() for s in obs.spikes.values())))
        lr = self.learner
        pre, post, raw = lr.observe(xb)
        if self._learn[0]:
            lr.lpl_update(pre, post)
            self._tele.lpl_updates += 1
        self._last_raw = raw
        scores = lr.head.logits(lr.features(raw))[0] if lr.classifies else \
            raw[0, self.learner.layer.n_out:]
        return SampleResult(int(np.argmax(scores)), scores, post[0] * xb.shape[0],
                            int(round(float(post.sum()) * xb.shape[0])))

    def teach(self, label: int) -> None:
        """hEP update of the head from the last sample's features."""
        if self.learner is None or not self._learn[1]:
            raise TargetError("substrate target: hEP is off (attach_learner, set_learning)")
        if self._last_raw is None:
            raise TargetError("substrate target: teach() needs a preceding infer()")
        self._tele.hep_updates += self.learner.teach(self._last_raw, int(label))

    def get_weights(self) -> dict[str, np.ndarray]:
        """The programmed targets (what the write controller knows), keyed like read_weights,
        plus the head's arrays ('head.W0', 'head.b0', ...) when a learner is attached."""
        dev = self._dev()
        out = {k: to_weights(dev.arrays[k]["g_target"], dev.w_max[k], dev.preset.mapping)
               for k in dev.keys()}
        if self.learner is not None:
            for i, (W, b) in enumerate(zip(self.learner.head.weights, self.learner.head.biases)):
                out[f"head.W{i}"], out[f"head.b{i}"] = W.copy(), b.copy()
        return out

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Write arrays back (each device write pays programming noise)."""
        for k, w in weights.items():
            if k.startswith("head."):
                if self.learner is None:
                    raise TargetError(f"substrate target has no head for '{k}'")
                kind, i = k[5], int(k[6:])
                arrs = self.learner.head.weights if kind == "W" else self.learner.head.biases
                arrs[i][...] = w
                continue
            self.write_weights(k.split(".")[0], w, recurrent=k.endswith(".recurrent"))
            if self.learner is not None and k == self.learner.layer.name:
                self.learner.master = np.asarray(w, dtype=np.float64).copy()
                self.learner.written = self.learner.master.copy()

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
                  progress: bool = True, callback=None,
                  write_threshold: float = 0.0) -> tuple[Network, list[dict]]:
    """Surrogate-gradient training with the forward pass on the device (see module docstring).

    ``net`` holds the host's master weights (normally the network that was loaded). The master
    weights are kept inside the device's representable range +-w_max, so writes never clip.
    ``write_threshold`` > 0: a synapse is rewritten only when its master weight moved by at least
    that fraction of w_max since its last write (mixed precision: on a device with programming
    noise the untouched synapses keep their programmed value, which training then sees and
    corrects, instead of a fresh programming error every batch).
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
    last = {k: np.array(v, dtype=np.float32) for k, v in target.get_weights().items()
            if not k.startswith("head.")}
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
                        if write_threshold > 0:
                            move = np.abs(d[field_] - last[key]) >= write_threshold * dev.w_max[key]
                            last[key] = np.where(move, d[field_], last[key])
                        else:
                            last[key] = d[field_].copy()
                        written += target.write_weights(name, last[key], recurrent=rec).n_written
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


# ---- on-device adaptation: LPL on the last hidden layer + an hEP head on its spike rates -------

@dataclass(frozen=True)
class AdaptConfig:
    """On-device learning on a substrate, from the local noisy signals it exposes.

    LPL (rate form, :mod:`edgelearn.rules.lpl_rate`) adapts the last hidden spiking layer from
    its input rates (known to the host for layer 0, else the observed spikes of the layer below)
    and its observed output rates, one rule step per sample; the accumulated update is written
    through the device's noisy write path once per batch. The hEP head
    (:class:`edgelearn.rules.hep.EnergyHead`) classifies the features the chip exposes: the
    observed spike rates of that layer and the readout's scores (max or mean over time of the
    membrane seen through the noisy readout), standardized with means and deviations measured
    on the device over the first ``calibration`` samples of the stream (no labels needed);
    it learns by real-valued hEP under the substrate's weight-read and state noise.

    Attributes:
        lpl, hep: which rule runs.  epochs: passes over the stream.  batch_size: samples per
        device run (LPL writes and hEP updates happen once per batch).  hep_lr, amplitude,
        nudges: hEP step size, oscillation amplitude, distinct nudges.  head_hidden: hidden units
        of the head.  head_gain: its init scale.  calibration: samples used for the feature
        standardization.  feature_scale: multiplies the standardized features.
        write_threshold: LPL writes only synapses whose master weight moved by at least this
        fraction of w_max since their last write (mixed-precision updates, as in PCM on-chip
        training: small changes accumulate on the host instead of paying programming noise
        every batch; one 6-bit LSB by default).  keep_row_norm: after each LPL update rescale
        every neuron's weight row to its previous L2 norm (per-neuron synaptic scaling, a local
        homeostatic step; without it the Hebbian term grows the weights until rates saturate).
        lpl_trust: each neuron's weight row stays within this fraction of its initial L2 norm
        of where it started (a trust region; 0 = off): LPL may retune features, not erase the
        pretrained ones.  lpl_epochs: unsupervised LPL passes before the head learns (features then stay fixed
        while hEP trains, unless lpl_during_hep).
        label_fraction:
        share of samples whose label arrives (seeded mask).  replay, replay_repeats: online
        teaching (:meth:`OnDeviceLearner.teach`, what the adaptation loop calls) keeps the raw
        features of the last ``replay`` labelled samples and makes ``replay_repeats`` updates
        per label, one on the new sample and the rest on samples drawn from that ring (the
        device engine's scheme, edgelearn.device.engine.HEPSettings).  lpl: rule parameters
        (eta etc.).  seed: head initialisation, label mask, sample order and replay draws.
    """

    lpl: bool = True
    hep: bool = True
    epochs: int = 2
    batch_size: int = 32
    hep_lr: float = 0.1
    amplitude: float = 0.5
    nudges: int = 4
    head_hidden: int = 64
    head_gain: float = 1.0
    calibration: int = 256
    feature_scale: float = 1.0
    write_threshold: float = 1.0 / 63
    keep_row_norm: bool = True
    lpl_epochs: int = 1
    lpl_trust: float = 0.03
    lpl_during_hep: bool = False
    label_fraction: float = 1.0
    replay: int = 0
    replay_repeats: int = 1
    lpl_params: lpl_rate.Params = lpl_rate.Params(eta=1e-3, warmup=50, tau_mean=200.0,
                                                 tau_var=200.0)
    seed: int = 0

    def __post_init__(self) -> None:
        if int(self.epochs) != self.epochs or self.epochs < 0 or self.batch_size < 1:
            raise DataError(f"adaptation needs epochs >= 0 and batch_size >= 1, got "
                            f"{self.epochs}, {self.batch_size}")
        if not 0.0 <= self.label_fraction <= 1.0:
            raise DataError(f"label_fraction must lie in [0, 1], got {self.label_fraction}")
        if self.replay < 0 or self.replay_repeats < 1 or (self.replay_repeats > 1
                                                           and self.replay == 0):
            raise DataError(f"replay must be >= 0 and replay_repeats >= 1 (repeats > 1 need "
                            f"a replay ring), got {self.replay}, {self.replay_repeats}")
        for name in ("hep_lr", "amplitude", "feature_scale"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise DataError(f"adaptation {name} must be > 0, got {v}")


def _feature_layer(net: Network) -> int:
    """The feature layer (edgelearn.model.feature_layer_index: the last spiking layer before
    the readout), the layer LPL adapts and the head reads."""
    try:
        return feature_layer_index(net.layers)
    except ModelError:
        raise DataError(f"network '{net.name}' has no spiking hidden layer to adapt") from None


class OnDeviceLearner:
    """LPL + hEP running against one SubstrateTarget (see :class:`AdaptConfig`).

    ``master`` is the host's copy of the adapted layer's weights (what it last wrote).
    """

    def __init__(self, target: SubstrateTarget, cfg: AdaptConfig = AdaptConfig(),
                 head: EnergyHead | None = None) -> None:
        self.target, self.cfg = target, cfg
        dev = target._dev()
        self.layer_index = _feature_layer(dev.base)
        self.layer = dev.base.layers[self.layer_index]
        self.master = np.asarray(target.get_weights()[self.layer.name], dtype=np.float64)
        self.written = self.master.copy()
        self.initial = self.master.copy()
        self.w_max = dev.w_max[self.layer.name]
        n_feat, n_cls = self.layer.n_out + dev.base.n_out, dev.base.n_out
        self._head_written = dev.time_s
        noise, weight_read = head_hooks(dev.preset, dev.seed,
                                        lambda: self.target._dev().time_s - self._head_written)
        #: the head's scores classify (a head was given or hEP trains one); otherwise the
        #: readout's scores do, as on a device without a head
        self.classifies = head is not None or cfg.hep
        self.mu = np.zeros(n_feat)
        self.sd = np.ones(n_feat)
        if isinstance(head, DeviceHead):
            self.mu = head.mean.astype(np.float64)
            self.sd = head.std.astype(np.float64)
            head = copy_head(head.head)
        elif head is None:
            head = EnergyHead((n_feat, cfg.head_hidden, n_cls), seed=cfg.seed,
                              gain=cfg.head_gain)
        if head.n_in != n_feat or head.n_out != n_cls:
            raise DataError(f"hEP head has {head.n_in} inputs / {head.n_out} outputs, the device "
                            f"exposes {n_feat} features / {n_cls} classes")
        head.noise, head.weight_read = noise, weight_read
        self.head = head
        self.replay: list[tuple[np.ndarray, int]] = []
        self.rng = np.random.default_rng(cfg.seed)
        self.lpl_state = lpl_rate.init(cfg.lpl_params, self.layer.n_in, self.layer.n_out)
        self.counters = {"samples": 0, "lpl_updates": 0, "hep_updates": 0, "written": 0,
                         "clipped": 0}

    def observe(self, xb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Run a batch [T, B, n_in] on the device; returns (pre rates, post rates, raw head
        features) [B, n]: rates in spikes per step of the adapted layer's input and output, and
        [post rates, readout scores]."""
        out, obs = self.target.run(xb, record=("spikes",))
        if self.layer_index == 0:
            pre = xb.mean(axis=0)
        else:
            pre = obs.spikes[self.target._dev().base.layers[self.layer_index - 1].name].mean(0)
        counts = obs.spikes[self.layer.name].sum(axis=0)
        raw = feature_vector(counts, xb.shape[0], reduce_time(out, self.target.readout))
        return pre, raw[:, :counts.shape[1]], raw

    def features(self, raw: np.ndarray) -> np.ndarray:
        """Standardized head inputs."""
        return self.cfg.feature_scale * (raw - self.mu) / self.sd

    def teach(self, raw: np.ndarray, label: int) -> int:
        """Online hEP from one labelled sample's raw features [1, n] (what the adaptation loop
        calls): one update on it and ``cfg.replay_repeats - 1`` on labelled samples drawn from
        a ring of the last ``cfg.replay`` (the device engine's replay scheme); returns the
        number of updates made."""
        c = self.cfg
        if c.replay:
            self.replay.append((np.array(raw, dtype=np.float64), int(label)))
            del self.replay[:-c.replay]
        batch = [(raw, int(label))]
        if self.replay:
            picks = self.rng.integers(0, len(self.replay), c.replay_repeats - 1)
            batch += [self.replay[int(i)] for i in picks]
        for r, y in batch:
            self.head.hep_update(self.features(r), np.array([y]), c.hep_lr, c.amplitude,
                                 c.nudges)
        self.counters["hep_updates"] += len(batch)
        self._head_written = self.target._dev().time_s
        return len(batch)

    def calibrate(self, x: np.ndarray) -> None:
        """Feature means and deviations from the device's responses to x [N, T, C] (no labels)."""
        xb = np.ascontiguousarray(x.transpose(1, 0, 2), dtype=np.float32)
        raw = self.observe(xb)[2]
        self.mu, self.sd = raw.mean(axis=0), raw.std(axis=0) + 1e-3

    def lpl_update(self, pre: np.ndarray, post: np.ndarray) -> None:
        """One LPL step per sample, summed, clipped to +-w_max, written once."""
        p = self.cfg.lpl_params
        dw = np.zeros_like(self.master)
        for b in range(pre.shape[0]):
            d, self.lpl_state = lpl_rate.step(pre[b], post[b], self.lpl_state, p)
            dw += d
        new = np.clip(self.master + dw, p.w_min, p.w_max)
        if self.cfg.keep_row_norm:
            new *= (np.linalg.norm(self.master, axis=1, keepdims=True)
                    / np.maximum(np.linalg.norm(new, axis=1, keepdims=True), 1e-12))
        if self.cfg.lpl_trust > 0:
            delta = new - self.initial
            dn = np.linalg.norm(delta, axis=1, keepdims=True)
            cap = self.cfg.lpl_trust * np.linalg.norm(self.initial, axis=1, keepdims=True)
            new = self.initial + delta * np.minimum(1.0, cap / np.maximum(dn, 1e-12))
        self.master = np.clip(new, -self.w_max, self.w_max)
        self.counters["lpl_updates"] += pre.shape[0]
        move = np.abs(self.master - self.written) >= self.cfg.write_threshold * self.w_max
        if not move.any():
            return
        self.written = np.where(move, self.master, self.written)
        rep = self.target.write_weights(self.layer.name, self.written)
        self.counters["written"] += rep.n_written
        self.counters["clipped"] += rep.n_clipped

    def predict(self, ds, batch_size: int = 256) -> np.ndarray:
        """Head predictions [N] on data set ``ds`` from features measured on the device."""
        x, _ = check_dataset(ds, self.target._dev().base)
        out = []
        for s in range(0, x.shape[0], batch_size):
            xb = np.ascontiguousarray(x[s:s + batch_size].transpose(1, 0, 2), dtype=np.float32)
            raw = self.observe(xb)[2]
            out.append(self.head.logits(self.features(raw)).argmax(axis=1))
        return np.concatenate(out)

    def accuracy(self, ds) -> float:
        return float(np.mean(self.predict(ds) == np.asarray(ds.y)))

    def adapt(self, ds, progress: bool = True) -> list[dict]:
        """Adapt on the stream ``ds`` (x [N, T, C], y [N]).

        Phase 1 (if ``cfg.lpl``): ``cfg.lpl_epochs`` unsupervised LPL passes (no labels).
        Phase 2 (if ``cfg.hep``): calibrate the feature standardization on the device, then
        ``cfg.epochs`` passes of hEP updates from the labelled samples (LPL continues during them
        if ``cfg.lpl_during_hep``). Returns one dict per pass: phase, counters, seconds.
        """
        cfg = self.cfg
        dev = self.target._dev()
        x, y = check_dataset(ds, dev.base, "adaptation stream")
        rng = np.random.default_rng(cfg.seed)
        labelled = rng.random(x.shape[0]) < cfg.label_fraction
        n_batches = (x.shape[0] + cfg.batch_size - 1) // cfg.batch_size
        phases = ([("lpl", True, False)] * (cfg.lpl_epochs if cfg.lpl else 0)
                  + [("hep", cfg.lpl and cfg.lpl_during_hep, True)] * (cfg.epochs if cfg.hep
                                                                        else 0))
        bar = Progress(len(phases) * n_batches, "on-device", unit="batch", enabled=progress)
        history = []
        calibrated = False
        for phase, do_lpl, do_hep in phases:
            if do_hep and not calibrated:
                self.calibrate(x[:cfg.calibration])
                calibrated = True
            t0 = time.monotonic()
            perm = rng.permutation(x.shape[0])
            for k in range(n_batches):
                idx = perm[k * cfg.batch_size:(k + 1) * cfg.batch_size]
                xb = np.ascontiguousarray(x[idx].transpose(1, 0, 2), dtype=np.float32)
                pre, post, raw = self.observe(xb)
                self.counters["samples"] += len(idx)
                if do_lpl:
                    self.lpl_update(pre, post)
                lab = labelled[idx]
                if do_hep and lab.any():
                    self.head.hep_update(self.features(raw[lab]), y[idx][lab], cfg.hep_lr,
                                         cfg.amplitude, cfg.nudges)
                    self.counters["hep_updates"] += 1
                    self._head_written = dev.time_s
                bar.update(1, phase)
            history.append({"phase": phase, **dict(self.counters),
                            "seconds": round(time.monotonic() - t0, 3)})
        if not calibrated:
            self.calibrate(x[:cfg.calibration])
        bar.close()
        return history


def software_features(net: Network, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The head features of the float model (no substrate): [rates of the last hidden spiking
    layer, readout scores] for x [N, T, C], the same layout :meth:`OnDeviceLearner.observe`
    measures on a device."""
    li = _feature_layer(net)
    mode = net_readout(net)
    out = []
    for s in range(0, x.shape[0], batch_size):
        xb = np.ascontiguousarray(np.asarray(x[s:s + batch_size]).transpose(1, 0, 2),
                                  dtype=np.float32)
        tr = forward(net, xb)
        out.append(feature_vector(tr.layers[li].spikes.sum(axis=0), xb.shape[0],
                                  reduce_time(tr.output, mode)))
    return np.concatenate(out)


def pretrain_head(net: Network, ds, cfg: AdaptConfig = AdaptConfig(), epochs: int = 3,
                  progress: bool = False) -> EnergyHead:
    """An hEP head trained offline (noise-free real hEP) on the float model's features, shipped
    with the deployed network; on the device :class:`OnDeviceLearner` re-measures the feature
    statistics and keeps training it."""
    x, y = check_dataset(ds, net, "head training set")
    raw = software_features(net, x)
    mu, sd = raw.mean(axis=0), raw.std(axis=0) + 1e-3
    feats = cfg.feature_scale * (raw - mu) / sd
    head = EnergyHead((raw.shape[1], cfg.head_hidden, net.n_out), seed=cfg.seed,
                      gain=cfg.head_gain)
    rng = np.random.default_rng(cfg.seed)
    n_batches = (len(y) + cfg.batch_size - 1) // cfg.batch_size
    bar = Progress(epochs * n_batches, "head", unit="batch", enabled=progress)
    for _ in range(epochs):
        perm = rng.permutation(len(y))
        for k in range(n_batches):
            idx = perm[k * cfg.batch_size:(k + 1) * cfg.batch_size]
            head.hep_update(feats[idx], y[idx], cfg.hep_lr, cfg.amplitude, cfg.nudges)
            bar.update(1)
    bar.close()
    return head


def copy_head(head: EnergyHead) -> EnergyHead:
    """An independent copy of a head's parameters (noise hooks are not copied)."""
    return EnergyHead(head.sizes, activation=head.activation, gain=head.gain,
                      relax=head.relax_params, weights=[W.copy() for W in head.weights],
                      biases=[b.copy() for b in head.biases])
