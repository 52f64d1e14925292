"""Sample mode: the deployment engine (edgelearn.device.engine) running on the simulated board,
driven over the link, gives the same results as the same engine on the host."""

import dataclasses

import numpy as np
import pytest

from edgelearn.device.engine import Engine, EngineConfig, HEPSettings, default_lpl
from edgelearn.device.head import DeviceHead
from edgelearn.errors import LinkError
from edgelearn.kernels.image import to_image
from edgelearn.link import blobs
from edgelearn.link import messages as m
from edgelearn.link.client import Client, DeviceErrorReply
from edgelearn.memory.arena import Arena
from edgelearn.rules.hep import EnergyHead
from tests._c_device import BOARD_IMPLS
from tests._inprocess_board import test_qnetwork


def config_bytes(cfg: EngineConfig, qnet) -> bytes:
    from edgelearn.device.config import compile_config
    return blobs.encode_config(compile_config(cfg, qnet))


@pytest.fixture(params=BOARD_IMPLS)
def board(request):
    """A client of the Python board (in process) or of the C firmware's host build."""
    from tests._c_device import board_client
    with board_client(request.param) as c:
        yield c


def assert_same_weights(board, host: Engine, qnet) -> None:
    """The board's weights blob equals the host engine's weights: bit for bit on the Python
    board; on the C firmware the head's binary64 values (and the replayed scores) to rounding."""
    got = blobs.decode_weights(board.get_blob(m.BLOB_WEIGHTS), [la.name for la in qnet.layers])
    for k, v in host.get_weights().items():
        if board.impl == "python" or not k.startswith(("head.", "state.replay.scores")):
            np.testing.assert_array_equal(got[k], v, err_msg=k)
        else:
            np.testing.assert_allclose(got[k], v, rtol=1e-5, atol=1e-6, err_msg=k)


def test_sample_mode_matches_the_host_engine_with_lpl_and_hep(board, tmp_path):
    qnet = test_qnetwork(n_in=40, n_hidden=32, n_out=10, seed=90)
    n_feat = 32 + 10
    head = DeviceHead(EnergyHead((n_feat, 16, 10), seed=1), np.zeros(n_feat), np.ones(n_feat))
    cfg = EngineConfig(lpl_layers=("hidden",), hep=HEPSettings(replay=4, repeats=2), seed=3,
                       lpl=dataclasses.replace(default_lpl(), warmup=5, eta=1e-2))
    board.upload(to_image(qnet))
    board.put_blob(m.BLOB_CONFIG, config_bytes(cfg, qnet))
    board.put_blob(m.BLOB_HEAD, blobs.encode_head(head))
    assert board.set_mode(lpl=True, hep=True) == m.ModeReply(1, 1)
    host = Engine(qnet, Arena(256 * 1024), blobs.decode_head(blobs.encode_head(head)), cfg)
    host.set_learning(True, True)
    rng = np.random.default_rng(0)
    # the C firmware relaxes the head in binary64 with its own summation order and Gaussian
    # elimination (numpy: BLAS, LAPACK): the head's values agree to float rounding, not bits;
    # everything integer (spikes, features, LPL, replay counts, PRNG) is bit-identical
    exact = board.impl == "python"
    for i in range(4):
        x = rng.integers(0, 3, (30, 40))
        pred, scores, spikes = board.sample(x, steps_per_frame=7)
        want = host.run_sample(x)
        assert pred == want.prediction and spikes == want.spikes
        if exact:
            np.testing.assert_array_equal(scores, want.scores.astype(np.float32))
        else:
            np.testing.assert_allclose(scores, want.scores, rtol=1e-5, atol=1e-6)
        board.teach(i % 10)
        host.teach(i % 10)
    tel = board.telemetry()
    assert tel.samples == 4 and tel.learn_updates == host.counters["lpl_updates"] > 0
    assert tel.hep_updates == host.counters["hep_updates"] and tel.learning == 3
    assert_same_weights(board, host, qnet)
    # restoring older weights on the board reproduces the host after the same restore
    board.put_blob(m.BLOB_WEIGHTS, board.get_blob(m.BLOB_WEIGHTS))


