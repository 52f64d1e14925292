#!/usr/bin/env python3
"""Write the protocol and engine vectors (tests/vectors/protocol/, format in
tests/vectors/README.md): plain text a C harness reads with fgets/sscanf, no JSON, no npz.

    python tools/make_protocol_vectors.py [--out tests/vectors/protocol] [--check]

* ``payloads.txt``: every message type's payload as encode/decode pairs (fields and bytes);
* ``blobs.txt``: valid LPL block, config, head and weights blobs, and invalid blobs with the
  error a device answers (code, arg0, arg1);
* ``sessions/*.txt``: conversations with a board (requests and the replies a device must send),
  one request per line, which exercise the engine step by step: streaming inference (bits,
  int8, int16 rows), streaming LPL with the network pulled after every step, sample mode with
  LPL + hEP + replay and the weights blob read after every step and every TEACH, and hostile
  requests with their ERROR replies; the same streaming LPL and sample mode with a learning
  epoch of 8 steps (``*_epoch``).

Everything is generated from fixed seeds with the simulator's Device (the reference board), so
re-running reproduces the files byte for byte; ``--check`` regenerates in memory and compares.
"""

from __future__ import annotations

import argparse
import dataclasses
import struct
import sys
from pathlib import Path

import numpy as np

from edgelearn.atomic import atomic_write_text
from edgelearn.device.config import compile_config
from edgelearn.device.engine import EngineConfig, HEPSettings, default_lpl
from edgelearn.device.head import DeviceHead
from edgelearn.kernels.image import to_image
from edgelearn.kernels.lif_fixed import QLayer, QNetwork
from edgelearn.link import blobs, framing
from edgelearn.link import messages as m
from edgelearn.link.framing import Frame, StreamDecoder, crc32, encode_frame
from edgelearn.rules import lpl_rate
from edgelearn.rules.hep import EnergyHead
from firmware_sim.device import Device

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "vectors" / "protocol"
DEVICE = dict(ram=65536, flash=131072, max_payload=1024, window=8, seed=1)


def hexs(b: bytes) -> str:
    return b.hex() if b else "-"


def network(input_bits: int = 8) -> QNetwork:
    """12 inputs -> 'hidden' (8 LIF, recurrent) -> 'out' (4, readout)."""
    g = np.random.default_rng(11)
    return QNetwork(layers=(
        QLayer("hidden", weight=g.integers(-50, 70, (8, 12)), alpha=g.integers(2800, 3600, 8),
               beta=g.integers(3000, 3900, 8), threshold=np.full(8, 220),
               recurrent=g.integers(-20, 20, (8, 8)), w_shift=0, v_shift=0, scale=1 / 220),
        QLayer("out", weight=g.integers(-40, 40, (4, 8)), alpha=np.full(4, 3200),
               beta=np.full(4, 3700), threshold=np.full(4, 1), spiking=False,
               bias=g.integers(-10, 10, 4), scale=1 / 220)), name="vec", input_bits=input_bits)


def head() -> DeviceHead:
    h = EnergyHead((12, 6, 4), seed=5)
    return DeviceHead(h, np.full(12, 0.1), np.full(12, 0.4))


def config() -> EngineConfig:
    return EngineConfig(readout="max", lpl_layers=("hidden",), seed=9,
                        lpl=dataclasses.replace(default_lpl(), eta=2e-3, warmup=3, lam=0.5),
                        hep=HEPSettings(lr=0.05, amplitude=0.5, nudges=4, replay=2, repeats=3))


# ---- payloads ----------------------------------------------------------------------------------

def _fields(msg: m.Message) -> str:
    out = []
    for f in dataclasses.fields(msg):
        v = getattr(msg, f.name)
        if isinstance(v, (bytes, bytearray)):
            out.append(f"{f.name}={hexs(bytes(v))}")
        elif isinstance(v, str):
            out.append(f"{f.name}={v.encode().hex() or '-'}")
        elif v is None:
            out.append(f"{f.name}=-")
        else:
            out.append(f"{f.name}={int(v)}")
    return " ".join(out)


