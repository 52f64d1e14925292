"""Issue 14, device side: no request can stop a board; every failure is an ERROR with a
documented code and leaves the board as it was (tests/_device_fuzz.py states the promise).

Regression tests for each case the reliability probe found, then hypothesis fuzzing of the link
decoder and of every request type with random and mutated payloads (a bounded default run;
``-m slow`` runs the long campaign)."""

import random
import struct
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _device_fuzz import FuzzBoard, mutate, valid_blobs, valid_payloads
from edgelearn.errors import EdgelearnError, InputError, LinkError, ParameterError
from edgelearn.kernels.image import from_image, to_image
from edgelearn.link import blobs
from edgelearn.link import messages as m
from edgelearn.link.framing import FrameError, StreamDecoder, crc32
from firmware_sim.device import Device
from firmware_sim.flash import Flash, FlashError
from tests._hang import HANG_SECONDS

BOARDS: dict[str, FuzzBoard] = {}


def board(state: str) -> FuzzBoard:
    if state not in BOARDS:
        BOARDS[state] = FuzzBoard(state)
    return BOARDS[state]


def err(msg) -> tuple[int, int, int]:
    assert isinstance(msg, m.Error), msg
    return msg.code, msg.arg0, msg.arg1


def send_blob(b: FuzzBoard, kind: int, data: bytes):
    """BLOB_BEGIN/DATA/END with the bytes' own CRC: the blob decoders see ``data``."""
    r = b.send(m.BLOB_BEGIN, m.BlobBegin(kind, len(data), crc32(data)).pack(),
               f"BLOB kind {kind}")
    if isinstance(r, m.Error):
        return r
    for i in range(0, len(data), 900):
        r = b.send(m.BLOB_DATA, data[i:i + 900], f"BLOB kind {kind}")
    return b.send(m.BLOB_END, b"", f"BLOB kind {kind}")


def send_upload(b: FuzzBoard, image: bytes):
    b.send(m.UPLOAD_BEGIN, m.UploadBegin(len(image), crc32(image)).pack(), "UPLOAD image")
    for i in range(0, len(image), 900):
        b.send(m.UPLOAD_DATA, image[i:i + 900], "UPLOAD image")
    return b.send(m.UPLOAD_COMMIT, b"", "UPLOAD image")


# ---- issue 14 item 1: requests that used to end the simulator ---------------------------------

@pytest.mark.parametrize("data", [b"[]", b"1", b"null", b'{"seed":"x"}', b"[" * 5000,
                                  bytes(48), b"ELCF" + bytes(44)])
def test_config_blobs_that_killed_the_simulator_are_errors(data):
    b = FuzzBoard("sample")
    code, off, _ = err(send_blob(b, m.BLOB_CONFIG, data))
    assert code in (m.E_BAD_PARAM, m.E_BAD_LENGTH)
    assert b.send(m.SAMPLE, valid_payloads(b.qnet)[m.SAMPLE][0]).done == 1   # still serving


def test_learn_blocks_with_invalid_fields_name_the_field():
    b = FuzzBoard("streaming")
    good = valid_payloads(b.qnet)[m.LEARN][0]
    for off, value, field_offset in ((8, 15, 8),       # act_frac 15
                                     (8 + 56, 0, 8 + 56),     # eta k = 0 (required)
                                     (8 + 58, 200, 8 + 58),   # eta s = 200
                                     (8 + 7, 7, 8 + 7),       # epoch_log2 7 (> 6)
                                     (2, 9, 2)):              # LEARN's reserved field
        bad = bytearray(good)
        bad[off] = value
        if off == 8 + 56:
            bad[off + 1] = bad[off + 2] = 0          # k = 0 and s = 0: the term switched off
        code, arg0, _ = err(b.send(m.LEARN, bytes(bad)))
        assert code == m.E_BAD_PARAM and arg0 == field_offset, (off, arg0)


def test_image_metadata_is_opaque_to_the_board_and_refused_by_the_host():
    """A committed image whose metadata is a list or nested 5000 deep: the board never parses
    metadata (it runs and pulls back byte for byte); the host refuses it in one line."""
    b = FuzzBoard("streaming")
    base = to_image(b.qnet)
    for meta in (b"[1,2]", b"[" * 5000 + b"]" * 5000):
        img = to_image(b.qnet, meta=meta)
        assert isinstance(send_upload(b, img), m.UploadCommitReply)
        assert b.send(m.INFER, valid_payloads(b.qnet)[m.INFER][1]).n_steps == 4
        head = b.send(m.PULL_BEGIN, b"")
        pulled = b"".join(b.send(m.PULL_READ, m.PullRead(o, min(512, head.length - o)).pack())
                          .data for o in range(0, head.length, 512))
        assert pulled == img
        with pytest.raises(EdgelearnError, match="metadata"):
            from_image(pulled)
    assert isinstance(send_upload(b, base), m.UploadCommitReply)