def test_teach_after_reset_state_learns_from_the_last_classified_sample(board):
    """RESET mode 0 zeroes the neuron state and closes an open sample; the last classified
    sample stays the one TEACH learns from (a label may arrive after a state reset). A new
    sample (SAMPLE with BEGIN) replaces it, and a reboot forgets it with the rest of RAM
    (docs/protocol.md, TEACH and RESET)."""
    qnet = test_qnetwork(n_in=40, n_hidden=32, n_out=10, seed=92)
    n_feat = 32 + 10
    head = DeviceHead(EnergyHead((n_feat, 16, 10), seed=2), np.zeros(n_feat), np.ones(n_feat))
    cfg = EngineConfig(hep=HEPSettings(replay=4, repeats=2), seed=4)
    board.upload(to_image(qnet))
    board.put_blob(m.BLOB_CONFIG, config_bytes(cfg, qnet))
    board.put_blob(m.BLOB_HEAD, blobs.encode_head(head))
    board.set_mode(lpl=False, hep=True)
    host = Engine(qnet, Arena(256 * 1024), blobs.decode_head(blobs.encode_head(head)), cfg)
    host.set_learning(False, True)

    def refused():
        with pytest.raises(DeviceErrorReply, match="BAD_STATE on TEACH") as err:
            board.teach(1)
        assert (err.value.error.arg0, err.value.error.arg1) == (0, 0)

    refused()                                            # nothing classified since the config
    rng = np.random.default_rng(5)
    names = [la.name for la in qnet.layers]
    for label in (3, 7):
        x = rng.integers(0, 3, (20, 40))
        board.sample(x)
        host.run_sample(x)
        board.reset()                                    # mode 0
        host.reset_state()
        if label == 7:       # TEACH normalises with the feature statistics in force then
            w = host.get_weights()
            w["state.head.feature_mean"] = w["state.head.feature_mean"] + np.float32(0.25)
            blob = blobs.encode_weights(w, names)
            board.put_blob(m.BLOB_WEIGHTS, blob)
            host.set_weights(blobs.decode_weights(blob, names))
        reply = board.teach(label)
        host.teach(label)
        assert reply.hep_updates == host.counters["hep_updates"] > 0
        assert reply.hep_nonconverged == host.counters["hep_nonconverged"] == 0
    assert_same_weights(board, host, qnet)
    rows = rng.integers(0, 3, (6, 40)).astype(np.int8)
    board.request(m.Sample(6, 40, m.SAMPLE_BEGIN | m.INFER_COUNTS, rows.tobytes()))
    refused()                                            # the open sample replaced it
    board.reset()
    refused()                                            # and RESET closed that one unclassified
    board.sample(rng.integers(0, 3, (20, 40)))
    board.put_blob(m.BLOB_HEAD, blobs.encode_head(head))   # rebuilds the engine, learning off
    board.set_mode(lpl=False, hep=True)
    refused()
    board.sample(rng.integers(0, 3, (20, 40)))
    board.reset(reboot=True)                             # RAM lost: sample mode and the sample
    with pytest.raises(DeviceErrorReply, match="BAD_STATE on TEACH"):
        board.teach(3)


def test_sample_mode_errors_are_named(board):
    qnet = test_qnetwork(seed=91)
    board.upload(to_image(qnet))
    with pytest.raises(DeviceErrorReply, match="BAD_STATE on SAMPLE: not in sample mode"):
        board.sample(np.zeros((3, 40), int))
    board.put_blob(m.BLOB_CONFIG, config_bytes(EngineConfig(hep=None), qnet))
    with pytest.raises(DeviceErrorReply, match="BAD_PARAM on MODE: hEP was not planned"):
        board.set_mode(False, True)
    with pytest.raises(DeviceErrorReply, match="BAD_STATE on INFER: the device is in sample"):
        board.infer(np.zeros((2, 40), bool))
    bad = bytearray(config_bytes(EngineConfig(hep=None), qnet))
    bad[6] = 7                                                      # readout 7
    with pytest.raises(DeviceErrorReply, match="BAD_PARAM on BLOB_END: config blob: byte 6") \
            as err:
        board.put_blob(m.BLOB_CONFIG, bytes(bad))
    assert (err.value.error.arg0, err.value.error.arg1) == (6, 7)
    with pytest.raises(DeviceErrorReply, match="BAD_PARAM on BLOB_END: config blob: byte 0"):
        board.put_blob(m.BLOB_CONFIG, b'{"readout": "median"}' + bytes(40))    # JSON: refused
    pred, scores, spikes = board.sample(np.ones((5, 40), int))   # old config still active
    assert scores.shape == (10,) and 0 <= pred < 10
    with pytest.raises(DeviceErrorReply, match="BAD_STATE on BLOB_GET"):
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