def payload_lines() -> list[str]:
    q = network()
    codes = lpl_rate.layer_codes(default_lpl(), q.layers[0])
    msgs = [m.Hello(1024, 8), m.HelloReply(2, 1, 8, 16, 32, 12, 65536, 131072, 65472, 1024, 8,
                                           0, 0, 1200, 0x12345678, 900, "vec"),
            m.Ping(b"\x00\x01"), m.PingReply(b"\x00\x01"), m.UploadBegin(1200, 0xDEADBEEF),
            m.UploadBeginReply(1, 65472), m.UploadData(b"\x45\x00\x4c"), m.UploadDataReply(3),
            m.UploadCommit(), m.UploadCommitReply(1, 1200, 0xDEADBEEF, 7),
            m.ReadFlash(1, 16, 32), m.ReadFlashReply(16, b"\x01\x02"),
            m.Infer(2, 12, m.INFER_RESET, bytes([0x05, 0x02, 0x00, 0x01])),
            m.Infer(1, 3, m.INFER_INT16, struct.pack("<3h", -300, 0, 300)),
            m.InferReply(2, 4, m.OUT_INT32, struct.pack("<8i", *range(-4, 4))),
            m.Learn(1, 0, 9, blobs.encode_lpl_block(codes)), m.Learn(0, 0xFF, 0),
            m.LearnReply(1, 0, 42),
            m.PullBegin(), m.PullBeginReply(1200, 0xCAFEF00D), m.PullRead(64, 100),
            m.PullReadReply(64, b"\xff"), m.Telemetry(),
            m.TelemetryReply(*range(1, 20), 3, 0, 1), m.Reset(1), m.ResetReply(1),
            m.BlobBegin(2, 500, 0x01020304), m.BlobBeginReply(2, 500), m.BlobData(b"ELHD"),
            m.BlobDataReply(4), m.BlobEnd(), m.BlobEndReply(2, 500, 0x01020304), m.BlobGet(3),
            m.BlobGetReply(700, 0x0A0B0C0D), m.BlobRead(0, 256), m.BlobReadReply(0, b"EL"),
            m.Sample(2, 3, m.SAMPLE_BEGIN | m.INFER_COUNTS | m.SAMPLE_END, bytes(6)),
            m.SampleReply(0, 0, 0, 0, 0, 0, 5, b""),
            m.SampleReply(1, 1, 2, 2, 0, 9, 5, struct.pack("<2f", 0.5, -1.25)), m.Teach(3),
            m.TeachReply(10, 1, 0), m.Mode(1, 0), m.ModeReply(1, 0), m.Busy(25),
            m.Nak(5, 0b110), m.Error(m.E_BAD_PARAM, m.BLOB_END, 6, 7, b"readout")]
    lines = []
    for msg in msgs:
        data = msg.pack()
        back = m.decode_message(msg.TYPE, data)
        if back.pack() != data:
            raise SystemExit(f"{msg.name} does not round-trip")
        lines.append(f"payload {msg.TYPE:02x} {type(msg).__name__} {_fields(msg)} | {hexs(data)}")
    return lines


# ---- blobs ---------------------------------------------------------------------------------------

