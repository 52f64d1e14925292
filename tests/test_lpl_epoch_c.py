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
        st = lpl_codes.init_state(block_codes(block), n_in, n_out)
        on = block[7] > 0
        self.state = [np.ascontiguousarray(a) for a in st] + [
            np.zeros(n_in if on else 0, np.int32), np.zeros(n_out if on else 0, np.int32),
            np.zeros(1 if on else 0, np.int32)]
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
        for i, (f, a) in enumerate(zip(lpl_codes.State._fields, ref.state)):
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
