"""The sample-mode blobs of protocol version 2: config, head, weights (pure encode/decode).

Fixed-layout little-endian binary, specified byte by byte in docs/protocol.md ("Blobs"); this
module is its executable copy, used by the host (edgelearn.link.board) and by the device side
(firmware_sim). Decoders check every field before anything is built and raise
:class:`BlobError` naming the byte offset and the value (the device answers BAD_PARAM with
arg0 = offset, arg1 = value) or, for a blob whose length differs from what its header implies,
:class:`BlobLengthError` (BAD_LENGTH, arg0 = length, arg1 = implied length).
"""

from __future__ import annotations

import math
import struct

import numpy as np

from edgelearn.device.config import (MAX_LPL_LAYERS, MAX_NUDGES, MAX_REPEATS, MAX_REPLAY,
                                     DeviceConfig, HEPCodes)
from edgelearn.device.head import DeviceHead
from edgelearn.errors import LinkError, ParameterError
from edgelearn.rules.hep import EnergyHead
from edgelearn.rules.hep.relax import RelaxParams
from edgelearn.rules.lpl_codes import FIELD_OFFSETS, Codes, pack_block, unpack_block

CONFIG_MAGIC, HEAD_MAGIC, WEIGHTS_MAGIC = b"ELCF", b"ELHD", b"ELWT"
BLOB_VERSION = 1
LPL_BLOCK_BYTES = 64
LPL_ENTRY_BYTES = 72          # config: layer u8, 7 zero bytes, LPL block
CONFIG_HEADER_BYTES = 48
READOUT_CODES = {"max": 0, "mean": 1}
ACTIVATION_CODES = {"tanh": 0, "sigmoid": 1}
HEAD_MAX_LAYERS = 8
HEAD_MAX_WIDTH = 1024


class BlobError(LinkError):
    """A blob field is invalid: ``offset`` (bytes from the blob start) and ``value``."""

    def __init__(self, what: str, offset: int, value, why: str) -> None:
        super().__init__(f"{what} blob: byte {offset}: {value!r} {why}")
        self.offset, self.value = int(offset), value

    @property
    def value_u32(self) -> int:
        v = self.value
        if isinstance(v, (bytes, bytearray)):      # a magic or a run of reserved bytes
            return int.from_bytes(bytes(v[:4]).ljust(4, b"\0"), "little")
        if isinstance(v, (bool, int, np.integer)):
            return int(v) & 0xFFFFFFFF
        if isinstance(v, (float, np.floating)):
            with np.errstate(over="ignore", invalid="ignore"):
                return int(np.asarray(v, np.float32).view(np.uint32))
        return 0


class BlobLengthError(LinkError):
    """A blob is shorter or longer than its header implies."""

    def __init__(self, what: str, got: int, want: int) -> None:
        super().__init__(f"{what} blob of {got} B, its header implies {want} B")
        self.got, self.want = int(got), int(want)


def _pad(b: bytes, n: int = 4) -> bytes:
    return b + b"\0" * (-len(b) % n)


class _Reader:
    """Sequential little-endian reader that reports offsets."""

    def __init__(self, what: str, data: bytes) -> None:
        self.what, self.data, self.pos = what, memoryview(bytes(data)), 0

    def need(self, total: int) -> None:
        if len(self.data) != total:
            raise BlobLengthError(self.what, len(self.data), total)

    def have(self, n: int) -> None:
        if self.pos + n > len(self.data):
            raise BlobLengthError(self.what, len(self.data), self.pos + n)

    def fmt(self, f: str):
        n = struct.calcsize(f)
        self.have(n)
        v = struct.unpack_from(f, self.data, self.pos)
        self.pos += n
        return v if len(v) > 1 else v[0]

    def array(self, dtype: str, count: int) -> np.ndarray:
        n = np.dtype(dtype).itemsize * count
        self.have(n)
        a = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos).copy()
        self.pos += n
        return a

    def align(self, n: int = 4) -> None:
        self.pos += -self.pos % n

    def bad(self, offset: int, value, why: str) -> BlobError:
        return BlobError(self.what, offset, value, why)

    def expect(self, offset: int, value, ok: bool, why: str) -> None:
        if not ok:
            raise self.bad(offset, value, why)