def blob_lines() -> list[str]:
    q, h, cfg = network(), head(), config()
    dc = compile_config(cfg, q)
    dev, s = _board()
    _enter_sample_mode(s, q, h, cfg)
    weights = s.blob(m.BLOB_WEIGHTS)
    valid = [("lpl", blobs.encode_lpl_block(dc.lpl[0][1])), ("config", blobs.encode_config(dc)),
             ("head", blobs.encode_head(h)), ("weights", weights)]
    lines = [f"blob {name} valid | {hexs(data)}" for name, data in valid]

    def bad(kind: int, name: str, data: bytes, what: str) -> None:
        answer = s.put_blob(kind, data)
        if not isinstance(answer, m.Error):
            raise SystemExit(f"invalid blob {what} was accepted")
        lines.append(f"blob {name} invalid code={answer.code} arg0={answer.arg0} "
                     f"arg1={answer.arg1} | {hexs(data)} # {what}")

    cfg_b, head_b = valid[1][1], valid[2][1]
    bad(m.BLOB_CONFIG, "config", cfg_b[:6] + b"\x07" + cfg_b[7:], "readout 7")
    bad(m.BLOB_CONFIG, "config", cfg_b[:-8], "truncated")
    bad(m.BLOB_CONFIG, "config", b"{\"readout\": \"max\"}" + bytes(30), "JSON is not a config")
    e = blobs.CONFIG_HEADER_BYTES + 8
    bad(m.BLOB_CONFIG, "config", cfg_b[:e] + b"\x0f" + cfg_b[e + 1:], "act_frac 15")
    bad(m.BLOB_CONFIG, "config", cfg_b[:blobs.CONFIG_HEADER_BYTES] + b"\x01"
        + cfg_b[blobs.CONFIG_HEADER_BYTES + 1:], "LPL on the readout layer")
    off = len(head_b) - 4
    bad(m.BLOB_HEAD, "head", head_b[:off] + struct.pack("<f", float("nan")), "NaN bias")
    bad(m.BLOB_HEAD, "head", head_b[:7] + b"\x05" + head_b[8:], "activation 5")
    wb = bytearray(weights)
    wb[7] |= 0x40
    bad(m.BLOB_WEIGHTS, "weights", bytes(wb), "undefined section bit")
    return lines


# ---- sessions --------------------------------------------------------------------------------

class Session:
    """Drives a Device and records each request and the reply with its comparison rule."""

    def __init__(self, dev: Device) -> None:
        self.dev, self.dec, self.seq, self.lines = dev, StreamDecoder(4096), 0, []

    def request(self, mtype: int, payload: bytes = b"", note: str = "") -> m.Message:
        fr = Frame(mtype, self.seq, payload)
        self.seq = (self.seq + 1) & 0xFF
        (rep,) = [f for f in self.dec.feed(self.dev.feed(encode_frame(fr)))
                  if isinstance(f, Frame)]
        msg = m.decode_message(rep.type, rep.payload)
        rule = _rule(mtype, msg)
        self.lines.append(f"> {mtype:02x} {hexs(payload)}" + (f" # {note}" if note else ""))
        self.lines.append(f"< {rep.type:02x} {rule} {hexs(rep.payload)}")
        return msg

    def upload(self, image: bytes) -> None:
        self.request(m.UPLOAD_BEGIN, m.UploadBegin(len(image), crc32(image)).pack())
        for i in range(0, len(image), 500):
            self.request(m.UPLOAD_DATA, image[i:i + 500])
        self.request(m.UPLOAD_COMMIT)

    def put_blob(self, kind: int, data: bytes) -> m.Message:
        r = self.request(m.BLOB_BEGIN, m.BlobBegin(kind, len(data), crc32(data)).pack())
        if isinstance(r, m.Error):
            return r
        for i in range(0, len(data), 500):
            self.request(m.BLOB_DATA, data[i:i + 500])
        return self.request(m.BLOB_END)

    def blob(self, kind: int) -> bytes:
        head = self.request(m.BLOB_GET, m.BlobGet(kind).pack())
        return b"".join(self.request(m.BLOB_READ, m.BlobRead(o, min(500, head.length - o))
                                     .pack()).data for o in range(0, head.length, 500))

    def pull(self) -> bytes:
        head = self.request(m.PULL_BEGIN)
        return b"".join(self.request(m.PULL_READ, m.PullRead(o, min(500, head.length - o))
                                     .pack()).data for o in range(0, head.length, 500))


def _rule(mtype: int, msg: m.Message) -> str:
    """How a second implementation compares this reply (tests/vectors/README.md)."""
    if isinstance(msg, m.Error):
        return "error"
    if isinstance(msg, m.HelloReply):
        return "hello"
    if isinstance(msg, m.TelemetryReply):
        return "telemetry"
    if isinstance(msg, m.SampleReply) and msg.done and msg.kind == m.SCORES_HEAD:
        return "scores"
    if mtype in (m.BLOB_GET, m.BLOB_READ):
        return "weights"
    return "exact"


