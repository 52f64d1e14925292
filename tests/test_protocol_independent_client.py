"""docs/protocol.md alone is enough to drive a board in sample mode.

Everything a client sends or reads here is written from the spec's tables with struct, zlib
and math only: COBS, frames, HELLO, UPLOAD, the LPL block (codes computed by the spec's rule),
the config, head and weights blobs, BLOB_*, MODE, SAMPLE, TEACH and their replies. The project's
encoders and decoders (edgelearn.link) are not used. The board is the simulator's Device (bytes
in, bytes out); the expected numbers come from the host engine built directly from the same
numbers, so the test shows that the bytes mean what the spec says.
"""

import math
import struct
import zlib

import numpy as np

from edgelearn.device.config import DeviceConfig, HEPCodes
from edgelearn.device.engine import Engine
from edgelearn.device.head import DeviceHead
from edgelearn.kernels.image import to_image
from edgelearn.memory.arena import Arena
from edgelearn.rules.hep import EnergyHead
from edgelearn.rules.hep.relax import RelaxParams
from edgelearn.rules.lpl_codes import Codes
from edgelearn.rules.qmath import RateCode
from firmware_sim.device import Device
from tests._inprocess_board import test_qnetwork

# ---- section 2: framing ----------------------------------------------------------------------


def cobs(body: bytes) -> bytes:
    out, block = bytearray(), bytearray()
    for b in body:
        if b == 0:
            out += bytes([len(block) + 1]) + block
            block.clear()
        else:
            block.append(b)
            if len(block) == 254:
                out += b"\xff" + block
                block.clear()
    return bytes(out + bytes([len(block) + 1]) + block)


def uncobs(data: bytes) -> bytes:
    out, i = bytearray(), 0
    while i < len(data):
        code = data[i]
        out += data[i + 1:i + code]
        i += code
        if code < 255 and i < len(data):
            out.append(0)
    return bytes(out)


class Wire:
    """A client written from sections 2-4: one request at a time, replies checked."""

    def __init__(self, device: Device) -> None:
        self.dev, self.seq = device, 0

    def request(self, mtype: int, payload: bytes = b"") -> tuple[int, bytes]:
        body = struct.pack("<BBBB", 2, mtype, self.seq, 0) + payload
        body += struct.pack("<I", zlib.crc32(body))
        out = self.dev.feed(cobs(body) + b"\0")
        frames = []
        for run in out.split(b"\0")[:-1]:
            raw = uncobs(run)
            assert struct.unpack("<I", raw[-4:])[0] == zlib.crc32(raw[:-4])
            version, rtype, seq, flags = raw[:4]
            assert version == 2 and seq == self.seq and flags == 1
            frames.append((rtype, raw[4:-4]))
        self.seq = (self.seq + 1) & 0xFF
        (rtype, reply), = frames
        if rtype == 0x7F:
            code, req, a0, a1 = struct.unpack_from("<BBII", reply)
            raise AssertionError(f"ERROR {code} on 0x{req:02x} ({a0}, {a1}): "
                                 f"{reply[10:].decode()}")
        assert rtype == mtype | 0x80
        return rtype, reply

    def put_blob(self, kind: int, data: bytes) -> None:
        self.request(0x40, struct.pack("<BII", kind, len(data), zlib.crc32(data)))
        for i in range(0, len(data), 500):
            self.request(0x41, data[i:i + 500])
        _, rep = self.request(0x42)
        assert struct.unpack("<BII", rep) == (kind, len(data), zlib.crc32(data))

    def get_blob(self, kind: int) -> bytes:
        _, rep = self.request(0x43, struct.pack("<B", kind))
        length, crc = struct.unpack("<II", rep)
        data = b"".join(self.request(0x44, struct.pack("<IH", off, min(500, length - off)))[1][4:]
                        for off in range(0, length, 500))
        assert zlib.crc32(data) == crc
        return data


# ---- section 8.2: the LPL block --------------------------------------------------------------


def code(v: float) -> tuple[int, int]:
    if v == 0:
        return 0, 0
    s = 11 - math.floor(math.log2(v))
    return round(v * 2.0 ** s), s


def rate(tau: float) -> tuple[int, int]:
    return code(-math.expm1(-1.0 / tau))


LPL = dict(A=8, E=8, P=23, dither=1, warmup=5, xi=1e-4, var_init=0.01, tau_mean=2000.0,
           tau_var=2000.0, tau_pre=20.0, tau_post=20.0, lam=0.03, pred=1.0, eta=1e-3)


def lpl_block(w_shift: float) -> tuple[bytes, dict]:
    p = LPL
    q = 2 * p["A"] + p["E"]
    ints = dict(xi_q=round(p["xi"] * 2 ** q), var_init_q=min(round(p["var_init"] * 2 ** q),
                                                             2 ** 31 - 1))
    codes = dict(mean=rate(p["tau_mean"]), var=rate(p["tau_var"]), pre=rate(p["tau_pre"]),
                 post=rate(p["tau_post"]), lam=code(p["lam"]), pred=code(p["pred"]),
                 lam_decorr=(0, 0), lam_hom=(0, 0), eta=code(p["eta"] * 2.0 ** w_shift))
    block = struct.pack("<BBBBBbbBIIii", p["A"], p["E"], p["P"], p["dither"], 0, -128, 127, 0,
                        p["warmup"], ints["xi_q"], ints["var_init_q"], 0)
    for name in ("mean", "var", "pre", "post", "lam", "pred", "lam_decorr", "lam_hom", "eta"):
        block += struct.pack("<HBB", *codes[name], 0)
    block += struct.pack("<I", 0)
    assert len(block) == 64
    return block, {**ints, **codes}


