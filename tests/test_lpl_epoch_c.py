"""The C firmware's LPL learning epoch (el_lpl_epoch_step; the rule once every 2^e steps on the
activities summed over them) equals the specification written out on the reference step
(tests/_lpl_epoch.py): the rule alone on the shared library (vectorised and scalar builds,
reference and fast weight updates, 0/1, int8 and int16 inputs), the C engine on the headline
model, and the C host board; a block whose epoch byte is out of range is refused at byte 7 by
both boards."""

import ctypes
import dataclasses
import struct
from pathlib import Path

import numpy as np
import pytest

from tests._c_device import BOARD_IMPLS

from _native_pair import headline_pair, run_equal
from _lpl_epoch import EpochRule, block_codes, epoch_block, epoch_params
from edgelearn.fixed import RngState, rng_init
from edgelearn.kernels import native
from edgelearn.rules import lpl_codes, lpl_rate

ROOT = Path(__file__).resolve().parents[1]
VEC = ROOT / "tests" / "vectors"
KINDS = {"u8": (1, np.uint8), "i8": (2, np.int8), "i16": (3, np.int16)}   # EL_ACT_*


@pytest.fixture(scope="module")
def lib():
    lib = native.library()
    assert lib is not None, native.unavailable_reason()
    return lib


@pytest.fixture(scope="module", params=("lib", "lib-scalar"))
def lpl_lib(request):
    return native.library() if request.param == "lib" else native.load(request.param)


def _ptr(a):
    return None if a is None else a.ctypes.data_as(ctypes.c_void_p)


class CEpoch:
    """el_native_lpl_epoch_step with its own weights, state arrays (lpl_rate.State order, then
    epoch_pre, epoch_post, epoch_steps) and PRNG."""

    def __init__(self, lib, block: bytes, w: np.ndarray, seed: int) -> None:
        self.lib, self.block = lib, np.frombuffer(block, np.uint8).copy()
        n_out, n_in = w.shape
        self.wT = np.ascontiguousarray(np.asarray(w, np.int8).T)
        st = lpl_codes.init_state(lpl_codes.unpack_block(block), n_in, n_out)
        self.state = [np.ascontiguousarray(a) for a in st]
        assert len(self.state) == 11 and (self.state[10].size == 1) == (block[7] > 0)
        self.ptrs = (ctypes.c_void_p * 11)(*(a.ctypes.data if a.size else None
                                             for a in self.state))
        bytes_ = lib.el_native_lpl_scratch_bytes(_ptr(self.block), n_in, n_out)
        assert bytes_ > 0
        self.scratch = np.zeros(bytes_ + 8, np.uint8)
        r = rng_init(seed)
        self.rng = np.array([r.key, r.counter], np.uint32)
        self.stats = np.zeros(4, np.uint32)

    def step(self, x: np.ndarray, kind: str, s: np.ndarray, fast: bool) -> int:
        code, dt = KINDS[kind]
        xa = np.ascontiguousarray(x, dt)
        sa = np.ascontiguousarray(s, np.uint8)
        return self.lib.el_native_lpl_epoch_step(
            _ptr(self.wT), self.wT.shape[0], self.wT.shape[1], _ptr(xa), code, _ptr(sa),
            self.ptrs, _ptr(self.block), _ptr(self.rng), _ptr(self.scratch), int(fast),
            _ptr(self.stats))

    def weights(self) -> np.ndarray:
        return self.wT.T


PARAMS = {
    "dither_filters": lpl_rate.Params(eta=0.02, lam=1.0, tau_mean=40.0, tau_var=40.0,
                                      tau_pre=16.0, tau_post=16.0, warmup=20,
                                      rounding="dither", var_init=0.05),
    "full_decorr_hom": lpl_rate.Params(eta=0.05, lam=0.5, lam_decorr=2.0, lam_hom=0.5,
                                       rate_target=0.1, tau_mean=30.0, tau_var=30.0,
                                       warmup=13, rounding="full", var_init=0.05),
    "own_target": lpl_rate.Params(eta=0.05, lam=0.5, lam_hom=1.0, tau_mean=25.0,
                                  tau_var=25.0, tau_post=10.0, warmup=24, var_init=0.05,
                                  rounding="dither"),
}