def _board() -> tuple[Device, Session]:
    dev = Device(log=lambda s: None, **DEVICE)
    s = Session(dev)
    s.request(m.HELLO, m.Hello(1024, 8).pack())
    return dev, s


def _header(name: str, what: str) -> list[str]:
    return [f"# session {name}: {what}",
            "device " + " ".join(f"{k}={v}" for k, v in DEVICE.items())]


def _enter_sample_mode(s: Session, q: QNetwork, h: DeviceHead, cfg: EngineConfig) -> None:
    s.upload(to_image(q))
    s.put_blob(m.BLOB_HEAD, blobs.encode_head(h))
    s.put_blob(m.BLOB_CONFIG, blobs.encode_config(compile_config(cfg, q)))
    s.request(m.MODE, m.Mode(1, 1).pack())


def session_streaming_infer() -> list[str]:
    q = network(input_bits=10)
    dev, s = _board()
    s.upload(to_image(q))
    g = np.random.default_rng(1)
    bits = (g.random((6, 12)) < 0.3).astype(np.uint8)
    s.request(m.INFER, m.Infer(6, 12, m.INFER_RESET,
                               np.packbits(bits, axis=1, bitorder="little").tobytes()).pack(),
              "6 steps of input bits from the zero state")
    x8 = g.integers(-3, 4, (5, 12)).astype(np.int8)
    s.request(m.INFER, m.Infer(5, 12, m.INFER_COUNTS, x8.tobytes()).pack(), "int8 rows, state on")
    x16 = g.integers(-500, 500, (4, 12)).astype("<i2")
    s.request(m.INFER, m.Infer(4, 12, m.INFER_INT16, x16.tobytes()).pack(),
              "int16 rows (input_bits 10)")
    s.request(m.RESET, b"\x00")
    s.request(m.INFER, m.Infer(6, 12, 0, np.packbits(bits, axis=1, bitorder="little")
                               .tobytes()).pack(), "after RESET 0: the first reply again")
    s.request(m.TELEMETRY)
    return _header("streaming_infer", "INFER with bit, int8 and int16 rows") + s.lines


def session_streaming_lpl() -> list[str]:
    q = network()
    dev, s = _board()
    s.upload(to_image(q))
    p = dataclasses.replace(default_lpl(), eta=5e-3, warmup=2, lam=0.5)
    s.request(m.LEARN, m.Learn(1, 0, 9, lpl_rate.layer_codes(p, q.layers[0])).pack(),
              "LPL on layer 0, seed 9")
    g = np.random.default_rng(2)
    for t in range(12):
        x = (g.random((1, 12)) < 0.4).astype(np.uint8)
        s.request(m.INFER, m.Infer(1, 12, 0, np.packbits(x, axis=1, bitorder="little")
                                   .tobytes()).pack(), f"step {t}")
        s.pull()
    s.request(m.TELEMETRY)
    s.request(m.LEARN, m.Learn(0, 0xFF).pack(), "LPL off")
    return _header("streaming_lpl", "streaming LPL, the network pulled after every step") + \
        s.lines


def _sample(s: Session, i: int, x: np.ndarray, blobs: bool) -> None:
    """Sample i ([T, 12] int8 steps) as SAMPLE requests, counts on, begin and end flagged;
    with ``blobs`` the weights blob (LPL state, epoch sums) after every step."""
    T = x.shape[0]
    for t in range(T):
        flags = m.INFER_COUNTS | (m.SAMPLE_BEGIN if t == 0 else 0) | \
            (m.SAMPLE_END if t == T - 1 else 0)
        s.request(m.SAMPLE, m.Sample(1, 12, flags, x[t].tobytes()).pack(),
                  f"sample {i} step {t}")
        if blobs:
            s.blob(m.BLOB_WEIGHTS)


