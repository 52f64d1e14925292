"""The compact device image of a :class:`QNetwork` (L1): bytes a board stores and runs.

Little-endian, every section starts at a multiple of 4 bytes (zero padding). Layout, version 1
(docs/fixed-point.md, "Device image", is the normative copy):

    network header, 40 bytes          struct "<4sHHIddBBHI4x"
      magic b"ELQN", version u16 = 1, n_layers u16, n_in u32, input_scale f64, dt f64,
      input_bits u8, reserved u8 = 0, name_len u16, meta_len u32, 4 zero bytes
    name (UTF-8, name_len bytes), meta (JSON object of strings, UTF-8, meta_len bytes), pad to 4
    per layer:
      layer header, 32 bytes          struct "<IIBBbbddH2x"
        n_in u32, n_out u32, flags u8 (bit0 spiking, bit1 recurrent, bit2 bias, bit3 reset-zero,
        bit4 reset-zero-immediate; bits 5-7 zero),
        state_bits u8, w_shift i8, v_shift i8, scale f64, input_scale f64, name_len u16, 2 zero
      name (UTF-8), pad to 4
      weight     int8  [n_out * n_in]   row-major (row = output neuron), pad to 4
      recurrent  int8  [n_out * n_out]  if bit1, pad to 4
      bias       int32 [n_out]          if bit2
      threshold  int32 [n_out]
      alpha      uint16 [n_out]         12-bit multipliers 0..4096
      beta       uint16 [n_out]         pad to 4
    nothing follows the last layer (the serial link adds its own CRC-32).
"""

from __future__ import annotations

import json
import struct

import numpy as np

from edgelearn.boundary import parse_json
from edgelearn.errors import EdgelearnError, ModelFileError
from edgelearn.kernels.lif_fixed import QLayer, QNetwork

MAGIC = b"ELQN"
VERSION = 1
_NET = struct.Struct("<4sHHIddBBHI4x")
#: byte offset of input_bits in the network header (after magic, version, layer count, n_in,
#: input_scale and dt)
INPUT_BITS_OFFSET = struct.calcsize("<4sHHIdd")
#: byte offset of n_in (uint32) in the network header
N_IN_OFFSET = struct.calcsize("<4sHH")
_LAYER = struct.Struct("<IIBBbbddH2x")
F_SPIKING, F_RECURRENT, F_BIAS, F_RESET_ZERO, F_RESET_IMMEDIATE = 1, 2, 4, 8, 16
RESET_FLAGS = {"subtract": 0, "zero": F_RESET_ZERO, "zero_immediate": F_RESET_IMMEDIATE}


