"""A deployed model on a board, seen through the link: what a board target needs (L3).

``Board`` wraps a :class:`~edgelearn.link.client.Client` in sample mode (docs/protocol.md,
"Sample mode"): :meth:`deploy` uploads the integer network (A/B slot, read-back verified) and
sends the engine configuration and the hEP head, so the board runs the same
``edgelearn.device.engine.Engine`` as the host target; then one call per sample, label, switch
and weight transfer. Everything is converted here, so a target class is a thin adapter.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import tempfile

import numpy as np

from edgelearn.boundary import read_npz
from edgelearn.errors import LinkError
from edgelearn.kernels.image import to_image
from edgelearn.kernels.lif_fixed import QNetwork
from edgelearn.link import messages as m
from edgelearn.link.client import Client, ProgressFn, UploadResult


def config_blob(config) -> bytes:
    """JSON of an ``edgelearn.device.engine.EngineConfig`` (nested dataclasses as objects)."""
    return json.dumps(dataclasses.asdict(config)).encode("utf-8")


def head_blob(head) -> bytes:
    """The ``.npz`` bytes ``DeviceHead.save`` writes."""
    fd, path = tempfile.mkstemp(suffix=".npz")
    os.close(fd)
    try:
        head.save(path)
        with open(path, "rb") as fh:
            return fh.read()
    finally:
        os.unlink(path)


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def npz_arrays(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of an npz blob the board sent (untrusted: edgelearn.boundary.read_npz)."""
    return read_npz(data, what="the board's weights blob", error=LinkError)


class Board:
    """Sample-mode operations on one board (``client`` is an open, handshaken Client)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def deploy(self, qnet: QNetwork, config, head=None, progress: ProgressFn | None = None,
               verify: str = "readback") -> UploadResult:
        """Upload ``qnet`` and enter sample mode with ``config`` (EngineConfig) and ``head``."""
        res = self.client.upload(to_image(qnet), progress=progress, verify=verify)
        self.enter(config, head)
        return res

    def enter(self, config, head=None) -> None:
        """Enter sample mode on the board's active model with ``config`` and ``head``."""
        self.client.put_blob(m.BLOB_CONFIG, config_blob(config))
        if head is not None:
            self.client.put_blob(m.BLOB_HEAD, head_blob(head))

    def run_sample(self, x: np.ndarray) -> tuple[int, np.ndarray, int]:
        """(prediction, class scores, hidden spikes) of one sample x [T, n_in] (counts)."""
        return self.client.sample(x)

    def teach(self, label: int) -> None:
        self.client.teach(label)

    def set_learning(self, lpl: bool, hep: bool) -> None:
        self.client.set_mode(lpl, hep)

    def get_weights(self) -> dict[str, np.ndarray]:
        return npz_arrays(self.client.get_blob(m.BLOB_WEIGHTS))

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        self.client.put_blob(m.BLOB_WEIGHTS, npz_bytes(weights))

    def telemetry(self) -> dict:
        t = self.client.telemetry()
        return {"steps": t.steps, "spikes": t.spikes, "lpl_updates": t.learn_updates,
                "hep_updates": t.hep_updates, "samples": t.samples,
                "arena_high_water": t.arena_high_water, "arena_size": t.arena_size,
                "link": {"frames_bad": t.frames_bad, "frames_dup": t.frames_dup,
                         "naks": t.naks, "retransmissions": self.client.stats.retransmissions}}

    def pull(self) -> bytes:
        """The adapted network as a device image."""
        return self.client.pull()
