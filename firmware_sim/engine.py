"""The running model on the simulated device: integer kernel + fixed-point LPL in a RAM arena.

``Engine(image, cost)`` decodes a device image (edgelearn.kernels.image) into a QNetwork;
``Engine.allocate(arena)`` takes every buffer the memory planner charges
(edgelearn.memory.planner) from the fixed arena: weights, neuron constants, state, spike
vectors, input and output buffers, and LPL state when learning is switched on. A buffer that does not fit raises MemoryBudgetError,
which the device turns into a NO_MEMORY error frame.

One step runs each layer with ``qlayer_step`` (the same integer kernel the host uses, so a board
and the host give identical spikes) and, when learning is on, one fixed-point LPL step on the
chosen layer with pre = the layer's input spikes and post = its output spikes, both in
Q.act_frac, using the device's counter-based PRNG stream for stochastic rounding.
"""

from __future__ import annotations

import numpy as np

from edgelearn.errors import ParameterError
from edgelearn.fixed import rng_init
from edgelearn.kernels.image import from_image, to_image
from edgelearn.kernels.lif_fixed import init_qstate, qlayer_step
from edgelearn.memory.arena import Arena
from firmware_sim.cycles import CoreCost, layer_cycles, worst_case_cycles

try:  # the fixed-point LPL rule (edgelearn.rules); the device runs inference only without it
    from edgelearn.rules import lpl_rate as _lpl
except ImportError:  # pragma: no cover - only while the rules package is absent
    _lpl = None


