"""The C firmware's host build speaks protocol version 2 (docs/protocol.md): handshake,
upload with A/B commit and read-back, INFER bit-identical to the integer kernel, streaming LPL
bit-identical to the numpy rule, pull-back, sequencing and NAKs, resets and flash persistence,
and hostile input that never stops it."""

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from edgelearn.fixed import rng_init
from edgelearn.kernels.image import from_image, to_image
from edgelearn.kernels.lif_fixed import init_qstate
from edgelearn.kernels.lif_kernels import qlayer_step, qrun
from edgelearn.kernels.lpl_codes import lpl_block
from edgelearn.rules import lpl_rate
from edgelearn.rules.base import qlayer_w_shift
from tests._c_device import ERROR, NAK, CDevice, error_of, error_text

VEC = Path(__file__).parent / "vectors"
CASES = [e for e in json.loads((VEC / "fixed.json").read_text())["vectors"]
         if e["kind"] == "lif_network"]


def hello_fields(payload: bytes) -> dict:
    names = ("protocol_version", "kernel_version", "weight_bits", "state_bits", "acc_bits",
             "decay_bits", "ram", "flash", "slot_size", "max_payload", "window", "baud",
             "active_slot", "active_len", "active_crc", "cycles_per_step", "profile_len")
    vals = struct.unpack_from("<BHBBBBIIIHBIBIIIB", payload)
    out = dict(zip(names, vals))
    out["profile"] = payload[40:40 + out["profile_len"]].decode()
    assert len(payload) == 40 + out["profile_len"]
    return out


def test_hello_announces_the_session_limits():
    with CDevice(ram=300000, flash=1 << 20) as dev:
        h = hello_fields(dev.hello(1024, 8).payload)
        assert (h["protocol_version"], h["kernel_version"], h["weight_bits"], h["acc_bits"],
                h["decay_bits"]) == (2, 1, 8, 32, 12)
        assert (h["ram"], h["flash"], h["slot_size"]) == (300000, 1 << 20, (1 << 19) - 64)
        assert (h["max_payload"], h["window"], h["active_slot"]) == (1024, 8, 0xFF)
        assert h["state_bits"] == 32 and h["profile"] == "cortex-m4-256k"
        small = hello_fields(dev.hello(128, 2).payload)
        assert (small["max_payload"], small["window"]) == (128, 2)
        r = dev.hello(100, 8)
        assert error_of(r)[:4] == (12, 0x01, 0, 100)
        r = dev.hello(1024, 0)
        assert error_of(r)[:4] == (12, 0x01, 2, 0)
        # a request larger than the session's max payload
        dev.hello(128, 2)
        r = dev.request(0x02, bytes(200))
        assert error_of(r)[:4] == (4, 0x02, 200, 128)


def test_version_mismatch_and_no_session():
    with CDevice() as dev:
        r = dev.request(0x01, struct.pack("<HB", 1024, 8), version=1)
        assert r.version == 2 and r.type == ERROR
        code, req, a0, a1, text = error_of(r)
        assert (code, req, a0, a1) == (1, 0x01, 2, 1) and "version 1" in text
        r = dev.request(0x30)
        assert error_of(r)[0] == 2                 # NO_SESSION
        assert dev.hello().type == 0x81


def _rows(x: np.ndarray, bits: int) -> tuple[bytes, int]:
    """INFER rows of integer input x [T, n_in]: bits when binary, else int8 or int16."""
    if x.min() >= 0 and x.max() <= 1:
        return np.packbits(x.astype(np.uint8), axis=1, bitorder="little").tobytes(), 0
    if bits <= 8:
        return x.astype(np.int8).tobytes(), 0x02
    return x.astype("<i2").tobytes(), 0x08


