"""tests/vectors/protocol/: regenerated identically, and sufficient on their own: a harness
that reads only the text files (as a C harness would) replays every session against the
reference board and every payload and blob against the codecs, with the comparison rules of
tests/vectors/README.md."""

import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgelearn.link import messages as m
from edgelearn.link.framing import Frame, StreamDecoder, crc32, encode_frame
from firmware_sim.device import Device
from tests._hang import HANG_SECONDS

ROOT = Path(__file__).resolve().parents[1]
VEC = ROOT / "tests" / "vectors" / "protocol"
BOUND = 1e-5


def lines(path: Path) -> list[str]:
    return [ln.split(" # ")[0].rstrip() for ln in path.read_text().splitlines()
            if ln.strip() and not ln.startswith("#")]


def unhex(s: str) -> bytes:
    return b"" if s == "-" else bytes.fromhex(s)


def close(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= BOUND * np.maximum(1, np.abs(b))))


def weights_close(got: bytes, want: bytes) -> bool:
    """Section 8.7 by layout: integers exactly, f32/f16 within the bound."""
    if len(got) != len(want) or got[:16] != want[:16]:
        return False
    pos, n_lpl, sections = 16, want[6], want[7]
    for _ in range(n_lpl):
        _, parts, _, n_in, n_out = struct.unpack_from("<BBHII", want, pos)
        n = 12 + n_in * n_out
        n += -n % 4 + 2 * n_out
        n += -(pos + n) % 4
        n += 4 * (2 * n_out + 1) + 4 * sum(k for bit, k in ((0, n_in), (1, n_out),
                                                              (2, n_out * n_out), (3, n_out),
                                                              (4, n_in), (5, n_out), (6, 1))
                                           if parts >> bit & 1)
        if got[pos:pos + n] != want[pos:pos + n]:
            return False
        pos += n
    if sections & 9:
        K = want[pos]
        sizes = struct.unpack_from(f"<{K + 1}H", want, pos + 4)
        hdr = 4 + 2 * (K + 1)
        hdr += -(pos + hdr) % 4
        if got[pos:pos + hdr] != want[pos:pos + hdr]:
            return False
        pos += hdr
        nf = (sum(a * b + b for a, b in zip(sizes, sizes[1:])) if sections & 1 else 0) + \
            (2 * sizes[0] if sections & 8 else 0)
        if not close(np.frombuffer(got, "<f4", nf, pos), np.frombuffer(want, "<f4", nf, pos)):
            return False
        pos += 4 * nf
    if sections & 2:
        R, n_h, n_o = struct.unpack_from("<HHH", want, pos)
        cut = pos + 16 + R * n_h
        cut += -cut % 4
        if got[pos:cut] != want[pos:cut]:
            return False
        if not close(np.frombuffer(got, "<f2", R * n_o, cut),
                     np.frombuffer(want, "<f2", R * n_o, cut)):
            return False
        pos = cut + 2 * R * n_o
        pos += -pos % 4
    return got[pos:] == want[pos:]


def same(rule: str, got: bytes, want: bytes) -> bool:
    if rule == "exact":
        return got == want
    if rule == "hello":
        return got[:35] == want[:35]
    if rule == "telemetry":
        return len(got) == len(want) == 80 and got[:36] == want[:36] and \
            got[52:72] == want[52:72] and got[76:] == want[76:]
    if rule == "error":
        return got[:10] == want[:10]
    if rule == "scores":
        return got[:16] == want[:16] and close(np.frombuffer(got[16:], "<f4"),
                                               np.frombuffer(want[16:], "<f4"))
    raise AssertionError(rule)