@pytest.mark.parametrize("name", list(PARAMS))
@pytest.mark.parametrize("k", [2, 8, 64])
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("fast", [False, True], ids=["reference", "fast"])
def test_c_epoch_step_equals_the_specification(lpl_lib, name, k, kind, fast):
    """Every step: the same weights, LPL state, epoch sums and step count, PRNG position and
    'ran' flag as the specification on the reference step."""
    p = PARAMS[name]
    n_in, n_out, seed, w_shift = 37, 11, 5, 7
    rng = np.random.default_rng(k * 7 + len(name))
    w0 = rng.integers(-60, 60, (n_out, n_in)).astype(np.int8)
    block = epoch_block(p, k, w_shift, n_out)
    ref, c = EpochRule(block, w0), CEpoch(lpl_lib, block, w0, seed)
    r = rng_init(seed)
    # the mean of x << A stays in the rule's int16 range: |x| < 2^(15 - A)
    lo, hi = {"u8": (0, 2), "i8": (-100, 100), "i16": (-127, 128)}[kind]
    T = 4 * k + k // 2 + 40                  # ends inside an epoch
    runs = 0
    for t in range(T):
        x = rng.integers(lo, hi, n_in) * (rng.random(n_in) < 0.3)
        s = (rng.random(n_out) < 0.2).astype(np.uint8)
        r, ran = ref.step(x, s, r)
        got = c.step(x, kind, s, fast)
        runs += ran
        assert got == int(ran), t
        assert (int(c.rng[0]), int(c.rng[1])) == (r.key, r.counter), t
        np.testing.assert_array_equal(c.weights(), ref.w, err_msg=f"step {t}")
        for i, (f, a) in enumerate(zip(lpl_codes.State._fields[:8], ref.state)):
            np.testing.assert_array_equal(c.state[i], a, err_msg=f"{f} step {t}")
        np.testing.assert_array_equal(c.state[8], ref.acc_pre, err_msg=f"epoch_pre {t}")
        np.testing.assert_array_equal(c.state[9], ref.acc_post, err_msg=f"epoch_post {t}")
        assert int(c.state[10][0]) == ref.n
    assert runs > 0 and ref.n > 0            # the rule ran, and the stream ended mid-epoch
    assert not np.array_equal(ref.w, w0)


def test_epoch_one_is_the_ordinary_step(lpl_lib):
    """epoch_log2 = 0: el_lpl_epoch_step is el_lpl_step on integers << A, every step, with no
    epoch arrays (the ABI's slots for them stay NULL)."""
    p = PARAMS["dither_filters"]
    n_in, n_out = 20, 6
    rng = np.random.default_rng(1)
    w = rng.integers(-60, 60, (n_out, n_in)).astype(np.int8)
    block = epoch_block(p, 1, 7, n_out)
    assert block == lpl_codes.pack_block(lpl_rate.codes_for(p, 7, n_out))
    c = CEpoch(lpl_lib, block, w, 3)
    st, r = lpl_rate.init_fixed(p, n_in, n_out), rng_init(3)
    for t in range(40):
        x = (rng.random(n_in) < 0.4).astype(np.int64)
        s = (rng.random(n_out) < 0.3).astype(np.int64)
        w, st, r, _ = lpl_rate.step_fixed(w, x << p.act_frac, s << p.act_frac, st, p, r, 7)
        assert c.step(x, "u8", s, True) == int(t >= p.warmup)
        np.testing.assert_array_equal(c.weights(), w)
        assert (int(c.rng[0]), int(c.rng[1])) == (r.key, r.counter)


