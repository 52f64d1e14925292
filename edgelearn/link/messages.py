"""Message types and their payload layouts (L3, pure encode/decode, no I/O).

Every message is the payload of one frame (framing.py). A host sends requests; the device
answers each request with exactly one frame carrying the same sequence number: the reply type
(request type | 0x80) or ERROR. NAK is the only frame a device sends on its own initiative
(a request arrived out of order). All integers are little-endian. docs/protocol.md is the
normative table; the struct formats below are its executable copy.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields
from typing import ClassVar

from edgelearn.errors import LinkError

# ---- message types ---------------------------------------------------------------------------
HELLO = 0x01
PING = 0x02
UPLOAD_BEGIN = 0x10
UPLOAD_DATA = 0x11
UPLOAD_COMMIT = 0x12
READ_FLASH = 0x13
INFER = 0x20
LEARN = 0x21
PULL_BEGIN = 0x22
PULL_READ = 0x23
TELEMETRY = 0x30
RESET = 0x31
BLOB_BEGIN = 0x40
BLOB_DATA = 0x41
BLOB_END = 0x42
BLOB_GET = 0x43
BLOB_READ = 0x44
SAMPLE = 0x45
TEACH = 0x46
MODE = 0x47
BUSY = 0x7D
NAK = 0x7E
ERROR = 0x7F
REPLY = 0x80  # reply type = request type | REPLY

TYPE_NAMES = {HELLO: "HELLO", PING: "PING", UPLOAD_BEGIN: "UPLOAD_BEGIN",
              UPLOAD_DATA: "UPLOAD_DATA", UPLOAD_COMMIT: "UPLOAD_COMMIT",
              READ_FLASH: "READ_FLASH", INFER: "INFER", LEARN: "LEARN",
              PULL_BEGIN: "PULL_BEGIN", PULL_READ: "PULL_READ", TELEMETRY: "TELEMETRY",
              RESET: "RESET", BLOB_BEGIN: "BLOB_BEGIN", BLOB_DATA: "BLOB_DATA",
              BLOB_END: "BLOB_END", BLOB_GET: "BLOB_GET", BLOB_READ: "BLOB_READ",
              SAMPLE: "SAMPLE", TEACH: "TEACH", MODE: "MODE", BUSY: "BUSY", NAK: "NAK",
              ERROR: "ERROR"}


def type_name(t: int) -> str:
    """'HELLO', 'HELLO reply', or '0x5a' for an unknown type."""
    if t in TYPE_NAMES:
        return TYPE_NAMES[t]
    if t & REPLY and (t & 0x7F) in TYPE_NAMES:
        return f"{TYPE_NAMES[t & 0x7F]} reply"
    return f"0x{t:02x}"


# ---- error codes (arguments per request: docs/protocol.md, "Error codes") -----------------
E_VERSION = 1       # header protocol version differs from the device's; device / frame version
E_NO_SESSION = 2    # request before HELLO (e.g. the device was reset); send HELLO again
E_UNKNOWN_TYPE = 3  # arg0 = the type
E_BAD_LENGTH = 4    # payload (or blob) length wrong; arg0 = got, arg1 = expected
E_NO_SPACE = 5      # image or blob larger than a flash slot; arg0 = bytes, arg1 = slot bytes
E_BAD_STATE = 6     # request not valid now; arg0/arg1 = progress/total of the open transfer
E_IMAGE_CRC = 7     # whole-image or blob CRC differs; arg0 = computed, arg1 = announced
E_BAD_IMAGE = 8     # the image does not decode as a network; text says why
E_NO_MEMORY = 9     # RAM arena overflow; arg0 = bytes the buffer needs, arg1 = bytes free
E_NO_MODEL = 10     # inference / learning / pull without a committed model
E_BAD_INPUT = 11    # input width, value or step count wrong; arg0 = got, arg1 = allowed
E_BAD_PARAM = 12    # a field is invalid; arg0 = its byte offset, arg1 = its value
E_RANGE = 13        # read outside a slot image / snapshot; arg0 = end requested, arg1 = limit
E_INTERNAL = 14     # the request failed inside the device; state rolled back; text says why

ERROR_NAMES = {E_VERSION: "VERSION", E_NO_SESSION: "NO_SESSION",
               E_UNKNOWN_TYPE: "UNKNOWN_TYPE", E_BAD_LENGTH: "BAD_LENGTH",
               E_NO_SPACE: "NO_SPACE", E_BAD_STATE: "BAD_STATE", E_IMAGE_CRC: "IMAGE_CRC",
               E_BAD_IMAGE: "BAD_IMAGE", E_NO_MEMORY: "NO_MEMORY", E_NO_MODEL: "NO_MODEL",
               E_BAD_INPUT: "BAD_INPUT", E_BAD_PARAM: "BAD_PARAM", E_RANGE: "RANGE",
               E_INTERNAL: "INTERNAL"}

NO_SLOT = 0xFF
LAYER_DEFAULT = 0xFF   # LEARN: adapt the feature layer (the last spiking hidden layer)
MIN_SESSION_PAYLOAD = 128   # HELLO: smallest host_max_payload (every fixed reply fits)


class MessageError(LinkError):
    """A payload does not match the layout of its message type."""


def _need(name: str, payload: bytes, n: int, exact: bool = True) -> None:
    if (len(payload) != n) if exact else (len(payload) < n):
        raise MessageError(f"{name}: payload of {len(payload)} B, expected "
                           f"{'' if exact else 'at least '}{n} B")


@dataclass(frozen=True)
class Message:
    """Base of all messages: ``TYPE`` and a struct ``FMT`` over the dataclass fields."""

    TYPE: ClassVar[int] = -1
    FMT: ClassVar[str] = "<"

    @property
    def name(self) -> str:
        return type_name(self.TYPE)

    def pack(self) -> bytes:
        return struct.pack(self.FMT, *(getattr(self, f.name) for f in fields(self)))

    @classmethod
    def unpack(cls, payload: bytes) -> "Message":
        _need(type_name(cls.TYPE), payload, struct.calcsize(cls.FMT))
        try:
            return cls(*struct.unpack(cls.FMT, payload))
        except (ValueError, TypeError) as exc:  # values rejected by __post_init__
            raise MessageError(f"{type_name(cls.TYPE)}: {exc}") from None


@dataclass(frozen=True)
class _Tail(Message):
    """A message with a fixed struct head followed by variable bytes in field ``data``."""

    def pack(self) -> bytes:
        vals = [getattr(self, f.name) for f in fields(self)]
        return struct.pack(self.FMT, *vals[:-1]) + bytes(vals[-1])

    @classmethod
    def unpack(cls, payload: bytes) -> "Message":
        n = struct.calcsize(cls.FMT)
        _need(type_name(cls.TYPE), payload, n, exact=False)
        return cls(*struct.unpack(cls.FMT, payload[:n]), bytes(payload[n:]))


# ---- HELLO -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Hello(Message):
    """Start a session. host_max_payload: largest payload the host sends or accepts
    (128..4096); host_window: requests it keeps in flight (1..64). The session uses the
    smaller of these and the device's limits (the HELLO reply announces them)."""

    TYPE: ClassVar[int] = HELLO
    FMT: ClassVar[str] = "<HB"
    host_max_payload: int = 1024
    host_window: int = 8


