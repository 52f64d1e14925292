"""A device instance: one simulated analog chip holding one network (L1, numpy only).

Created from a :class:`~edgelearn.substrate.params.Preset`, a seed and a Network. Everything
random comes from four Generators spawned from ``np.random.SeedSequence(seed)``:

    fixed     mismatch and stuck-at faults, drawn once at creation (frozen per instance)
    program   programming noise and drift exponents, one draw per written synapse
    read      weight read noise, a fresh draw at every read of the array (each run)
    temporal  synaptic-input and membrane noise at every step, and the readout (ADC) noise

The only way weights change is :meth:`Device.write` (quantize -> clip with a count -> program
noise -> new drift exponent, time of write recorded per synapse). What the device computes with
at run time is, per synapse, ``gain * w_read + offset * w_max`` where ``w_read`` is the nominal
weight of one noisy read of the drifted conductances (optionally drift-compensated); neurons use
their mismatched threshold, alpha and beta. Biases are digital (exact).

:meth:`save` writes one ``.npz`` (arrays + the JSON description under ``__meta__``) atomically;
:meth:`load` restores an identical device, including the Generator states.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgelearn.atomic import atomic_write_bytes
from edgelearn.errors import InputError, SubstrateError
from edgelearn.kernels.lif_float import init_layer_state
from edgelearn.model import Layer, Network
from edgelearn.substrate import mapping as mp
from edgelearn.substrate import noise
from edgelearn.substrate.params import Preset
from edgelearn.substrate.step import noisy_layer_step

STREAMS = ("fixed", "program", "read", "temporal")
FORMAT = "edgelearn-substrate-device/1"
_ARRAY_FIELDS = ("g_target", "g_prog", "nu", "t_prog", "faults", "gain", "offset")
_LAYER_FIELDS = ("threshold", "alpha", "beta")


@dataclass
class WriteReport:
    """Result of one write: synapses reprogrammed, entries clipped to +-w_max, largest |w|."""

    key: str
    n_written: int
    n_clipped: int
    max_abs: float
    w_max: float


@dataclass
class Observation:
    """What a chip lets the host observe for one run (arrays [T, B, n]).

    ``output``: last layer's spikes, or its membrane through the noisy readout.
    ``spikes``: spikes of every spiking layer (exact: spikes are events).
    ``membrane``: membrane traces through the noisy readout (if recorded).
    """

    output: np.ndarray
    spikes: dict[str, np.ndarray] = field(default_factory=dict)
    membrane: dict[str, np.ndarray] = field(default_factory=dict)


def _array_key(layer: str, recurrent: bool) -> str:
    return f"{layer}.recurrent" if recurrent else layer


def _as_input(x: np.ndarray, n_in: int) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise InputError(f"substrate input must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, None, :]
    if arr.ndim != 3 or arr.shape[2] != n_in or 0 in arr.shape:
        raise InputError(f"substrate expects input [T, {n_in}] or [T, B, {n_in}], "
                         f"got shape {np.asarray(x).shape}")
    arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        raise InputError("substrate input contains NaN or Inf")
    return arr


class Device:
    """One simulated chip. Build with :meth:`create` or :meth:`load`, not the constructor."""

    def __init__(self, preset: Preset, base: Network, arrays: dict, neurons: dict,
                 w_max: dict, ref: dict, time_s: float, rngs: dict, seed: int,
                 counters: dict) -> None:
        self.preset = preset
        self.base = base            # nominal network: structure, biases, nominal neuron constants
        self.arrays = arrays        # key -> {field: ndarray}
        self.neurons = neurons      # layer -> NeuronMismatch
        self.w_max = w_max          # key -> float
        self.ref = ref              # key -> sum |w| at programming (drift compensation)
        self.time_s = float(time_s)
        self.rngs = rngs
        self.seed = seed
        self.counters = counters    # writes, programmed, clipped, reads, runs
        self.load_reports: list[WriteReport] = []   # the writes of :meth:`create`

    # ---- creation -------------------------------------------------------------------------
    @classmethod
    def create(cls, preset: Preset, seed: int, net: Network) -> "Device":
        """A fresh device for ``net``: draw mismatch and faults, then program all weights."""
        if not isinstance(preset, Preset):
            raise SubstrateError(f"device needs a Preset, got {type(preset).__name__}")
        if not isinstance(net, Network):
            raise SubstrateError(f"device needs a Network, got {type(net).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise SubstrateError(f"device seed must be a non-negative integer, got {seed!r}")
        children = np.random.SeedSequence(int(seed)).spawn(len(STREAMS))
        rngs = {s: np.random.Generator(np.random.PCG64(c)) for s, c in zip(STREAMS, children)}
        fixed, mm, mapping = rngs["fixed"], preset.mismatch, preset.mapping
        arrays, neurons, w_max = {}, {}, {}
        for layer in net.layers:
            neurons[layer.name] = noise.draw_neuron_mismatch(
                fixed, layer.threshold, layer.alpha, layer.beta, mm)
            mats = [(layer.weight, False)]
            if layer.recurrent is not None:
                mats.append((layer.recurrent, True))
            for w, rec in mats:
                key = _array_key(layer.name, rec)
                syn = noise.draw_synapse_mismatch(fixed, w.shape, mm)
                arrays[key] = {
                    "g_target": np.full((2,) + w.shape, -1.0),   # -1: never written
                    "g_prog": np.zeros((2,) + w.shape),
                    "nu": np.zeros((2,) + w.shape),
                    "t_prog": np.zeros(w.shape),
                    "faults": noise.draw_faults(fixed, (2,) + w.shape, preset.faults),
                    "gain": syn.gain, "offset": syn.offset,
                }
                w_max[key] = mp.choose_w_max(w, mapping, key)
        counters = {"writes": 0, "programmed": 0, "clipped": 0, "reads": 0, "runs": 0}
        dev = cls(preset, net, arrays, neurons, w_max, {k: 0.0 for k in arrays}, 0.0, rngs,
                  int(seed), counters)
        dev.load_reports = [dev.write(layer.name, layer.weight) for layer in net.layers]
        dev.load_reports += [dev.write(layer.name, layer.recurrent, recurrent=True)
                             for layer in net.layers if layer.recurrent is not None]
        return dev

    # ---- the write path ---------------------------------------------------------------------
    def keys(self) -> list[str]:
        """Names of the weight arrays: the layer name, or '<layer>.recurrent'."""
        return list(self.arrays)

    def _entry(self, layer: str, recurrent: bool) -> tuple[str, dict]:
        key = _array_key(layer, recurrent)
        if key not in self.arrays:
            raise SubstrateError(f"device has no weight array '{key}'; arrays are "
                                 f"{self.keys()}")
        return key, self.arrays[key]

    def write(self, layer: str, weight: np.ndarray, recurrent: bool = False,
              strict: bool = False) -> WriteReport:
        """Program ``weight`` into a layer's array; only synapses whose target changed are
        rewritten (each pays programming noise, a new drift exponent and a new write time).

        Entries beyond +-w_max are clipped and counted in the report (``strict=True`` raises
        :class:`SubstrateError` instead).
        """
        key, a = self._entry(layer, recurrent)
        w = np.asarray(weight)
        if w.shape != a["t_prog"].shape:
            raise SubstrateError(f"write to '{key}': expected shape "
                                 f"{'x'.join(map(str, a['t_prog'].shape))}, got "
                                 f"{'x'.join(map(str, w.shape))}")
        mapping = self.preset.mapping
        tgt = mp.to_device(w, self.w_max[key], mapping, key)
        if strict and tgt.n_clipped:
            raise SubstrateError(f"write to '{key}': {tgt.n_clipped} weights exceed the "
                                 f"representable range +-{self.w_max[key]:.4g} "
                                 f"(largest |w| {tgt.max_abs:.4g})")
        changed = np.any(tgt.g != a["g_target"], axis=0)
        n = int(changed.sum())
        if n:
            sel = np.broadcast_to(changed, tgt.g.shape)
            active = mp.active_mask(tgt.g, mapping)
            g_new = noise.program(self.rngs["program"], tgt.g, self.preset.programming, mapping)
            g_new = noise.apply_faults(g_new, a["faults"], active, mapping)
            nu_new = noise.draw_nu(self.rngs["program"], tgt.g, self.preset.drift, mapping)
            a["g_prog"] = np.where(sel, g_new, a["g_prog"])
            a["nu"] = np.where(sel, nu_new, a["nu"])
            a["t_prog"] = np.where(changed, self.time_s, a["t_prog"])
            a["g_target"] = tgt.g
            self.ref[key] = float(np.abs(a["g_prog"][0] - a["g_prog"][1]).sum())
        self.counters["writes"] += 1
        self.counters["programmed"] += n
        self.counters["clipped"] += tgt.n_clipped
        return WriteReport(key, n, tgt.n_clipped, tgt.max_abs, self.w_max[key])

    def write_bias(self, layer: str, bias: np.ndarray) -> None:
        """Set a layer's bias. Biases are digital (exact, no noise); the layer must have one."""
        base = self.base.layer(layer)
        if base.bias is None:
            raise SubstrateError(f"layer '{layer}' has no bias on this device")
        b = np.asarray(bias, dtype=np.float32)
        if b.shape != base.bias.shape or not np.all(np.isfinite(b)):
            raise SubstrateError(f"bias of '{layer}' must be {base.n_out} finite values, got "
                                 f"shape {b.shape}")
        self.base = self.base.replace_layer(layer, bias=b)

    def advance_time(self, seconds: float) -> None:
        """Let ``seconds`` pass (drift and read noise grow with time since each write)."""
        s = float(seconds)
        if not np.isfinite(s) or s < 0:
            raise SubstrateError(f"advance_time needs a finite number of seconds >= 0, got "
                                 f"{seconds}")
        self.time_s += s

    # ---- the read path ----------------------------------------------------------------------
    def conductances(self, key: str) -> np.ndarray:
        """Drifted conductances now, without read noise, uS [2, n_out, n_in] (for tests)."""
        a = self.arrays[key]
        return noise.drifted(a["g_prog"], a["nu"], self.time_s - a["t_prog"], self.preset.drift)

    def read_conductances(self, key: str) -> np.ndarray:
        """One noisy read of an array's conductances, uS (a fresh read-noise draw)."""
        a = self.arrays[key]
        t_since = self.time_s - a["t_prog"]
        g = noise.read(self.rngs["read"], self.conductances(key), a["g_prog"], t_since,
                       self.preset.read, self.preset.drift, self.preset.mapping)
        self.counters["reads"] += 1
        return np.where(mp.active_mask(a["g_target"], self.preset.mapping), g, 0.0)

    def _nominal(self, key: str, g: np.ndarray) -> np.ndarray:
        w = mp.to_weights(g, self.w_max[key], self.preset.mapping)
        if self.preset.drift.compensation:
            now = float(np.abs(g[0] - g[1]).sum())
            if now > 0 and self.ref[key] > 0:
                w = (w * (self.ref[key] / now)).astype(np.float32)
        return w

    def read_weights(self, layer: str, recurrent: bool = False) -> np.ndarray:
        """What the chip reports for an array: nominal weights of one noisy read (float32).
        The analog mismatch (gain, offset) is not visible to a read."""
        key, _ = self._entry(layer, recurrent)
        return self._nominal(key, self.read_conductances(key))

    def effective_network(self) -> Network:
        """The network the device computes with during one run: one noisy read per array,
        per-synapse gain and offset, mismatched neuron constants."""
        layers = []
        for layer in self.base.layers:
            nm = self.neurons[layer.name]
            mats = {}
            for rec in (False, True):
                key = _array_key(layer.name, rec)
                if key in self.arrays:
                    a = self.arrays[key]
                    w = self._nominal(key, self.read_conductances(key))
                    mats[rec] = a["gain"] * w + a["offset"] * self.w_max[key]
            layers.append(layer.replace(weight=mats[False], recurrent=mats.get(True),
                                        threshold=nm.threshold, alpha=nm.alpha, beta=nm.beta))
        return self.base.replace(layers=tuple(layers))

    def run(self, x: np.ndarray, record: tuple[str, ...] = ("spikes", "membrane")) -> Observation:
        """Run an input sequence [T, n_in] or [T, B, n_in] on the device (one array read per
        run, temporal noise per step, membranes through the noisy readout)."""
        unknown = set(record) - {"spikes", "membrane"}
        if unknown:
            raise InputError(f"substrate can record 'spikes' and 'membrane', not "
                             f"{sorted(unknown)}")
        seq = _as_input(x, self.base.n_in)
        T, B, _ = seq.shape
        net = self.effective_network()
        rp = self.preset.read
        rng = self.rngs["temporal"]
        states = [init_layer_state(layer, B) for layer in net.layers]
        last = net.layers[-1]
        out = np.empty((T, B, last.n_out), dtype=np.float32)
        obs = Observation(out)
        for layer in net.layers:
            if "spikes" in record and layer.spiking:
                obs.spikes[layer.name] = np.empty((T, B, layer.n_out), dtype=np.float32)
            if "membrane" in record:
                obs.membrane[layer.name] = np.empty((T, B, layer.n_out), dtype=np.float32)
        for t in range(T):
            h = seq[t]
            for i, layer in enumerate(net.layers):
                h, states[i] = noisy_layer_step(layer, h, states[i], rng, rp.input_sigma,
                                                rp.membrane_sigma)
                if layer.name in obs.spikes:
                    obs.spikes[layer.name][t] = h
                if layer.name in obs.membrane:
                    obs.membrane[layer.name][t] = states[i].membrane
            out[t] = h
        if rp.readout_sigma > 0:
            for name, m in obs.membrane.items():
                m += (rp.readout_sigma * rng.standard_normal(m.shape)).astype(np.float32)
            if not last.spiking:
                if last.name in obs.membrane:
                    out[...] = obs.membrane[last.name]
                else:
                    out += (rp.readout_sigma * rng.standard_normal(out.shape)).astype(np.float32)
        self.counters["runs"] += 1
        return obs

    # ---- inspection -------------------------------------------------------------------------
    def info(self) -> dict:
        """Summary: preset, seed, time, array sizes and w_max, write/clip/read counters."""
        return {
            "preset": self.preset.name, "seed": self.seed, "time_s": self.time_s,
            "arrays": {k: {"shape": list(a["t_prog"].shape), "w_max": self.w_max[k],
                           "stuck": int((a["faults"] != 0).sum())}
                       for k, a in self.arrays.items()},
            **{k: int(v) for k, v in self.counters.items()},
        }

    # ---- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the whole device state to one ``.npz`` (arrays + JSON meta), atomically."""
        arrs: dict[str, np.ndarray] = {}
        layers = []
        for layer in self.base.layers:
            arrs[f"base/{layer.name}/weight"] = layer.weight
            for f in _LAYER_FIELDS:
                arrs[f"base/{layer.name}/{f}"] = getattr(layer, f)
                arrs[f"neuron/{layer.name}/{f}"] = getattr(self.neurons[layer.name], f)
            if layer.bias is not None:
                arrs[f"base/{layer.name}/bias"] = layer.bias
            if layer.recurrent is not None:
                arrs[f"base/{layer.name}/recurrent"] = layer.recurrent
            layers.append({"name": layer.name, "reset": layer.reset, "spiking": layer.spiking,
                           "bias": layer.bias is not None,
                           "recurrent": layer.recurrent is not None})
        for key, a in self.arrays.items():
            for f in _ARRAY_FIELDS:
                arrs[f"array/{key}/{f}"] = a[f]
        meta = {
            "format": FORMAT, "preset": self.preset.to_dict(), "seed": self.seed,
            "time_s": self.time_s, "w_max": self.w_max, "ref": self.ref,
            "counters": self.counters, "layers": layers,
            "network": {"name": self.base.name, "dt": self.base.dt, "meta": self.base.meta},
            "rng": {s: g.bit_generator.state for s, g in self.rngs.items()},
        }
        arrs["__meta__"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrs)
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> "Device":
        """Restore a device written by :meth:`save` (no pickle)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
            meta = json.loads(bytes(data.pop("__meta__")).decode("utf-8"))
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            raise SubstrateError(f"cannot read device file '{path}': {exc}") from None
        if meta.get("format") != FORMAT:
            raise SubstrateError(f"'{path}' is not a substrate device file (format "
                                 f"{meta.get('format')!r}, expected {FORMAT!r})")
        try:
            preset = Preset.from_dict(meta["preset"])
            layers, neurons = [], {}
            for spec in meta["layers"]:
                n = spec["name"]
                base = {f: data[f"base/{n}/{f}"] for f in _LAYER_FIELDS}
                layers.append(Layer(n, data[f"base/{n}/weight"], reset=spec["reset"],
                                    spiking=spec["spiking"],
                                    bias=data[f"base/{n}/bias"] if spec["bias"] else None,
                                    recurrent=data[f"base/{n}/recurrent"]
                                    if spec["recurrent"] else None, **base))
                neurons[n] = noise.NeuronMismatch(
                    *(data[f"neuron/{n}/{f}"] for f in _LAYER_FIELDS))
            nm = meta["network"]
            net = Network(tuple(layers), name=nm["name"], dt=nm["dt"], meta=nm["meta"])
            arrays = {k: {f: data[f"array/{k}/{f}"] for f in _ARRAY_FIELDS}
                      for k in meta["w_max"]}
            rngs = {}
            for s in STREAMS:
                g = np.random.Generator(np.random.PCG64())
                g.bit_generator.state = meta["rng"][s]
                rngs[s] = g
        except KeyError as exc:
            raise SubstrateError(f"device file '{path}' misses entry {exc}") from None
        return cls(preset, net, arrays, neurons, {k: float(v) for k, v in meta["w_max"].items()},
                   {k: float(v) for k, v in meta["ref"].items()}, meta["time_s"], rngs,
                   int(meta["seed"]), {k: int(v) for k, v in meta["counters"].items()})
