"""Pure framing and message tests (no I/O), including property-based decoder tests."""

import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgelearn.errors import LinkError
from edgelearn.link import cobs, framing
from edgelearn.link import messages as m
from edgelearn.link.framing import Frame, FrameError, StreamDecoder, decode_frame, encode_frame


@given(st.binary(max_size=2000))
def test_cobs_roundtrip_and_no_zero(data):
    enc = cobs.encode(data)
    assert b"\0" not in enc
    assert len(enc) <= cobs.max_encoded_len(len(data))
    assert cobs.decode(enc) == data


def test_cobs_known_vectors():
    # vectors from the COBS paper / common test suites
    assert cobs.encode(b"") == b"\x01"
    assert cobs.encode(b"\x00") == b"\x01\x01"
    assert cobs.encode(b"\x11\x22\x00\x33") == b"\x03\x11\x22\x02\x33"
    assert cobs.encode(b"\x11\x00\x00\x00") == b"\x02\x11\x01\x01\x01"
    data = bytes(range(1, 255))   # 254 non-zero bytes: one full block
    assert cobs.encode(data)[:1] == b"\xff" and cobs.decode(cobs.encode(data)) == data


def test_frame_layout_matches_zlib_crc():
    wire = encode_frame(Frame(m.PING, 7, b"\x01\x02"))
    body = cobs.decode(wire[:-1])
    assert wire.endswith(b"\0") and b"\0" not in wire[:-1]
    assert body[:4] == bytes([framing.PROTOCOL_VERSION, m.PING, 7, 0])
    assert struct.unpack("<I", body[-4:])[0] == zlib.crc32(body[:-4])


@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=1024), st.integers(0, 1))
def test_frame_roundtrip(mtype, seq, payload, flags):
    fr = Frame(mtype, seq, payload, framing.PROTOCOL_VERSION, flags)
    assert decode_frame(encode_frame(fr)[:-1]) == fr


@given(st.binary(max_size=3000))
@settings(max_examples=300)
def test_decoder_on_arbitrary_bytes_raises_only_its_error(data):
    try:
        decode_frame(data)
    except FrameError:
        pass
    dec = StreamDecoder(1024)
    for item in dec.feed(data):    # never raises; every item is a Frame or a FrameError
        assert isinstance(item, (Frame, FrameError))