@dataclass(frozen=True)
class HelloReply(Message):
    """Device identity and limits (see docs/protocol.md, "Handshake")."""

    TYPE: ClassVar[int] = HELLO | REPLY
    FMT: ClassVar[str] = "<BHBBBBIIIHBIBIII"
    protocol_version: int
    kernel_version: int         # device image / integer kernel version
    weight_bits: int            # 8
    state_bits: int             # 16 or 32 (widest layer state of the active model; 32 if none)
    acc_bits: int               # 32
    decay_bits: int             # 12 (decays are d/4096)
    ram: int                    # bytes of the RAM arena
    flash: int                  # bytes of flash
    slot_size: int              # bytes of one model slot
    max_payload: int            # largest request payload the device accepts
    window: int                 # requests the host may have outstanding
    baud: int                   # line rate the device paces to (0: unpaced / unknown)
    active_slot: int            # 0, 1 or 0xFF (none)
    active_len: int
    active_crc: int
    cycles_per_step: int        # cost-model estimate for the active model (0: none)
    profile: str = ""

    def pack(self) -> bytes:
        vals = [getattr(self, f.name) for f in fields(self)]
        prof = self.profile.encode("utf-8")[:255]
        return struct.pack(self.FMT, *vals[:-1]) + bytes([len(prof)]) + prof

    @classmethod
    def unpack(cls, payload: bytes) -> "HelloReply":
        n = struct.calcsize(cls.FMT)
        _need("HELLO reply", payload, n + 1, exact=False)
        plen = payload[n]
        _need("HELLO reply", payload, n + 1 + plen)
        prof = bytes(payload[n + 1:]).decode("utf-8", errors="replace")
        return cls(*struct.unpack(cls.FMT, payload[:n]), prof)


