"""Frames on the wire: header, payload, CRC-32, COBS, 0x00 delimiter (L3, pure, no I/O).

    wire  = COBS(body) 0x00
    body  = header (4 bytes) | payload (0..max_payload bytes) | crc (4 bytes)
    header: version u8 | type u8 | seq u8 | flags u8
    crc   = CRC-32 of header|payload as ``zlib.crc32`` computes it (reflected polynomial
            0xEDB88320, init 0xFFFFFFFF, final xor 0xFFFFFFFF), stored little-endian.

flags bit 0 (``FLAG_DEVICE``) is set on every frame a device sends and clear on every frame a
host sends, so an echoing line (a loop-back, a mis-wired cable) is detected instead of being
taken for a device. Bits 1-7 are reserved and must be zero (a receiver ignores them).

:class:`StreamDecoder` turns an arbitrary byte stream into frames: it splits at 0x00, drops
empty runs (idle delimiters), drops runs longer than the largest legal frame (garbage), and
reports every run that fails COBS, length or CRC as a :class:`FrameError` *value* (it never
raises on input data), so a receiver counts the damage and resynchronises at the next 0x00.
docs/protocol.md is the normative description.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from edgelearn.errors import LinkError
from edgelearn.link import cobs

PROTOCOL_VERSION = 2
HEADER = struct.Struct("<BBBB")
HEADER_BYTES = HEADER.size
CRC_BYTES = 4
DEFAULT_MAX_PAYLOAD = 1024
MAX_PAYLOAD_LIMIT = 4096          # no implementation may announce more than this
FLAG_DEVICE = 0x01
DELIMITER = b"\0"


class FrameError(LinkError):
    """A received byte run is not a valid frame (COBS, length or CRC); carries the reason."""


def crc32(data: bytes) -> int:
    """CRC-32 exactly as zlib computes it (the frame check and the whole-image check)."""
    return zlib.crc32(data) & 0xFFFFFFFF


def max_wire_len(max_payload: int) -> int:
    """Largest wire size (delimiter included) of a frame carrying ``max_payload`` bytes."""
    return cobs.max_encoded_len(HEADER_BYTES + max_payload + CRC_BYTES) + 1


def wire_overhead(payload_len: int) -> int:
    """Wire bytes minus payload bytes for one frame of ``payload_len`` payload bytes."""
    return cobs.max_encoded_len(HEADER_BYTES + payload_len + CRC_BYTES) + 1 - payload_len


@dataclass(frozen=True)
class Frame:
    """One decoded frame: header fields and the raw payload (message bytes)."""

    type: int
    seq: int
    payload: bytes = b""
    version: int = PROTOCOL_VERSION
    flags: int = 0

    @property
    def from_device(self) -> bool:
        return bool(self.flags & FLAG_DEVICE)


def encode_frame(frame: Frame) -> bytes:
    """The wire bytes of ``frame`` (COBS-encoded, with the trailing 0x00)."""
    for name, value in (("version", frame.version), ("type", frame.type), ("seq", frame.seq),
                        ("flags", frame.flags)):
        if not 0 <= value <= 255:
            raise FrameError(f"frame header field {name} must be 0..255, got {value}")
    if len(frame.payload) > MAX_PAYLOAD_LIMIT:
        raise FrameError(f"frame payload of {len(frame.payload)} B exceeds the protocol limit "
                         f"of {MAX_PAYLOAD_LIMIT} B")
    body = HEADER.pack(frame.version, frame.type, frame.seq, frame.flags) + bytes(frame.payload)
    body += struct.pack("<I", crc32(body))
    return cobs.encode(body) + DELIMITER


def decode_frame(run: bytes, max_payload: int = MAX_PAYLOAD_LIMIT) -> Frame:
    """Decode one delimited run (without its 0x00); raises :class:`FrameError` if invalid."""
    if len(run) > cobs.max_encoded_len(HEADER_BYTES + max_payload + CRC_BYTES):
        raise FrameError(f"frame of {len(run)} wire bytes exceeds the maximum for a "
                         f"{max_payload} B payload")
    try:
        body = cobs.decode(run)
    except cobs.CobsError as exc:
        raise FrameError(str(exc)) from None
    if len(body) < HEADER_BYTES + CRC_BYTES:
        raise FrameError(f"frame of {len(body)} B is shorter than header + CRC "
                         f"({HEADER_BYTES + CRC_BYTES} B)")
    if len(body) > HEADER_BYTES + max_payload + CRC_BYTES:
        raise FrameError(f"frame payload of {len(body) - HEADER_BYTES - CRC_BYTES} B exceeds "
                         f"the maximum of {max_payload} B")
    (got,) = struct.unpack_from("<I", body, len(body) - CRC_BYTES)
    want = crc32(body[:-CRC_BYTES])
    if got != want:
        raise FrameError(f"frame CRC mismatch: received 0x{got:08x}, computed 0x{want:08x}")
    version, mtype, seq, flags = HEADER.unpack_from(body)
    return Frame(type=mtype, seq=seq, payload=body[HEADER_BYTES:-CRC_BYTES], version=version,
                 flags=flags)


class StreamDecoder:
    """Incremental decoder: :meth:`feed` bytes, get back frames and errors in arrival order.

    ``max_payload`` bounds the buffer: a run longer than the largest legal frame is dropped as
    it grows (one :class:`FrameError` for it), so garbage never costs more than one frame of
    memory. Counters: ``frames``, ``errors``, ``bytes_in``.
    """

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        self.max_payload = int(max_payload)
        self.max_run = cobs.max_encoded_len(HEADER_BYTES + self.max_payload + CRC_BYTES)
        self._buf = bytearray()
        self._overflow = False
        self.frames = 0
        self.errors = 0
        self.bytes_in = 0

    def reset(self) -> None:
        """Forget any partial frame (e.g. after the other side restarted)."""
        self._buf.clear()
        self._overflow = False

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        """Consume ``data``; return the frames completed by it and one error per bad run."""
        out: list[Frame | FrameError] = []
        self.bytes_in += len(data)
        parts = bytes(data).split(DELIMITER)
        for k, part in enumerate(parts):
            last = k == len(parts) - 1
            if not self._overflow:
                self._buf += part
                if len(self._buf) > self.max_run:
                    self._overflow = True
                    self._buf.clear()
            if last:
                break
            # a delimiter ends the current run
            if self._overflow:
                self.errors += 1
                out.append(FrameError(f"dropped a run longer than {self.max_run} wire bytes"))
            elif self._buf:
                try:
                    out.append(decode_frame(bytes(self._buf), self.max_payload))
                    self.frames += 1
                except FrameError as exc:
                    self.errors += 1
                    out.append(exc)
            self._buf.clear()
            self._overflow = False
        return out
