"""The simulated board's logic without any I/O: Device.feed(bytes) -> bytes."""

import numpy as np
import pytest

from edgelearn.kernels.image import from_image, to_image
from edgelearn.kernels.lif_kernels import qrun
from edgelearn.link import framing
from edgelearn.link import messages as m
from edgelearn.link.framing import Frame, StreamDecoder, crc32, encode_frame
from edgelearn.rules import lpl_rate
from firmware_sim.cycles import COSTS, core_of, worst_case_cycles
from firmware_sim.device import Device
from firmware_sim.flash import Flash
from tests._inprocess_board import test_image, test_qnetwork


class Host:
    """A minimal scripted host: sends requests, decodes the device's answer."""

    def __init__(self, dev: Device) -> None:
        self.dev, self.seq, self.dec = dev, 0, StreamDecoder(4096)

    def raw(self, msg: m.Message, seq: int | None = None,
            version: int = framing.PROTOCOL_VERSION) -> list:
        s = self.seq if seq is None else seq
        if seq is None:
            self.seq = (self.seq + 1) & 0xFF
        out = self.dev.feed(encode_frame(Frame(msg.TYPE, s, msg.pack(), version)))
        return [(f.seq, m.decode_message(f.type, f.payload)) for f in self.dec.feed(out)]

    def __call__(self, msg: m.Message) -> m.Message:
        (seq, reply), = self.raw(msg)
        return reply


def make(tmp_path=None, ram=64 * 1024, flash=256 * 1024, **kw):
    path = None if tmp_path is None else str(tmp_path / "board.flash")
    return Device(ram=ram, flash=flash, flash_file=path, log=lambda s: None, **kw)


def upload(h: Host, image: bytes, chunk: int = 1000) -> m.Message:
    h(m.UploadBegin(len(image), crc32(image)))
    for i in range(0, len(image), chunk):
        h(m.UploadData(image[i:i + chunk]))
    return h(m.UploadCommit())


def test_no_session_then_hello_reports_limits():
    h = Host(make())
    err = h(m.Telemetry())
    assert isinstance(err, m.Error) and err.code == m.E_NO_SESSION
    info = h(m.Hello())
    assert info.protocol_version == 2 and info.ram == 64 * 1024 and info.flash == 256 * 1024
    assert info.active_slot == m.NO_SLOT and info.weight_bits == 8 and info.decay_bits == 12


def test_wrong_version_is_refused_naming_both_versions():
    logs = []
    dev = Device(ram=64 * 1024, flash=256 * 1024, log=logs.append)
    host = Host(dev)
    (seq, err), = host.raw(m.Hello(), version=1)
    assert err.code == m.E_VERSION and (err.arg0, err.arg1) == (2, 1)
    assert "host speaks version 1, this device speaks version 2" in err.text
    assert "host speaks version 1" in logs[0] and not dev.session
    for _ in range(5):                       # one log line per burst, not per frame
        host.raw(m.Ping(b"x"), version=1)
    assert len(logs) == 1
    host.raw(m.Hello())                      # a frame of the right version ends the burst
    host.raw(m.Ping(b"x"), version=3)
    assert len(logs) == 2 and "version 3" in logs[1]


def test_upload_commit_and_inference_is_bit_exact_with_host_kernel():
    h = Host(make())
    h(m.Hello())
    qnet = test_qnetwork()
    done = upload(h, to_image(qnet))
    assert isinstance(done, m.UploadCommitReply) and done.generation == 1
    x = (np.random.default_rng(1).random((30, qnet.n_in)) < 0.2).astype(np.uint8)
    packed = np.packbits(x, axis=1, bitorder="little")
    rep = h(m.Infer(30, qnet.n_in, m.INFER_RESET, packed.tobytes()))
    y = np.unpackbits(np.frombuffer(rep.data, np.uint8).reshape(30, -1), axis=1,
                      bitorder="little")[:, :qnet.n_out]
    want = qrun(qnet, x.astype(np.int64)).output[:, 0, :]
    np.testing.assert_array_equal(y, want)
    assert y.sum() > 0