def _infer(dev, qnet, x: np.ndarray, chunk: int = 7) -> np.ndarray:
    """Run x [T, n_in] from the zero state in INFER frames of `chunk` steps (fewer when the
    outputs of `chunk` steps would not fit the 1024-byte payload)."""
    chunk = max(1, min(chunk, 1000 // (4 * qnet.n_out)))
    outs = []
    for t0 in range(0, x.shape[0], chunk):
        rows, flags = _rows(x[t0:t0 + chunk], qnet.input_bits)
        n = min(chunk, x.shape[0] - t0)
        r = dev.request(0x20, struct.pack("<HHB", n, qnet.n_in, flags | (t0 == 0)) + rows)
        assert r.type == 0xA0, error_text(r)
        n_steps, n_out, fmt = struct.unpack_from("<HHB", r.payload)
        data = r.payload[5:]
        if fmt == 0:
            y = np.unpackbits(np.frombuffer(data, np.uint8).reshape(n_steps, -1), axis=1,
                              bitorder="little")[:, :n_out]
        else:
            y = np.frombuffer(data, "<i4").reshape(n_steps, n_out)
        outs.append(y.astype(np.int64))
    return np.concatenate(outs)


@pytest.mark.parametrize("entry", CASES, ids=lambda e: e["name"])
def test_upload_readback_infer_pull(entry):
    image = (VEC / entry["image"]).read_bytes()
    qnet = from_image(image)
    with np.load(VEC / entry["file"], allow_pickle=False) as z:
        x, want = z["x"], z["output"]
    with CDevice() as dev:
        dev.hello()
        r = dev.upload(image)
        assert r.type == 0x92, error_text(r)
        slot, length, crc, gen = struct.unpack("<BIII", r.payload)
        assert (slot, length, crc, gen) == (0, len(image), zlib.crc32(image), 1)
        back = b""
        while len(back) < len(image):
            rr = dev.request(0x13, struct.pack("<BIH", 0, len(back), 700))  \
                if len(image) - len(back) >= 700 else \
                dev.request(0x13, struct.pack("<BIH", 0, len(back), len(image) - len(back)))
            assert rr.type == 0x93, error_text(rr)
            back += rr.payload[4:]
        assert back == image
        for b in range(x.shape[1]):
            assert np.array_equal(_infer(dev, qnet, x[:, b, :]), want[:, b, :])
        assert dev.read_all(0x22, 0x23) == image
        h = hello_fields(dev.hello().payload)
        assert (h["active_slot"], h["active_len"], h["active_crc"]) == (0, len(image),
                                                                        zlib.crc32(image))
        assert h["state_bits"] == max(la.state_bits for la in qnet.layers)


def test_upload_errors_leave_the_running_model():
    image = (VEC / "lif_ff_int8.bin").read_bytes()
    with CDevice() as dev:
        dev.hello()
        assert dev.upload(image).type == 0x92
        assert error_of(dev.request(0x11, b"x"))[:4] == (6, 0x11, 0, 0)      # no upload open
        assert error_of(dev.request(0x12))[:4] == (6, 0x12, 0, 0)
        r = dev.request(0x10, struct.pack("<II", 0, 0))
        assert error_of(r)[:4] == (12, 0x10, 0, 0)
        r = dev.request(0x10, struct.pack("<II", 1 << 30, 0))
        assert error_of(r)[:4] == (5, 0x10, 1 << 30, (1 << 19) - 64)
        # wrong CRC: IMAGE_CRC, slot not activated
        assert dev.request(0x10, struct.pack("<II", len(image), 1234)).type == 0x90
        assert dev.request(0x11, image).type == 0x91
        code, _, got, announced, _ = error_of(dev.request(0x12))
        assert (code, got, announced) == (7, zlib.crc32(image), 1234)
        assert error_of(dev.request(0x11, b"x"))[:4] == (6, 0x11, 0, 0)      # upload closed
        # a corrupt image: BAD_IMAGE; an overrun: BAD_STATE received/announced
        bad = b"ELQN" + bytes(36)
        assert dev.request(0x10, struct.pack("<II", len(bad), zlib.crc32(bad))).type == 0x90
        assert error_of(dev.request(0x11, bad + b"!"))[:4] == (6, 0x11, 0, len(bad))
        assert dev.request(0x11, bad).type == 0x91
        code, _, _, _, text = error_of(dev.request(0x12))
        assert code == 8 and "slot not activated" in text
        assert error_of(dev.request(0x11, b""))[:4] == (4, 0x11, 0, 1)
        h = hello_fields(dev.hello().payload)
        assert (h["active_slot"], h["active_len"]) == (0, len(image))
        # READ_FLASH limits
        assert error_of(dev.request(0x13, struct.pack("<BIH", 2, 0, 1)))[:4] == (12, 0x13, 0, 2)
        assert error_of(dev.request(0x13, struct.pack("<BIH", 0, 0, 1021)))[:4] == \
            (12, 0x13, 5, 1021)
        assert error_of(dev.request(0x13, struct.pack("<BIH", 0, len(image) - 1, 2)))[:4] == \
            (13, 0x13, len(image) + 1, len(image))
        assert error_of(dev.request(0x13, struct.pack("<BIH", 1, 0, 1)))[:4] == (13, 0x13, 1, 0)


def test_a_model_that_does_not_fit_is_refused():
    image = (VEC / "lif_rec_spikes.bin").read_bytes()
    with CDevice(ram=20000) as dev:
        dev.hello()
        r = dev.upload(image)
        code, _, need, free, text = error_of(r)
        assert code == 9 and need > free and "does not fit the RAM arena" in text
        assert hello_fields(dev.hello().payload)["active_slot"] == 0xFF


def test_infer_input_checks():
    image = (VEC / "lif_ff_int8.bin").read_bytes()       # input_bits 8, 12 inputs, readout
    with CDevice() as dev:
        dev.hello()
        assert error_of(dev.request(0x20, struct.pack("<HHB", 1, 12, 2) + bytes(12)))[0] == 10
        dev.upload(image)
        good = struct.pack("<HHB", 1, 12, 2) + bytes(12)
        assert dev.request(0x20, good).type == 0xA0
        assert error_of(dev.request(0x20, good[:-1]))[:4] == (4, 0x20, 16, 17)
        assert error_of(dev.request(0x20, struct.pack("<HHB", 1, 12, 0x0A) + bytes(24)))[:4] \
            == (12, 0x20, 4, 0x0A)
        assert error_of(dev.request(0x20, struct.pack("<HHB", 1, 11, 2) + bytes(11)))[:4] == \
            (11, 0x20, 11, 12)
        assert error_of(dev.request(0x20, struct.pack("<HHB", 0, 12, 2)))[:4] == (11, 0x20, 0, 1)
        big = struct.pack("<HHB", 70, 12, 2) + bytes(840)
        assert error_of(dev.request(0x20, big))[:4] == (11, 0x20, 70, 1019 // 16)
        r = dev.request(0x20, struct.pack("<HHB", 1, 12, 0x08) + struct.pack("<12h", *[200] * 12))
        assert error_of(r)[:4] == (11, 0x20, 200, 8)


def test_streaming_lpl_matches_the_numpy_rule():
    """LEARN on the recurrent layer, INFER a stream, PULL: the learned int8 weights and the
    outputs equal a numpy loop of qlayer_step + lpl_rate.step_fixed with the same PRNG."""
    image = (VEC / "lif_rec_spikes.bin").read_bytes()
    qnet = from_image(image)
    with np.load(VEC / "lif_rec_spikes.npz", allow_pickle=False) as z:
        x = z["x"][:, 0, :]
    x = np.concatenate([x] * 4)
    p = lpl_rate.Params(eta=0.02, lam=1.0, tau_mean=20.0, tau_var=20.0, tau_pre=5.0,
                        tau_post=5.0, warmup=5, rounding="dither", var_init=0.05)
    k, seed = 0, 77
    la = qnet.layers[k]
    w_shift = qlayer_w_shift(la)
    block = lpl_block(p, w_shift, la.n_out)
    # the numpy reference
    layers = list(qnet.layers)
    states = [init_qstate(l) for l in layers]
    st, rng, A = lpl_rate.init_fixed(p, la.n_in, la.n_out), rng_init(seed), p.act_frac
    w = la.weight.copy()
    outs, updates = [], 0
    for t in range(x.shape[0]):
        h = x[t:t + 1].astype(np.int64)
        for j, l in enumerate(layers):
            y, states[j] = qlayer_step(l, h, states[j])
            if j == k:
                w, st, rng, s = lpl_rate.step_fixed(w, h[0] << A, y[0] << A, st, p, rng, w_shift)
                updates += 1 - s.skipped
                layers[j] = l.replace(weight=w)
            h = y
        outs.append(h[0])
    want_net = qnet.replace(layers=tuple(layers))
    with CDevice() as dev:
        dev.hello()
        dev.upload(image)
        r = dev.request(0x21, struct.pack("<BBHI", 1, k, 0, seed) + block)
        assert r.type == 0xA1, error_text(r)
        assert struct.unpack("<BBI", r.payload) == (1, k, 0)
        got = _infer(dev, qnet, x, chunk=10)
        assert np.array_equal(got, np.array(outs))
        pulled = from_image(dev.read_all(0x22, 0x23))
        assert np.array_equal(pulled.layers[k].weight, w)
        assert dev.read_all(0x22, 0x23) == to_image(want_net)
        assert not np.array_equal(w, la.weight)             # it did learn
        r = dev.request(0x21, bytes([0, k]))
        assert struct.unpack("<BBI", r.payload) == (0, 0xFF, updates)
        tel = struct.unpack("<19I", dev.request(0x30).payload[:76])
        assert tel[0] == x.shape[0] and tel[4] == updates
        # a block field out of range: BAD_PARAM at 8 + its offset in the block
        bad = bytearray(block)
        bad[3] = 2                                           # rounding
        assert error_of(dev.request(0x21, struct.pack("<BBHI", 1, k, 0, 1) + bytes(bad)))[:4] \
            == (12, 0x21, 8 + 3, 2)
        assert error_of(dev.request(0x21, bytes([1, 1])))[:4] == (4, 0x21, 2, 72)
        assert error_of(dev.request(0x21, bytes([1, 7]) + bytes(70)))[:4] == (12, 0x21, 1, 7)
        r = dev.request(0x21, bytes([0, 7]))         # enable 0: the layer byte is not used
        assert r.type == 0xA1 and struct.unpack("<BBI", r.payload)[:2] == (0, 0xFF)


def test_sequencing_nak_and_retransmission():
    with CDevice() as dev:
        dev.hello()                                    # seq 0; expected 1
        f1, f2 = dev.frame(0x02, b"one"), dev.frame(0x02, b"two")
        dev.send(f2)                                   # seq 2 arrives first
        nak = dev.receive()
        assert nak.type == NAK and nak.payload == bytes([1]) + struct.pack("<Q", 0b1)
        dev.send(f1)
        a, b = dev.receive(), dev.receive()
        assert (a.seq, a.payload, b.seq, b.payload) == (1, b"one", 2, b"two")
        dev.send(f1)                                   # a retransmission: the cached reply
        again = dev.receive()
        assert (again.seq, again.payload) == (1, b"one")
        tel = struct.unpack("<19I", dev.request(0x30).payload[:76])
        assert tel[15] == 1 and tel[17] == 1           # frames_dup, naks


def test_resets_and_flash_persistence(tmp_path):
    image = (VEC / "lif_ff_int8.bin").read_bytes()
    flash = tmp_path / "board.flash"
    with CDevice(flash_file=str(flash)) as dev:
        dev.hello()
        assert dev.upload(image).type == 0x92
        assert dev.request(0x31, b"\x01").payload == b"\x01"       # reboot after the reply
        assert error_of(dev.request(0x30))[0] == 2
        assert hello_fields(dev.hello().payload)["active_len"] == len(image)
        dev.power_cycle()
        assert error_of(dev.receive())[0] == 2
        assert hello_fields(dev.hello().payload)["active_slot"] == 0
        assert error_of(dev.request(0x31, b"\x02"))[:4] == (12, 0x31, 0, 2)
    assert flash.stat().st_size == 1 << 20
    with CDevice(flash_file=str(flash)) as dev:            # a new process boots the commit
        h = hello_fields(dev.hello().payload)
        assert (h["active_slot"], h["active_len"]) == (0, len(image))
        assert dev.upload(image).type == 0x92                # into slot 1, generation 2
        r = dev.request(0x30)
        assert r.payload[77] == 1


def test_hostile_input_never_stops_the_device():
    rng = np.random.default_rng(5)
    image = (VEC / "lif_ff_int8.bin").read_bytes()
    with CDevice() as dev:
        dev.hello()
        dev.upload(image)
        dev.send(rng.integers(0, 256, 20000, dtype=np.uint8).tobytes())   # garbage
        dev.send(b"\x01" * 5000 + b"\x00")                                # oversized run
        for _ in range(300):                                              # random valid frames
            t = int(rng.integers(0, 256))
            payload = rng.integers(0, 256, int(rng.integers(0, 80)), dtype=np.uint8).tobytes()
            dev.send(dev.frame(t, payload, seq=int(rng.integers(0, 256))))
        dev.send(b"\x00\x00")
        r = dev.hello()
        while r.type != 0x81:                                             # drain answers
            r = dev.receive()
        assert dev.alive
        tel = struct.unpack("<19I", dev.request(0x30).payload[:76])
        assert tel[14] >= 1                                               # frames_bad
        h = hello_fields(dev.hello().payload)
        assert h["active_len"] == len(image)
        qnet = from_image(image)
        with np.load(VEC / "lif_ff_int8.npz", allow_pickle=False) as z:
            assert np.array_equal(_infer(dev, qnet, z["x"][:, 0, :]), z["output"][:, 0, :])


def test_pull_snapshot_is_the_canonical_image():
    """Nonzero padding in an uploaded image is accepted; the snapshot writes zeros there, as
    the host's to_image does."""
    image = bytearray((VEC / "lif_rec_spikes.bin").read_bytes())
    qnet = from_image(bytes(image))
    image[29] = 7                                     # reserved byte of the network header
    with CDevice() as dev:
        dev.hello()
        assert dev.upload(bytes(image)).type == 0x92
        assert dev.read_all(0x22, 0x23) == to_image(qnet)
        assert qrun(qnet, np.zeros((1, 1, qnet.n_in), np.int64)).output.shape == (1, 1, 5)


def test_sim_url_and_firmware_sim_choose_the_c_implementation():
    """`sim?impl=c` (and so `edgelearn firmware-sim --impl c`) runs the C host build on a pty
    with the simulator's options; the host client drives it like the Python board."""
    from edgelearn.link.client import Client

    image = (VEC / "lif_rec_spikes.bin").read_bytes()
    qnet = from_image(image)
    x = np.random.default_rng(0).random((12, qnet.n_in)) < 0.3
    with Client("sim?impl=c&ram=256KiB&flash=512KiB&profile=cortex-m7-1m") as c:
        info = c.hello()
        assert (info.profile, info.ram, info.protocol_version) == ("cortex-m7-1m", 262144, 2)
        c.upload(image)
        y = c.infer(x, reset=True)
    assert np.array_equal(y, qrun(qnet, x.astype(np.int64)).output[:, 0, :])


def _mutant(rng, data: bytes) -> bytes:
    """One damaged copy of ``data``: a few flipped bytes (mostly in the header and tables),
    a truncation, or extra bytes."""
    b = bytearray(data)
    kind = int(rng.integers(0, 4))
    if kind == 0:
        return bytes(b[:int(rng.integers(0, len(b)))])
    if kind == 1:
        return bytes(b) + rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    for _ in range(int(rng.integers(1, 5))):
        i = int(rng.integers(0, min(len(b), 96))) if kind == 2 else int(rng.integers(0, len(b)))
        b[i] = int(rng.integers(0, 256)) if rng.random() < 0.5 else b[i] ^ (1 << int(rng.integers(8)))
    return bytes(b)


def test_damaged_images_and_blobs_under_sanitizers():
    """The C host build with AddressSanitizer and UBSan takes 600 damaged images and config,
    head and weights blobs (CRC valid, so they reach the decoders): each is applied or refused
    with an error frame, no sanitizer finding, and afterwards the valid model and blobs give the
    same sample results as before."""
    from edgelearn.device.engine import EngineConfig, HEPSettings
    from edgelearn.device.head import DeviceHead
    from edgelearn.errors import LinkError
    from edgelearn.kernels.image import to_image
    from edgelearn.link import blobs
    from edgelearn.link import messages as m
    from edgelearn.link.client import Client
    from edgelearn.rules.hep import EnergyHead
    from tests._inprocess_board import test_qnetwork
    from tests._c_device import CBoard
    from tests.test_link_sample_mode import config_bytes

    qnet = test_qnetwork(n_in=40, n_hidden=32, n_out=10, seed=90)
    image = to_image(qnet)
    head = blobs.encode_head(DeviceHead(EnergyHead((42, 16, 10), seed=1), np.zeros(42),
                                        np.ones(42)))
    config = config_bytes(EngineConfig(lpl_layers=("hidden",), hep=HEPSettings(replay=4),
                                       seed=3), qnet)
    x = (np.random.default_rng(1).random((20, 40)) < 0.2).astype(np.int8)
    rng = np.random.default_rng(16)

    def setup(c):
        c.upload(image)
        c.put_blob(m.BLOB_CONFIG, config)
        c.put_blob(m.BLOB_HEAD, head)
        c.set_mode(lpl=False, hep=True)

    with CBoard(256 * 1024, 512 * 1024, recipe="device-asan") as b:
        c = Client(b.host)
        setup(c)
        want = c.sample(x)
        weights = c.get_blob(m.BLOB_WEIGHTS)
        refused = 0
        for i in range(600):
            what = i % 4
            try:
                if what == 0:
                    c.upload(_mutant(rng, image))
                    setup(c)
                else:
                    kind, good = [(m.BLOB_CONFIG, config), (m.BLOB_HEAD, head),
                                  (m.BLOB_WEIGHTS, weights)][what - 1]
                    c.put_blob(kind, _mutant(rng, good))
            except LinkError:
                refused += 1
                assert b.proc.poll() is None, b.proc.communicate()[1][-3000:]
        assert b.proc.poll() is None, b.proc.communicate()[1][-3000:]
        assert refused > 400
        setup(c)
        got = c.sample(x)
        assert got[0] == want[0] and got[2] == want[2]
        np.testing.assert_allclose(got[1], want[1], rtol=1e-6)


def _session_device(line: str) -> "CDevice":
    kw = dict(f.split("=") for f in line.split()[1:])
    return CDevice("--max-payload", kw["max_payload"], "--window", kw["window"], "--seed",
                   kw["seed"], ram=int(kw["ram"]), flash=int(kw["flash"]))


@pytest.mark.parametrize("name", ["streaming_infer", "streaming_lpl", "sample_mode", "errors",
                                  "streaming_lpl_epoch", "sample_mode_epoch"])
def test_protocol_session_vectors(name):
    """The shared protocol sessions (tests/vectors/protocol/, read as a C harness would) replayed
    against the C host build, compared with the rules of tests/vectors/README.md."""
    replay_session(name)


def replay_session(name: str, url: str | None = None) -> None:
    """Replay session `name` on the C host build started as its device line says, or on the
    board at `url` (then the HELLO reply, which states that board's own RAM, flash and link
    limits, is not compared)."""
    from tests.test_protocol_vectors import VEC as PVEC, lines, same, unhex, weights_close
    ls = lines(PVEC / "sessions" / f"{name}.txt")
    device = ls.pop(0)
    with (_session_device(device) if url is None else CDevice(url=url)) as dev:
        blob = want_blob = None
        for n, (req, rep) in enumerate(zip(ls[0::2], ls[1::2])):
            _, rtype, payload = req.split(" ", 2)
            _, etype, rule, epayload = rep.split(" ", 3)
            dev.send(dev.frame(int(rtype, 16), unhex(payload), seq=n & 0xFF))
            f = dev.receive()
            assert (f.seq, f.type) == (n & 0xFF, int(etype, 16)), (req, error_text(f))
            got, want = f.payload, unhex(epayload)
            if rule == "weights":
                assert got[:4] == want[:4], req
                if int(rtype, 16) == 0x43:                                    # BLOB_GET
                    if blob is not None:
                        assert weights_close(blob, want_blob), f"weights blob before {req}"
                    blob, want_blob = b"", b""
                else:
                    blob += got[4:]
                    want_blob += want[4:]
                continue
            if blob is not None:
                assert weights_close(blob, want_blob), f"weights blob before {req}"
                blob = None
            if url is not None and rule == "hello":
                continue
            assert same(rule, got, want), f"{req} -> {rule}: {got.hex()} != {want.hex()}"
        assert blob is None or weights_close(blob, want_blob)


def test_protocol_invalid_blob_vectors():
    """Each invalid blob of tests/vectors/protocol/blobs.txt, sent whole to the C board set up
    by sessions/sample_mode.txt up to MODE, draws its ERROR (code, arg0, arg1) and leaves the
    weights blob unchanged."""
    from tests.test_protocol_vectors import VEC as PVEC, invalid_blobs, lines, unhex
    ls = lines(PVEC / "sessions" / "sample_mode.txt")
    with _session_device(ls.pop(0)) as dev:
        for req in ls[0::2]:
            _, t, payload = req.split(" ", 2)
            dev.request(int(t, 16), unhex(payload))
            if int(t, 16) == 0x47:                                            # MODE
                break
        before = dev.read_all(0x43, 0x44, b"\x03")
        n = 0
        for kind, want, blob, ln in invalid_blobs():
            r = dev.request(0x40, struct.pack("<BII", kind, len(blob), zlib.crc32(blob)))
            assert r.type == 0xC0, error_text(r)
            for i in range(0, len(blob), 900):
                assert dev.request(0x41, blob[i:i + 900]).type == 0xC1
            e = dev.request(0x42)
            code, _, a0, a1, _ = error_of(e)
            assert (code, a0, a1) == want, f"{ln[:70]}: {error_text(e)}"
            n += 1
        assert n >= 8
        assert dev.read_all(0x43, 0x44, b"\x03") == before


def test_layer_names_follow_the_image_rule_on_both_implementations():
    """docs/fixed-point.md section 7: a layer name is 1..255 bytes of ASCII letters, digits and
    '_'; a non-ASCII name (valid UTF-8, same length) is refused by the C board's commit and by
    the host's reader alike, and the running model stays."""
    from edgelearn.errors import EdgelearnError

    image = (VEC / "lif_ff_int8.bin").read_bytes()
    name = from_image(image).layers[0].name.encode()
    assert len(name) >= 2 and image.count(name) == 1
    bad = image.replace(name, "é".encode() + name[2:])
    with pytest.raises(EdgelearnError, match="name"):
        from_image(bad)
    with CDevice() as dev:
        dev.hello()
        assert dev.upload(image).type == 0x92
        assert dev.request(0x10, struct.pack("<II", len(bad), zlib.crc32(bad))).type == 0x90
        assert dev.request(0x11, bad).type == 0x91
        code, _, _, _, text = error_of(dev.request(0x12))
        assert code == 8 and "name" in text
        h = hello_fields(dev.hello().payload)
        assert (h["active_slot"], h["active_len"]) == (0, len(image))