def test_block_epoch_byte_limits(lib):
    """Byte 7 (epoch_log2) takes 0..6 and at most act_frac; anything else is refused at
    offset 7 (the engine loader names the byte; the scratch query answers 0)."""
    p = dataclasses.replace(PARAMS["dither_filters"], act_frac=4, factor_frac=20)
    good = bytearray(epoch_block(p, 16, 7, 5))
    assert good[7] == 4 and lib.el_native_lpl_scratch_bytes(_ptr(np.frombuffer(
        bytes(good), np.uint8)), 9, 5) > 0
    for bad_e in (5, 6, 7, 255):              # > act_frac 4, and > 6
        bad = bytearray(good)
        bad[7] = bad_e
        assert lib.el_native_lpl_scratch_bytes(_ptr(np.frombuffer(bytes(bad), np.uint8)), 9,
                                               5) == 0
    p8 = PARAMS["dither_filters"]            # act_frac 8: 6 is the largest epoch
    ok = bytearray(epoch_block(p8, 64, 7, 5))
    assert lib.el_native_lpl_scratch_bytes(_ptr(np.frombuffer(bytes(ok), np.uint8)), 9, 5) > 0
    ok[7] = 7
    assert lib.el_native_lpl_scratch_bytes(_ptr(np.frombuffer(bytes(ok), np.uint8)), 9, 5) == 0


def test_spec_blocks_equal_the_library_blocks():
    """The blocks written out from the specification (tests/_lpl_epoch.py) are the library's
    (lpl_rate.Params.epoch through lpl_block): the C tests below run what a host sends."""
    from edgelearn.kernels.lpl_codes import lpl_block
    for p in PARAMS.values():
        for k in (1, 2, 8, 64):
            assert epoch_block(p, k, 6.5, 11) == lpl_block(dataclasses.replace(p, epoch=k),
                                                           6.5, 11)


def test_c_engine_with_epoch_equals_the_device_engine(lib):
    """The C engine (NativeEngine) and edgelearn.device.engine on the headline model with LPL
    at epoch 8 on the hidden layer: equal features, readout, weights, PRNG position, rule runs
    and epoch sums, sample after sample (97-step samples: epochs span samples; the warm-up of
    200 steps is 25 epochs)."""
    from edgelearn.data import load_speech_digits
    from edgelearn.device.engine import default_lpl

    p = dataclasses.replace(default_lpl(), eta=1e-5, epoch=8)   # moves weights within the test
    q, la, ce, pe = headline_pair(lib, p)
    for x in load_speech_digits("new_user").x[:4]:
        w = run_equal(q, la, ce, pe, x[:-3])
        for field, (name, n) in enumerate([("epoch_pre", la.n_in), ("epoch_post", la.n_out),
                                           ("epoch_steps", 1)], start=9):
            assert np.array_equal(ce.array(3, 0, field, np.int32, n),
                                  w[f"state.{la.name}.lpl.{name}"]), name
    assert ce.counters()["lpl_updates"] == pe.counters["lpl_updates"] > 0
    assert ce.counters()["steps"] == 4 * 97 and 4 * 97 // 8 > 25
    assert not np.array_equal(ce.weights(0, la.n_out, la.n_in), la.weight)


@pytest.fixture(params=BOARD_IMPLS)
def board(request):
    """A client of the Python board (in process) or of the C firmware's host build."""
    from tests._c_device import board_client
    with board_client(request.param) as c:
        yield c


def test_out_of_range_epoch_byte_is_bad_param_at_byte_7(board):
    """LEARN and the config blob with the LPL block's byte 7 (epoch_log2) = 7 (above 6) or
    act_frac + 1: BAD_PARAM naming byte 7 of the block (8 + 7 in LEARN's payload, 48 + 8 + 7
    in the config blob) and the value, the same on both boards; nothing changes."""
    from edgelearn.device.config import compile_config
    from edgelearn.device.engine import EngineConfig
    from edgelearn.kernels.image import to_image
    from edgelearn.link import blobs
    from edgelearn.link import messages as m
    from edgelearn.link.client import DeviceErrorReply
    from edgelearn.rules.base import qlayer_w_shift
    from tests._inprocess_board import test_qnetwork

    qnet = test_qnetwork(seed=91)
    board.hello()
    board.upload(to_image(qnet))
    la = qnet.layers[0]
    p = dataclasses.replace(PARAMS["dither_filters"], act_frac=4, factor_frac=20, xi=1e-2)
    block = lpl_codes.pack_block(lpl_rate.codes_for(p, qlayer_w_shift(la), la.n_out))
    for value in (7, 5):                       # > 6; > act_frac 4
        bad = bytearray(block)
        bad[7] = value
        with pytest.raises(DeviceErrorReply, match="BAD_PARAM on LEARN") as err:
            board.learn(True, 0, block=bytes(bad), seed=1)
        assert (err.value.error.arg0, err.value.error.arg1) == (8 + 7, value)
    cfg = bytearray(blobs.encode_config(compile_config(
        EngineConfig(lpl_layers=(la.name,), hep=None, lpl=p), qnet)))
    assert cfg[48 + 8:48 + 8 + 64] == block
    for value in (7, 5):
        bad = bytearray(cfg)
        bad[48 + 8 + 7] = value
        with pytest.raises(DeviceErrorReply, match="BAD_PARAM on BLOB_END: config blob: byte 63") \
                as err:
            board.put_blob(m.BLOB_CONFIG, bytes(bad))
        assert (err.value.error.arg0, err.value.error.arg1) == (63, value)
    assert board.learn(False, 0).updates == 0
    with pytest.raises(DeviceErrorReply, match="BAD_STATE on SAMPLE"):
        board.sample(np.zeros((3, 40), int))         # no config was applied


