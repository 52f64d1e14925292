"""Sample mode: the deployment engine (edgelearn.device.engine) running on the simulated board,
driven over the link, gives the same results as the same engine on the host."""

import dataclasses
import json

import numpy as np
import pytest

from edgelearn.device.engine import Engine, EngineConfig, HEPSettings, default_lpl
from edgelearn.device.head import DeviceHead
from edgelearn.errors import LinkError
from edgelearn.kernels.image import to_image
from edgelearn.link import messages as m
from edgelearn.link.client import Client, DeviceErrorReply
from edgelearn.memory.arena import Arena
from edgelearn.rules.hep import EnergyHead
from firmware_sim.inprocess import InProcessBoard, test_qnetwork


def config_json(cfg: EngineConfig) -> bytes:
    d = dataclasses.asdict(cfg)
    return json.dumps(d).encode()


def head_bytes(head: DeviceHead, tmp_path) -> bytes:
    path = tmp_path / "head.npz"
    head.save(path)
    return path.read_bytes()


@pytest.fixture
def board():
    with InProcessBoard("socketpair", ram=256 * 1024, flash=512 * 1024) as b:
        c = Client(b.host)
        yield c


def test_sample_mode_matches_the_host_engine_with_lpl_and_hep(board, tmp_path):
    qnet = test_qnetwork(n_in=40, n_hidden=32, n_out=10, seed=90)
    n_feat = 32 + 10
    head = DeviceHead(EnergyHead((n_feat, 16, 10), seed=1), np.zeros(n_feat), np.ones(n_feat))
    cfg = EngineConfig(lpl_layers=("hidden",), hep=HEPSettings(replay=4, repeats=2), seed=3,
                       lpl=dataclasses.replace(default_lpl(), warmup=5, eta=1e-2))
    board.upload(to_image(qnet))
    board.put_blob(m.BLOB_CONFIG, config_json(cfg))
    board.put_blob(m.BLOB_HEAD, head_bytes(head, tmp_path))
    assert board.set_mode(lpl=True, hep=True) == m.ModeReply(1, 1)
    host = Engine(qnet, Arena(256 * 1024), DeviceHead.load(tmp_path / "head.npz"), cfg)
    host.set_learning(True, True)
    rng = np.random.default_rng(0)
    for i in range(4):
        x = rng.integers(0, 3, (30, 40))
        pred, scores, spikes = board.sample(x, steps_per_frame=7)
        want = host.run_sample(x)
        assert pred == want.prediction and spikes == want.spikes
        np.testing.assert_allclose(scores, want.scores, rtol=1e-6, atol=1e-6)
        board.teach(i % 10)
        host.teach(i % 10)
    tel = board.telemetry()
    assert tel.samples == 4 and tel.learn_updates == host.counters["lpl_updates"] > 0
    assert tel.hep_updates == host.counters["hep_updates"] and tel.learning == 3
    import io
    with np.load(io.BytesIO(board.get_blob(m.BLOB_WEIGHTS)), allow_pickle=False) as z:
        got = {k: z[k] for k in z.files}
    for k, v in host.get_weights().items():
        np.testing.assert_array_equal(got[k], v, err_msg=k)
    # restoring older weights on the board reproduces the host after the same restore
    board.put_blob(m.BLOB_WEIGHTS, board.get_blob(m.BLOB_WEIGHTS))


def test_sample_mode_errors_are_named(board):
    qnet = test_qnetwork(seed=91)
    board.upload(to_image(qnet))
    with pytest.raises(DeviceErrorReply, match="BAD_STATE on SAMPLE: not in sample mode"):
        board.sample(np.zeros((3, 40), int))
    board.put_blob(m.BLOB_CONFIG, config_json(EngineConfig(hep=None)))
    with pytest.raises(DeviceErrorReply, match="BAD_PARAM on MODE: hEP was not planned"):
        board.set_mode(False, True)
    with pytest.raises(DeviceErrorReply, match="BAD_STATE on INFER: the device is in sample"):
        board.infer(np.zeros((2, 40), bool))
    with pytest.raises(DeviceErrorReply, match="BAD_PARAM on BLOB_END: engine configuration"):
        board.put_blob(m.BLOB_CONFIG, b'{"readout": "median"}')
    pred, scores, spikes = board.sample(np.ones((5, 40), int))   # old config still active
    assert scores.shape == (10,) and 0 <= pred < 10
    with pytest.raises(LinkError):
        board.get_blob(m.BLOB_HEAD)


def test_board_wrapper_deploys_and_round_trips_weights(tmp_path):
    from edgelearn.kernels.image import from_image
    from edgelearn.link.board import Board
    qnet = test_qnetwork(seed=92)
    n_feat = 32 + 10
    head = DeviceHead(EnergyHead((n_feat, 8, 10), seed=2), np.zeros(n_feat), np.ones(n_feat))
    cfg = EngineConfig(lpl_layers=("hidden",), lpl=dataclasses.replace(default_lpl(), warmup=2),
                       hep=HEPSettings(replay=0, repeats=1))
    with Client("sim?ram=256KiB&flash=512KiB") as c:
        b = Board(c)
        b.deploy(qnet, cfg, head)
        b.set_learning(True, True)
        x = np.random.default_rng(4).integers(0, 3, (20, 40))
        before = b.get_weights()
        pred, scores, _ = b.run_sample(x)
        b.teach(pred)
        tel = b.telemetry()
        assert tel["samples"] == 1 and tel["lpl_updates"] > 0 and tel["hep_updates"] == 1
        b.set_weights(before)                                  # rollback
        after = b.get_weights()
        for k, v in before.items():
            np.testing.assert_array_equal(after[k], v, err_msg=k)
        assert from_image(b.pull()).name == qnet.name