@st.composite
def corrupted_frames(draw):
    payload = draw(st.binary(min_size=0, max_size=600))
    fr = Frame(draw(st.integers(0, 255)), draw(st.integers(0, 255)), payload)
    wire = bytearray(encode_frame(fr)[:-1])
    n = draw(st.integers(1, 4))
    for _ in range(n):
        kind = draw(st.sampled_from(["flip", "drop", "insert", "dup", "replace"]))
        i = draw(st.integers(0, len(wire) - 1)) if wire else 0
        if kind == "flip" and wire:
            wire[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "drop" and len(wire) > 1:
            del wire[i]
        elif kind == "insert":
            wire.insert(i, draw(st.integers(1, 255)))
        elif kind == "dup" and wire:
            wire.insert(i, wire[i])
        elif kind == "replace" and wire:
            wire[i] = draw(st.integers(1, 255))
    return fr, bytes(wire)


@given(corrupted_frames())
@settings(max_examples=500)
def test_decoder_never_accepts_a_corrupted_frame(case):
    fr, wire = case
    try:
        got = decode_frame(wire)
    except FrameError:
        return
    # the only acceptable success is an undamaged frame (corruptions that cancelled out)
    assert got == fr and wire == encode_frame(fr)[:-1]


@given(st.lists(st.tuples(st.binary(max_size=300), st.binary(max_size=40)), max_size=8),
       st.integers(1, 64))
def test_stream_decoder_resyncs_after_garbage(items, split):
    frames = [Frame(m.PING, k, p) for k, (p, _) in enumerate(items)]
    stream = b"".join(g.replace(b"\0", b"") + b"\0" + encode_frame(f)
                      for f, (_, g) in zip(frames, items))
    dec = StreamDecoder(1024)
    got = []
    for i in range(0, len(stream), split):       # arbitrary chunking
        got += [x for x in dec.feed(stream[i:i + split]) if isinstance(x, Frame)]
    assert got == frames


def test_stream_decoder_drops_oversize_runs():
    dec = StreamDecoder(64)
    out = dec.feed(b"\x01" * 500 + b"\0" + encode_frame(Frame(m.PING, 1, b"ok")))
    assert isinstance(out[0], FrameError) and out[1] == Frame(m.PING, 1, b"ok")


def test_frame_errors_are_link_errors():
    assert issubclass(FrameError, LinkError) and issubclass(m.MessageError, LinkError)
    with pytest.raises(FrameError, match="CRC mismatch"):
        decode_frame(cobs.encode(b"\x01\x02\x03\x04\x00\x00\x00\x00"))
    with pytest.raises(FrameError, match="shorter than header"):
        decode_frame(cobs.encode(b"\x01\x02"))


def _roundtrip(msg):
    assert m.decode_message(msg.TYPE, msg.pack()) == msg


def test_every_message_roundtrips():
    msgs = [m.Hello(1024, 8), m.Ping(b"abc"), m.PingReply(b""), m.UploadBegin(10, 0xDEADBEEF),
            m.UploadBeginReply(1, 4096), m.UploadData(b"\0" * 5), m.UploadDataReply(5),
            m.UploadCommit(), m.UploadCommitReply(0, 5, 1, 2), m.ReadFlash(1, 2, 3),
            m.ReadFlashReply(2, b"xyz"), m.Infer(2, 9, 1, bytes(4)), m.InferReply(2, 3, 0, b"\1\2"),
            m.Learn(1, 255, 7, bytes(range(64))), m.Learn(0, 3, 0, None), m.LearnReply(1, 0, 3), m.PullBegin(),
            m.PullBeginReply(5, 6), m.PullRead(0, 10), m.PullReadReply(0, b"q"), m.Telemetry(),
            m.TelemetryReply(*range(19), 1, 0, 1), m.Busy(12), m.Reset(1), m.ResetReply(1), m.Nak(9, 5),
            m.BlobBegin(1, 2, 3), m.BlobBeginReply(1, 2), m.BlobData(b"{}"), m.BlobDataReply(2),
            m.BlobEnd(), m.BlobEndReply(1, 2, 3), m.BlobGet(3), m.BlobGetReply(4, 5),
            m.BlobRead(0, 9), m.BlobReadReply(0, b"z"), m.Sample(2, 9, 3, bytes(18)),
            m.SampleReply(1, 1, 3, 2, 0, 4, 5, b"\0" * 8), m.Teach(3), m.TeachReply(1, 0, 2), m.Mode(1, 0),
            m.ModeReply(1, 0),
            m.Error(m.E_NO_MEMORY, m.UPLOAD_COMMIT, 1, 2, b"text"),
            m.HelloReply(2, 1, 8, 16, 32, 12, 1, 2, 3, 1024, 8, 0, 255, 0, 0, 0, "cortex-m4")]
    assert {type(x) for x in msgs} == set(m.MESSAGES.values())
    for msg in msgs:
        _roundtrip(msg)


@given(st.sampled_from(sorted(m.MESSAGES)), st.binary(max_size=80))
def test_message_decoder_raises_only_message_error(mtype, payload):
    try:
        m.decode_message(mtype, payload)
    except m.MessageError:
        pass


def test_frame_efficiency_at_256_byte_chunks():
    for n in (256, 512, 1024):
        wire = len(encode_frame(Frame(m.UPLOAD_DATA, 0, bytes(range(256)) * (n // 256))))
        assert n / wire >= 0.95, (n, wire)
    assert len(encode_frame(Frame(m.UPLOAD_DATA, 0, b"\1" * 1024))) <= framing.max_wire_len(1024)