def test_duplicates_answered_from_cache_not_reexecuted_and_gaps_held_and_nakked():
    h = Host(make())
    h(m.Hello())
    h(m.UploadBegin(8, crc32(b"abcdefgh")))
    seq = h.seq
    (s, r), = h.raw(m.UploadData(b"ab"), seq=seq)
    assert r.received == 2
    (s, r), = h.raw(m.UploadData(b"ab"), seq=seq)        # retransmission: same answer
    assert r.received == 2 and h.dev.frames_dup == 1
    (s, r), = h.raw(m.UploadData(b"ef"), seq=seq + 2)    # ahead: held, NAK(expected, held)
    assert isinstance(r, m.Nak) and r.expected == seq + 1 and r.holds(seq + 2)
    assert not r.holds(seq + 1) and not r.holds(seq + 3)
    assert h.raw(m.UploadData(b"gh"), seq=seq + 3) == []  # same round: no second NAK
    replies = h.raw(m.UploadData(b"cd"), seq=seq + 1)    # fills the gap: three replies
    assert [(s, r.received) for s, r in replies] == [(seq + 1, 4), (seq + 2, 6), (seq + 3, 8)]
    h.seq = seq + 4
    assert h.dev.flash.staged() == b"abcdefgh"


def test_crc_mismatch_and_bad_image_do_not_activate():
    h = Host(make())
    h(m.Hello())
    img = test_image()
    assert upload(h, img).generation == 1
    h(m.UploadBegin(10, 12345))
    h(m.UploadData(b"0123456789"))
    err = h(m.UploadCommit())
    assert err.code == m.E_IMAGE_CRC
    junk = b"\x01" * 64
    err = upload(h, junk)
    assert err.code == m.E_BAD_IMAGE and "magic" in err.text
    assert h.dev.flash.active().crc == crc32(img)


def test_model_too_big_for_ram_is_an_error_frame_and_previous_model_stays():
    dev = make(ram=24 * 1024, flash=1024 * 1024)
    h = Host(dev)
    h(m.Hello())
    small = test_image()
    assert upload(h, small).generation == 1
    big = test_image(n_in=200, n_hidden=200)          # 40 KB of weights > 24 KiB RAM
    err = upload(h, big)
    assert isinstance(err, m.Error) and err.code == m.E_NO_MEMORY
    assert "needs" in err.text and "missing" in err.text
    tel = h(m.Telemetry())
    assert tel.arena_high_water >= tel.arena_used > 0 and tel.arena_size == 24 * 1024
    assert dev.flash.active().crc == crc32(small) and dev.engine is not None


def test_learning_state_that_does_not_fit_is_refused():
    dev = make(ram=40 * 1024, flash=256 * 1024)
    h = Host(dev)
    h(m.Hello())
    assert upload(h, test_image(n_in=100, n_hidden=100)).generation == 1
    qnet = test_qnetwork(n_in=100, n_hidden=100)
    # decorrelation needs 4 * n_out^2 bytes (40 KB) of LPL state
    big = lpl_rate.layer_codes(lpl_rate.Params(lam_decorr=1.0), qnet.layers[0])
    err = h(m.Learn(1, 0, 1, big))
    assert err.code == m.E_NO_MEMORY and err.arg0 == 4 * 100 * 100
    ok = h(m.Learn(1, 0, 1, lpl_rate.layer_codes(lpl_rate.Params(eta=0.01), qnet.layers[0])))
    assert ok.enable == 1 and ok.layer == 0


def test_flash_persists_last_commit_and_reset_mid_upload_keeps_previous(tmp_path):
    dev = make(tmp_path)
    h = Host(dev)
    h(m.Hello())
    a, b = test_image(seed=1), test_image(seed=2)
    upload(h, a)
    h(m.UploadBegin(len(b), crc32(b)))
    h(m.UploadData(b[:700]))
    dev.reboot()                                   # power cut in the middle of the upload
    assert dev.flash.active().crc == crc32(a) and dev.engine is not None
    again = make(tmp_path)                         # a restarted process with the same file
    assert again.flash.active().crc == crc32(a)
    assert again.flash.image(again.flash.active().slot) == a
    h2 = Host(again)
    h2(m.Hello())
    assert upload(h2, b).generation == 2
    assert make(tmp_path).flash.active().crc == crc32(b)