@pytest.mark.parametrize("k", [0, 1], ids=["int8-input", "spike-input"])
@pytest.mark.parametrize("url", [None, "qemu"], ids=["host", "cortex-m3"])
def test_c_board_streams_lpl_with_an_epoch(url, k):
    """LEARN with a block of epoch 8 on the C board (host build; Cortex-M3 under QEMU, where
    the sums skip zero words), a stream sent in INFER frames of 7 steps (epochs cross
    frames), PULL: outputs, learned weights and the update count equal a numpy loop of
    qlayer_step and the specification's epoch rule."""
    from edgelearn.kernels.image import from_image
    from edgelearn.kernels.lif_fixed import init_qstate
    from edgelearn.kernels.lif_kernels import qlayer_step
    from edgelearn.rules.base import qlayer_w_shift
    from tests._c_device import CDevice, error_text
    from tests.test_c_device import _infer

    image = (VEC / "lif_rec_spikes.bin").read_bytes()
    qnet = from_image(image)
    with np.load(VEC / "lif_rec_spikes.npz", allow_pickle=False) as z:
        x = z["x"][:, 0, :]
    x = np.concatenate([x] * 6)[:-5]
    p = lpl_rate.Params(eta=0.02, lam=1.0, tau_mean=40.0, tau_var=40.0, tau_pre=16.0,
                        tau_post=16.0, warmup=12, rounding="dither", var_init=0.05)
    seed = 77
    la = qnet.layers[k]
    block = epoch_block(p, 8, qlayer_w_shift(la), la.n_out)
    layers = list(qnet.layers)
    states = [init_qstate(l) for l in layers]
    rule, rng = EpochRule(block, la.weight), rng_init(seed)
    outs, updates = [], 0
    for t in range(x.shape[0]):
        h = x[t:t + 1].astype(np.int64)
        for j, l in enumerate(layers):
            y, states[j] = qlayer_step(l, h, states[j])
            if j == k:
                rng, ran = rule.step(h[0], y[0], rng)
                updates += ran
                layers[j] = l.replace(weight=rule.w.copy())
            h = y
        outs.append(h[0])
    assert updates > 0 and rule.n > 0
    with CDevice(url=url) as dev:
        dev.hello()
        dev.upload(image)
        r = dev.request(0x21, struct.pack("<BBHI", 1, k, 0, seed) + block)
        assert r.type == 0xA1, error_text(r)
        got = _infer(dev, qnet, x, chunk=7)
        assert np.array_equal(got, np.array(outs))
        pulled = from_image(dev.read_all(0x22, 0x23))
        assert np.array_equal(pulled.layers[k].weight, rule.w)
        assert not np.array_equal(rule.w, la.weight)
        r = dev.request(0x21, bytes([0, k]))
        assert struct.unpack("<BBI", r.payload) == (0, 0xFF, updates)