# ---- sections 8.3, 8.6, 8.7: blobs -------------------------------------------------------------

NODES = (1 / math.sqrt(2), -1 / math.sqrt(2))
WEIGHTS = (1 / math.sqrt(2), -1 / math.sqrt(2))
HEP = dict(lr=0.01, amplitude=0.5, replay=4, repeats=2)


def config_blob(block: bytes, layer: int, seed: int) -> bytes:
    J = len(NODES)
    head = struct.pack("<4sHBBIBBHHHIddd", b"ELCF", 1, 0, 1, seed, 1, J, HEP["replay"],
                       HEP["repeats"], 0, 0, 0.0, HEP["lr"], HEP["amplitude"])
    entry = struct.pack("<B7x", layer) + block
    return head + entry + struct.pack(f"<{J}d", *NODES) + struct.pack(f"<{J}d", *WEIGHTS)


RELAX = dict(tol=1e-10, switch=0.05, damping=0.5, max_iter=60, max_steps=5000)


def head_blob(sizes, Ws, bs, mean, std) -> bytes:
    K = len(sizes) - 1
    pre = struct.pack(f"<4sHBB{K + 1}H", b"ELHD", 1, K, 0, *sizes)
    pre += b"\0" * (-len(pre) % 8)
    out = pre + struct.pack("<dddII", RELAX["tol"], RELAX["switch"], RELAX["damping"],
                            RELAX["max_iter"], RELAX["max_steps"])
    out += np.asarray(mean, "<f4").tobytes() + np.asarray(std, "<f4").tobytes()
    for W, b in zip(Ws, bs):
        out += np.asarray(W, "<f4").tobytes() + np.asarray(b, "<f4").tobytes()
    return out


def parse_weights(data: bytes) -> dict:
    """Section 8.7, read field by field."""
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return v

    def arr(dtype, n):
        nonlocal pos
        a = np.frombuffer(data, dtype, n, pos).copy()
        pos += a.nbytes
        return a

    def pad():
        nonlocal pos
        pos += -pos % 4

    magic, version, n_lpl, sections, key, counter = take("<4sHBBII")
    assert magic == b"ELWT" and version == 1
    out = {"rng": (key, counter), "sections": sections, "lpl": {}}
    for _ in range(n_lpl):
        layer, parts, _, n_in, n_out = take("<BBHII")
        d = {"weight": arr("<i1", n_in * n_out).reshape(n_out, n_in)}
        pad()
        d["z_prev"] = arr("<i2", n_out)
        pad()
        d["mean"], d["var"], d["count"] = arr("<i4", n_out), arr("<i4", n_out), arr("<i4", 1)
        for bit, name, n in ((0, "pre_trace", n_in), (1, "post_trace", n_out),
                             (2, "cov", n_out * n_out), (3, "target", n_out)):
            if parts >> bit & 1:
                d[name] = arr("<i4", n)
        out["lpl"][layer] = d
    if sections & 9:
        K = take("<B3x")[0]
        sizes = take(f"<{K + 1}H")
        pad()
        out["W"], out["b"] = [], []
        for k in range(K):
            out["W"].append(arr("<f4", sizes[k] * sizes[k + 1]).reshape(sizes[k + 1], sizes[k]))
            out["b"].append(arr("<f4", sizes[k + 1]))
        if sections & 8:
            out["mean"], out["std"] = arr("<f4", sizes[0]), arr("<f4", sizes[0])
    if sections & 2:
        R, n_h, n_o, _, rpos, fill = take("<HHHHii")
        out["replay"] = dict(counts=arr("u1", R * n_h), pos=rpos, fill=fill)
        pad()
        out["replay"]["scores"] = arr("<f2", R * n_o)
        pad()
        out["replay"]["labels"] = arr("u1", R)
        pad()
        out["replay"]["lengths"] = arr("<u2", R)
        pad()
    assert pos == len(data)
    return out


# ---- sections 8.4/8.5: SAMPLE and TEACH ----------------------------------------------------------


def sample(wire: Wire, x: np.ndarray, chunk: int = 7):
    T, n_in = x.shape
    rep = None
    for t in range(0, T, chunk):
        rows = x[t:t + chunk].astype(np.int8)
        flags = 0x02 | (0x01 if t == 0 else 0) | (0x04 if t + chunk >= T else 0)
        _, rep = wire.request(0x45, struct.pack("<HHB", len(rows), n_in, flags) + rows.tobytes())
    done, kind, pred, n_scores, _, spikes, steps = struct.unpack_from("<BBHHHII", rep)
    assert done == 1 and steps == T and len(rep) == 16 + 4 * n_scores
    return kind, pred, spikes, np.frombuffer(rep, "<f4", n_scores, 16)


