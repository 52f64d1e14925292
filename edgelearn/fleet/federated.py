"""One federated round over a fleet: FedAvg of the devices' adapted hEP heads (L3).

Device k of the round returns its adapted head arrays A_k (head.W0, head.b0, ...) and n_k, the
labels it saw. With the shipped head B, the new base head is (FedAvg, McMahan et al. 2017,
weighted by labels seen):

    B' = B + sum_k n_k (A_k - B) / sum_k n_k        (devices with n_k = 0 contribute nothing)

summed in float64 in device-index order (so every engine gives the same bytes) and rounded to
float32 (a device stores its head in float32), with the shipped head's feature normalisation, in ``DIR/federated/base.head.npz``.
Only successful devices take part. The held-out devices (users that took no part) then run with
B and with B' (phases held_out and held_out_fedavg of edgelearn.fleet.run).

What a round costs on the serial link is measured on a simulated board (:func:`link_bytes`):
the bytes a device sends to return its learned state and the bytes it receives for the new
head, frames and retransmissions included, as the protocol of edgelearn.link stands.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from edgelearn.atomic import atomic_write_bytes
from edgelearn.boundary import read_npz
from edgelearn.device.head import DeviceHead
from edgelearn.errors import DataError
from edgelearn.fleet.config import FleetConfig, ModelFiles
from edgelearn.fleet.store import Store
from edgelearn.fleet.worker import FLEET, head_bytes

HEAD_FILE = "federated/base.head.npz"


def base_head(files: ModelFiles) -> DeviceHead:
    """The shipped head (the model's NAME.head.npz side file)."""
    heads = [(n, d) for n, d in files.files if n.startswith("model/") and n.endswith(".head.npz")]
    if not heads:
        raise DataError("a federated round needs the model's hEP head (NAME.head.npz)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "base.head.npz"
        path.write_bytes(heads[0][1])
        return DeviceHead.load(path)


def read_update(folder: Path, rec: dict) -> dict[str, np.ndarray]:
    """A device's update file (read as untrusted: edgelearn.boundary.read_npz)."""
    return read_npz(folder / rec["update"], f"update file of device {rec['device']}")


def fedavg(base: DeviceHead, updates: list[tuple[int, dict[str, np.ndarray]]]) -> DeviceHead:
    """B' from the shipped head and [(n_k, arrays_k)] (see the module docstring)."""
    total = sum(n for n, _ in updates)
    if total <= 0:
        raise DataError("no device of the round saw a label: nothing to average")
    new = base.copy()
    for k in range(len(new.head.weights)):
        for name, arrs in ((f"head.W{k}", new.head.weights), (f"head.b{k}", new.head.biases)):
            b = arrs[k].astype(np.float64)
            acc = np.zeros_like(b)
            for n, upd in updates:
                if name not in upd or upd[name].shape != b.shape:
                    raise DataError(f"a device update has no {name} of shape {b.shape}")
                acc += n * (upd[name].astype(np.float64) - b)
            arrs[k] = (b + acc / total).astype(np.float32).astype(np.float64)
    return new


def fedavg_head(store: Store, cfg: FleetConfig, files: ModelFiles) -> bytes:
    """Average the round's updates into ``DIR/federated/base.head.npz``; returns its bytes."""
    recs = [r for r in store.phase(FLEET, cfg.devices) if r.get("status") == "ok"]
    if not recs:
        raise DataError("no device of the federated round finished: nothing to average")
    updates = [(int(r["labels"]), read_update(store.folder, r)) for r in recs]
    data = head_bytes(fedavg(base_head(files), updates))
    atomic_write_bytes(store.folder / HEAD_FILE, data)
    return data


def link_bytes(cfg: FleetConfig, files: ModelFiles) -> dict:
    """Bytes one device exchanges with the host in a federated round, measured on a simulated
    board (firmware_sim on a pty) holding the fleet's model and plan: ``up`` = reading its
    learned state back (all it offers: head, LPL state, replay buffer), ``down`` = writing the
    new head arrays; each counts every byte on the wire in both directions, and
    ``head_payload`` is the raw size of the head arrays alone."""
    from edgelearn.adapt.bundle import load_bundle, plan_for
    from edgelearn.adapt.session import make_target
    from edgelearn.targets.spec import TargetSpec

    with tempfile.TemporaryDirectory() as tmp:
        model, _ = files.materialise(Path(tmp))
        bundle = load_bundle(model, dt=cfg.dt)
        plan = plan_for(bundle, cfg, link=False)    # the board's link is planned from HELLO
        with make_target(TargetSpec("sim"), bundle, plan, progress=False) as board:
            counter = _Counter(board.client.transport)
            board.client.transport = counter
            weights = board.get_weights()
            up = counter.take()
            head = {k: v for k, v in weights.items() if k.startswith("head.")}
            board.set_weights(head)
            down = counter.take()
    payload = sum(v.nbytes for v in head.values())
    return {"up": up, "down": down, "total": up + down, "head_payload": payload,
            "state_arrays": len(weights)}


class _Counter:
    """A transport wrapper that counts the bytes written and read."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.count = 0

    def write(self, data: bytes):
        self.count += len(data)
        return self.inner.write(data)

    def read(self, *args, **kwargs):
        data = self.inner.read(*args, **kwargs)
        self.count += len(data or b"")
        return data

    def take(self) -> int:
        n, self.count = self.count, 0
        return n

    def __getattr__(self, name):
        return getattr(self.inner, name)

