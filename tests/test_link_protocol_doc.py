"""docs/protocol.md's worked examples are what the code produces (and decodes back), and the
document names every message type and error code."""

import importlib.util
from pathlib import Path

from edgelearn.link import blobs
from edgelearn.link import messages as m
from edgelearn.link.framing import decode_frame, encode_frame

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "protocol.md"


def _examples():
    spec = importlib.util.spec_from_file_location(
        "make_protocol_examples", ROOT / "tools" / "make_protocol_examples.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_doc_examples_match_the_code():
    ex = _examples()
    assert ex.main(["--check"]) == 0
    doc = DOC.read_text()
    assert doc.count("```\npayload: ") == len(ex.frames())
    for _, fr in ex.frames():
        wire = encode_frame(fr)
        assert decode_frame(wire[:-1]) == fr
        assert m.decode_message(fr.type, fr.payload).pack() == fr.payload


def test_blob_examples_decode_back():
    ex = _examples()
    block, config, head, weights = (b for _, b in ex.blob_examples())
    assert blobs.encode_lpl_block(blobs.decode_lpl_block(block)) == block
    assert blobs.encode_config(blobs.decode_config(config)) == config
    assert blobs.encode_head(blobs.decode_head(head)) == head
    names = [la.name for la in ex.tiny_network().layers]
    assert blobs.encode_weights(blobs.decode_weights(weights, names), names) == weights


def test_doc_names_every_message_and_error_code():
    doc = DOC.read_text()
    for name in m.TYPE_NAMES.values():
        assert f"| {name} |" in doc, name
    for code, name in m.ERROR_NAMES.items():
        assert f"| {code} | {name} |" in doc, name