def test_a_client_from_the_spec_drives_config_head_sample_teach_pull_and_restore():
    qnet = test_qnetwork(n_in=40, n_hidden=32, n_out=10, seed=90)
    dev = Device(ram=256 * 1024, flash=512 * 1024, log=lambda s: None)
    wire = Wire(dev)
    _, hello = wire.request(0x01, struct.pack("<HB", 1024, 8))
    assert hello[0] == 2 and struct.unpack_from("<H", hello, 19)[0] == 1024
    image = to_image(qnet)                          # docs/fixed-point.md section 7
    wire.request(0x10, struct.pack("<II", len(image), zlib.crc32(image)))
    for i in range(0, len(image), 1000):
        wire.request(0x11, image[i:i + 1000])
    wire.request(0x12)

    layer = qnet.layers[0]
    w_shift = -(layer.w_shift + math.log2(layer.scale / layer.input_scale))
    block, ints = lpl_block(w_shift)
    g = np.random.default_rng(1)
    sizes = (42, 8, 10)
    Ws = [g.normal(0, 1 / math.sqrt(a), (b, a)).astype(np.float32) for a, b in
          zip(sizes, sizes[1:])]
    bs = [np.zeros(b, np.float32) for b in sizes[1:]]
    mean, std = np.full(42, 0.1, np.float32), np.full(42, 0.5, np.float32)
    wire.put_blob(2, head_blob(sizes, Ws, bs, mean, std))
    wire.put_blob(1, config_blob(block, 0, seed=3))
    assert wire.request(0x47, b"\x01\x01")[1] == b"\x01\x01"                      # MODE

    # the host engine from the same numbers (no project encoder or decoder involved)
    rc = lambda kc: None if kc == (0, 0) else RateCode(*kc)  # noqa: E731
    codes = Codes(act_frac=8, ema_frac=8, factor_frac=23, dither=True, warmup=5,
                  xi_q=ints["xi_q"], var_init_q=ints["var_init_q"], w_lo=-128, w_hi=127,
                  mean=rc(ints["mean"]), var=rc(ints["var"]), pre=rc(ints["pre"]),
                  post=rc(ints["post"]), lam=rc(ints["lam"]), pred=rc(ints["pred"]),
                  decorr=False, lam_decorr=None, hom=False, own_target=False, rate_target_q=0,
                  lam_hom=None, eta=rc(ints["eta"]))
    relax = RelaxParams(tol=RELAX["tol"], newton_switch=RELAX["switch"],
                        damping=RELAX["damping"], max_iter=RELAX["max_iter"],
                        max_steps=RELAX["max_steps"])
    head = DeviceHead(EnergyHead(sizes, weights=[W.astype(np.float64) for W in Ws],
                                 biases=[b.astype(np.float64) for b in bs], relax=relax),
                      mean, std)
    cfg = DeviceConfig("max", 3, 0.0, ((0, codes),),
                       HEPCodes(HEP["lr"], HEP["amplitude"], NODES, WEIGHTS, HEP["replay"],
                                HEP["repeats"]))
    host = Engine(qnet, Arena(256 * 1024), head, cfg)
    host.set_learning(True, True)

    xs = [g.integers(0, 3, (30, 40)) for _ in range(8)]

    def step(i):
        kind, pred, spikes, scores = sample(wire, xs[i])
        want = host.run_sample(xs[i])
        assert kind == 1 and pred == want.prediction and spikes == want.spikes
        np.testing.assert_array_equal(scores, want.scores.astype(np.float32))
        _, rep = wire.request(0x46, struct.pack("<H", i % 10))                    # TEACH
        host.teach(i % 10)
        c = host.counters
        assert struct.unpack("<III", rep) == (c["hep_updates"], c["hep_nonconverged"],
                                             c["hep_rejected"])

    for i in range(3):
        step(i)
    snapshot = wire.get_blob(3)
    pulled = parse_weights(snapshot)
    hw = host.get_weights()
    np.testing.assert_array_equal(pulled["lpl"][0]["weight"], hw["hidden.weight"])
    for f in ("z_prev", "mean", "var", "count", "pre_trace", "post_trace"):
        np.testing.assert_array_equal(pulled["lpl"][0][f], hw[f"state.hidden.lpl.{f}"])
    for k in range(2):
        np.testing.assert_array_equal(pulled["W"][k], hw[f"head.W{k}"])
        np.testing.assert_array_equal(pulled["b"][k], hw[f"head.b{k}"])
    assert pulled["rng"] == tuple(int(v) for v in hw["state.rng"])
    assert pulled["replay"]["fill"] == 3 and pulled["sections"] == 15
    assert not np.array_equal(pulled["lpl"][0]["weight"], qnet.layers[0].weight)

    for i in range(3, 6):
        step(i)
    wire.put_blob(3, snapshot)                          # restore: roll both back
    host.set_weights(hw)
    for i in range(3, 8):
        step(i)
    assert host.counters["hep_updates"] > 0 and host.counters["lpl_updates"] > 0
