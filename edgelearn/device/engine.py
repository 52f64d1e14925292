"""The device engine: a deployed integer SNN (+ hEP head) running in a fixed RAM arena.

Per sample x [T, n_in] (integer counts), with neuron state reset at the start:

    for t in 0..T-1:
        h = x[t];  for each layer k:  h, state_k = qlayer_step(layer_k, h, state_k)
        if LPL is on for layer k:  W_k <- lpl_rate.step_fixed(W_k, pre = layer input,
                                                                post = layer spikes)
        features += spikes of the feature layer (last hidden layer), uint16
        readout: running max (or sum, for mean) of the readout membrane, int32
    prediction = argmax head((f - mean) / std)   if an hEP head is deployed, with
                 f = [features / T, readout score]  (edgelearn.device.head)
               = argmax readout                     otherwise

``teach(label)`` makes one real-valued hEP update of the head from the last sample's features
(edgelearn.device.hep_factored: the clamped input needs no per-synapse accumulators).

Every buffer of the memory plan (edgelearn.memory.planner) lives in the arena: int8 weights,
neuron constants, neuron state, spike vectors, features, readout accumulator, head weights and
state (float32), LPL state per adapted layer (the arrays of ``lpl_rate.init_fixed``), hEP
accumulators and nudged state. The arena's high-water mark is what the device uses; numpy
temporaries of the host computation (a device computes row by row) are not device memory.
The head is stored in float32 on the device (an FPU part); its relaxation computes in float64
from those float32 weights, and updated weights are rounded back to float32.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgelearn.errors import InputError, ParameterError
from edgelearn.fixed import RngState, rng_draw, rng_init
from edgelearn.kernels.lif_fixed import (QNetwork, QState, bind_weight, qlayer_step,
                                         quantize_input, weight_changed)
from edgelearn.memory.arena import Arena
from edgelearn.rules import lpl_rate
from edgelearn.rules.lpl_rate_fast import LPLRateFast
from edgelearn.rules.base import qlayer_w_shift
from edgelearn.device.head import DeviceHead
from edgelearn.device.hep_factored import accumulator_count, factored_hep_update

READOUTS = ("max", "mean")
SAMPLE_STEPS_MAX = 4096   # longest sample; bounds the per-step clip of the mean readout


@dataclass(frozen=True)
class HEPSettings:
    """On-device hEP.

    Attributes:
        lr: SGD step of one hEP update.
        amplitude: oscillation amplitude b of the teaching signal.
        nudges: distinct nudge values per estimate.
        replay: labelled samples kept on the device (ring buffer of raw features: uint8 spike
            counts, float16 readout scores, label, length); 0 disables replay.
        repeats: hEP updates per arriving label: one on the new sample, the others on samples
            drawn from the replay buffer with the device PRNG.
    """

    lr: float = 0.005
    amplitude: float = 0.5
    nudges: int = 4
    replay: int = 16
    repeats: int = 16

    def __post_init__(self) -> None:
        if not (self.lr > 0 and self.amplitude > 0 and self.nudges >= 2):
            raise ParameterError(f"hEP settings need lr > 0, amplitude > 0 and nudges >= 2, "
                                 f"got {self.lr}, {self.amplitude}, {self.nudges}")
        if self.replay < 0 or self.repeats < 1 or (self.repeats > 1 and self.replay == 0):
            raise ParameterError(f"hEP replay must be >= 0 and repeats >= 1 (repeats > 1 needs "
                                 f"a replay buffer), got {self.replay}, {self.repeats}")


def default_lpl() -> lpl_rate.Params:
    """LPL for a deployed hidden layer: filtered rates, slow statistics, dithered rounding.

    Hebbian weight 0.03 (the paper's 1 drives a pretrained spiking layer to high rates,
    docs/learning-rules.md section 8) and eta 1e-7: on the speech model's new-user stream every
    larger rate lowered accuracy (bench/bench_adapt.py --lpl-eta; docs/results.md), because
    LPL's objective is not the task's and the features drift away from what the head knows."""
    return lpl_rate.Params(eta=1e-7, lam=0.03, tau_mean=2000.0, tau_var=2000.0, tau_pre=20.0,
                           tau_post=20.0, warmup=200, rounding="dither", var_init=0.01)


@dataclass(frozen=True)
class EngineConfig:
    """What the engine adapts and how.

    Attributes:
        readout: 'max' or 'mean' over time of the readout membrane (when there is no head).
        lpl_layers: hidden layers LPL adapts (names).
        lpl: LPL parameters (rate form).
        hep: hEP settings, or None for no supervised learning.
        seed: seed of the device's stochastic-rounding stream.
        track_features: per-sample rate r of the head's feature statistics while LPL is on
            (unsupervised, with the hidden layer): mean += r (f - mean),
            var += r ((f - mean)^2 - var), std = sqrt(var); 0 (default) keeps them fixed.
            Measured on the speech new-user stream with LPL + hEP: r = 0.003 and 0.01 lowered
            held-out accuracy by 1.7 and 2.9 points, so it is off by default.
    """

    readout: str = "max"
    lpl_layers: tuple[str, ...] = ()
    lpl: lpl_rate.Params = field(default_factory=default_lpl)
    hep: HEPSettings | None = field(default_factory=HEPSettings)
    seed: int = 1
    track_features: float = 0.0

    def __post_init__(self) -> None:
        if self.readout not in READOUTS:
            raise ParameterError(f"readout must be one of {READOUTS}, got {self.readout!r}")
        if not 0.0 <= self.track_features < 1.0:
            raise ParameterError(f"track_features must lie in [0, 1), got {self.track_features}")
        object.__setattr__(self, "lpl_layers", tuple(self.lpl_layers))


@dataclass
class SampleResult:
    prediction: int
    scores: np.ndarray
    features: np.ndarray
    spikes: int


class Engine:
    """One model on one device. See the module docstring for the per-sample computation."""

    def __init__(self, qnet: QNetwork, arena: Arena, head: DeviceHead | None = None,
                 config: EngineConfig = EngineConfig()) -> None:
        self.qnet = qnet
        self.arena = arena
        self.config = config
        self.layers = list(qnet.layers)
        names = [la.name for la in self.layers]
        for n in config.lpl_layers:
            if n not in names or not qnet.layer(n).spiking:
                raise ParameterError(f"LPL layer '{n}' is not a spiking layer of model "
                                     f"'{qnet.name}' (layers {names})")
        spiking = [k for k, la in enumerate(self.layers) if la.spiking]
        hidden = [k for k in spiking if k < len(self.layers) - 1] or spiking
        if not hidden:
            raise ParameterError(f"model '{qnet.name}' has no spiking layer to take features from")
        self.feature_index = hidden[-1]
        n_feat = self.layers[self.feature_index].n_out + qnet.n_out
        if head is not None and head.n_features != n_feat:
            raise ParameterError(f"head expects {head.n_features} features, the model gives "
                                 f"{n_feat} ('{self.layers[self.feature_index].name}' rates "
                                 f"and {qnet.n_out} readout scores)")
        self.dhead = head
        self.head = None if head is None else head.head
        self.lpl_on = False
        self.hep_on = False
        self.rng = rng_init(config.seed)
        self.counters = {"steps": 0, "spikes": 0, "lpl_updates": 0, "hep_updates": 0,
                         "samples": 0, "hep_nonconverged": 0, "hep_rejected": 0}
        self._allocate()
        self._last_features: np.ndarray | None = None
        self._bind_fast_lpl()

    def _bind_fast_lpl(self) -> None:
        """LPL layers learn in place: the QLayer's weight is a view of its arena buffer and
        :class:`LPLRateFast` (bit-exact with ``lpl_rate.step_fixed``) updates the arena weights
        and LPL state directly. Decorrelating LPL falls back to ``step_fixed``."""
        self._fast: dict[int, LPLRateFast] = {}
        if self.config.lpl.lam_decorr > 0:
            return
        for k in self.lpl_state:
            self.layers[k] = bind_weight(self.layers[k], self.w[k])
            self._fast[k] = LPLRateFast(self.config.lpl, self.w[k], self.lpl_state[k],
                                        qlayer_w_shift(self.layers[k]), write_back=False)

    # -- memory ---------------------------------------------------------------------------
    def _allocate(self) -> None:
        a, q = self.arena, self.qnet
        self.input = a.allocate("input", q.n_in, np.uint8)
        self.w, self.cur, self.mem, self.spk = [], [], [], []
        for la in self.layers:
            self.w.append(a.store(f"{la.name}.weight", la.weight, np.int8))
            if la.recurrent is not None:
                a.store(f"{la.name}.recurrent", la.recurrent, np.int8)
            if la.bias is not None:
                a.store(f"{la.name}.bias", la.bias, np.int32)
            consts = a.allocate(f"{la.name}.consts", 2 * la.n_out, np.int32)
            consts.view(np.int16)[0::2][: la.n_out] = la.alpha
            consts.view(np.int16)[1::2][: la.n_out] = la.beta
            consts[la.n_out:] = la.threshold
            state = a.allocate(f"{la.name}.state", (2, la.n_out), np.int32)
            self.cur.append(state[0])
            self.mem.append(state[1])
            self.spk.append(a.allocate(f"{la.name}.spikes", la.n_out, np.uint8)
                            if la.spiking else None)
        self.features = a.allocate("features", self.layers[self.feature_index].n_out, np.uint16)
        self.output = a.allocate("output", q.n_out, np.int32)
        self.head_w: list[np.ndarray] = []
        if self.head is not None:
            n = self.head.n_params
            flat = a.allocate("head.weights", n, np.float32)
            off = 0
            for W, b in zip(self.head.weights, self.head.biases):
                for arr in (W, b):
                    view = flat[off:off + arr.size].reshape(arr.shape)
                    view[...] = arr
                    self.head_w.append(view)
                    off += arr.size
            self._sync_head_from_arena()
            norm = a.allocate("head.norm", (2, self.head.n_in), np.float32)
            norm[0], norm[1] = self.dhead.mean, self.dhead.std
            self.dhead.mean, self.dhead.std = norm[0], norm[1]
            a.allocate("head.state", 2 * sum(self.head.sizes[1:]), np.float32)
        self.lpl_state: dict[int, lpl_rate.State] = {}
        for name in self.config.lpl_layers:
            k = [la.name for la in self.layers].index(name)
            la = self.layers[k]
            st = lpl_rate.init_fixed(self.config.lpl, la.n_in, la.n_out)
            self.lpl_state[k] = lpl_rate.State(*(
                a.store(f"{name}.lpl.{f}", arr) for f, arr in zip(st._fields, st)))
        if self.head is not None and self.config.hep is not None:
            a.allocate("head.accumulators", accumulator_count(self.head.sizes), np.float32)
            a.allocate("head.nudged_state", sum(self.head.sizes[1:]), np.float32)
            R = self.config.hep.replay
            if R:
                n_h, n_o = self.features.size, self.qnet.n_out
                self.replay = {"counts": a.allocate("head.replay.counts", (R, n_h), np.uint8),
                               "scores": a.allocate("head.replay.scores", (R, n_o), np.float16),
                               "labels": a.allocate("head.replay.labels", R, np.uint8),
                               "lengths": a.allocate("head.replay.lengths", R, np.uint16),
                               "ring": a.allocate("head.replay.ring", 2, np.int32)}

    def _sync_head_from_arena(self) -> None:
        """The head computes from the float32 values the device stores."""
        self.head.weights = [np.asarray(v, dtype=np.float64) for v in self.head_w[0::2]]
        self.head.biases = [np.asarray(v, dtype=np.float64) for v in self.head_w[1::2]]

    def _sync_head_to_arena(self) -> bool:
        """Round the head's weights into the float32 arena; if any value is not finite there
        (an update overflowed float32), keep the previous arena weights and return False."""
        new = [np.asarray(a, dtype=np.float32)
               for W, b in zip(self.head.weights, self.head.biases) for a in (W, b)]
        ok = all(np.all(np.isfinite(a)) for a in new)
        if ok:
            for dst, src in zip(self.head_w, new):
                dst[...] = src
        self._sync_head_from_arena()
        return ok

    # -- control ----------------------------------------------------------------------------
    def set_learning(self, lpl: bool, hep: bool) -> None:
        if lpl and not self.lpl_state:
            raise ParameterError("LPL was not planned for this deployment (no LPL layers)")
        if hep and (self.head is None or self.config.hep is None):
            raise ParameterError("hEP was not planned for this deployment (no head)")
        self.lpl_on, self.hep_on = bool(lpl), bool(hep)

    # -- running ------------------------------------------------------------------------------
    def run_sample(self, x: np.ndarray) -> SampleResult:
        """One whole sample x [T, n_in]: begin, all steps, end."""
        self.begin_sample()
        self.run_steps(x)
        return self.end_sample()

    def begin_sample(self) -> None:
        """Zero the neuron state, the features and the readout accumulator."""
        for k in range(len(self.layers)):
            self.cur[k][...] = 0
            self.mem[k][...] = 0
        self.features[...] = 0
        mean = self.config.readout == "mean"
        self.output[...] = 0 if mean else np.iinfo(np.int32).min
        # host working state: the kernel's int64 state between steps (the arena's int32 state
        # buffers get the values at the end of every chunk; every value is identical)
        self._states = [QState(np.zeros((1, la.n_out), np.int64),
                               np.zeros((1, la.n_out), np.int64)) for la in self.layers]
        self._counts = [np.zeros(la.n_out, np.int64) if la.spiking else None
                        for la in self.layers]
        self._acc = np.zeros(self.qnet.n_out, np.int64)
        self._T = 0

    def run_steps(self, x: np.ndarray) -> None:
        """Run the next steps x [t, n_in] of the current sample (a board streams a sample in
        chunks; the result does not depend on how it is chunked). The mean readout sums the
        membrane clipped to |v| <= 2^31 / SAMPLE_STEPS_MAX per step, so the int32 sum cannot
        overflow for samples up to SAMPLE_STEPS_MAX steps."""
        if not hasattr(self, "_states"):
            raise InputError("run_steps() needs begin_sample() first")
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.qnet.n_in:
            raise InputError(f"sample must be [T, {self.qnet.n_in}], got shape {tuple(x.shape)}")
        if x.dtype.kind not in "iub":
            raise InputError(f"sample must hold integer counts, got dtype {x.dtype}")
        T = x.shape[0]
        if self._T + T > SAMPLE_STEPS_MAX:
            raise InputError(f"sample longer than {SAMPLE_STEPS_MAX} steps")
        layers = self.layers
        n_layers = len(layers)
        mean = self.config.readout == "mean"
        fk = self.feature_index
        xs = quantize_input(self.qnet, x)
        x_in = np.clip(x, 0, 255)
        states, counts, acc = self._states, self._counts, self._acc
        binary0 = bool(xs.size and xs.min() >= 0 and xs.max() <= 1)
        fast = self._fast if self.lpl_on else {}
        slow = [k for k in self.lpl_state if k not in fast] if self.lpl_on else []
        act = self.config.lpl.act_frac
        lpl_updates = 0
        lo_mean, hi_mean = -(1 << 31) // SAMPLE_STEPS_MAX, (1 << 31) // SAMPLE_STEPS_MAX
        spk, features, output, inp = self.spk, self.features, self.output, self.input
        for t in range(T):
            inp[...] = x_in[t]
            h = xs[t:t + 1]
            binary = binary0
            for k in range(n_layers):
                la = layers[k]
                y, st = qlayer_step(la, h, states[k], binary=binary)
                states[k] = st
                binary = True
                if la.spiking:
                    y0 = y[0]
                    np.copyto(spk[k], y0, casting="unsafe")
                    counts[k] += y0
                if k in fast:
                    self.rng, _, ran = fast[k].step(h[0], y[0], self.rng, act, spikes=True)
                    if ran:
                        lpl_updates += 1
                        if fast[k].w_changed:
                            weight_changed(la)
                elif k in slow:
                    self._lpl_step(k, h[0], y[0])
                    layers = self.layers
                h = y
            np.add(features, spk[fk], out=features)
            last = h[0]
            if mean:
                np.maximum(last, lo_mean, out=acc)
                np.minimum(acc, hi_mean, out=acc)
                np.add(output, acc, out=output, casting="unsafe")
            else:
                np.maximum(output, last, out=output, casting="unsafe")
        for k in range(n_layers):
            self.cur[k][...] = states[k].current[0]
            self.mem[k][...] = states[k].membrane[0]
        for f in fast.values():
            f.flush()                  # LPL state (int64 working copies) into the arena
        self.counters["lpl_updates"] += lpl_updates
        self.counters["steps"] += T
        self._T += T

    def end_sample(self) -> SampleResult:
        """Classify the sample that began with :meth:`begin_sample`."""
        T = self._T
        if T == 0:
            raise InputError("end_sample() after no steps: a sample needs at least one step")
        spikes = int(sum(int(c.sum()) for c in self._counts if c is not None))
        self.counters["spikes"] += spikes
        self.counters["samples"] += 1
        scores = self.readout_scores(T)
        if self.head is not None:
            f = np.concatenate([self.features.astype(np.float64) / T, scores])
            r = self.config.track_features
            if r and self.lpl_on:
                d = self.dhead
                var = d.std.astype(np.float64) ** 2
                var += r * ((f - d.mean) ** 2 - var)
                d.mean += (r * (f - d.mean)).astype(np.float32)
                d.std[...] = np.sqrt(np.maximum(var, 1e-6))
            self._last_features = self.dhead.normalise(f)
            self._last_raw = (np.minimum(self.features, 255), scores, T)
            scores = self.head.logits(self._last_features)[0]
        del self._states
        return SampleResult(int(np.argmax(scores)), scores, self.features.copy(), spikes)

    def readout_scores(self, T: int) -> np.ndarray:
        """Readout scores in threshold units: max (or mean) over time of the membrane."""
        out = self.output.astype(np.float64)
        if self.config.readout == "mean":
            out = out / T
        return out * self.layers[-1].scale    # the order of edgelearn.adapt.features

    def _lpl_step(self, k: int, pre: np.ndarray, post: np.ndarray) -> None:
        """Reference LPL step (``lpl_rate.step_fixed``); used when the fast step does not
        apply (decorrelation). Same integers as :class:`LPLRateFast`."""
        la = self.layers[k]
        p = self.config.lpl
        a = p.act_frac
        w, st, self.rng, stats = lpl_rate.step_fixed(
            self.w[k], np.asarray(pre, np.int64) << a, np.asarray(post, np.int64) << a,
            self.lpl_state[k], p, self.rng, qlayer_w_shift(la))
        for dst, src in zip(self.lpl_state[k], st):
            if dst.size:
                dst[...] = src
        if not stats.skipped:
            self.counters["lpl_updates"] += 1
            if stats.n_changed:
                self.w[k][...] = w
                self.layers[k] = la.replace(weight=self.w[k])

    def teach(self, label: int) -> None:
        """One hEP update of the head from the last sample's features (if hEP is on)."""
        if not self.hep_on:
            return
        if self._last_features is None:
            raise InputError("teach() needs a sample first: call run_sample")
        if not isinstance(label, (int, np.integer)) or not 0 <= int(label) < self.head.n_out:
            raise InputError(f"label {label!r} is not a class index in [0, {self.head.n_out})")
        s = self.config.hep
        samples = [(self._last_features, int(label))]
        counts, scores, T = self._last_raw
        if s.replay and T <= 255:    # uint8 counts are exact only up to 255 steps
            rp = self.replay
            pos, n = int(rp["ring"][0]), int(rp["ring"][1])
            rp["counts"][pos], rp["scores"][pos] = counts, scores
            rp["labels"][pos], rp["lengths"][pos] = int(label), T
            rp["ring"][0], rp["ring"][1] = (pos + 1) % s.replay, min(n + 1, s.replay)
        if s.replay and int(self.replay["ring"][1]):
            rp = self.replay
            draws, self.rng = rng_draw(self.rng, s.repeats - 1)
            for r in draws:
                j = int(r % rp["ring"][1])
                f = np.concatenate([rp["counts"][j] / float(rp["lengths"][j]),
                                    rp["scores"][j].astype(np.float64)])
                samples.append((self.dhead.normalise(f), int(rp["labels"][j])))
        for feats, y in samples:
            info = factored_hep_update(self.head, feats, y, s.lr, s.amplitude, s.nudges)
            if info["applied"]:
                self.counters["hep_updates"] += 1
            else:
                self.counters["hep_nonconverged"] += 1
        if not self._sync_head_to_arena():
            self.counters["hep_rejected"] += 1

    # -- weights ------------------------------------------------------------------------------
    def get_weights(self) -> dict[str, np.ndarray]:
        """Everything learning changes: adapted int8 weights, head weights, and the learning
        state (LPL statistics, replay buffer, PRNG position) so a restore resumes exactly."""
        out = {f"{self.layers[k].name}.weight": self.w[k].copy() for k in self.lpl_state}
        for k, st in self.lpl_state.items():
            for f, arr in zip(st._fields, st):
                out[f"state.{self.layers[k].name}.lpl.{f}"] = arr.copy()
        if self.head is not None:
            for k, (W, b) in enumerate(zip(self.head_w[0::2], self.head_w[1::2])):
                out[f"head.W{k}"] = W.copy()
                out[f"head.b{k}"] = b.copy()
        for name, arr in getattr(self, "replay", {}).items():
            out[f"state.replay.{name}"] = arr.copy()
        if self.dhead is not None:
            out["state.head.feature_mean"] = self.dhead.mean.copy()
            out["state.head.feature_std"] = self.dhead.std.copy()
        out["state.rng"] = np.array([self.rng.key, self.rng.counter], dtype=np.uint32)
        return out

    def check_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Refuse (InputError, nothing written) arrays :meth:`get_weights` would not return:
        unknown names, wrong shapes, non-finite floats, int8 values out of range, or a head
        weight without its bias."""
        current = self.get_weights()
        for key, v in weights.items():
            if key not in current:
                raise InputError(f"unknown weight array '{key}' for model '{self.qnet.name}'")
            v = np.asarray(v)
            ref = current[key]
            if v.shape != ref.shape:
                raise InputError(f"weight array '{key}' has shape {v.shape}, expected "
                                 f"{ref.shape}")
            if v.dtype.kind not in "biuf":
                raise InputError(f"weight array '{key}' is not numeric ({v.dtype})")
            if v.dtype.kind == "f" and not np.all(np.isfinite(v)):
                raise InputError(f"weight array '{key}' contains NaN or Inf")
            if ref.dtype.kind in "iu" and v.size:
                info = np.iinfo(ref.dtype)
                if v.min() < info.min or v.max() > info.max:
                    raise InputError(f"weight array '{key}' holds values outside {ref.dtype}")
        for k in range(0 if self.head is None else len(self.head.weights)):
            if (f"head.W{k}" in weights) != (f"head.b{k}" in weights):
                raise InputError(f"head.W{k} and head.b{k} must be set together")

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`get_weights` returned (all checked before anything is written)."""
        self.check_weights(weights)
        for k, la in enumerate(self.layers):
            key = f"{la.name}.weight"
            if key in weights:
                self.w[k][...] = weights[key]
                if k in self._fast:
                    weight_changed(la)
                else:
                    self.layers[k] = la.replace(weight=self.w[k])
        if self.head is not None:
            for k in range(len(self.head.weights)):
                if f"head.W{k}" in weights:
                    self.head_w[2 * k][...] = weights[f"head.W{k}"]
                    self.head_w[2 * k + 1][...] = weights[f"head.b{k}"]
            self._sync_head_from_arena()
        for k, st in self.lpl_state.items():
            for f, arr in zip(st._fields, st):
                key = f"state.{self.layers[k].name}.lpl.{f}"
                if key in weights:
                    arr[...] = weights[key]
            if k in self._fast:
                self._fast[k].reload()
        for name, arr in getattr(self, "replay", {}).items():
            if f"state.replay.{name}" in weights:
                arr[...] = weights[f"state.replay.{name}"]
        if self.dhead is not None and "state.head.feature_mean" in weights:
            self.dhead.mean[...] = weights["state.head.feature_mean"]
            self.dhead.std[...] = weights["state.head.feature_std"]
        if "state.rng" in weights:
            key, counter = (int(v) for v in weights["state.rng"])
            self.rng = RngState(key, counter)

    def network(self) -> QNetwork:
        """The running integer network, learned weights included."""
        return self.qnet.replace(layers=tuple(
            la.replace() if k in self._fast else la for k, la in enumerate(self.layers)))