# ---- the LPL block (64 bytes; edgelearn.rules.lpl_codes) ---------------------------------

def encode_lpl_block(c: Codes) -> bytes:
    """The 64-byte LPL block of ``c`` (docs/protocol.md, "LPL block")."""
    return pack_block(c)


def decode_lpl_block(data: bytes, base: int = 0, what: str = "LPL") -> Codes:
    """Parse a 64-byte LPL block found at byte ``base`` of a blob (offsets in errors count
    from the blob start)."""
    if len(data) != LPL_BLOCK_BYTES:
        raise BlobLengthError(what, len(data), LPL_BLOCK_BYTES)
    try:
        return unpack_block(data)
    except ParameterError as exc:
        field = getattr(exc, "field", "flags")
        raise BlobError(what, base + FIELD_OFFSETS.get(field, 4), getattr(exc, "value", 0),
                        str(exc).split(": ", 1)[-1]) from None


# ---- config blob ---------------------------------------------------------------------------
_CONFIG_HEAD = struct.Struct("<4sHBBIBBHHHIddd")


def config_length(n_lpl: int, nudges: int) -> int:
    return CONFIG_HEADER_BYTES + LPL_ENTRY_BYTES * n_lpl + 16 * nudges


def encode_config(cfg: DeviceConfig) -> bytes:
    """The config blob (kind 1) of ``cfg``."""
    h = cfg.hep
    head = _CONFIG_HEAD.pack(
        CONFIG_MAGIC, BLOB_VERSION, READOUT_CODES[cfg.readout], len(cfg.lpl), cfg.seed,
        int(h is not None), 0 if h is None else len(h.nodes), 0 if h is None else h.replay,
        0 if h is None else h.repeats, 0, 0, float(cfg.track_features),
        0.0 if h is None else h.lr, 0.0 if h is None else h.amplitude)
    parts = [head]
    for k, c in cfg.lpl:
        parts.append(struct.pack("<B7x", k) + encode_lpl_block(c))
    if h is not None:
        parts.append(struct.pack(f"<{len(h.nodes)}d", *h.nodes))
        parts.append(struct.pack(f"<{len(h.weights)}d", *h.weights))
    return b"".join(parts)