def test_head_and_weights_blobs_with_bad_values_are_refused_and_change_nothing():
    b = FuzzBoard("sample")
    head = valid_blobs(b.qnet)[m.BLOB_HEAD]
    K = head[6]
    H = 8 + 8 * -(-2 * (K + 1) // 8)
    for off, val in ((H + 32, np.float32(np.nan)),               # feature mean NaN
                     (H + 32 + 4 * 22, np.float32(0.0)),          # feature std 0
                     (len(head) - 4, np.float32(np.inf))):        # last bias Inf
        bad = bytearray(head)
        bad[off:off + 4] = np.asarray(val, "<f4").tobytes()
        code, arg0, _ = err(send_blob(b, m.BLOB_HEAD, bytes(bad)))
        assert (code, arg0) == (m.E_BAD_PARAM, off)
    names = [la.name for la in b.qnet.layers]
    w = b.dev.engine.get_weights()
    cases = [("state.hidden.lpl.var", -5), ("state.hidden.lpl.count", 10 ** 6),
             ("state.replay.labels", 200), ("head.W0", np.nan)]
    for key, val in cases:
        bad = {k: v.copy() for k, v in w.items()}
        if key == "state.replay.labels":
            bad["state.replay.ring"][...] = (1, 1)
            bad["state.replay.lengths"][0] = 5
        if key == "head.W0":
            bad[key] = bad[key].astype(np.float64)
            bad[key][0, 0] = np.nan
            with pytest.raises(ParameterError, match="not finite in float32"):
                blobs.encode_weights(bad, names)
            data = bytearray(blobs.encode_weights(w, names))
            i = data.find(np.asarray(w["head.W0"][0, 0], "<f4").tobytes())
            data[i:i + 4] = np.asarray(np.nan, "<f4").tobytes()
        else:
            bad[key].flat[0] = val
            data = blobs.encode_weights(bad, names)
        code, _, _ = err(send_blob(b, m.BLOB_WEIGHTS, bytes(data)))
        assert code == m.E_BAD_PARAM, key


@pytest.mark.parametrize("flags", [m.SAMPLE_END, m.SAMPLE_END | m.INFER_COUNTS])
def test_sample_end_without_begin_and_twice(flags):
    b = FuzzBoard("sample")
    x = valid_payloads(b.qnet)[m.SAMPLE][0]
    assert err(b.send(m.SAMPLE, m.Sample(0, b.qnet.n_in, flags).pack())) == (m.E_BAD_STATE, 0, 0)
    assert b.send(m.SAMPLE, x).done == 1
    assert err(b.send(m.SAMPLE, m.Sample(0, b.qnet.n_in, flags).pack()))[0] == m.E_BAD_STATE


def test_an_internal_failure_is_rolled_back_and_answered(monkeypatch):
    """A defect inside a request (here: TEACH raising half way) is ERROR INTERNAL, and the
    learning state is what it was before the request."""
    b = FuzzBoard("sample")
    p = valid_payloads(b.qnet)
    b.send(m.SAMPLE, p[m.SAMPLE][0])
    eng = b.dev.engine
    real = eng._hep_update

    def half(x, y):
        real(x, y)
        raise RuntimeError("boom")

    monkeypatch.setattr(eng, "_hep_update", half)
    before = b.fingerprint()
    frames = b._raw(m.TEACH, m.Teach(1).pack())
    msg = m.decode_message(frames[0].type, frames[0].payload)
    assert msg.code == m.E_INTERNAL and "RuntimeError: boom" in msg.text
    assert b.fingerprint() == before
    monkeypatch.undo()
    assert isinstance(b.send(m.TEACH, m.Teach(1).pack()), m.TeachReply)


# ---- issue 14 item 2: rollback cannot carry Inf ------------------------------------------------

def test_weights_beyond_float32_are_refused_at_the_stored_precision():
    from edgelearn.device.engine import Engine
    from edgelearn.memory.arena import Arena
    from _device_fuzz import engine_config, head, model
    eng = Engine(model(), Arena(1 << 17), head(), engine_config())
    w = eng.get_weights()
    bad = dict(w, **{"head.W0": w["head.W0"].astype(np.float64) * 0 + 1e300})
    with pytest.raises(InputError, match="beyond float32"):
        eng.set_weights(bad)
    for k, v in eng.get_weights().items():
        np.testing.assert_array_equal(v, w[k])
    big = head()
    big.head.weights[0][0, 0] = 1e300
    with pytest.raises(ParameterError, match="not finite in float32"):
        Engine(model(), Arena(1 << 17), big, engine_config())


# ---- issue 14 item 4: flash slots ----------------------------------------------------------

def _slot_header(gen: int, image: bytes) -> bytes:
    head = struct.pack("<4sIII", b"ELSL", gen, len(image), crc32(image))
    return head + struct.pack("<I", crc32(head)) + b"\xff" * 44


def test_generation_0xffffffff_is_followed_by_0(tmp_path):
    from tests._inprocess_board import test_image
    path = tmp_path / "f.flash"
    f = Flash(64 * 1024, path)
    img = test_image(seed=1)
    f.mem[0:64] = _slot_header(0xFFFFFFFF, img)
    f.mem[64:64 + len(img)] = img
    f.persist()
    dev = Device(ram=128 * 1024, flash=64 * 1024, flash_file=str(path), log=lambda s: None)
    assert dev.running == 0 and dev.flash.active().generation == 0xFFFFFFFF
    b = FuzzBoard.__new__(FuzzBoard)
    b.dev, b.dec, b.seq, b.logs, b.qnet = dev, StreamDecoder(4096), 0, [], None
    b._ok(m.HELLO, m.Hello().pack())
    new = test_image(seed=2)
    rep = send_upload(b, new)
    assert rep.generation == 0 and rep.slot == 1
    again = Device(ram=128 * 1024, flash=64 * 1024, flash_file=str(path), log=lambda s: None)
    assert again.running == 1 and again.flash.image(1) == new


def test_a_newer_slot_that_does_not_decode_falls_back_to_the_older(tmp_path):
    from tests._inprocess_board import test_image
    path = tmp_path / "f.flash"
    f = Flash(64 * 1024, path)
    good, junk = test_image(seed=1), b"ELQN" + bytes(60)          # valid CRC, undecodable
    f.mem[0:64] = _slot_header(5, good)
    f.mem[64:64 + len(good)] = good
    f.mem[f.region:f.region + 64] = _slot_header(6, junk)
    f.mem[f.region + 64:f.region + 64 + len(junk)] = junk
    f.persist()
    logs = []
    dev = Device(ram=128 * 1024, flash=64 * 1024, flash_file=str(path), log=logs.append)
    assert dev.running == 0 and dev.engine is not None
    assert any("slot 1 cannot run" in line for line in logs)
    b = FuzzBoard.__new__(FuzzBoard)
    b.dev, b.dec, b.seq, b.logs, b.qnet = dev, StreamDecoder(4096), 0, [], None
    hello = m.decode_message(m.HELLO | m.REPLY, b._ok(m.HELLO, m.Hello().pack()))
    assert hello.active_slot == 0 and hello.active_crc == crc32(good)
    rep = send_upload(b, test_image(seed=3))        # overwrites the broken newer slot
    assert rep.slot == 1 and rep.generation == 7


# ---- issue 14 item 5: the simulator's own limits ---------------------------------------------

def test_unwritable_flash_file_and_negative_baud_are_refused_at_start(tmp_path):
    missing = tmp_path / "no" / "such" / "b.flash"
    for bad in (missing, tmp_path, "/proc/self/b.flash"):
        with pytest.raises(FlashError, match="cannot be written"):
            Flash(64 * 1024, bad)
    for args, needle in ((["--flash-file", str(missing)], "cannot be written"),
                         (["--baud", "-5"], "argument --baud")):
        r = subprocess.run([sys.executable, "-m", "firmware_sim", "--pty", *args],
                           capture_output=True, text=True, timeout=HANG_SECONDS)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and needle in lines[0], r.stderr


def test_board_cli_refuses_a_negative_timeout(capsys):
    from edgelearn.cli import main
    assert main(["board", "--port", "loop://", "--timeout", "-1", "info"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "timeout" in lines[0], lines


def test_transmit_queue_is_bounded_and_drops_are_logged_once():
    from firmware_sim.server import Server
    logs = []
    dev = Device(ram=64 * 1024, flash=64 * 1024, log=logs.append)
    srv = Server(dev, port=None)
    frame = b"\x01" * 1000
    for _ in range(3 * srv.tx_limit // 1000):
        srv._emit(frame)
    assert len(srv.out) <= srv.tx_limit and srv.tx_dropped > 0
    assert sum("transmit queue full" in line for line in logs) == 1


def test_host_refuses_a_snapshot_longer_than_a_slot():
    from edgelearn.link.client import Client
    from tests._inprocess_board import InProcessBoard
    with InProcessBoard("socketpair", ram=64 * 1024, flash=64 * 1024) as ib:
        c = Client(ib.host)
        with pytest.raises(LinkError, match="more than a flash slot"):
            c._read_snapshot(m.BlobGetReply(1 << 31, 0), m.BlobRead, "blob")
        c.close()


# ---- fuzzing ---------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=8))
def test_link_decoder_never_raises_and_resynchronises(chunks):
    from _fuzz_harness import STATS
    st_ = STATS.setdefault("board link decoder", {"tried": 0, "crashes": 0})
    st_["tried"] += 1
    dec = StreamDecoder(1024)
    for c in chunks:
        for item in dec.feed(c):
            assert isinstance(item, FrameError) or item.type in range(256)
    # after any garbage, a delimiter and a valid frame decode
    from edgelearn.link.framing import Frame, encode_frame
    out = dec.feed(b"\0" + encode_frame(Frame(m.PING, 3, b"x")))
    assert [f for f in out if not isinstance(f, FrameError)] == [Frame(m.PING, 3, b"x")]


REQUEST_TYPES = sorted(m.REQUESTS)


def _fuzz_request(state, mtype, payload, seed, mutated):
    b = board(state)
    rnd = random.Random(seed)
    if mutated:
        seeds = valid_payloads(b.qnet)[mtype]
        payload = mutate(rnd.choice(seeds), rnd)
    b.send(mtype, payload)


def _fuzz_blob(state, kind, seed, n):
    b = board(state)
    rnd = random.Random(seed)
    seeds = dict(valid_blobs(b.qnet))
    if b.dev.engine is not None and b.dev.sample_mode:
        seeds[m.BLOB_WEIGHTS] = blobs.encode_weights(b.dev.engine.get_weights(),
                                                     [la.name for la in b.qnet.layers])
    data = seeds.get(kind, seeds[m.BLOB_CONFIG])
    for _ in range(n):
        data = mutate(data, rnd)
    if data:
        send_blob(b, kind, data)


def _fuzz_upload(seed, n):
    b = board("streaming")
    rnd = random.Random(seed)
    img = to_image(b.qnet)
    for _ in range(n):
        img = mutate(img, rnd)
    if img:
        r = send_upload(b, img)
        if isinstance(r, m.UploadCommitReply):       # a valid image: committed (its right)
            send_upload(b, to_image(b.qnet))


fuzz_settings = settings(max_examples=60, deadline=None,
                         suppress_health_check=[HealthCheck.too_slow])


@fuzz_settings
@given(st.sampled_from(("empty", "streaming", "sample")), st.sampled_from(REQUEST_TYPES),
       st.binary(max_size=300), st.integers(0, 2**32 - 1), st.booleans())
def test_every_request_type_with_random_and_mutated_payloads(state, mtype, payload, rnd, mutated):
    _fuzz_request(state, mtype, payload, rnd, mutated)


@fuzz_settings
@given(st.sampled_from(("streaming", "sample")), st.sampled_from((1, 2, 3)),
       st.integers(0, 2**32 - 1), st.integers(1, 4))
def test_mutated_blobs_never_break_the_board(state, kind, rnd, n):
    _fuzz_blob(state, kind, rnd, n)


@fuzz_settings
@given(st.integers(0, 2**32 - 1), st.integers(1, 3))
def test_mutated_images_never_break_the_board(rnd, n):
    _fuzz_upload(rnd, n)


@pytest.mark.slow
@settings(max_examples=20000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(("empty", "streaming", "sample")), st.sampled_from(REQUEST_TYPES),
       st.binary(max_size=1024), st.integers(0, 2**32 - 1), st.booleans())
def test_long_request_campaign(state, mtype, payload, rnd, mutated):
    _fuzz_request(state, mtype, payload, rnd, mutated)


@pytest.mark.slow
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(("streaming", "sample")), st.sampled_from((1, 2, 3)),
       st.integers(0, 2**32 - 1), st.integers(1, 6))
def test_long_blob_campaign(state, kind, rnd, n):
    _fuzz_blob(state, kind, rnd, n)


@pytest.mark.slow
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.integers(1, 5))
def test_long_image_campaign(rnd, n):
    _fuzz_upload(rnd, n)


def test_fuzz_board_check_fails_on_a_broken_promise(monkeypatch):
    """The checker is not vacuous: a device that answers twice, or changes state on an error,
    is caught."""
    b = FuzzBoard("sample")
    real = b.dev.feed
    monkeypatch.setattr(b.dev, "feed", lambda data: real(data) * 2)
    with pytest.raises(AssertionError, match="2 answers"):
        b.send(m.TELEMETRY, b"")
    monkeypatch.undo()

    from firmware_sim.device import DeviceError

    def corrupt(self, msg):           # a handler that writes before it refuses
        self.engine.w[0][0, 0] ^= 1
        raise DeviceError(m.E_BAD_PARAM, "nope")

    monkeypatch.setattr(type(b.dev), "_HANDLERS", {**type(b.dev)._HANDLERS, m.MODE: corrupt})
    with pytest.raises(AssertionError, match="changed although it failed"):
        b.send(m.MODE, b"\x01\x01")
