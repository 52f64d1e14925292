"""The device engine: a deployed integer SNN (+ hEP head) running in a fixed RAM arena.

One engine serves both modes of a board (docs/protocol.md): streaming mode (``stream``: the
neuron state runs on across calls, outputs per step; LPL on a layer set by LEARN) and sample
mode (``begin_sample`` / ``run_steps`` / ``end_sample``, ``teach``); the host target runs it
directly. Per sample x [T, n_in] (the network's integer input), with the state reset first:

    for t in 0..T-1:
        h = x[t];  for each layer k:  h, state_k = LIF step(layer_k, h, state_k)
                   if LPL is on for layer k:  W_k <- LPL step (pre = layer input << A,
                                                            post = layer spikes << A)
        counts += spikes of the feature layer (edgelearn.model.feature_layer_index), uint16
        readout: running max (or clipped sum, for mean) of the readout membrane, int32
    scores = readout in threshold units;  with an hEP head: features
    f = [counts / T, scores], prediction = argmax head((f - mean) / std), else argmax scores

The LIF step and the LPL step each run through one kernel interface
(edgelearn.kernels.lif_kernels, edgelearn.rules.lpl_kernels): ``lif_impl`` and ``lpl_impl``
pick the reference (the specification) or the optimised implementation (default), which give
the same integers.

``teach(label)`` makes ``repeats`` real-valued hEP updates of the head (the new sample and
replayed ones; edgelearn.device.hep_factored), each rounded to the float32 weights it keeps.
docs/protocol.md section 8.4 is the normative description of every step.

The engine runs from a :class:`~edgelearn.device.config.DeviceConfig` (integer LPL codes, the
hEP nudge table); a host ``EngineConfig`` is compiled into one, so host and board run from the
same numbers. Every buffer of ``edgelearn.memory.layout.arena_layout`` lives in the arena
(the planner charges the same list): int8 weights, neuron constants and state, spike vectors,
features, readout accumulator, the head (float32 weights and normalisation, float64
relaxation workspace), LPL state per adapted layer, hEP accumulators and the replay ring. The
arena's high-water mark is what the device uses; numpy temporaries of the host computation
(a device computes row by row) are not device memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgelearn.device.config import DeviceConfig, HEPCodes, compile_config
from edgelearn.device.features import feature_vector
from edgelearn.device.head import DeviceHead
from edgelearn.device.hep_factored import factored_hep_update
from edgelearn.errors import InputError, MemoryBudgetError, ParameterError
from edgelearn.fixed import RngState, int_range, rng_draw, rng_init
from edgelearn.kernels import lif_kernels
from edgelearn.kernels.lif_fast import bind_weight, weight_changed
from edgelearn.kernels.lif_fixed import QNetwork, QState
from edgelearn.memory.arena import Arena
from edgelearn.memory.layout import BufferSpec, arena_layout
from edgelearn.model import feature_layer_index
from edgelearn.rules import lpl_codes, lpl_kernels, lpl_rate

READOUTS = ("max", "mean")
SAMPLE_STEPS_MAX = 4096   # longest sample; bounds the per-step clip of the mean readout
MEAN_CLIP = (-(1 << 31) // SAMPLE_STEPS_MAX, (1 << 31) // SAMPLE_STEPS_MAX - 1)
COUNTERS = ("steps", "spikes", "input_spikes", "output_spikes", "lpl_updates", "samples",
            "hep_updates", "hep_nonconverged", "hep_rejected")


@dataclass(frozen=True)
class HEPSettings:
    """On-device hEP (host side; compiled into the nudge table of HEPCodes).

    Attributes:
        lr: SGD step of one hEP update.
        amplitude: oscillation amplitude b of the teaching signal.
        nudges: distinct nudge values per estimate (``schemes.hep_scheme``).
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
    """LPL for a deployed hidden layer (``lpl_rate.deploy_default``)."""
    return lpl_rate.deploy_default()