class Engine:
    """A loaded model: integer network, its arena buffers, optional LPL on one layer."""

    def __init__(self, image: bytes, cost: CoreCost, seed: int = 1) -> None:
        self.qnet = from_image(image)
        self.cost = cost
        self.seed = seed
        self.weights: list[np.ndarray] = [la.weight.copy() for la in self.qnet.layers]
        self.state = [init_qstate(la) for la in self.qnet.layers]
        self.learning = False
        self.learn_layer: int | None = None
        self.lpl_params = None
        self.lpl_state = None
        self.rng = rng_init(seed)
        self.learn_updates = 0
        self.steps = 0
        self.spikes = 0
        self.input_spikes = 0
        self.output_spikes = 0
        self.cycles_total = 0.0
        self.worst_cycles = worst_case_cycles(
            cost, [(la.n_in, la.n_out, la.recurrent is not None) for la in self.qnet.layers])

    # -- memory --------------------------------------------------------------------------------
    def allocate(self, a: Arena) -> None:
        """(Re)allocate every buffer of the model, and of LPL when on, from arena ``a``.

        Current weights and LPL state are copied into their new arena buffers.
        """
        q = self.qnet
        a.allocate("input", q.n_in, np.uint8)
        for k, la in enumerate(q.layers):
            self.weights[k] = a.store(f"{la.name}.weight", self.weights[k], np.int8)
            if la.recurrent is not None:
                a.store(f"{la.name}.recurrent", la.recurrent, np.int8)
            if la.bias is not None:
                a.store(f"{la.name}.bias", la.bias, np.int32)
            a.allocate(f"{la.name}.consts", 2 * la.n_out, np.int32)
            a.allocate(f"{la.name}.state", 2 * la.n_out, np.int32)
            if la.spiking:
                a.allocate(f"{la.name}.spikes", la.n_out, np.uint8)
        # the feature layer as the planner and edgelearn.device.engine define it: the last
        # spiking layer before the output layer (or the last spiking layer if there is none)
        hidden = [la for la in q.layers[:-1] if la.spiking] or \
            [la for la in q.layers if la.spiking]
        if hidden:
            a.allocate("features", hidden[-1].n_out, np.uint16)
        a.allocate("output", q.n_out, np.int32)
        if self.learning and self.lpl_state is not None:
            la = q.layers[self.learn_layer]
            self.lpl_state = type(self.lpl_state)(*(
                a.store(f"{la.name}.lpl.{name}", arr) if arr.size else arr
                for name, arr in zip(self.lpl_state._fields, self.lpl_state)))

    @property
    def n_in(self) -> int:
        return self.qnet.n_in

    @property
    def n_out(self) -> int:
        return self.qnet.n_out

    @property
    def state_bits(self) -> int:
        return max(la.state_bits for la in self.qnet.layers)

    @property
    def output_spiking(self) -> bool:
        return self.qnet.layers[-1].spiking

    # -- learning ------------------------------------------------------------------------------
    def default_layer(self) -> int:
        spiking = [k for k, la in enumerate(self.qnet.layers) if la.spiking]
        hidden = [k for k in spiking if k < len(self.qnet.layers) - 1]
        if hidden:
            return hidden[-1]
        if not spiking:
            raise ParameterError(f"model '{self.qnet.name}' has no spiking layer to adapt")
        return spiking[-1]

    def set_learning(self, enable: bool, layer: int | None, params: dict) -> None:
        """Switch LPL on/off for ``layer`` with parameters ``params`` (names of lpl_rate.Params).

        Turning learning on (or changing layer/parameters) starts fresh LPL state; the caller
        then re-lays out the arena with :meth:`allocate` (see Device._relayout).
        """
        if not enable:
            self.learning = False
            return
        if _lpl is None:
            raise ParameterError("this device build has no LPL rule (edgelearn.rules missing)")
        k = self.default_layer() if layer is None else layer
        if not 0 <= k < len(self.qnet.layers) or not self.qnet.layers[k].spiking:
            raise ParameterError(f"layer index {k} is not a spiking layer of model "
                                 f"'{self.qnet.name}' ({len(self.qnet.layers)} layers)")
        la = self.qnet.layers[k]
        if "seed" in params:
            self.rng = rng_init(int(params.pop("seed")))
        if "warmup" in params:
            params["warmup"] = int(params["warmup"])
        p = _lpl.Params(**params)
        self.lpl_state = _lpl.init_fixed(p, la.n_in, la.n_out)
        self.lpl_params = p
        self.learn_layer = k
        self.learning = True

    # -- running -------------------------------------------------------------------------------
    def reset_state(self) -> None:
        self.state = [init_qstate(la) for la in self.qnet.layers]

    def run(self, x: np.ndarray) -> np.ndarray:
        """Run steps x [T, n_in] (int); returns outputs [T, n_out] (spikes or readout ints)."""
        T = x.shape[0]
        out = np.zeros((T, self.n_out), dtype=np.int64)
        for t in range(T):
            h = x[t:t + 1].astype(np.int64)
            cycles = self.cost.c_step
            for k, la in enumerate(self.qnet.layers):
                prev_spikes = int((self.state[k].membrane > la.threshold).sum()) \
                    if la.recurrent is not None else 0
                y, self.state[k] = qlayer_step(la, h, self.state[k])
                learn = self.learning and k == self.learn_layer
                cycles += layer_cycles(self.cost, la.n_in, la.n_out,
                                       int(np.count_nonzero(h)), prev_spikes, learn)
                if la.spiking:
                    self.spikes += int(y.sum())
                if learn:
                    self._lpl_step(k, h[0], y[0])
                h = y
            self.input_spikes += int(np.count_nonzero(x[t]))
            if self.output_spiking:
                self.output_spikes += int(h.sum())
            out[t] = h[0]
            self.cycles_total += cycles
            self.steps += 1
        return out

    def _lpl_step(self, k: int, pre: np.ndarray, post: np.ndarray) -> None:
        la = self.qnet.layers[k]
        a = self.lpl_params.act_frac
        w, st, self.rng, stats = _lpl.step_fixed(
            self.weights[k], np.asarray(pre, np.int64) << a, np.asarray(post, np.int64) << a,
            self.lpl_state, self.lpl_params, self.rng, la.w_shift)
        for dst, src in zip(self.lpl_state, st):  # keep the state inside the arena
            if dst.size:
                dst[...] = src
        if not stats.skipped:
            self.learn_updates += 1
            if stats.n_changed:
                self.weights[k][...] = w
                self.qnet = self.qnet.replace_layer(la.name, weight=self.weights[k].copy())

    @property
    def cycles_per_step(self) -> int:
        return int(round(self.cycles_total / self.steps)) if self.steps else self.worst_cycles

    def snapshot(self) -> bytes:
        """The running network (learned weights included) as a device image."""
        return to_image(self.qnet)