def test_pull_returns_learned_weights_and_telemetry_counts():
    h = Host(make())
    h(m.Hello())
    qnet = test_qnetwork()
    upload(h, to_image(qnet))
    h(m.Learn(1, m.LAYER_DEFAULT, 1, lpl_rate.layer_codes(lpl_rate.Params(eta=0.05, warmup=0),
                                                          qnet.layers[0])))
    x = (np.random.default_rng(2).random((40, qnet.n_in)) < 0.3).astype(np.uint8)
    h(m.Infer(40, qnet.n_in, 0, np.packbits(x, axis=1, bitorder="little").tobytes()))
    head = h(m.PullBegin())
    img = b"".join(h(m.PullRead(o, min(500, head.length - o))).data
                   for o in range(0, head.length, 500))
    assert crc32(img) == head.crc
    pulled = from_image(img)
    assert not np.array_equal(pulled.layers[0].weight, qnet.layers[0].weight)
    tel = h(m.Telemetry())
    assert tel.steps == 40 and tel.learn_updates == 40 and tel.learning == 1
    assert tel.spikes > 0 and tel.input_spikes == int(x.sum()) and tel.cycles_per_step > 0


def test_garbage_and_echoes_are_ignored():
    dev = make()
    assert dev.feed(bytes(range(256)) * 4) == b""
    echo = encode_frame(Frame(m.HELLO | m.REPLY, 0, b"", 2, framing.FLAG_DEVICE))
    assert dev.feed(echo) == b""
    assert dev.frames_bad >= 2


def test_read_flash_range_checked():
    h = Host(make())
    h(m.Hello())
    img = test_image()
    slot = upload(h, img).slot
    assert h(m.ReadFlash(slot, 10, 20)).data == img[10:30]
    err = h(m.ReadFlash(slot, len(img) - 5, 10))
    assert err.code == m.E_RANGE and (err.arg0, err.arg1) == (len(img) + 5, len(img))
    err = h(m.ReadFlash(slot, 0, 2000))          # the reply would not fit max_payload
    assert err.code == m.E_BAD_PARAM and (err.arg0, err.arg1) == (5, 2000)


def test_flash_too_small_and_wrong_file_size(tmp_path):
    from firmware_sim.flash import FlashError
    with pytest.raises(FlashError):
        Flash(1000)
    p = tmp_path / "f.bin"
    p.write_bytes(b"\xff" * 5000)
    with pytest.raises(FlashError, match="holds 5000 B"):
        Flash(8192, p)


def test_cycle_model_orders_cores_and_counts_learning():
    shapes = [(700, 256, False), (256, 20, False)]
    m0, m4, m7 = (worst_case_cycles(COSTS[c], shapes) for c in
                  ("cortex-m0plus", "cortex-m4", "cortex-m7"))
    assert m0 > m4 > m7 > 0
    assert core_of("cortex-m0plus-64k").core == "cortex-m0plus"
    assert core_of("linux-board").core == "linux"


def test_arena_use_equals_the_memory_plan():
    """The plan charges the link's reply cache and reorder buffer for the board's window."""
    from edgelearn.memory.planner import LinkShape, inference_buffers, shapes_of
    link = LinkShape(window=3, max_payload=300)
    dev = make(ram=256 * 1024, flash=256 * 1024, window=3, max_payload=300)
    h = Host(dev)
    h(m.Hello())
    qnet = test_qnetwork(n_in=64, n_hidden=48, n_out=10)
    upload(h, to_image(qnet), chunk=256)
    plan = sum(b.nbytes for b in inference_buffers(shapes_of(qnet), 4, link, None))
    tel = h(m.Telemetry())
    assert tel.arena_used == tel.arena_high_water == plan
