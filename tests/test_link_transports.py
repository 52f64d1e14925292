"""One link test suite, run against every transport: loop:// (device in a thread of this
process), a real pseudo-terminal to a firmware_sim process, and socket:// to a firmware_sim
process listening on 127.0.0.1."""

import subprocess
import sys

import numpy as np
import pytest

from edgelearn.errors import InputError, LinkError
from edgelearn.kernels.image import from_image, to_image
from edgelearn.kernels.lif_kernels import qrun
from edgelearn.link.client import Client, DeviceErrorReply
from edgelearn.link.framing import crc32
from tests._inprocess_board import InProcessBoard, test_qnetwork
from tests._hang import HANG_SECONDS

TRANSPORTS = ["loop", "pty", "socket"]


def spawn_socket_sim(*args):
    proc = subprocess.Popen([sys.executable, "-m", "firmware_sim", "--port",
                             "socket-server://127.0.0.1:0", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    assert url.startswith("socket://127.0.0.1:"), url
    return proc, url


@pytest.fixture(scope="module", params=TRANSPORTS)
def client(request):
    kind = request.param
    if kind == "loop":
        board = InProcessBoard("loop", ram=256 * 1024, flash=1024 * 1024)
        c = Client(board.host)
        yield c
        c.close()
        board.close()
    elif kind == "pty":
        c = Client("sim?ram=256KiB&flash=1MiB")
        assert c.transport.url.startswith("sim:/dev/")
        yield c
        c.close()
        assert c.transport.proc.wait(HANG_SECONDS) is not None     # the sim process is gone
    else:
        proc, url = spawn_socket_sim("--ram", "256KiB", "--flash", "1MiB")
        c = Client(url)
        yield c
        c.close()
        proc.terminate()
        proc.wait(HANG_SECONDS)
        proc.stderr.close()
        proc.stdout.close()


def test_handshake_reports_device(client):
    info = client.hello()
    assert info.protocol_version == 2 and info.kernel_version >= 1
    assert (info.weight_bits, info.acc_bits, info.decay_bits) == (8, 32, 12)
    assert info.ram == 256 * 1024 and info.flash == 1024 * 1024
    assert info.max_payload == 1024 and info.window == 8
    assert client.ping(b"\x00\x01hello\x00") > 0


def test_upload_readback_commit_survives_reboot(client):
    img = to_image(test_qnetwork(seed=3))
    seen = []
    res = client.upload(img, chunk=300, progress=lambda done, total: seen.append(done))
    assert res.crc == crc32(img) and res.length == len(img)
    assert seen[0] == 300 and seen[-1] == len(img)
    assert client.read_image(res.slot, len(img)) == img
    client.reset(reboot=True)
    assert client.info.active_crc == crc32(img) and client.info.active_slot == res.slot
    res2 = client.upload(to_image(test_qnetwork(seed=4)))
    assert res2.slot == 1 - res.slot and res2.generation == res.generation + 1


@pytest.mark.parametrize("steps_per_frame", [1, 7, None])
def test_streamed_inference_is_bit_exact(client, steps_per_frame):
    qnet = test_qnetwork(seed=5)
    client.upload(to_image(qnet), verify="crc")
    x = (np.random.default_rng(0).random((60, qnet.n_in)) < 0.25)
    y = client.infer(x, steps_per_frame=steps_per_frame, reset=True)
    want = qrun(qnet, x.astype(np.int64)).output[:, 0, :]
    np.testing.assert_array_equal(y, want)


def test_readout_outputs_come_back_as_integers(client):
    qnet = test_qnetwork(seed=6, readout=True)
    client.upload(to_image(qnet), verify="crc")
    x = (np.random.default_rng(1).random((20, qnet.n_in)) < 0.25)
    y = client.infer(x, reset=True)
    np.testing.assert_array_equal(y, qrun(qnet, x.astype(np.int64)).output[:, 0, :])
    assert np.abs(y).max() > 1


def test_learning_pull_and_telemetry(client):
    qnet = test_qnetwork(seed=7)
    client.upload(to_image(qnet), verify="crc")
    before = client.telemetry()
    from edgelearn.rules import lpl_rate
    rep = client.learn(True, params=lpl_rate.Params(eta=0.05, warmup=0), qnet=qnet, seed=3)
    assert rep.enable == 1 and rep.layer == 0
    x = (np.random.default_rng(2).random((50, qnet.n_in)) < 0.3)
    client.infer(x)
    tel = client.telemetry()
    assert tel.learning == 1 and tel.learn_updates == 50
    assert tel.steps == before.steps + 50 and tel.spikes > before.spikes
    assert tel.arena_high_water >= tel.arena_used > 0 and tel.cycles_per_step > 0
    pulled = from_image(client.pull())
    assert not np.array_equal(pulled.layers[0].weight, qnet.layers[0].weight)
    np.testing.assert_array_equal(pulled.layers[1].weight, qnet.layers[1].weight)
    assert client.learn(False).enable == 0


def test_device_errors_are_named(client):
    qnet = test_qnetwork(seed=8)
    client.upload(to_image(qnet), verify="none")
    with pytest.raises(DeviceErrorReply, match=r"device error BAD_INPUT on INFER: model expects "
                                               r"40 inputs, request has 39"):
        client.infer(np.zeros((3, 39), bool))
    with pytest.raises(DeviceErrorReply, match="NO_SPACE on UPLOAD_BEGIN"):
        client.upload(bytes(600 * 1024))
    with pytest.raises(LinkError, match="LEARN needs the layer's LPL codes"):
        client.learn(True)
    from edgelearn.rules import lpl_rate
    codes = lpl_rate.layer_codes(lpl_rate.Params(), qnet.layers[0])
    with pytest.raises(DeviceErrorReply, match=r"BAD_PARAM on LEARN: layer 5 is not a "
                                               r"spiking layer") as err:
        client.learn(True, 5, block=codes)
    assert (err.value.error.arg0, err.value.error.arg1) == (1, 5)
    # the session is still usable after errors
    assert client.telemetry().active_slot in (0, 1)


def test_integer_count_inputs_travel_as_bytes(client):
    qnet = test_qnetwork(seed=9)
    client.upload(to_image(qnet), verify="crc")
    x = np.random.default_rng(3).integers(0, 4, (25, qnet.n_in))       # spike counts 0..3
    y = client.infer(x, reset=True)
    np.testing.assert_array_equal(y, qrun(qnet, x).output[:, 0, :])
    with pytest.raises(DeviceErrorReply, match=r"BAD_INPUT on INFER: input value 300 is "
                                               r"outside the model's 8-bit input") as err:
        client.infer(np.full((2, qnet.n_in), 300))      # travels as int16 rows
    assert (err.value.error.arg0, err.value.error.arg1) == (300, 8)
    with pytest.raises(InputError, match=r"\[-32768, 32767\]"):
        client.infer(np.full((2, qnet.n_in), 40000))
