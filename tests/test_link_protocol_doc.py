"""docs/protocol.md's worked examples are what the code produces (and decodes back)."""

import re
from pathlib import Path

from edgelearn.link import framing
from edgelearn.link import messages as m
from edgelearn.link.framing import Frame, crc32, decode_frame, encode_frame

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol-v1.md"
D = framing.FLAG_DEVICE
IMG = bytes([0x45, 0x00, 0x00, 0x4C])

EXAMPLES = [
    Frame(m.HELLO, 0, m.Hello(1024, 8).pack()),
    Frame(m.HELLO | m.REPLY, 0, m.HelloReply(1, 1, 8, 16, 32, 12, 262144, 1048576, 524224, 1024,
                                              8, 115200, 0, 2064, 0x8101A536, 3188,
                                              "cortex-m4-256k").pack(), 1, D),
    Frame(m.UPLOAD_BEGIN, 1, m.UploadBegin(4, crc32(IMG)).pack()),
    Frame(m.UPLOAD_BEGIN | m.REPLY, 1, m.UploadBeginReply(1, 524224).pack(), 1, D),
    Frame(m.UPLOAD_DATA, 2, m.UploadData(IMG).pack()),
    Frame(m.UPLOAD_DATA | m.REPLY, 2, m.UploadDataReply(4).pack(), 1, D),
    Frame(m.UPLOAD_COMMIT, 3, b""),
    Frame(m.ERROR, 3, m.Error(m.E_BAD_IMAGE, m.UPLOAD_COMMIT, 0, 0, b"bad magic").pack(), 1, D),
    Frame(m.NAK, 5, m.Nak(5, 0b110).pack(), 1, D),
    Frame(m.INFER, 6, m.Infer(2, 10, 1, bytes([0x05, 0x02, 0x00, 0x01])).pack()),
    Frame(m.INFER | m.REPLY, 6, m.InferReply(2, 3, 0, bytes([0x04, 0x00])).pack(), 1, D),
    Frame(m.ERROR, 0, m.Error(m.E_VERSION, m.HELLO, 1, 2, b"").pack(), 1, D),
]


def test_doc_wire_examples_match_the_code():
    doc = DOC.read_text()
    wires = re.findall(r"^wire   : ([0-9a-f ]+)$", doc, flags=re.M)
    assert len(wires) == len(EXAMPLES)
    for fr, text in zip(EXAMPLES, wires):
        wire = bytes.fromhex(text)
        assert encode_frame(fr) == wire
        assert decode_frame(wire[:-1]) == fr
        assert m.decode_message(fr.type, fr.payload).pack() == fr.payload


def test_doc_names_every_message_and_error_code():
    doc = DOC.read_text()
    for name in m.TYPE_NAMES.values():
        assert f"| {name} |" in doc, name
    for code, name in m.ERROR_NAMES.items():
        assert f"| {code} | {name} |" in doc, name
    for pid, name in m.LEARN_PARAMS.items():
        assert f"| {pid} | {name}" in doc, name