def _pad(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def to_image(qnet: QNetwork, meta: bytes | None = None) -> bytes:
    """Serialize ``qnet`` into the version-1 device image (see module docstring). ``meta``:
    the metadata bytes as they are (a device writes back what it received); default the JSON
    of ``qnet.meta``."""
    name = qnet.name.encode("utf-8")
    if meta is None:
        meta = json.dumps(qnet.meta, sort_keys=True, separators=(",", ":")).encode("utf-8")
    parts = [_NET.pack(MAGIC, VERSION, len(qnet.layers), qnet.n_in, qnet.input_scale, qnet.dt,
                       qnet.input_bits, 0, len(name), len(meta)), _pad(name + meta)]
    for la in qnet.layers:
        flags = ((F_SPIKING if la.spiking else 0) | (F_RECURRENT if la.recurrent is not None else 0)
                 | (F_BIAS if la.bias is not None else 0)
                 | RESET_FLAGS[la.reset])
        lname = la.name.encode("utf-8")
        parts.append(_LAYER.pack(la.n_in, la.n_out, flags, la.state_bits, la.w_shift, la.v_shift,
                                 la.scale, la.input_scale, len(lname)))
        parts.append(_pad(lname))
        parts.append(_pad(la.weight.astype("<i1").tobytes()))
        if la.recurrent is not None:
            parts.append(_pad(la.recurrent.astype("<i1").tobytes()))
        if la.bias is not None:
            parts.append(la.bias.astype("<i4").tobytes())
        parts.append(la.threshold.astype("<i4").tobytes())
        parts.append(_pad(la.alpha.astype("<u2").tobytes() + la.beta.astype("<u2").tobytes()))
    return b"".join(parts)


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = memoryview(data), 0

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise ModelFileError(f"device image truncated: {what} needs {n} bytes at offset "
                                 f"{self.pos}, image has {len(self.data)}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def align(self) -> None:
        self.pos += -self.pos % 4

    def array(self, dtype: str, count: int, what: str) -> np.ndarray:
        size = np.dtype(dtype).itemsize * count
        return np.frombuffer(self.take(size, what), dtype=dtype).copy()


MAX_LAYERS = 64


def from_image(data: bytes) -> QNetwork:
    """Parse a device image back into a :class:`QNetwork` (raises ModelFileError if malformed),
    metadata included (the host reads the JSON object of strings)."""
    qnet, meta = decode_image(data)
    obj = parse_json(meta, "device image metadata")
    if not isinstance(obj, dict) or not all(isinstance(v, (str, int, float, bool))
                                            for v in obj.values()):
        raise ModelFileError("device image metadata must be a JSON object of plain values")
    return qnet.replace(meta=obj)


def decode_image(data: bytes) -> tuple[QNetwork, bytes]:
    """What a device reads of an image: the network (with empty metadata) and the metadata
    bytes, opaque (never parsed; written back unchanged by :func:`to_image`). Raises
    ModelFileError for everything docs/protocol.md section 9 lists."""
    r = _Reader(bytes(data))
    head = r.take(_NET.size, "network header")
    magic, version, n_layers, n_in, in_scale, dt, in_bits, _, name_len, meta_len = \
        _NET.unpack(head)
    if magic != MAGIC:
        raise ModelFileError(f"not an edgelearn device image: magic {bytes(magic)!r}, expected "
                             f"{MAGIC!r}")
    if version != VERSION:
        raise ModelFileError(f"device image version {version} is not supported (this reader "
                             f"reads version {VERSION})")
    if not 1 <= n_layers <= MAX_LAYERS:
        raise ModelFileError(f"device image has {n_layers} layers, expected 1..{MAX_LAYERS}")
    try:
        name = bytes(r.take(name_len, "network name")).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelFileError(f"device image network name is not UTF-8: {exc}") from None
    meta = bytes(r.take(meta_len, "metadata"))
    r.align()
    layers = []
    for k in range(n_layers):
        (li, lo, flags, bits, w_shift, v_shift, scale, lscale,
         lname_len) = _LAYER.unpack(r.take(_LAYER.size, f"layer {k} header"))
        if li * lo > (1 << 28) or li == 0 or lo == 0:
            raise ModelFileError(f"device image layer {k}: implausible size {lo}x{li}")
        if not 1 <= lname_len <= 255:
            raise ModelFileError(f"device image layer {k}: name of {lname_len} bytes, expected "
                                 f"1..255")
        reset = [name for name, bit in RESET_FLAGS.items() if flags & 0x18 == bit]
        if flags & 0xE0 or not reset:
            raise ModelFileError(f"device image layer {k}: flags 0x{flags:02x} name no known "
                                 f"layer kind (reserved bits or two reset modes)")
        try:
            lname = bytes(r.take(lname_len, f"layer {k} name")).decode("utf-8")
        except UnicodeDecodeError:
            raise ModelFileError(f"device image layer {k}: name is not UTF-8") from None
        r.align()
        w = r.array("<i1", lo * li, f"layer '{lname}' weight").reshape(lo, li)
        r.align()
        rec = None
        if flags & F_RECURRENT:
            rec = r.array("<i1", lo * lo, f"layer '{lname}' recurrent").reshape(lo, lo)
            r.align()
        bias = r.array("<i4", lo, f"layer '{lname}' bias") if flags & F_BIAS else None
        thr = r.array("<i4", lo, f"layer '{lname}' threshold")
        alpha = r.array("<u2", lo, f"layer '{lname}' alpha")
        beta = r.array("<u2", lo, f"layer '{lname}' beta")
        r.align()
        try:
            layers.append(QLayer(name=lname, weight=w, alpha=alpha, beta=beta, threshold=thr,
                                 reset=reset[0],
                                 spiking=bool(flags & F_SPIKING), bias=bias, recurrent=rec,
                                 w_shift=w_shift, v_shift=v_shift, state_bits=bits, scale=scale,
                                 input_scale=lscale))
        except EdgelearnError as exc:
            raise ModelFileError(f"device image layer {k}: {exc}") from None
    if r.pos != len(r.data):
        raise ModelFileError(f"device image has {len(r.data) - r.pos} trailing bytes after "
                             f"{n_layers} layers")
    try:
        qnet = QNetwork(layers=tuple(layers), name=name, dt=dt, input_scale=in_scale,
                        input_bits=in_bits)
    except EdgelearnError as exc:
        raise ModelFileError(f"device image: {exc}") from None
    if qnet.n_in != n_in:
        raise ModelFileError(f"device image header says {n_in} inputs, first layer has "
                             f"{qnet.n_in}")
    return qnet, meta