def replay(path: Path) -> int:
    """Run one session file against a fresh reference board; returns the requests checked."""
    ls = lines(path)
    dev_line = ls.pop(0).split()
    assert dev_line[0] == "device"
    kw = {k: int(v) for k, v in (f.split("=") for f in dev_line[1:])}
    dev = Device(log=lambda s: None, **kw)
    dec, seq, blob, want_blob, checked = StreamDecoder(4096), 0, None, b"", 0
    for req, rep in zip(ls[0::2], ls[1::2]):
        _, rtype, payload = req.split(" ", 2)
        _, etype, rule, epayload = rep.split(" ", 3)
        out = [f for f in dec.feed(dev.feed(encode_frame(Frame(int(rtype, 16), seq,
                                                               unhex(payload)))))
               if isinstance(f, Frame)]
        assert len(out) == 1 and out[0].seq == seq and out[0].type == int(etype, 16), req
        got, want = out[0].payload, unhex(epayload)
        if rule == "weights":
            if int(rtype, 16) == m.BLOB_GET:
                if blob is not None:
                    assert weights_close(blob, want_blob), f"{path.name}: weights blob"
                assert got[:4] == want[:4], req
                blob, want_blob = b"", b""
            else:
                assert got[:4] == want[:4], req
                blob += got[4:]
                want_blob += want[4:]
        else:
            if blob is not None:
                assert weights_close(blob, want_blob), f"{path.name}: weights blob"
                blob = None
            assert same(rule, got, want), f"{path.name}: {req} -> {rule}"
        assert got == want                     # the reference board is the generator itself
        seq = (seq + 1) & 0xFF
        checked += 1
    return checked


def test_vectors_regenerate_identically():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "make_protocol_vectors.py"),
                        "--check"], capture_output=True, text=True, timeout=HANG_SECONDS)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("name", ["streaming_infer", "streaming_lpl", "sample_mode", "errors",
                                  "streaming_lpl_epoch", "sample_mode_epoch"])
def test_session_replays_from_the_files_alone(name):
    assert replay(VEC / "sessions" / f"{name}.txt") >= 10


def test_every_request_and_reply_type_has_a_payload_vector():
    seen = {int(ln.split()[1], 16) for ln in lines(VEC / "payloads.txt")}
    assert set(m.MESSAGES) <= seen
    for ln in lines(VEC / "payloads.txt"):
        head, data = ln.split(" | ")
        _, t, cls, *fields = head.split()
        msg = m.decode_message(int(t, 16), unhex(data))
        assert type(msg).__name__ == cls and msg.pack() == unhex(data)
        for f in fields:
            k, v = f.split("=")
            val = getattr(msg, k)
            if isinstance(val, str):
                val = val.encode().hex() or "-"
            elif isinstance(val, (bytes, bytearray)) or val is None:
                val = (bytes(val) if val else b"").hex() or "-"
            assert str(val) == v, (cls, k)


def invalid_blobs():
    """(kind, (code, arg0, arg1), blob, line) of each invalid blob of blobs.txt."""
    for ln in lines(VEC / "blobs.txt"):
        head, data = ln.split(" | ")
        words = head.split()
        if words[2] == "invalid":
            yield ({"config": 1, "head": 2, "weights": 3}[words[1]],
                   tuple(int(w.split("=")[1]) for w in words[3:6]), unhex(data), ln)


def test_invalid_blobs_get_their_errors_and_change_nothing():
    """Each invalid blob, sent whole to the board of sessions/sample_mode.txt (set up by its own
    lines up to MODE), is answered with its ERROR; the weights blob is unchanged after all."""
    ls = lines(VEC / "sessions" / "sample_mode.txt")
    kw = {k: int(v) for k, v in (f.split("=") for f in ls.pop(0).split()[1:])}
    dev, dec, seq = Device(log=lambda s: None, **kw), StreamDecoder(4096), 0

    def send(mtype: int, payload: bytes = b"") -> m.Message:
        nonlocal seq
        (fr,) = [f for f in dec.feed(dev.feed(encode_frame(Frame(mtype, seq, payload))))
                 if isinstance(f, Frame)]
        seq = (seq + 1) & 0xFF
        return m.decode_message(fr.type, fr.payload)

    for req in ls[0::2]:
        _, t, payload = req.split(" ", 2)
        send(int(t, 16), unhex(payload))
        if int(t, 16) == m.MODE:
            break
    before = dev.engine.get_weights()
    n = 0
    for kind, want, blob, ln in invalid_blobs():
        send(m.BLOB_BEGIN, m.BlobBegin(kind, len(blob), crc32(blob)).pack())
        for i in range(0, len(blob), 900):
            send(m.BLOB_DATA, blob[i:i + 900])
        e = send(m.BLOB_END)
        assert isinstance(e, m.Error) and (e.code, e.arg0, e.arg1) == want, ln[:60]
        n += 1
    assert n >= 8
    after = dev.engine.get_weights()
    assert all(np.array_equal(before[k], after[k]) for k in before)
