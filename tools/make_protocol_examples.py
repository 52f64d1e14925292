#!/usr/bin/env python3
"""Print the worked examples of docs/protocol.md (hex), generated with the project's encoders.

    python tools/make_protocol_examples.py            # markdown blocks on stdout
    python tools/make_protocol_examples.py --check    # exit 1 if docs/protocol.md differs

Each frame example shows the payload, the body (header | payload) with its CRC-32 and the wire
bytes; each blob example shows the blob bytes in rows of 16. Everything is deterministic.
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

import numpy as np

from edgelearn.device.config import compile_config
from edgelearn.device.engine import Engine, EngineConfig, HEPSettings, default_lpl
from edgelearn.device.head import DeviceHead
from edgelearn.kernels.lif_fixed import QLayer, QNetwork
from edgelearn.link import blobs, framing
from edgelearn.link import messages as m
from edgelearn.link.framing import Frame, crc32, encode_frame
from edgelearn.memory.arena import Arena
from edgelearn.rules import lpl_rate
from edgelearn.rules.hep import EnergyHead

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "protocol.md"
V = 2
D = framing.FLAG_DEVICE
IMG = bytes([0x45, 0x00, 0x00, 0x4C])


def tiny_network() -> QNetwork:
    """3 inputs -> 'hidden' (2 LIF) -> 'out' (2, readout)."""
    return QNetwork(layers=(
        QLayer("hidden", weight=np.array([[40, -3, 17], [5, 60, -8]]), alpha=np.full(2, 3000),
               beta=np.full(2, 3500), threshold=np.full(2, 200), scale=1 / 256),
        QLayer("out", weight=np.array([[30, -30], [-20, 25]]), alpha=np.full(2, 3000),
               beta=np.full(2, 3500), threshold=np.full(2, 200), spiking=False,
               scale=1 / 256)), name="tiny")


def tiny_head() -> DeviceHead:
    W0 = np.array([[0.5, -0.25, 0.125, 0.0], [-0.5, 0.25, 0.0, 0.375]])
    W1 = np.array([[0.75, -0.5], [-0.25, 0.5]])
    head = EnergyHead((4, 2, 2), weights=[W0, W1], biases=[np.array([0.0, 0.125]),
                                                           np.array([0.0, 0.0])])
    return DeviceHead(head, np.array([0.25, 0.25, 0.5, 0.5]), np.array([0.5, 0.5, 1.0, 1.0]))


def tiny_config() -> EngineConfig:
    return EngineConfig(readout="max", lpl_layers=("hidden",), seed=3,
                        hep=HEPSettings(lr=0.005, amplitude=0.5, nudges=2, replay=1,
                                        repeats=2))


def frames() -> list[tuple[str, Frame]]:
    """(title, frame) of every frame example, in document order."""
    qnet = tiny_network()
    block = lpl_rate.layer_codes(default_lpl(), qnet.layers[0])
    tel = m.TelemetryReply(steps=1200, spikes=3400, input_spikes=5600, output_spikes=0,
                           learn_updates=1000, samples=12, hep_updates=24,
                           hep_nonconverged=0, hep_rejected=0, arena_used=30000,
                           arena_high_water=30200, arena_size=262144, cycles_per_step=3188,
                           frames_ok=150, frames_bad=1, frames_dup=2, frames_stale=0, naks=1,
                           busy=3, learning=3, active_slot=0, mode=1)
    scores = np.array([0.75, -1.5, 2.25], "<f4").tobytes()
    return [
        ("HELLO", Frame(m.HELLO, 0, m.Hello(1024, 8).pack(), V)),
        ("HELLO reply", Frame(m.HELLO | m.REPLY, 0, m.HelloReply(
            V, 1, 8, 16, 32, 12, 262144, 1048576, 524224, 1024, 8, 115200, 0, 2064, 0x8101A536,
            3188, "cortex-m4-256k").pack(), V, D)),
        ("UPLOAD_BEGIN", Frame(m.UPLOAD_BEGIN, 1, m.UploadBegin(4, crc32(IMG)).pack(), V)),
        ("UPLOAD_BEGIN reply", Frame(m.UPLOAD_BEGIN | m.REPLY, 1,
                                     m.UploadBeginReply(1, 524224).pack(), V, D)),
        ("UPLOAD_DATA", Frame(m.UPLOAD_DATA, 2, m.UploadData(IMG).pack(), V)),
        ("UPLOAD_DATA reply", Frame(m.UPLOAD_DATA | m.REPLY, 2, m.UploadDataReply(4).pack(), V,
                                    D)),
        ("UPLOAD_COMMIT", Frame(m.UPLOAD_COMMIT, 3, b"", V)),
        ("ERROR BAD_IMAGE", Frame(m.ERROR, 3, m.Error(m.E_BAD_IMAGE, m.UPLOAD_COMMIT, 0, 0,
                                                      b"bad magic").pack(), V, D)),
        ("NAK", Frame(m.NAK, 5, m.Nak(5, 0b110).pack(), V, D)),
        ("INFER", Frame(m.INFER, 6, m.Infer(2, 10, 1, bytes([0x05, 0x02, 0x00, 0x01])).pack(),
                        V)),
        ("INFER reply", Frame(m.INFER | m.REPLY, 6, m.InferReply(2, 3, 0, bytes([0x04, 0x00]))
                              .pack(), V, D)),
        ("ERROR VERSION", Frame(m.ERROR, 0, m.Error(m.E_VERSION, m.HELLO, 2, 1, b"").pack(), V,
                                D)),
        ("BUSY", Frame(m.BUSY, 9, m.Busy(12).pack(), V, D)),
        ("LEARN", Frame(m.LEARN, 7, m.Learn(1, 0, 3, block).pack(), V)),
        ("LEARN reply", Frame(m.LEARN | m.REPLY, 7, m.LearnReply(1, 0, 0).pack(), V, D)),
        ("TELEMETRY reply", Frame(m.TELEMETRY | m.REPLY, 8, tel.pack(), V, D)),
        ("SAMPLE", Frame(m.SAMPLE, 10, m.Sample(2, 3, m.SAMPLE_BEGIN | m.INFER_COUNTS
                                                 | m.SAMPLE_END, bytes([1, 0, 2, 0, 3, 1]))
                         .pack(), V)),
        ("SAMPLE reply", Frame(m.SAMPLE | m.REPLY, 10, m.SampleReply(
            1, m.SCORES_HEAD, 2, 3, 0, 7, 2, scores).pack(), V, D)),
        ("TEACH", Frame(m.TEACH, 11, m.Teach(2).pack(), V)),
        ("TEACH reply", Frame(m.TEACH | m.REPLY, 11, m.TeachReply(25, 0, 0).pack(), V, D)),
        ("ERROR BAD_PARAM", Frame(m.ERROR, 12, m.Error(m.E_BAD_PARAM, m.BLOB_END, 6, 7,
                                                       b"").pack(), V, D)),
    ]


def blob_examples() -> list[tuple[str, bytes]]:
    """(title, bytes) of every blob example, in document order."""
    qnet, head, cfg = tiny_network(), tiny_head(), tiny_config()
    dc = compile_config(cfg, qnet)
    eng = Engine(qnet, Arena(65536), head.copy(), cfg)
    return [("LPL block", blobs.encode_lpl_block(dc.lpl[0][1])),
            ("config blob", blobs.encode_config(dc)),
            ("head blob", blobs.encode_head(head)),
            ("weights blob", blobs.encode_weights(eng.get_weights(),
                                                  [la.name for la in qnet.layers]))]


def hexs(b: bytes) -> str:
    return " ".join(f"{x:02x}" for x in b)


def render_frame(fr: Frame) -> str:
    wire = encode_frame(fr)
    body = framing.HEADER.pack(fr.version, fr.type, fr.seq, fr.flags) + fr.payload
    crc = crc32(body)
    return (f"payload: {hexs(fr.payload)}\n"
            f"body   : {hexs(body)} | crc {hexs(struct.pack('<I', crc))} (0x{crc:08x})\n"
            f"wire   : {hexs(wire)}")


def render_blob(b: bytes) -> str:
    rows = [f"{i:04x}: {hexs(b[i:i + 16])}" for i in range(0, len(b), 16)]
    return "\n".join(rows)


def blocks() -> list[str]:
    return [render_frame(fr) for _, fr in frames()] + [render_blob(b) for _, b in
                                                        blob_examples()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with docs/protocol.md")
    args = ap.parse_args(argv)
    if args.check:
        doc = DOC.read_text()
        missing = [t for (t, _), blk in zip(frames() + blob_examples(), blocks())
                   if f"```\n{blk}\n```" not in doc]
        for t in missing:
            print(f"docs/protocol.md: example '{t}' differs from the code", file=sys.stderr)
        return 1 if missing else 0
    for (title, _), blk in zip(frames() + blob_examples(), blocks()):
        print(f"**{title}**\n\n```\n{blk}\n```\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