@dataclass(frozen=True)
class Ping(_Tail):
    """Echo request; the reply carries the same bytes."""

    TYPE: ClassVar[int] = PING
    data: bytes = b""


@dataclass(frozen=True)
class PingReply(_Tail):
    TYPE: ClassVar[int] = PING | REPLY
    data: bytes = b""


# ---- upload ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class UploadBegin(Message):
    """Erase the inactive slot and expect ``length`` bytes whose CRC-32 is ``crc``."""

    TYPE: ClassVar[int] = UPLOAD_BEGIN
    FMT: ClassVar[str] = "<II"
    length: int
    crc: int


@dataclass(frozen=True)
class UploadBeginReply(Message):
    TYPE: ClassVar[int] = UPLOAD_BEGIN | REPLY
    FMT: ClassVar[str] = "<BI"
    slot: int
    slot_size: int


@dataclass(frozen=True)
class UploadData(_Tail):
    """The next bytes of the image (offset implied: requests are processed in sequence)."""

    TYPE: ClassVar[int] = UPLOAD_DATA
    data: bytes = b""


@dataclass(frozen=True)
class UploadDataReply(Message):
    TYPE: ClassVar[int] = UPLOAD_DATA | REPLY
    FMT: ClassVar[str] = "<I"
    received: int


@dataclass(frozen=True)
class UploadCommit(Message):
    """Check the whole-image CRC, validate the image, make the slot active (atomic)."""

    TYPE: ClassVar[int] = UPLOAD_COMMIT


@dataclass(frozen=True)
class UploadCommitReply(Message):
    TYPE: ClassVar[int] = UPLOAD_COMMIT | REPLY
    FMT: ClassVar[str] = "<BIII"
    slot: int
    length: int
    crc: int
    generation: int


@dataclass(frozen=True)
class ReadFlash(Message):
    """Read ``length`` bytes at ``offset`` of a slot's image (read-back verification)."""

    TYPE: ClassVar[int] = READ_FLASH
    FMT: ClassVar[str] = "<BIH"
    slot: int
    offset: int
    length: int


@dataclass(frozen=True)
class ReadFlashReply(_Tail):
    TYPE: ClassVar[int] = READ_FLASH | REPLY
    FMT: ClassVar[str] = "<I"
    offset: int
    data: bytes = b""


# ---- inference and learning ------------------------------------------------------------------
INFER_RESET = 0x01    # INFER flags bit 0: zero the neuron state before the first step
INFER_COUNTS = 0x02   # INFER flags bit 1: inputs are int8 values (one byte each), not bits
INFER_INT16 = 0x08    # INFER flags bit 3: inputs are int16 values (two bytes each, LE)
OUT_BITS = 0          # reply format: one bit per output neuron per step (spiking output)
OUT_INT32 = 1         # reply format: int32 per output neuron per step (non-spiking readout)


def packed_len(n: int) -> int:
    """Bytes for one step of ``n`` spike bits (LSB first within a byte)."""
    return (n + 7) // 8


def input_row_len(n_in: int, flags: int) -> int:
    """Bytes of one INFER/SAMPLE input row: packed bits, one int8 per input (INFER_COUNTS) or
    one int16 per input (INFER_INT16)."""
    if flags & INFER_INT16:
        return 2 * n_in
    return n_in if flags & INFER_COUNTS else packed_len(n_in)


@dataclass(frozen=True)
class Infer(_Tail):
    """Run ``n_steps`` steps; ``data`` holds n_steps rows of input: packed bits
    (packed_len(n_in) bytes per row), or int8 values (n_in bytes per row) with INFER_COUNTS."""

    TYPE: ClassVar[int] = INFER
    FMT: ClassVar[str] = "<HHB"
    n_steps: int
    n_in: int
    flags: int
    data: bytes = b""

    @classmethod
    def unpack(cls, payload: bytes) -> "Infer":
        msg = super().unpack(payload)
        want = msg.n_steps * input_row_len(msg.n_in, msg.flags)
        if len(msg.data) != want:
            raise MessageError(f"{type_name(cls.TYPE)}: {msg.n_steps} steps of {msg.n_in} "
                               f"inputs need {want} B, got {len(msg.data)} B")
        return msg