def session_sample_mode() -> list[str]:
    q, h, cfg = network(), head(), config()
    dev, s = _board()
    _enter_sample_mode(s, q, h, cfg)
    g = np.random.default_rng(3)
    for i in range(5):
        _sample(s, i, g.integers(0, 3, (6, 12)).astype(np.int8), blobs=i == 0)
        s.request(m.TEACH, m.Teach(i % 4).pack(), f"label {i % 4}")
        s.blob(m.BLOB_WEIGHTS)                            # head, replay ring, PRNG after TEACH
    s.request(m.TELEMETRY)
    return _header("sample_mode", "LPL + hEP with replay, the weights blob after every step "
                                  "of the first sample and after every TEACH") + s.lines


EPOCH = 8          # the learning-epoch sessions: the LPL rule runs every 8 steps


def session_streaming_lpl_epoch() -> list[str]:
    q = network()
    dev, s = _board()
    s.upload(to_image(q))
    p = dataclasses.replace(default_lpl(), eta=5e-3, warmup=2, lam=0.5, epoch=EPOCH)
    s.request(m.LEARN, m.Learn(1, 0, 9, lpl_rate.layer_codes(p, q.layers[0])).pack(),
              f"LPL on layer 0, seed 9, learning epoch {EPOCH}")
    g = np.random.default_rng(4)
    t = 0
    for n in (1, 3, 5, 8, 2, 11, 7, 1, 6, 12):       # chunks split epochs anywhere
        x = (g.random((n, 12)) < 0.4).astype(np.uint8)
        s.request(m.INFER, m.Infer(n, 12, 0, np.packbits(x, axis=1, bitorder="little")
                                   .tobytes()).pack(), f"steps {t}..{t + n - 1}")
        s.pull()
        t += n
    s.request(m.TELEMETRY)
    s.request(m.LEARN, m.Learn(0, 0xFF).pack(), "LPL off")
    return _header("streaming_lpl_epoch", f"streaming LPL with a learning epoch of {EPOCH} "
                                          f"steps, the network pulled after every chunk") + \
        s.lines


def session_sample_mode_epoch() -> list[str]:
    q, h = network(), head()
    cfg = dataclasses.replace(config(), lpl=dataclasses.replace(config().lpl, epoch=EPOCH))
    dev, s = _board()
    _enter_sample_mode(s, q, h, cfg)
    g = np.random.default_rng(5)
    saved = None
    for i in range(5):
        _sample(s, i, g.integers(0, 3, (10, 12)).astype(np.int8), blobs=i < 2)
        s.request(m.TEACH, m.Teach(i % 4).pack(), f"label {i % 4}")
        blob = s.blob(m.BLOB_WEIGHTS)
        if i == 0:
            saved = blob                                  # 10 steps: 2 into an epoch
        if i == 2:
            s.put_blob(m.BLOB_WEIGHTS, saved)             # restore mid-epoch
            s.blob(m.BLOB_WEIGHTS)
    s.request(m.TELEMETRY)
    return _header("sample_mode_epoch", f"LPL with a learning epoch of {EPOCH} steps + hEP, "
                                        f"10-step samples (epochs cross samples), the weights "
                                        f"blob after every step of the first two samples and "
                                        f"after every TEACH, the blob of sample 0 restored "
                                        f"after sample 2") + s.lines