def decode_config(data: bytes) -> DeviceConfig:
    """Parse a config blob; every field is checked (BlobError names offset and value)."""
    r = _Reader("config", data)
    (magic, version, readout, n_lpl, seed, hep, J, R, repeats, res0, res1, track, lr,
     amp) = r.fmt(_CONFIG_HEAD.format)
    r.expect(0, bytes(magic), magic == CONFIG_MAGIC, f"is not the magic {CONFIG_MAGIC!r}")
    r.expect(4, version, version == BLOB_VERSION, f"is not config format {BLOB_VERSION}")
    r.expect(6, readout, readout in (0, 1), "is not a readout (0 max, 1 mean)")
    r.expect(7, n_lpl, n_lpl <= MAX_LPL_LAYERS, f"LPL layers exceed {MAX_LPL_LAYERS}")
    r.expect(12, hep, hep in (0, 1), "is not 0 (no hEP) or 1 (hEP)")
    r.expect(18, res0, res0 == 0, "is a reserved field and must be 0")
    r.expect(20, res1, res1 == 0, "is a reserved field and must be 0")
    r.expect(24, track, math.isfinite(track) and 0.0 <= track < 1.0,
             "track_features must lie in [0, 1)")
    if hep:
        r.expect(13, J, 1 <= J <= MAX_NUDGES, f"nudges must be 1..{MAX_NUDGES}")
        r.expect(14, R, R <= MAX_REPLAY, f"replay must be 0..{MAX_REPLAY}")
        r.expect(16, repeats, 1 <= repeats <= MAX_REPEATS and (repeats == 1 or R >= 1),
                 f"repeats must be 1..{MAX_REPEATS} (> 1 needs replay >= 1)")
        r.expect(32, lr, math.isfinite(lr) and lr > 0, "lr must be finite and > 0")
        r.expect(40, amp, math.isfinite(amp) and amp > 0, "amplitude must be finite and > 0")
    else:
        for off, v in ((13, J), (14, R), (16, repeats), (32, lr), (40, amp)):
            r.expect(off, v, v == 0, "must be 0 when hEP is off")
    r.need(config_length(n_lpl, J))
    lpl = []
    for i in range(n_lpl):
        base = CONFIG_HEADER_BYTES + LPL_ENTRY_BYTES * i
        k = r.fmt("<B")
        pad = r.fmt("<7s")
        r.expect(base + 1, bytes(pad), pad == bytes(7), "reserved bytes must be 0")
        r.expect(base, k, not lpl or k > lpl[-1][0], "LPL layer indices must increase")
        lpl.append((k, decode_lpl_block(r.data[base + 8:base + 72], base + 8, "config")))
        r.pos = base + LPL_ENTRY_BYTES
    h = None
    if hep:
        at = r.pos
        nodes = [float(v) for v in r.array("<f8", J)]
        weights = [float(v) for v in r.array("<f8", J)]
        for j, t in enumerate(nodes):
            r.expect(at + 8 * j, t, math.isfinite(t) and -1.0 <= t <= 1.0,
                     "nudge node must lie in [-1, 1]")
        for j, w in enumerate(weights):
            r.expect(at + 8 * (J + j), w, math.isfinite(w), "nudge weight must be finite")
        h = HEPCodes(float(lr), float(amp), tuple(nodes), tuple(weights), R, repeats)
    return DeviceConfig(("max", "mean")[readout], seed, float(track), tuple(lpl), h)


# ---- head blob -----------------------------------------------------------------------------
_RELAX = struct.Struct("<dddII")


