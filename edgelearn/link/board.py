"""A deployed model on a board, seen through the link: what a board target needs (L3).

``Board`` wraps a :class:`~edgelearn.link.client.Client` in sample mode (docs/protocol.md,
section 8): :meth:`deploy` uploads the integer network (A/B slot, read-back verified) and
sends the configuration and the hEP head as the binary blobs of edgelearn.link.blobs, so the
board runs the same ``edgelearn.device.engine.Engine`` as the host target from the same
numbers; then one call per sample, label, switch and weight transfer. Everything is converted
here, so a target class is a thin adapter.
"""

from __future__ import annotations

import numpy as np

from edgelearn.device.config import DeviceConfig, compile_config
from edgelearn.errors import LinkError
from edgelearn.kernels.image import to_image
from edgelearn.kernels.lif_fixed import QNetwork, quantize_input
from edgelearn.link import blobs
from edgelearn.link import messages as m
from edgelearn.link.client import Client, ProgressFn, UploadResult


def config_blob(config, qnet: QNetwork) -> bytes:
    """The config blob of a host ``EngineConfig`` (or a DeviceConfig) for ``qnet``."""
    dc = config if isinstance(config, DeviceConfig) else compile_config(config, qnet)
    return blobs.encode_config(dc)


def head_blob(head) -> bytes:
    """The head blob of a ``DeviceHead``."""
    return blobs.encode_head(head)


class Board:
    """Sample-mode operations on one board (``client`` is an open, handshaken Client)."""

    def __init__(self, client: Client, qnet: QNetwork | None = None) -> None:
        self.client = client
        self.qnet = qnet

    def _names(self) -> list[str]:
        if self.qnet is None:
            raise LinkError("the board's model is not known: deploy or enter first")
        return [la.name for la in self.qnet.layers]

    def deploy(self, qnet: QNetwork, config, head=None, progress: ProgressFn | None = None,
               verify: str = "readback") -> UploadResult:
        """Upload ``qnet`` and enter sample mode with ``config`` (EngineConfig) and ``head``."""
        res = self.client.upload(to_image(qnet), progress=progress, verify=verify)
        self.enter(qnet, config, head)
        return res

    def enter(self, qnet: QNetwork, config, head=None) -> None:
        """Enter sample mode on the board's running model ``qnet`` with ``config`` and
        ``head``: the head first (kept for the config), then the config (builds the engine)."""
        self.qnet = qnet
        if head is not None:
            self.client.put_blob(m.BLOB_HEAD, head_blob(head))
        self.client.put_blob(m.BLOB_CONFIG, config_blob(config, qnet))

    def run_sample(self, x: np.ndarray) -> tuple[int, np.ndarray, int]:
        """(prediction, class scores, spikes) of one sample x [T, n_in] (quantized to the
        network's integer input here, as the host target does)."""
        if self.qnet is None:
            raise LinkError("the board's model is not known: deploy or enter first")
        return self.client.sample(quantize_input(self.qnet, x))

    def teach(self, label: int) -> None:
        self.client.teach(label)

    def set_learning(self, lpl: bool, hep: bool) -> None:
        self.client.set_mode(lpl, hep)

    def get_weights(self) -> dict[str, np.ndarray]:
        return blobs.decode_weights(self.client.get_blob(m.BLOB_WEIGHTS), self._names())

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        self.client.put_blob(m.BLOB_WEIGHTS, blobs.encode_weights(weights, self._names()))

    def telemetry(self) -> dict:
        t = self.client.telemetry()
        return {"steps": t.steps, "spikes": t.spikes, "lpl_updates": t.learn_updates,
                "hep_updates": t.hep_updates, "hep_nonconverged": t.hep_nonconverged,
                "hep_rejected": t.hep_rejected, "samples": t.samples,
                "arena_high_water": t.arena_high_water, "arena_size": t.arena_size,
                "link": {"frames_bad": t.frames_bad, "frames_dup": t.frames_dup,
                         "frames_stale": t.frames_stale, "naks": t.naks, "busy": t.busy,
                         "retransmissions": self.client.stats.retransmissions}}

    def pull(self) -> bytes:
        """The adapted network as a device image."""
        return self.client.pull()
