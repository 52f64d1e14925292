"""The host target: the device engine in this process, in an arena of the planned size."""

from __future__ import annotations

import numpy as np

from edgelearn.device.engine import Engine, EngineConfig
from edgelearn.device.head import DeviceHead
from edgelearn.kernels.lif_fixed import QNetwork, quantize_input
from edgelearn.memory.arena import Arena
from edgelearn.targets.base import SampleResult, Target, Telemetry


class HostTarget(Target):
    """Runs :class:`~edgelearn.device.engine.Engine` directly (no link)."""

    name = "host"
    capabilities = frozenset({"lpl", "hep", "pull"})

    def __init__(self, qnet: QNetwork, arena_bytes: int, head: DeviceHead | None = None,
                 config: EngineConfig = EngineConfig(), align: int = 4) -> None:
        self.arena = Arena(arena_bytes, align=align, name="host arena")
        self.engine = Engine(qnet, self.arena, head.copy() if head else None, config)

    def infer(self, x: np.ndarray) -> SampleResult:
        """Classify one sample x [T, n_in] (float or integer input, quantized as the network's
        integer input, exactly as a board target sends it)."""
        r = self.engine.run_sample(quantize_input(self.engine.qnet, x))
        return SampleResult(r.prediction, r.scores, r.features, r.spikes)

    def teach(self, label: int) -> None:
        self.engine.teach(label)

    def set_learning(self, lpl: bool, hep: bool) -> None:
        self.engine.set_learning(lpl, hep)

    def get_weights(self) -> dict[str, np.ndarray]:
        return self.engine.get_weights()

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        self.engine.set_weights(weights)

    def telemetry(self) -> Telemetry:
        c = self.engine.counters
        return Telemetry(steps=c["steps"], spikes=c["spikes"], lpl_updates=c["lpl_updates"],
                         hep_updates=c["hep_updates"], arena_high_water=self.arena.high_water,
                         arena_size=self.arena.size,
                         extra={"hep_nonconverged": c["hep_nonconverged"],
                                "hep_rejected": c["hep_rejected"]})

    def network(self) -> QNetwork:
        return self.engine.network()

    def head(self) -> DeviceHead | None:
        return self.engine.dhead