def session_errors() -> list[str]:
    q = network()
    dev, s = _board()
    s.request(m.TELEMETRY, b"\x00", "payload for an empty request")
    s.request(0x55, b"", "unknown type")
    s.request(m.UPLOAD_DATA, b"abc", "no upload open")
    s.request(m.INFER, m.Infer(1, 12, 0, bytes(2)).pack(), "no model")
    s.request(m.MODE, m.Mode(1, 1).pack(), "no model before the state checks")
    s.request(m.TEACH, m.Teach(0).pack(), "no model")
    s.request(m.BLOB_GET, m.BlobGet(m.BLOB_WEIGHTS).pack(), "no model")
    cfg = bytearray(blobs.encode_config(compile_config(config(), q)))
    cfg[21] = 1
    s.put_blob(m.BLOB_CONFIG, bytes(cfg))          # decoded before the model check
    s.upload(to_image(q))
    s.request(m.UPLOAD_DATA, b"", "empty data")
    s.request(m.INFER, m.Infer(1, 11, 0, bytes(2)).pack(), "wrong input width")
    s.request(m.INFER, m.Infer(0, 12, 0, b"").pack(), "0 steps")
    s.request(m.INFER, m.Infer(1, 12, 0x10, bytes(2)).pack(), "reserved flag")
    both = struct.pack("<HHB", 1, 12, m.INFER_COUNTS | m.INFER_INT16)
    s.request(m.INFER, both + bytes(12), "int8 and int16 rows: the length check counts int16")
    s.request(m.INFER, both + bytes(24), "int8 and int16 rows")
    s.request(m.LEARN, b"\x02\x00", "enable 2 needs 72 bytes")
    s.request(m.LEARN, b"\x02" + bytes(71), "enable 2")
    s.request(m.LEARN, b"\x00\x07", "enable 0: the layer byte is not used (any value)")
    block = bytearray(blobs.encode_lpl_block(lpl_rate.layer_codes(default_lpl(), q.layers[0])))
    block[26] = 5
    s.request(m.LEARN, m.Learn(1, 0, 9, bytes(block)).pack(), "mean.s outside 11..48")
    s.request(m.INFER, m.Infer(1, 12, m.INFER_COUNTS, bytes([200] + [0] * 11)).pack(),
              "-56 is fine, 8-bit input")
    s.request(m.INFER, m.Infer(1, 12, m.INFER_INT16, struct.pack("<12h", 300, *([0] * 11)))
              .pack(), "300 is outside 8 bits")
    s.request(m.READ_FLASH, m.ReadFlash(2, 0, 4).pack(), "slot 2")
    s.request(m.READ_FLASH, m.ReadFlash(0, 0, 1200).pack(), "longer than a reply")
    s.request(m.READ_FLASH, m.ReadFlash(0, 10 ** 6, 4).pack(), "outside the image")
    s.request(m.SAMPLE, m.Sample(1, 12, m.SAMPLE_BEGIN, bytes(2)).pack(), "not in sample mode")
    s.request(m.BLOB_BEGIN, m.BlobBegin(9, 10, 0).pack(), "kind 9")
    s.request(m.BLOB_BEGIN, m.BlobBegin(1, 4, 0).pack())
    s.request(m.BLOB_DATA, b"ELCF")
    s.request(m.BLOB_END, b"", "CRC differs")
    s.request(m.MODE, m.Mode(1, 1).pack(), "not in sample mode")
    s.request(m.RESET, b"\x07", "unknown reset mode")
    s.request(m.HELLO, m.Hello(64, 8).pack(), "host_max_payload below 128")
    s.request(m.TELEMETRY, b"", "the session stays open")
    return _header("errors", "requests a device refuses, and how") + s.lines


SESSIONS = {"streaming_infer": session_streaming_infer, "streaming_lpl": session_streaming_lpl,
            "sample_mode": session_sample_mode, "errors": session_errors,
            "streaming_lpl_epoch": session_streaming_lpl_epoch,
            "sample_mode_epoch": session_sample_mode_epoch}


def files() -> dict[str, str]:
    head = ["# edgelearn protocol vectors, format 1 (tests/vectors/README.md)",
            f"# protocol version {framing.PROTOCOL_VERSION}; generated by "
            f"tools/make_protocol_vectors.py"]
    out = {"payloads.txt": "\n".join(head + payload_lines()) + "\n",
           "blobs.txt": "\n".join(head + blob_lines()) + "\n"}
    for name, fn in SESSIONS.items():
        out[f"sessions/{name}.txt"] = "\n".join(head + fn()) + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--check", action="store_true", help="compare with the files on disk")
    args = ap.parse_args(argv)
    out = Path(args.out)
    bad = 0
    for rel, text in files().items():
        path = out / rel
        if args.check:
            if not path.exists() or path.read_text() != text:
                print(f"{path}: differs from a fresh generation", file=sys.stderr)
                bad += 1
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, text)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