def _epoch_session(board, epoch: int):
    """A board in sample mode with LPL at `epoch` on the hidden layer (no hEP), 13 steps run."""
    from edgelearn.device.config import compile_config
    from edgelearn.device.engine import EngineConfig, default_lpl
    from edgelearn.kernels.image import to_image
    from edgelearn.link import blobs
    from edgelearn.link import messages as m
    from tests._inprocess_board import test_qnetwork

    qnet = test_qnetwork(seed=93)
    board.hello()
    board.upload(to_image(qnet))
    cfg = EngineConfig(lpl_layers=("hidden",), hep=None, seed=4,
                       lpl=dataclasses.replace(default_lpl(), warmup=5, eta=1e-2, epoch=epoch))
    board.put_blob(m.BLOB_CONFIG, blobs.encode_config(compile_config(cfg, qnet)))
    board.set_mode(True, False)
    x = (np.random.default_rng(5).random((13, qnet.n_in)) < 0.3).astype(int)
    board.sample(x)
    return qnet, x


def test_weights_blob_epoch_sums_are_checked_on_restore(board):
    """A weights blob taken mid-epoch restores (the next sample runs as it did after the blob
    was taken); one whose epoch sums its step count cannot reach (epoch_steps >= 8 or < 0,
    spike sums above it, input sums outside it times the input range) is BAD_PARAM, the same
    arguments on both boards, and changes nothing."""
    from edgelearn.link import blobs
    from edgelearn.link import messages as m
    from edgelearn.link.client import DeviceErrorReply

    qnet, x = _epoch_session(board, 8)
    names = [la.name for la in qnet.layers]
    good = board.get_blob(m.BLOB_WEIGHTS)
    w = blobs.decode_weights(good, names)
    assert int(w["state.hidden.lpl.epoch_steps"][0]) == 13 % 8
    first = board.sample(x)
    after = board.get_blob(m.BLOB_WEIGHTS)
    board.put_blob(m.BLOB_WEIGHTS, good)
    assert board.get_blob(m.BLOB_WEIGHTS) == good
    again = board.sample(x)
    assert again[0] == first[0] and again[2] == first[2]
    np.testing.assert_array_equal(again[1], first[1])
    assert board.get_blob(m.BLOB_WEIGHTS) == after
    n = int(w["state.hidden.lpl.epoch_steps"][0])
    cases = {"epoch_steps": [8], "epoch_steps ": [-1], "epoch_post": [n + 1],
             "epoch_pre": [n * 127 + 1], "epoch_pre ": [-n * 128 - 1]}
    errors = []
    for key, (value,) in cases.items():
        bad = {k: v.copy() for k, v in w.items()}
        bad[f"state.hidden.lpl.{key.strip()}"][0] = value
        with pytest.raises(DeviceErrorReply, match="BAD_PARAM on BLOB_END: weights blob") \
                as err:
            board.put_blob(m.BLOB_WEIGHTS, blobs.encode_weights(bad, names))
        errors.append((err.value.error.arg0, err.value.error.arg1))
    assert board.get_blob(m.BLOB_WEIGHTS) == after
    assert errors == [(16, 0)] * len(cases)


def test_both_boards_price_the_epoch_alike():
    """TELEMETRY cycles_per_step (the cost model, firmware_sim/cycles.py = el_cycles.c) of the
    same run with LPL at epochs 1 and 8: equal on the Python and the C board, and the epoch's
    LPL share 1/8 of the rule plus the sums."""
    from edgelearn.link.client import Client
    from firmware_sim.cycles import COSTS, lpl_cycles
    from tests._c_device import CBoard
    from tests._inprocess_board import InProcessBoard

    got = {}
    for impl in ("python", "c"):
        for epoch in (1, 8):
            b = (CBoard(256 * 1024, 512 * 1024) if impl == "c" else
                 InProcessBoard("socketpair", ram=256 * 1024, flash=512 * 1024))
            with b:
                c = Client(b.host)
                hello = c.hello()
                _epoch_session(c, epoch)
                got[impl, epoch] = (c.telemetry().cycles_per_step, hello.profile)
    assert got["python", 1] == got["c", 1] and got["python", 8] == got["c", 8]
    core = [v for k, v in COSTS.items() if got["c", 1][1].startswith(k)]
    assert core, got
    rule = lpl_cycles(core[0], 40, 32)
    saved = got["c", 1][0] - got["c", 8][0]
    assert abs(saved - (rule - lpl_cycles(core[0], 40, 32, 8))) <= 1
    assert lpl_cycles(core[0], 40, 32, 8) == pytest.approx(rule / 8 + 72 * core[0].c_lpl_acc)
