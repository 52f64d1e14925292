"""The TFLite target: the integer step graph runs in LiteRT (or tflite-runtime); inference only.

TensorFlow Lite does not train, so this target offers no on-device learning: the plan for it
is inference only. The hEP head (if the bundle has one) classifies the graph's features on the
host side, frozen.
"""

from __future__ import annotations

import numpy as np

from edgelearn.device.features import feature_vector, readout_scores
from edgelearn.device.head import DeviceHead
from edgelearn.errors import TargetError
from edgelearn.io.tflite_export import tflite_bytes
from edgelearn.io.tflite_runtime import TfliteStepper, run_sequence
from edgelearn.kernels.lif_fixed import QNetwork, quantize_input
from edgelearn.targets.base import SampleResult, Target, Telemetry


class TfliteTarget(Target):
    name = "tflite"
    capabilities = frozenset()

    def __init__(self, qnet: QNetwork, head: DeviceHead | None, feature_layer: str,
                 readout: str = "max") -> None:
        self.qnet = qnet
        self.model = tflite_bytes(qnet, batch=1)
        self.stepper = TfliteStepper(self.model)
        self.head = head
        self.feature_layer = feature_layer
        self.readout = readout
        self._tele = Telemetry()

    def infer(self, x: np.ndarray) -> SampleResult:
        xi = quantize_input(self.qnet, np.asarray(x))[:, None, :]
        outs = run_sequence(self.stepper, xi)
        T = xi.shape[0]
        spikes = outs.get(f"{self.feature_layer}.spikes")
        if spikes is None:
            raise TargetError(f"tflite graph has no spike output for layer "
                              f"'{self.feature_layer}'")
        scores = readout_scores(outs["output"][:, :1], self.readout,
                                self.qnet.layers[-1].scale)[0]
        counts = spikes[:, 0].sum(axis=0)
        self._tele.steps += T
        self._tele.spikes += int(counts.sum())
        if self.head is not None:
            f = self.head.normalise(feature_vector(counts, T, scores))
            scores = self.head.head.logits(f)[0]
        return SampleResult(int(np.argmax(scores)), scores, counts.astype(np.uint16),
                            int(counts.sum()))

    def get_weights(self) -> dict[str, np.ndarray]:
        return {}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        if weights:
            raise TargetError("the tflite target holds a frozen graph; weights cannot be set")

    def telemetry(self) -> Telemetry:
        return self._tele