@dataclass(frozen=True)
class InferReply(_Tail):
    """Outputs of each step: bits (OUT_BITS) or int32 values (OUT_INT32)."""

    TYPE: ClassVar[int] = INFER | REPLY
    FMT: ClassVar[str] = "<HHB"
    n_steps: int
    n_out: int
    fmt: int
    data: bytes = b""


@dataclass(frozen=True)
class Learn(Message):
    """Streaming LPL on/off for one layer. enable 1 (payload 72 bytes): ``seed`` re-seeds the
    device PRNG and ``block`` sets the rule's integer constants: the 64-byte LPL block, as
    bytes or as edgelearn.rules.lpl_codes.Codes (decoded and checked by the device).
    enable 0 (payload 2 bytes): enable, layer."""

    TYPE: ClassVar[int] = LEARN
    enable: int = 1
    layer: int = LAYER_DEFAULT
    seed: int = 1
    block: object = None
    reserved: int = 0

    def pack(self) -> bytes:
        if not self.enable:
            return struct.pack("<BB", 0, self.layer)
        block = self.block
        if not isinstance(block, (bytes, bytearray)):
            from edgelearn.link.blobs import encode_lpl_block
            block = encode_lpl_block(block)
        return struct.pack("<BBHI", self.enable, self.layer, self.reserved, self.seed) + \
            bytes(block)

    @classmethod
    def unpack(cls, payload: bytes) -> "Learn":
        _need("LEARN", payload, 2, exact=False)
        if payload[0] == 0:
            _need("LEARN", payload, 2)
            return cls(0, payload[1], 0, None)
        _need("LEARN", payload, 72)
        enable, layer, reserved, seed = struct.unpack_from("<BBHI", payload)
        return cls(enable, layer, seed, bytes(payload[8:]), reserved)


@dataclass(frozen=True)
class LearnReply(Message):
    TYPE: ClassVar[int] = LEARN | REPLY
    FMT: ClassVar[str] = "<BBI"
    enable: int
    layer: int            # index of the adapted layer (0xFF: none)
    updates: int          # learning updates applied so far


@dataclass(frozen=True)
class PullBegin(Message):
    """Snapshot the running network (learned weights included) as a device image."""

    TYPE: ClassVar[int] = PULL_BEGIN


@dataclass(frozen=True)
class PullBeginReply(Message):
    TYPE: ClassVar[int] = PULL_BEGIN | REPLY
    FMT: ClassVar[str] = "<II"
    length: int
    crc: int


@dataclass(frozen=True)
class PullRead(Message):
    TYPE: ClassVar[int] = PULL_READ
    FMT: ClassVar[str] = "<IH"
    offset: int
    length: int


@dataclass(frozen=True)
class PullReadReply(_Tail):
    TYPE: ClassVar[int] = PULL_READ | REPLY
    FMT: ClassVar[str] = "<I"
    offset: int
    data: bytes = b""


# ---- telemetry and control -------------------------------------------------------------------
@dataclass(frozen=True)
class Telemetry(Message):
    TYPE: ClassVar[int] = TELEMETRY


@dataclass(frozen=True)
class TelemetryReply(Message):
    """Counters since the last reboot, 80 bytes (docs/protocol.md, "TELEMETRY reply")."""

    TYPE: ClassVar[int] = TELEMETRY | REPLY
    FMT: ClassVar[str] = "<19IBBBB"
    steps: int
    spikes: int               # spikes emitted by all spiking layers
    input_spikes: int         # nonzero network inputs, summed over steps
    output_spikes: int        # spikes of a spiking output layer (0 for a readout)
    learn_updates: int        # LPL weight updates (steps after warm-up, summed over layers)
    samples: int              # samples classified in sample mode
    hep_updates: int          # hEP updates applied
    hep_nonconverged: int     # hEP updates skipped: a relaxation did not converge
    hep_rejected: int         # hEP updates skipped: a new weight was not finite in float32
    arena_used: int
    arena_high_water: int
    arena_size: int
    cycles_per_step: int      # cost-model estimate (docs/protocol.md, "Cycle-cost model")
    frames_ok: int
    frames_bad: int           # runs rejected by COBS / CRC / length, and echoed device frames
    frames_dup: int           # retransmissions answered from the reply cache
    frames_stale: int         # retransmissions too old for the cache (not answered)
    naks: int
    busy: int                 # BUSY frames sent
    learning: int             # bit 0: LPL on, bit 1: hEP on
    active_slot: int
    mode: int                 # 0 streaming, 1 sample mode
    reserved: int = 0