@dataclass(frozen=True)
class EngineConfig:
    """What the engine adapts and how (host side; ``compile_config`` makes the DeviceConfig).

    Attributes:
        readout: 'max' or 'mean' over time of the readout membrane.
        lpl_layers: hidden layers LPL adapts (names).
        lpl: LPL parameters (rate form), the same for every adapted layer.
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
    kind: int = 0          # 0: readout scores (threshold units), 1: head logits


def check_config(qnet: QNetwork, dc: DeviceConfig) -> None:
    """Refuse a DeviceConfig the model cannot run (ParameterError; ``.entry`` = the LPL
    entry's position, ``.field`` = 'layer' or 'act_frac')."""
    for pos, (k, c) in enumerate(dc.lpl):
        if not 0 <= k < len(qnet.layers) or not qnet.layers[k].spiking:
            err = ParameterError(f"LPL layer index {k} is not a spiking layer of model "
                                 f"'{qnet.name}' ({len(qnet.layers)} layers)")
            err.entry, err.field, err.value = pos, "layer", k
            raise err
        if k == 0 and qnet.input_bits - 1 + c.act_frac > 15:
            err = ParameterError(f"LPL on layer 0 needs input_bits - 1 + act_frac <= 15 (its "
                                 f"input << act_frac must fit int16), got {qnet.input_bits} "
                                 f"and {c.act_frac}")
            err.entry, err.field, err.value = pos, "act_frac", c.act_frac
            raise err


def check_head(qnet: QNetwork, head: DeviceHead | None) -> None:
    """The head must take the model's features and hold values finite in float32."""
    if head is None:
        return
    f = qnet.layers[feature_layer_index(qnet.layers)]
    n_feat = f.n_out + qnet.n_out
    if head.n_features != n_feat:
        raise ParameterError(f"head expects {head.n_features} features, the model gives "
                             f"{n_feat} ('{f.name}' rates and {qnet.n_out} readout scores)")
    h = head.head
    for what, arr in [("feature mean", head.mean), ("feature std", head.std)] + \
            [(f"W{k}", W) for k, W in enumerate(h.weights)] + \
            [(f"b{k}", b) for k, b in enumerate(h.biases)]:
        with np.errstate(over="ignore", invalid="ignore"):
            stored = np.asarray(arr, dtype=np.float64).astype(np.float32)
        if not np.all(np.isfinite(stored)):
            raise ParameterError(f"head {what} is not finite in float32 (the device stores "
                                 f"float32)")


def engine_layout(qnet: QNetwork, head: DeviceHead | None, dc: DeviceConfig) -> list[BufferSpec]:
    """The engine's arena buffers (edgelearn.memory.layout.arena_layout, without the link)."""
    lpl = [(k, lpl_codes.code_state_shapes(c, qnet.layers[k].n_in, qnet.layers[k].n_out))
           for k, c in dc.lpl]
    with_hep = head is not None and dc.hep is not None
    return arena_layout(qnet.layers, input_bits=qnet.input_bits,
                        head_sizes=None if head is None else head.head.sizes, lpl=lpl,
                        hep_replay=dc.hep.replay if with_hep else None)


def first_misfit(specs: list[BufferSpec], arena: Arena) -> tuple[str, int, int] | None:
    """(name, bytes, free) of the first buffer that would not fit the arena's free bytes, or
    None when all fit (checked before anything is allocated)."""
    free = arena.free
    for b in specs:
        need = b.padded(arena.align)
        if need > free:
            return b.name, need, free
        free -= need
    return None


class Engine:
    """One model on one device. See the module docstring for the computation."""

    def __init__(self, qnet: QNetwork, arena: Arena, head: DeviceHead | None = None,
                 config: EngineConfig | DeviceConfig = EngineConfig(), *,
                 counters: dict | None = None, lpl_impl: str = "optimised",
                 lif_impl: str = "optimised") -> None:
        self.qnet = qnet
        self.arena = arena
        self.config = config
        dc = config if isinstance(config, DeviceConfig) else compile_config(config, qnet)
        check_config(qnet, dc)
        check_head(qnet, head)
        self.dconfig = dc
        self.layers = list(qnet.layers)
        self.feature_index = feature_layer_index(qnet.layers)
        self.dhead = head
        self.head = None if head is None else head.head
        self.hep: HEPCodes | None = dc.hep if head is not None else None
        self.lpl_on = False
        self.hep_on = False
        self.rng = rng_init(dc.seed)
        self.counters = counters if counters is not None else {}
        for k in COUNTERS:
            self.counters.setdefault(k, 0)
        # per step and layer: active inputs, recurrent spikes, 1 if the inputs carry values
        self.activity: list | None = None
        self._in_lo, self._in_hi = int_range(qnet.input_bits)
        miss = first_misfit(engine_layout(qnet, head, dc), arena)
        if miss is not None:
            name, need, free = miss
            raise MemoryBudgetError(f"{arena.name}: buffer '{name}' needs {need} B, {free} B "
                                    f"free of {arena.size} B (missing {need - free} B)")
        self._allocate(engine_layout(qnet, head, dc))
        self.kernels = {k: lpl_kernels.bind(c, self.w[k], self.lpl_state[k], lpl_impl)
                        for k, c in dc.lpl}
        self.lif_step = lif_kernels.layer_step(lif_impl)
        self.reset_state()
        self._last_features: np.ndarray | None = None     # of the last classified sample
        self._last_raw: tuple | None = None                # its (counts, scores, T)

    # -- memory -------------------------------------------------------------------------------
    def _allocate(self, specs: list[BufferSpec]) -> None:
        a = self.arena
        buf = {b.name: a.allocate(b.name, b.shape, b.dtype) for b in specs}
        self.input = buf["input"]
        self.w, self.cur, self.mem, self.spk = [], [], [], []
        for la in self.layers:
            w = buf[f"{la.name}.weight"]
            w[...] = la.weight
            self.w.append(w)
            if la.recurrent is not None:
                buf[f"{la.name}.recurrent"][...] = la.recurrent
            if la.bias is not None:
                buf[f"{la.name}.bias"][...] = la.bias
            consts = buf[f"{la.name}.consts"]
            consts.view(np.int16)[0::2][: la.n_out] = la.alpha
            consts.view(np.int16)[1::2][: la.n_out] = la.beta
            consts[la.n_out:] = la.threshold
            state = buf[f"{la.name}.state"]
            self.cur.append(state[0])
            self.mem.append(state[1])
            self.spk.append(buf.get(f"{la.name}.spikes"))
        self.features = buf["features"]
        self.output = buf["output"]
        self.head_w: list[np.ndarray] = []
        if self.head is not None:
            flat, off = buf["head.weights"], 0
            for W, b in zip(self.head.weights, self.head.biases):
                for arr in (W, b):
                    view = flat[off:off + arr.size].reshape(arr.shape)
                    view[...] = arr
                    self.head_w.append(view)
                    off += arr.size
            self._sync_head_from_arena()
            norm = buf["head.norm"]
            norm[0], norm[1] = self.dhead.mean, self.dhead.std
            self.dhead.mean, self.dhead.std = norm[0], norm[1]
        self.lpl_state: dict[int, lpl_codes.State] = {}
        for k, c in self.dconfig.lpl:
            la = self.layers[k]
            init = lpl_codes.init_state(c, la.n_in, la.n_out)
            arrays = []
            for f, arr in zip(init._fields, init):
                if arr.size:
                    dst = buf[f"{la.name}.lpl.{f}"]
                    dst[...] = arr
                    arrays.append(dst)
                else:
                    arrays.append(arr)
            self.lpl_state[k] = lpl_codes.State(*arrays)
            self.layers[k] = bind_weight(la, self.w[k])
        self.replay = {}
        if self.hep is not None and self.hep.replay:
            self.replay = {n: buf[f"head.replay.{n}"]
                           for n in ("counts", "scores", "labels", "lengths", "ring")}

    def _sync_head_from_arena(self) -> None:
        """The head computes (binary64) from the float32 values the device stores."""
        self.head.weights = [np.asarray(v, dtype=np.float64) for v in self.head_w[0::2]]
        self.head.biases = [np.asarray(v, dtype=np.float64) for v in self.head_w[1::2]]

    # -- control ------------------------------------------------------------------------------
    def set_learning(self, lpl: bool, hep: bool) -> None:
        if lpl and not self.lpl_state:
            raise ParameterError("LPL was not planned for this deployment (no LPL layers)")
        if hep and self.hep is None:
            raise ParameterError("hEP was not planned for this deployment (no head)")
        self.lpl_on, self.hep_on = bool(lpl), bool(hep)

    def reset_state(self) -> None:
        """Zero every layer's neuron state (and close an open sample); the last classified
        sample stays what :meth:`teach` learns from."""
        self._states = [QState(np.zeros((1, la.n_out), np.int64),
                               np.zeros((1, la.n_out), np.int64)) for la in self.layers]
        for k, la in enumerate(self.layers):
            self.cur[k][...] = 0
            self.mem[k][...] = 0
            if self.spk[k] is not None:
                self.spk[k][...] = 0
        self._open = False
        self._T = 0

    # -- running ------------------------------------------------------------------------------
    def check_input(self, x: np.ndarray) -> np.ndarray:
        """x as int64 [T, n_in] within the network's signed input_bits (InputError if not)."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.qnet.n_in:
            raise InputError(f"sample must be [T, {self.qnet.n_in}], got shape {tuple(x.shape)}")
        if x.dtype.kind not in "iub":
            raise InputError(f"sample must hold the network's integer input, got dtype "
                             f"{x.dtype}")
        x = x.astype(np.int64)
        if x.size and (x.min() < self._in_lo or x.max() > self._in_hi):
            raise InputError(f"input values must lie in [{self._in_lo}, {self._in_hi}] "
                             f"({self.qnet.input_bits}-bit), got [{x.min()}, {x.max()}]")
        return x

    def run_sample(self, x: np.ndarray) -> SampleResult:
        """One whole sample x [T, n_in]: begin, all steps, end."""
        self.begin_sample()
        self.run_steps(x)
        return self.end_sample()

    def begin_sample(self) -> None:
        """Zero the neuron state, the feature counts and the readout accumulator; the new
        sample replaces the last classified one (TEACH has nothing to learn from until it is
        classified; :meth:`reset_state` alone keeps it)."""
        self.reset_state()
        self._last_features = None
        self._last_raw = None
        self.features[...] = 0
        self.output[...] = 0 if self.dconfig.readout == "mean" else np.iinfo(np.int32).min
        self._sample_spikes = 0
        self._open = True

    def run_steps(self, x: np.ndarray) -> None:
        """Run the next steps x [t, n_in] of the current sample (a board streams a sample in
        chunks; the result does not depend on how it is chunked). The mean readout sums the
        membrane clipped to MEAN_CLIP per step, so the int32 sum cannot overflow for samples up
        to SAMPLE_STEPS_MAX steps."""
        if not self._open:
            raise InputError("run_steps() needs begin_sample() first")
        x = self.check_input(x)
        if self._T + x.shape[0] > SAMPLE_STEPS_MAX:
            raise InputError(f"sample longer than {SAMPLE_STEPS_MAX} steps")
        self._run(x, sample=True)

    def stream(self, x: np.ndarray) -> np.ndarray:
        """Streaming mode: run steps x [T, n_in] from the current state; returns the output
        of every step [T, n_out] (0/1 spikes, or the readout membrane)."""
        return self._run(self.check_input(x), sample=False)

    def _run(self, xs: np.ndarray, sample: bool) -> np.ndarray | None:
        layers = self.layers
        n_layers = len(layers)
        T = xs.shape[0]
        mean = self.dconfig.readout == "mean"
        lo_mean, hi_mean = MEAN_CLIP
        fk = self.feature_index
        states = self._states
        kernels = self.kernels if self.lpl_on else {}
        shifts = {k: c.act_frac for k, c in self.dconfig.lpl}
        spk, features, output, inp = self.spk, self.features, self.output, self.input
        counts = [np.zeros(la.n_out, np.int64) if la.spiking else None for la in layers]
        acc = np.zeros(self.qnet.n_out, np.int64)
        outs = None if sample else np.zeros((T, self.qnet.n_out), np.int64)
        act = None if self.activity is None else np.zeros((T, n_layers, 3), np.int64)
        binary0 = bool(xs.size and xs.min() >= 0 and xs.max() <= 1)
        rng, lpl_updates = self.rng, 0
        lif_step = self.lif_step
        for t in range(T):
            inp[...] = xs[t]
            h = xs[t:t + 1]
            binary = binary0
            for k in range(n_layers):
                la = layers[k]
                if act is not None:
                    act[t, k, 0] = np.count_nonzero(h)
                    act[t, k, 2] = k == 0 and bool(np.any((h != 0) & (h != 1)))
                    if la.recurrent is not None:
                        act[t, k, 1] = np.count_nonzero(spk[k])
                y, states[k] = lif_step(la, h, states[k], "auto", binary)
                binary = True
                if la.spiking:
                    y0 = y[0]
                    np.copyto(spk[k], y0, casting="unsafe")
                    counts[k] += y0
                kern = kernels.get(k)
                if kern is not None:
                    rng, _, ran = kern.step(h[0], y[0], rng, shifts[k], spikes=True)
                    if ran:
                        lpl_updates += 1
                        if kern.w_changed:
                            weight_changed(la)
                h = y
            if sample:
                np.add(features, spk[fk], out=features)
                last = h[0]
                if mean:
                    np.maximum(last, lo_mean, out=acc)
                    np.minimum(acc, hi_mean, out=acc)
                    np.add(output, acc, out=output, casting="unsafe")
                else:
                    np.maximum(output, last, out=output, casting="unsafe")
            else:
                outs[t] = h[0]
        self.rng = rng
        for k in range(n_layers):
            self.cur[k][...] = states[k].current[0]
            self.mem[k][...] = states[k].membrane[0]
        for kern in kernels.values():
            kern.flush()                 # LPL state (working copies) into the arena
        spikes = int(sum(int(c.sum()) for c in counts if c is not None))
        c = self.counters
        c["steps"] += T
        c["spikes"] += spikes
        c["input_spikes"] += int(np.count_nonzero(xs))
        if layers[-1].spiking:
            c["output_spikes"] += int(counts[-1].sum())
        c["lpl_updates"] += lpl_updates
        if act is not None:
            self.activity.append(act)
        if sample:
            self._T += T
            self._sample_spikes += spikes
        return outs

    def end_sample(self) -> SampleResult:
        """Classify the sample that began with :meth:`begin_sample`."""
        if not self._open:
            raise InputError("end_sample() needs begin_sample() first")
        T = self._T
        if T == 0:
            raise InputError("end_sample() after no steps: a sample needs at least one step")
        self._open = False
        self.counters["samples"] += 1
        scores = self.readout_scores(T)
        kind = 0
        if self.head is not None:
            f = feature_vector(self.features, T, scores)
            r = self.dconfig.track_features
            if r and self.lpl_on:
                d = self.dhead
                var = d.std.astype(np.float64) ** 2
                var += r * ((f - d.mean) ** 2 - var)
                d.mean += (r * (f - d.mean)).astype(np.float32)
                d.std[...] = np.sqrt(np.maximum(var, 1e-6))
            self._last_features = self.dhead.normalise(f)
            self._last_raw = (self.features.copy(), scores, T)
            scores = self.head.logits(self._last_features)[0]
            kind = 1
        return SampleResult(int(np.argmax(scores)), scores, self.features.copy(),
                            self._sample_spikes, kind)

    def readout_scores(self, T: int) -> np.ndarray:
        """Readout scores in threshold units: max (or mean) over time of the membrane."""
        out = self.output.astype(np.float64)
        if self.dconfig.readout == "mean":
            out = out / T
        return out * self.layers[-1].scale    # the order of device.features.readout_scores

    # -- hEP ----------------------------------------------------------------------------------
    def teach(self, label: int) -> None:
        """``repeats`` hEP updates of the head from the last sample and replayed ones (if hEP
        is on; docs/protocol.md section 8.4)."""
        if self.head is not None and (not isinstance(label, (int, np.integer))
                                      or not 0 <= int(label) < self.head.n_out):
            raise InputError(f"label {label!r} is not a class index in [0, {self.head.n_out})")
        if not self.hep_on:
            return
        if self._last_raw is None:
            raise InputError("teach() needs a classified sample first: call run_sample")
        s = self.hep
        counts, scores, T = self._last_raw
        # normalised with the feature statistics in force now (a weights blob may have set them)
        samples = [(self.dhead.normalise(feature_vector(counts, T, scores)), int(label))]
        rp = self.replay
        if rp and T <= 255:    # uint8 counts are exact only up to 255 steps
            pos, n = int(rp["ring"][0]), int(rp["ring"][1])
            rp["counts"][pos], rp["scores"][pos] = np.minimum(counts, 255), scores
            rp["labels"][pos], rp["lengths"][pos] = int(label), T
            rp["ring"][0], rp["ring"][1] = (pos + 1) % s.replay, min(n + 1, s.replay)
        if rp and int(rp["ring"][1]):
            draws, self.rng = rng_draw(self.rng, s.repeats - 1)
            for r in draws:
                j = int(r % rp["ring"][1])
                f = feature_vector(rp["counts"][j], float(rp["lengths"][j]), rp["scores"][j])
                samples.append((self.dhead.normalise(f), int(rp["labels"][j])))
        for feats, y in samples:
            self._hep_update(feats, y)

    def _hep_update(self, x: np.ndarray, y: int) -> None:
        """One update in binary64 from the stored float32 weights, rounded back to float32;
        refused (weights kept) when a new weight is not finite in float32."""
        s = self.hep
        info = factored_hep_update(self.head, x, y, s.lr, s.amplitude, s.nodes, s.weights)
        if not info["applied"]:
            self.counters["hep_nonconverged"] += 1
            return
        with np.errstate(over="ignore", invalid="ignore"):
            new = [np.asarray(a, dtype=np.float64).astype(np.float32)
                   for W, b in zip(self.head.weights, self.head.biases) for a in (W, b)]
        if all(np.all(np.isfinite(a)) for a in new):
            for dst, src in zip(self.head_w, new):
                dst[...] = src
            self.counters["hep_updates"] += 1
        else:
            self.counters["hep_rejected"] += 1
        self._sync_head_from_arena()

    # -- roll back ----------------------------------------------------------------------------
    def checkpoint(self) -> dict:
        """Everything a request can change (learned weights and state, neuron state, sample
        accumulators, switches, counters), for :meth:`rollback`."""
        return {"weights": self.get_weights(),
                "states": [QState(s.current.copy(), s.membrane.copy()) for s in self._states],
                "arrays": [a.copy() for a in self._run_arrays()],
                "flags": (self.lpl_on, self.hep_on, self._open, self._T,
                          getattr(self, "_sample_spikes", 0), self._last_features,
                          getattr(self, "_last_raw", None)),
                "counters": dict(self.counters)}

    def _run_arrays(self) -> list[np.ndarray]:
        return [a for a in self.cur + self.mem + self.spk + [self.features, self.output,
                                                             self.input] if a is not None]

    def rollback(self, cp: dict) -> None:
        """Return to a :meth:`checkpoint`."""
        self.set_weights(cp["weights"])
        self._states = [QState(s.current.copy(), s.membrane.copy()) for s in cp["states"]]
        for dst, src in zip(self._run_arrays(), cp["arrays"]):
            dst[...] = src
        (self.lpl_on, self.hep_on, self._open, self._T, self._sample_spikes,
         self._last_features, self._last_raw) = cp["flags"]
        self.counters.clear()
        self.counters.update(cp["counters"])

    # -- weights ------------------------------------------------------------------------------
    def get_weights(self) -> dict[str, np.ndarray]:
        """Everything learning changes: adapted int8 weights, head weights, and the learning
        state (LPL statistics, replay buffer, PRNG position) so a restore resumes exactly."""
        for kern in self.kernels.values():
            kern.flush()
        out = {f"{self.layers[k].name}.weight": self.w[k].copy() for k in self.lpl_state}
        for k, st in self.lpl_state.items():
            for f, arr in zip(st._fields, st):
                out[f"state.{self.layers[k].name}.lpl.{f}"] = arr.copy()
        if self.head is not None:
            for k, (W, b) in enumerate(zip(self.head_w[0::2], self.head_w[1::2])):
                out[f"head.W{k}"] = W.copy()
                out[f"head.b{k}"] = b.copy()
        for name, arr in self.replay.items():
            out[f"state.replay.{name}"] = arr.copy()
        if self.dhead is not None:
            out["state.head.feature_mean"] = self.dhead.mean.copy()
            out["state.head.feature_std"] = self.dhead.std.copy()
        out["state.rng"] = np.array([self.rng.key, self.rng.counter], dtype=np.uint32)
        return out

    def check_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Refuse (InputError, nothing written) what :meth:`get_weights` would not return or
        the engine must not run: unknown names, wrong shapes, values not representable in the
        stored dtype (NaN/Inf after rounding to float32/float16, integers out of range), a head
        weight without its bias, negative variances, step counts outside [0, warmup], replay
        ring positions, labels or lengths out of range, feature std <= 0, learning-epoch sums
        that its step count cannot reach."""
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
            if ref.dtype.kind == "f":
                with np.errstate(over="ignore", invalid="ignore"):
                    stored = v.astype(np.float64).astype(ref.dtype)
                if not np.all(np.isfinite(stored)):
                    raise InputError(f"weight array '{key}' contains NaN or Inf (or values "
                                     f"beyond {ref.dtype}, the dtype the device stores)")
            elif v.size:
                if v.dtype.kind == "f" and not np.all(v == np.round(v)):
                    raise InputError(f"weight array '{key}' must hold integers")
                info = np.iinfo(ref.dtype)
                if v.min() < info.min or v.max() > info.max:
                    raise InputError(f"weight array '{key}' holds values outside {ref.dtype}")
        for k in range(0 if self.head is None else len(self.head.weights)):
            if (f"head.W{k}" in weights) != (f"head.b{k}" in weights):
                raise InputError(f"head.W{k} and head.b{k} must be set together")
        if ("state.head.feature_mean" in weights) != ("state.head.feature_std" in weights):
            raise InputError("state.head.feature_mean and feature_std must be set together")
        self._check_state_ranges(weights)

    def _check_state_ranges(self, weights: dict[str, np.ndarray]) -> None:
        for k, c in self.dconfig.lpl:
            pre = f"state.{self.layers[k].name}.lpl."
            var, count = weights.get(pre + "var"), weights.get(pre + "count")
            if var is not None and np.asarray(var).size and np.asarray(var).min() < 0:
                raise InputError(f"weight array '{pre}var' holds a negative variance")
            if count is not None and not 0 <= int(np.asarray(count)[0]) <= c.warmup:
                raise InputError(f"weight array '{pre}count' must lie in [0, {c.warmup}]")
            if c.epoch_log2:
                self._check_epoch_sums(k, c, weights)
        std = weights.get("state.head.feature_std")
        if std is not None and np.asarray(std).size and not np.all(np.asarray(std) > 0):
            raise InputError("weight array 'state.head.feature_std' must be > 0")
        if self.replay and "state.replay.ring" in weights:
            R = self.hep.replay
            pos, fill = (int(v) for v in np.asarray(weights["state.replay.ring"]))
            if not (0 <= pos < R and 0 <= fill <= R):
                raise InputError(f"replay ring position {pos} / fill {fill} outside "
                                 f"[0, {R}) / [0, {R}]")
            labels = np.asarray(weights.get("state.replay.labels", self.replay["labels"]))
            lengths = np.asarray(weights.get("state.replay.lengths", self.replay["lengths"]))
            if fill and (labels[:fill].max() >= self.head.n_out or lengths[:fill].min() < 1
                         or lengths[:fill].max() > 255):
                raise InputError(f"replay entries need labels < {self.head.n_out} and lengths "
                                 f"in [1, 255]")

    def _check_epoch_sums(self, k: int, c: lpl_codes.Codes, weights: dict) -> None:
        """A learning epoch's sums must be what n = epoch_steps time steps can add up:
        0 <= n < 2^epoch_log2, epoch_post in [0, n] (spikes), epoch_pre within n times the
        layer's input range (the network input's for layer 0, spikes otherwise), so the epoch
        means << act_frac stay within int16 as every step's input does."""
        pre = f"state.{self.layers[k].name}.lpl."
        st = self.lpl_state[k]
        get = lambda f: np.asarray(weights.get(pre + f, getattr(st, f)), np.int64)  # noqa
        n = int(get("epoch_steps")[0])
        if not 0 <= n < c.epoch:
            raise InputError(f"weight array '{pre}epoch_steps' must lie in [0, {c.epoch - 1}]")
        lo, hi = (self._in_lo, self._in_hi) if k == 0 else (0, 1)
        for f, (a, b) in (("epoch_post", (0, 1)), ("epoch_pre", (lo, hi))):
            v = get(f)
            if v.size and (v.min() < n * a or v.max() > n * b):
                raise InputError(f"weight array '{pre}{f}' must lie in [{n * a}, {n * b}] "
                                 f"after {n} steps of the epoch")

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`get_weights` returned (all checked before anything is written)."""
        self.check_weights(weights)
        for k, la in enumerate(self.layers):
            key = f"{la.name}.weight"
            if key in weights:
                self.w[k][...] = weights[key]
                weight_changed(la)
        if self.head is not None:
            for k in range(len(self.head.weights)):
                if f"head.W{k}" in weights:
                    self.head_w[2 * k][...] = weights[f"head.W{k}"]
                    self.head_w[2 * k + 1][...] = weights[f"head.b{k}"]
            self._sync_head_from_arena()
        for k, st in self.lpl_state.items():
            for f, arr in zip(st._fields, st):
                key = f"state.{self.layers[k].name}.lpl.{f}"
                if key in weights and arr.size:
                    arr[...] = weights[key]
            self.kernels[k].reload()
        for name, arr in self.replay.items():
            if f"state.replay.{name}" in weights:
                arr[...] = weights[f"state.replay.{name}"]
        if self.dhead is not None and "state.head.feature_mean" in weights:
            self.dhead.mean[...] = weights["state.head.feature_mean"]
            self.dhead.std[...] = weights["state.head.feature_std"]
        if "state.rng" in weights:
            key, counter = (int(v) for v in weights["state.rng"])
            self.rng = RngState(key, counter)

    def network(self) -> QNetwork:
        """The running integer network, learned weights included (an independent copy)."""
        return self.qnet.replace(layers=tuple(
            la.replace(weight=np.array(self.w[k])) if k in self.lpl_state else la
            for k, la in enumerate(self.layers)))