def _head_prefix(K: int) -> int:
    return 8 + -(-2 * (K + 1) // 8) * 8


def head_length(sizes) -> int:
    K = len(sizes) - 1
    n_par = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
    return _head_prefix(K) + _RELAX.size + 8 * sizes[0] + 4 * n_par


def _finite32(name: str, a: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.asarray(a, dtype=np.float64).astype(np.float32)
    if not np.all(np.isfinite(out)):
        raise ParameterError(f"head {name} holds values that are not finite in float32 (the "
                             f"device stores float32)")
    return out


def encode_head(dh: DeviceHead) -> bytes:
    """The head blob (kind 2): hEP head, relaxation settings and feature normalisation.
    Values beyond float32 are refused (ParameterError): the device stores float32."""
    h = dh.head
    K = len(h.weights)
    sizes = tuple(int(n) for n in h.sizes)
    rp = h.relax_params
    if rp.solver != "newton":
        raise ParameterError(f"a device head relaxes with Newton's method, not {rp.solver!r}")
    prefix = struct.pack(f"<4sHBB{K + 1}H", HEAD_MAGIC, BLOB_VERSION, K,
                         ACTIVATION_CODES[h.activation], *sizes)
    parts = [_pad(prefix, 8), _RELAX.pack(rp.tol, rp.newton_switch, rp.damping, rp.max_iter,
                                          rp.max_steps),
             _finite32("feature mean", dh.mean).tobytes(),
             _finite32("feature std", dh.std).tobytes()]
    for k, (W, b) in enumerate(zip(h.weights, h.biases)):
        parts += [_finite32(f"W{k}", W).astype("<f4").tobytes(),
                  _finite32(f"b{k}", b).astype("<f4").tobytes()]
    return b"".join(parts)


def decode_head(data: bytes) -> DeviceHead:
    """Parse a head blob (every field checked; weights stay float32 values)."""
    r = _Reader("head", data)
    magic, version, K, act = r.fmt("<4sHBB")
    r.expect(0, bytes(magic), magic == HEAD_MAGIC, f"is not the magic {HEAD_MAGIC!r}")
    r.expect(4, version, version == BLOB_VERSION, f"is not head format {BLOB_VERSION}")
    r.expect(6, K, 2 <= K <= HEAD_MAX_LAYERS, f"weight layers must be 2..{HEAD_MAX_LAYERS}")
    r.expect(7, act, act in (0, 1), "is not an activation (0 tanh, 1 sigmoid)")
    sizes = tuple(int(v) for v in r.array("<u2", K + 1))
    for i, n in enumerate(sizes):
        r.expect(8 + 2 * i, n, 1 <= n <= HEAD_MAX_WIDTH, f"layer width must be "
                 f"1..{HEAD_MAX_WIDTH}")
    pad_at = r.pos
    r.pos = _head_prefix(K)
    r.expect(pad_at, bytes(r.data[pad_at:r.pos]), not any(r.data[pad_at:r.pos]),
             "padding must be 0")
    r.need(head_length(sizes))
    at = r.pos
    tol, switch, damping, max_iter, max_steps = r.fmt(_RELAX.format)
    r.expect(at, tol, math.isfinite(tol) and 0 < tol < 1, "tol must lie in (0, 1)")
    r.expect(at + 8, switch, math.isfinite(switch) and switch > 0, "newton_switch must be > 0")
    r.expect(at + 16, damping, math.isfinite(damping) and 0 < damping <= 1,
             "damping must lie in (0, 1]")
    r.expect(at + 24, max_iter, 1 <= max_iter <= 1000, "max_iter must be 1..1000")
    r.expect(at + 28, max_steps, 1 <= max_steps <= 100000, "max_steps must be 1..100000")

    def floats(n: int, what: str, positive: bool = False) -> np.ndarray:
        start = r.pos
        a = r.array("<f4", n)
        bad = ~np.isfinite(a) | ((a <= 0) if positive else False)
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            raise r.bad(start + 4 * j, float(a[j]), f"{what} must be finite"
                        + (" and > 0" if positive else ""))
        return a

    mean = floats(sizes[0], "feature mean")
    std = floats(sizes[0], "feature std", positive=True)
    Ws, bs = [], []
    for k in range(K):
        Ws.append(floats(sizes[k + 1] * sizes[k], f"W{k}").reshape(sizes[k + 1], sizes[k]))
        bs.append(floats(sizes[k + 1], f"b{k}"))
    relax = RelaxParams(solver="newton", tol=float(tol), max_iter=int(max_iter),
                        newton_switch=float(switch), damping=float(damping),
                        max_steps=int(max_steps))
    head = EnergyHead(sizes, activation=("tanh", "sigmoid")[act], relax=relax,
                      weights=[W.astype(np.float64) for W in Ws],
                      biases=[b.astype(np.float64) for b in bs])
    return DeviceHead(head, mean, std)


# ---- weights blob --------------------------------------------------------------------------
_LPL_PARTS = ("pre_trace", "post_trace", "cov", "target", "epoch_pre", "epoch_post",
              "epoch_steps")
_REPLAY = ("counts", "scores", "labels", "lengths")
S_HEAD, S_REPLAY, S_RNG, S_NORM = 1, 2, 4, 8


def encode_weights(w: dict[str, np.ndarray], layer_names: list[str]) -> bytes:
    """The weights blob (kind 3) of an ``Engine.get_weights()`` dictionary, or of a part of it
    (whole sections: an LPL layer, the head weights, the feature statistics, the replay ring,
    the PRNG position)."""
    lpl = [k for k, n in enumerate(layer_names) if f"{n}.weight" in w]
    n_head = sum(1 for key in w if key.startswith("head.W"))
    replay = "state.replay.counts" in w
    rng = "state.rng" in w
    norm = "state.head.feature_mean" in w
    key, counter = (int(v) for v in w["state.rng"]) if rng else (0, 0)
    sections = ((S_HEAD if n_head else 0) | (S_REPLAY if replay else 0) | (S_RNG if rng else 0)
                | (S_NORM if norm else 0))
    parts = [struct.pack("<4sHBBII", WEIGHTS_MAGIC, BLOB_VERSION, len(lpl), sections, key,
                         counter)]
    for k in lpl:
        name = layer_names[k]
        W = np.asarray(w[f"{name}.weight"])
        st = {f: np.asarray(w[f"state.{name}.lpl.{f}"]) for f in ("z_prev", "mean", "var",
                                                                  "count") + _LPL_PARTS[:4]}
        st.update({f: np.asarray(w.get(f"state.{name}.lpl.{f}", np.zeros(0, np.int32)))
                   for f in _LPL_PARTS[4:]})      # no learning epoch: absent
        flags = sum(1 << i for i, f in enumerate(_LPL_PARTS) if st[f].size)
        n_out, n_in = W.shape
        parts.append(struct.pack("<BBHII", k, flags, 0, n_in, n_out))
        parts.append(_pad(W.astype("<i1").tobytes()))
        parts.append(_pad(st["z_prev"].astype("<i2").tobytes()))
        for f in ("mean", "var", "count") + _LPL_PARTS:
            if st[f].size:
                parts.append(st[f].astype("<i4").tobytes())
    if n_head or norm:
        if n_head:
            Ws = [np.asarray(w[f"head.W{k}"]) for k in range(n_head)]
            sizes = [Ws[0].shape[1]] + [W.shape[0] for W in Ws]
        else:
            sizes = [np.asarray(w["state.head.feature_mean"]).shape[0]]
        parts.append(_pad(struct.pack(f"<B3x{len(sizes)}H", n_head, *sizes)))
        for k in range(n_head):
            parts += [_finite32(f"W{k}", w[f"head.W{k}"]).astype("<f4").tobytes(),
                      _finite32(f"b{k}", w[f"head.b{k}"]).astype("<f4").tobytes()]
        if norm:
            parts += [_finite32("feature mean", w["state.head.feature_mean"]).tobytes(),
                      _finite32("feature std", w["state.head.feature_std"]).tobytes()]
    if replay:
        counts = np.asarray(w["state.replay.counts"])
        R, n_h = counts.shape
        n_o = np.asarray(w["state.replay.scores"]).shape[1]
        pos, fill = (int(v) for v in w["state.replay.ring"])
        parts.append(struct.pack("<HHHHii", R, n_h, n_o, 0, pos, fill))
        parts.append(_pad(counts.astype("u1").tobytes()))
        parts.append(_pad(np.asarray(w["state.replay.scores"]).astype("<f2").tobytes()))
        parts.append(_pad(np.asarray(w["state.replay.labels"]).astype("u1").tobytes()))
        parts.append(_pad(np.asarray(w["state.replay.lengths"]).astype("<u2").tobytes()))
    return b"".join(parts)


def decode_weights(data: bytes, layer_names: list[str]) -> dict[str, np.ndarray]:
    """Parse a weights blob into the ``Engine.get_weights()`` dictionary (layer indices become
    ``layer_names``). Sizes are checked against the blob's own header; the engine checks that
    they are its own (``Engine.check_weights``)."""
    r = _Reader("weights", data)
    magic, version, n_lpl, sections, key, counter = r.fmt("<4sHBBII")
    r.expect(0, bytes(magic), magic == WEIGHTS_MAGIC, f"is not the magic {WEIGHTS_MAGIC!r}")
    r.expect(4, version, version == BLOB_VERSION, f"is not weights format {BLOB_VERSION}")
    r.expect(6, n_lpl, n_lpl <= min(MAX_LPL_LAYERS, len(layer_names)),
             "more LPL sections than layers")
    r.expect(7, sections, not sections & ~(S_HEAD | S_REPLAY | S_RNG | S_NORM),
             "sets undefined section bits")
    r.expect(8, key, sections & S_RNG or key == counter == 0,
             "PRNG fields must be 0 without the PRNG section")
    out: dict[str, np.ndarray] = {}
    if sections & S_RNG:
        out["state.rng"] = np.array([key, counter], np.uint32)
    last = -1
    for _ in range(n_lpl):
        at = r.pos
        k, flags, res, n_in, n_out = r.fmt("<BBHII")
        r.expect(at, k, last < k < len(layer_names), "is not an increasing layer index")
        r.expect(at + 1, flags, not flags & ~0x7F, "sets undefined part bits")
        r.expect(at + 2, res, res == 0, "is a reserved field and must be 0")
        r.expect(at + 4, n_in, 1 <= n_in <= 1 << 20, "n_in must be 1..2^20")
        r.expect(at + 8, n_out, 1 <= n_out <= 1 << 20, "n_out must be 1..2^20")
        last, name = k, layer_names[k]
        out[f"{name}.weight"] = r.array("<i1", n_out * n_in).reshape(n_out, n_in)
        r.align()
        pre = f"state.{name}.lpl."
        out[pre + "z_prev"] = r.array("<i2", n_out)
        r.align()
        out[pre + "mean"] = r.array("<i4", n_out)
        out[pre + "var"] = r.array("<i4", n_out)
        out[pre + "count"] = r.array("<i4", 1)
        shapes = {"pre_trace": (n_in,), "post_trace": (n_out,), "cov": (n_out, n_out),
                  "target": (n_out,), "epoch_pre": (n_in,), "epoch_post": (n_out,),
                  "epoch_steps": (1,)}
        for i, f in enumerate(_LPL_PARTS):
            on = flags >> i & 1
            shape = shapes[f] if on else ((0, 0) if f == "cov" else (0,))
            out[pre + f] = r.array("<i4", int(np.prod(shape))).reshape(shape)
    if sections & (S_HEAD | S_NORM):
        at = r.pos
        K = r.fmt("<B")
        if sections & S_HEAD:
            r.expect(at, K, 2 <= K <= HEAD_MAX_LAYERS,
                     f"head layers must be 2..{HEAD_MAX_LAYERS}")
        else:
            r.expect(at, K, K == 0, "must be 0 without the head section")
        r.expect(at + 1, bytes(r.data[at + 1:at + 4]), not any(r.data[at + 1:at + 4]),
                 "reserved bytes must be 0")
        r.pos += 3
        sizes = [int(v) for v in r.array("<u2", K + 1)]
        for i, n in enumerate(sizes):
            r.expect(at + 4 + 2 * i, n, 1 <= n <= HEAD_MAX_WIDTH,
                     f"head width must be 1..{HEAD_MAX_WIDTH}")
        r.align()
        for k in range(K):
            out[f"head.W{k}"] = r.array("<f4", sizes[k + 1] * sizes[k]).reshape(sizes[k + 1],
                                                                                sizes[k])
            out[f"head.b{k}"] = r.array("<f4", sizes[k + 1])
        if sections & S_NORM:
            out["state.head.feature_mean"] = r.array("<f4", sizes[0])
            out["state.head.feature_std"] = r.array("<f4", sizes[0])
    if sections & S_REPLAY:
        at = r.pos
        R, n_h, n_o, res, pos, fill = r.fmt("<HHHHii")
        r.expect(at, R, 1 <= R <= MAX_REPLAY, f"replay entries must be 1..{MAX_REPLAY}")
        r.expect(at + 6, res, res == 0, "is a reserved field and must be 0")
        out["state.replay.counts"] = r.array("u1", R * n_h).reshape(R, n_h)
        r.align()
        out["state.replay.scores"] = r.array("<f2", R * n_o).reshape(R, n_o)
        r.align()
        out["state.replay.labels"] = r.array("u1", R)
        r.align()
        out["state.replay.lengths"] = r.array("<u2", R)
        r.align()
        out["state.replay.ring"] = np.array([pos, fill], np.int32)
    r.need(r.pos)
    if r.pos != len(r.data):
        raise BlobLengthError("weights", len(r.data), r.pos)
    return out