RESET_STATE = 0    # zero neuron state and learning traces, keep model, counters and session
RESET_REBOOT = 1   # reply, then reboot: RAM lost, active slot reloaded from flash, no session


@dataclass(frozen=True)
class Reset(Message):
    TYPE: ClassVar[int] = RESET
    FMT: ClassVar[str] = "<B"
    mode: int = RESET_STATE


@dataclass(frozen=True)
class ResetReply(Message):
    TYPE: ClassVar[int] = RESET | REPLY
    FMT: ClassVar[str] = "<B"
    mode: int


# ---- sample mode: the deployment engine (edgelearn.device.engine) on the board -------------
BLOB_CONFIG = 1    # engine configuration (edgelearn.link.blobs: "ELCF" binary layout)
BLOB_HEAD = 2      # hEP head with its relaxation settings and feature normalisation ("ELHD")
BLOB_WEIGHTS = 3   # everything learning changes (get_weights / set_weights; "ELWT")
BLOB_NAMES = {BLOB_CONFIG: "config", BLOB_HEAD: "head", BLOB_WEIGHTS: "weights"}


@dataclass(frozen=True)
class BlobBegin(Message):
    """Start sending blob ``kind`` of ``length`` bytes whose CRC-32 is ``crc``."""

    TYPE: ClassVar[int] = BLOB_BEGIN
    FMT: ClassVar[str] = "<BII"
    kind: int
    length: int
    crc: int


@dataclass(frozen=True)
class BlobBeginReply(Message):
    TYPE: ClassVar[int] = BLOB_BEGIN | REPLY
    FMT: ClassVar[str] = "<BI"
    kind: int
    length: int


@dataclass(frozen=True)
class BlobData(_Tail):
    """The next bytes of the blob (appended in sequence order, like UPLOAD_DATA)."""

    TYPE: ClassVar[int] = BLOB_DATA
    data: bytes = b""


@dataclass(frozen=True)
class BlobDataReply(Message):
    TYPE: ClassVar[int] = BLOB_DATA | REPLY
    FMT: ClassVar[str] = "<I"
    received: int


@dataclass(frozen=True)
class BlobEnd(Message):
    """Check the blob's CRC and apply it (config/head: rebuild the engine; weights: load)."""

    TYPE: ClassVar[int] = BLOB_END


@dataclass(frozen=True)
class BlobEndReply(Message):
    TYPE: ClassVar[int] = BLOB_END | REPLY
    FMT: ClassVar[str] = "<BII"
    kind: int
    length: int
    crc: int


@dataclass(frozen=True)
class BlobGet(Message):
    """Snapshot blob ``kind`` (config, head or weights) for BLOB_READ."""

    TYPE: ClassVar[int] = BLOB_GET
    FMT: ClassVar[str] = "<B"
    kind: int


@dataclass(frozen=True)
class BlobGetReply(Message):
    TYPE: ClassVar[int] = BLOB_GET | REPLY
    FMT: ClassVar[str] = "<II"
    length: int
    crc: int


@dataclass(frozen=True)
class BlobRead(Message):
    TYPE: ClassVar[int] = BLOB_READ
    FMT: ClassVar[str] = "<IH"
    offset: int
    length: int


@dataclass(frozen=True)
class BlobReadReply(_Tail):
    TYPE: ClassVar[int] = BLOB_READ | REPLY
    FMT: ClassVar[str] = "<I"
    offset: int
    data: bytes = b""


SAMPLE_BEGIN = 0x01   # SAMPLE flags: zero state, features and readout first
SAMPLE_END = 0x04     # classify after these steps and return the result
# bit 1 (INFER_COUNTS, 0x02) / bit 3 (INFER_INT16, 0x08): int8 / int16 rows, as for INFER
SCORES_READOUT = 0    # SAMPLE reply: readout scores in threshold units (no head)
SCORES_HEAD = 1       # SAMPLE reply: the head's logits at its free equilibrium


@dataclass(frozen=True)
class Sample(Infer):
    """Steps of one sample in sample mode (a sample may span several frames); the layout of
    INFER, with flags SAMPLE_BEGIN / INFER_COUNTS / SAMPLE_END."""

    TYPE: ClassVar[int] = SAMPLE


