"""The C firmware on an emulated Cortex-M3 (QEMU mps2-an385, UART0 as the link, opened with the
`qemu` port URL): upload with read-back, INFER bit-identical to the shared vectors, streaming
LPL bit-identical to the host build, a power cycle that keeps the committed model; and the
Cortex-M4F build (mps2-an386)."""

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from edgelearn.kernels.image import from_image
from edgelearn.kernels.lpl_codes import lpl_block
from edgelearn.rules import lpl_rate
from edgelearn.rules.base import qlayer_w_shift
from tests._c_device import CDevice, error_of, error_text
from tests.test_c_device import _infer, hello_fields

VEC = Path(__file__).parent / "vectors"


@pytest.mark.parametrize("machine", ["mps2-an385", "mps2-an386"])
def test_qemu_board_upload_infer_reset(machine):
    image = (VEC / "lif_rec_spikes.bin").read_bytes()
    qnet = from_image(image)
    with np.load(VEC / "lif_rec_spikes.npz", allow_pickle=False) as z:
        x, want = z["x"][:, 0, :], z["output"][:, 0, :]
    with CDevice(url=f"qemu?machine={machine}&ram=131072&flash=262144") as dev:
        h = hello_fields(dev.hello().payload)
        assert (h["ram"], h["flash"], h["protocol_version"]) == (131072, 262144, 2)
        assert h["profile"].startswith("cortex-m")
        r = dev.upload(image)
        assert r.type == 0x92, error_text(r)
        assert dev.read_all(0x22, 0x23) == image
        assert np.array_equal(_infer(dev, qnet, x), want)
        dev.power_cycle()
        assert error_of(dev.receive())[0] == 2                 # NO_SESSION after the reset
        assert hello_fields(dev.hello().payload)["active_len"] == len(image)


def test_qemu_streaming_lpl_equals_the_host_build():
    """The same LEARN + INFER stream on the Cortex-M3 and on the host build: identical
    outputs and identical learned weights (the integer rule is bit-exact on the M3)."""
    image = (VEC / "lif_rec_spikes.bin").read_bytes()
    qnet = from_image(image)
    with np.load(VEC / "lif_rec_spikes.npz", allow_pickle=False) as z:
        x = np.concatenate([z["x"][:, 0, :]] * 3)
    p = lpl_rate.Params(eta=0.02, tau_mean=20.0, tau_var=20.0, tau_pre=5.0, tau_post=5.0,
                        warmup=5, rounding="dither", var_init=0.05)
    block = lpl_block(p, qlayer_w_shift(qnet.layers[0]), qnet.layers[0].n_out)
    results = []
    for url in ("qemu", None):
        with CDevice(url=url) as dev:
            dev.hello()
            dev.upload(image)
            r = dev.request(0x21, struct.pack("<BBHI", 1, 0, 0, 5) + block)
            assert r.type == 0xA1, error_text(r)
            out = _infer(dev, qnet, x, chunk=20)
            results.append((out, dev.read_all(0x22, 0x23)))
    assert np.array_equal(results[0][0], results[1][0])
    assert results[0][1] == results[1][1]
    assert results[0][1] != image                                # it learned


@pytest.mark.slow
def test_headline_deploy_on_qemu_matches_the_host(tmp_path):
    """The headline model deployed with LPL and hEP onto the emulated Cortex-M3 runs the same
    prequential stream as the host engine: the same hit on every sample, spikes, LPL and hEP
    updates, int8 weights, LPL statistics and replay ring exactly, the f32 head within float
    rounding; and the arena high-water the board reports equals the plan to the byte."""
    from edgelearn.cli import main
    common = ["deploy", "models/speech_digits.onnx", "--budget", "256KiB", "--adapt", "new_user",
              "--limit", "40", "--no-baseline", "--fresh", "--quiet"]
    runs = {}
    for name, target in [("host", "host"), ("qemu", "serial:qemu?ram=262144&flash=1048576")]:
        assert main(common + ["--target", target, "--report", str(tmp_path / name)]) == 0
        runs[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    host, qemu = (runs[n]["runs"]["adapted"] for n in ("host", "qemu"))
    assert qemu["accuracy"] == host["accuracy"]
    for key in ("steps", "spikes", "lpl_updates", "hep_updates"):
        assert qemu["telemetry"][key] == host["telemetry"][key], key
    assert qemu["telemetry"]["hep_updates"] > 0 and qemu["telemetry"]["lpl_updates"] > 0
    ck = {}
    for name in ("host", "qemu"):
        with np.load(tmp_path / name / "checkpoint.npz", allow_pickle=False) as z:
            ck[name] = {k: z[k] for k in z.files}
    assert (json.loads(bytes(ck["qemu"].pop("__json__")))["hits"]
            == json.loads(bytes(ck["host"].pop("__json__")))["hits"])
    assert ck["qemu"].keys() == ck["host"].keys()
    for key, want in ck["host"].items():
        if want.dtype.kind == "f":
            np.testing.assert_allclose(ck["qemu"][key], want, rtol=1e-5, atol=1e-7, err_msg=key)
        else:
            assert np.array_equal(ck["qemu"][key], want), key
    mem = runs["qemu"]["memory"]
    assert mem["measured_high_water"] == mem["planned_total"]


@pytest.mark.parametrize("name", ["streaming_lpl_epoch", "sample_mode_epoch"])
def test_qemu_replays_the_lpl_epoch_sessions(name):
    """The shared sessions with LPL at a learning epoch of 8 (tests/vectors/protocol/) on the
    Cortex-M3 with the sessions' RAM and flash: every reply by the rules of
    tests/vectors/README.md (HELLO, which states the board's own limits, aside), so the M3's
    epoch sums, rule steps and weights blobs are the reference board's bit for bit."""
    from tests.test_c_device import replay_session
    replay_session(name, url="qemu?ram=65536&flash=131072")