@dataclass(frozen=True)
class SampleReply(_Tail):
    """done = 0: steps so far only; done = 1: prediction, spikes and n_scores float32 class
    scores of kind SCORES_READOUT or SCORES_HEAD."""

    TYPE: ClassVar[int] = SAMPLE | REPLY
    FMT: ClassVar[str] = "<BBHHHII"
    done: int
    kind: int
    prediction: int
    n_scores: int
    reserved: int
    spikes: int
    steps: int
    data: bytes = b""          # n_scores float32 scores when done

    @classmethod
    def unpack(cls, payload: bytes) -> "SampleReply":
        msg = super().unpack(payload)
        if len(msg.data) != 4 * msg.n_scores:
            raise MessageError(f"SAMPLE reply: {msg.n_scores} scores need {4 * msg.n_scores} B, "
                               f"got {len(msg.data)} B")
        return msg


@dataclass(frozen=True)
class Teach(Message):
    """Supervised hEP update from the last sample's features and this label."""

    TYPE: ClassVar[int] = TEACH
    FMT: ClassVar[str] = "<H"
    label: int


@dataclass(frozen=True)
class TeachReply(Message):
    TYPE: ClassVar[int] = TEACH | REPLY
    FMT: ClassVar[str] = "<III"
    hep_updates: int
    hep_nonconverged: int
    hep_rejected: int


@dataclass(frozen=True)
class Mode(Message):
    """Switch the sample-mode learning rules on or off."""

    TYPE: ClassVar[int] = MODE
    FMT: ClassVar[str] = "<BB"
    lpl: int
    hep: int


@dataclass(frozen=True)
class ModeReply(Message):
    TYPE: ClassVar[int] = MODE | REPLY
    FMT: ClassVar[str] = "<BB"
    lpl: int
    hep: int


@dataclass(frozen=True)
class Busy(Message):
    """Device -> host: request ``seq`` (this frame's seq) is still executing after
    ``elapsed_ms`` milliseconds; the host restarts its retransmission timers."""

    TYPE: ClassVar[int] = BUSY
    FMT: ClassVar[str] = "<I"
    elapsed_ms: int


@dataclass(frozen=True)
class Nak(Message):
    """Device -> host: request ``expected`` is missing. Bit k-1 of ``held`` is set when the
    device holds request expected + k (k = 1..63) and needs only the others resent."""

    TYPE: ClassVar[int] = NAK
    FMT: ClassVar[str] = "<BQ"
    expected: int
    held: int = 0

    def holds(self, seq: int) -> bool:
        k = (seq - self.expected) & 0xFF
        return 1 <= k <= 63 and bool(self.held >> (k - 1) & 1)


@dataclass(frozen=True)
class Error(_Tail):
    """Device -> host: the request with this frame's seq failed (code, two numbers, text)."""

    TYPE: ClassVar[int] = ERROR
    FMT: ClassVar[str] = "<BBII"
    code: int
    request: int
    arg0: int = 0
    arg1: int = 0
    data: bytes = b""

    @property
    def code_name(self) -> str:
        return ERROR_NAMES.get(self.code, f"code {self.code}")

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")

    def describe(self) -> str:
        """One line: 'device error NO_MEMORY on UPLOAD_COMMIT: <text>'."""
        return (f"device error {self.code_name} on {type_name(self.request)}: "
                f"{self.text or f'arg0={self.arg0} arg1={self.arg1}'}")


MESSAGES: dict[int, type[Message]] = {cls.TYPE: cls for cls in (
    Hello, HelloReply, Ping, PingReply, UploadBegin, UploadBeginReply, UploadData,
    UploadDataReply, UploadCommit, UploadCommitReply, ReadFlash, ReadFlashReply, Infer,
    InferReply, Learn, LearnReply, PullBegin, PullBeginReply, PullRead, PullReadReply,
    Telemetry, TelemetryReply, Reset, ResetReply, BlobBegin, BlobBeginReply, BlobData,
    BlobDataReply, BlobEnd, BlobEndReply, BlobGet, BlobGetReply, BlobRead, BlobReadReply,
    Sample, SampleReply, Teach, TeachReply, Mode, ModeReply, Busy, Nak, Error)}

REQUESTS = frozenset(t for t in MESSAGES if t < BUSY and not t & REPLY)


def decode_message(mtype: int, payload: bytes) -> Message:
    """Parse ``payload`` as message ``mtype``; raises :class:`MessageError` if it does not fit."""
    cls = MESSAGES.get(mtype)
    if cls is None:
        raise MessageError(f"unknown message type 0x{mtype:02x}")
    try:
        return cls.unpack(bytes(payload))
    except struct.error as exc:
        raise MessageError(f"{type_name(mtype)}: {exc}") from None
