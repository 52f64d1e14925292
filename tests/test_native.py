"""The C kernel as a shared library (edgelearn.kernels.native): bit-exact with the numpy LPL
rule on the shared vectors and on random streams (its LIF kernel is checked with the other
LIF implementations in tests/test_lif_kernels.py); built once per source hash; numpy with a
one-line notice when unavailable."""

import itertools
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from _fixed_nets import qnetworks
from edgelearn.fixed import rng_init
from edgelearn.kernels import native
from edgelearn.rules import lpl_rate
from _native_pair import headline_pair, run_equal
from _vector_state import stored_state

ROOT = Path(__file__).resolve().parents[1]
VEC = ROOT / "tests" / "vectors"


@pytest.fixture(scope="module")
def lib():
    lib = native.library()
    assert lib is not None, native.unavailable_reason()
    return lib


#: the library as used (vectorised, -march=native) and its scalar build (cbuild "lib-scalar":
#: no auto-vectorisation, no -march=native): the LPL tests run on both, so the loops written
#: for the vectoriser and the plain form of the same C stay equal to the numpy rule
LPL_BUILDS = ("lib", "lib-scalar")


@pytest.fixture(scope="module", params=LPL_BUILDS)
def lpl_lib(request):
    return native.library() if request.param == "lib" else native.load(request.param)


def _rule_cases():
    m = json.loads((VEC / "rules" / "manifest.json").read_text())
    return [e for e in m["vectors"] if e["rule"] == "lpl_rate"]


def _params(e) -> lpl_rate.Params:
    conv = {k: (math.inf if v == "inf" else -math.inf if v == "-inf" else v)
            for k, v in e["params"].items()}
    return lpl_rate.Params(**conv)


@pytest.mark.parametrize("entry", _rule_cases(), ids=lambda e: e["name"])
@pytest.mark.parametrize("fast", [False, True], ids=["reference", "fast"])
def test_lpl_rule_vectors(lpl_lib, entry, fast):
    p = _params(entry)
    with np.load(VEC / entry["file"], allow_pickle=False) as z:
        v = {k: z[k] for k in z.files}
    w = v["w0"].astype(np.int8)
    st_ = lpl_rate.init_fixed(p, entry["n_in"], entry["n_out"])
    rng = rng_init(entry["seed"])
    for t in range(entry["steps"]):
        gain = v["gain"][t] if "gain" in v else None
        w, st_, rng, stats = native.lpl_step(w, v["pre"][t], v["post"][t], st_, p, rng,
                                             entry["w_shift"], gain, fast=fast, lib=lpl_lib)
        assert np.array_equal(w, v["w"][t]), t
        assert tuple(stats) == tuple(v["stats"][t]), t
    for f, arr in zip(st_._fields, st_):
        assert np.array_equal(arr, stored_state(v, f)), f
    assert rng.counter == int(v["rng_counter"][0])


# -- random LPL streams ---------------------------------------------------------------------

@st.composite
def lpl_cases(draw):
    kw = dict(
        eta=draw(st.sampled_from([1e-8, 1e-7, 1e-5, 1e-3, 0.05])),
        lam=draw(st.sampled_from([0.0, 0.03, 1.0])), pred=draw(st.sampled_from([0.0, 1.0])),
        lam_decorr=draw(st.sampled_from([0.0, 0.0, 2.0])),
        lam_hom=draw(st.sampled_from([0.0, 0.5])), tau_mean=draw(st.sampled_from([5.0, 300.0])),
        tau_var=draw(st.sampled_from([4.0, 300.0])),
        tau_pre=draw(st.sampled_from([0.0, 20.0])), tau_post=draw(st.sampled_from([0.0, 6.0])),
        var_init=draw(st.sampled_from([0.01, 1.0])), warmup=draw(st.integers(0, 5)),
        rounding=draw(st.sampled_from(["full", "dither", "dither"])),
        w_min=draw(st.sampled_from([-math.inf, -0.4])), w_max=draw(st.sampled_from([math.inf, 0.4])))
    if kw["lam_hom"] > 0 and draw(st.booleans()):
        kw["rate_target"] = 0.1
    if kw["lam_hom"] > 0 and "rate_target" not in kw:
        kw["warmup"] = max(kw["warmup"], 1)
    n_in, n_out = draw(st.integers(1, 70)), draw(st.integers(1, 24))
    return lpl_rate.Params(**kw), n_in, n_out, draw(st.integers(0, 2**31)), draw(st.booleans())


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lpl_cases())
def test_random_lpl_streams_match_numpy(case):
    libs = [native.library()] + [native.load(b) for b in LPL_BUILDS[1:]]
    p, n_in, n_out, seed, spikes = case
    rng = np.random.default_rng(seed)
    w_shift = float(rng.choice([6.0, 7.0, 7.5]))
    lo, hi = -60, 60
    w0 = rng.integers(lo, hi + 1, (n_out, n_in)).astype(np.int8)
    T = 20
    if spikes:
        pre = (rng.random((T, n_in)) < 0.1).astype(np.int64) << p.act_frac
        post = (rng.random((T, n_out)) < 0.2).astype(np.int64) << p.act_frac
    else:
        pre = rng.integers(-3000, 3000, (T, n_in))
        post = rng.integers(-3000, 3000, (T, n_out))
    gain = rng.integers(1024, 4097, (T, n_out)) if rng.random() < 0.3 else None
    runs = []
    for impl, lib in [("numpy", None)] + [(f, b) for b in libs for f in ("reference", "fast")]:
        w, s_, r = w0.copy(), lpl_rate.init_fixed(p, n_in, n_out), rng_init(seed)
        stats = []
        for t in range(T):
            g = None if gain is None else gain[t]
            if impl == "numpy":
                w, s_, r, s = lpl_rate.step_fixed(w, pre[t], post[t], s_, p, r, w_shift, g)
            else:
                w, s_, r, s = native.lpl_step(w, pre[t], post[t], s_, p, r, w_shift, g,
                                              fast=impl == "fast", lib=lib)
            stats.append(tuple(s))
        runs.append((w, s_, r, stats))
    ref = runs[0]
    for w, s_, r, stats in runs[1:]:
        assert np.array_equal(w, ref[0])
        assert r == ref[2]
        assert stats == ref[3]
        for a, b in zip(s_, ref[1]):
            assert np.array_equal(a, b)


def test_window_search_path_is_exercised(lpl_lib):
    """Deployment-like LPL (tiny eta, dither, filtered rates) runs the window search and gives
    the numpy rule's integers, weight changes included."""
    p = lpl_rate.Params(eta=3e-5, lam=0.03, tau_mean=200.0, tau_var=200.0, tau_pre=20.0,
                        tau_post=20.0, warmup=3, rounding="dither", var_init=0.01)
    rng = np.random.default_rng(3)
    n_in, n_out = 64, 128
    w_np = w_c = rng.integers(-60, 61, (n_out, n_in)).astype(np.int8)
    s_np = lpl_rate.init_fixed(p, n_in, n_out)
    s_c = lpl_rate.init_fixed(p, n_in, n_out)
    r_np = r_c = rng_init(4)
    before = native.lpl_path_counts(lpl_lib)
    changed = 0
    for t in range(200):
        pre = (rng.random(n_in) < 0.05).astype(np.int64) << 8
        post = (rng.random(n_out) < 0.1).astype(np.int64) << 8
        w_np, s_np, r_np, st_np = lpl_rate.step_fixed(w_np, pre, post, s_np, p, r_np, 7.0)
        w_c, s_c, r_c, st_c = native.lpl_step(w_c, pre, post, s_c, p, r_c, 7.0, lib=lpl_lib)
        assert tuple(st_c) == tuple(st_np)
        changed += st_np.n_changed
    after = native.lpl_path_counts(lpl_lib)
    assert np.array_equal(w_c, w_np) and r_c == r_np
    assert after["window"] > before["window"]
    assert changed > 0


def test_blocked_window_search_runs_each_kind_of_row(lpl_lib):
    """The host build's window search (bitmap of the windows' buckets) on streams where rows
    are passed by the bitmap, scanned for a marked bucket and scanned for a window wider
    than a bucket: the numpy rule's integers at every step, weight changes included."""
    before = native.lpl_window_rows(lpl_lib)
    changed = 0
    for eta, n_in, n_out in ((1e-6, 64, 128), (1e-5, 300, 50)):
        p = lpl_rate.Params(eta=eta, lam=0.03, tau_mean=50.0, tau_var=50.0, tau_pre=20.0,
                            tau_post=6.0, warmup=2, rounding="dither", var_init=0.01)
        rng = np.random.default_rng(3)
        w_np = w_c = rng.integers(-60, 61, (n_out, n_in)).astype(np.int8)
        s_np = lpl_rate.init_fixed(p, n_in, n_out)
        s_c = lpl_rate.init_fixed(p, n_in, n_out)
        r_np = r_c = rng_init(3)
        for t in range(60):
            pre, post = rng.integers(-300, 300, n_in), rng.integers(-300, 300, n_out)
            w_np, s_np, r_np, st_np = lpl_rate.step_fixed(w_np, pre, post, s_np, p, r_np, 7.0)
            w_c, s_c, r_c, st_c = native.lpl_step(w_c, pre, post, s_c, p, r_c, 7.0, lib=lpl_lib)
            assert tuple(st_c) == tuple(st_np), t
            assert np.array_equal(w_c, w_np), t
            changed += st_np.n_changed
        assert r_c == r_np
        for a, b in zip(s_c, s_np):
            assert np.array_equal(a, b)
    after = native.lpl_window_rows(lpl_lib)
    assert all(after[k] > before[k] for k in ("marked", "wide", "tested")), (before, after)
    assert changed > 0


@pytest.mark.parametrize("act_frac, factor_frac, eta, amplitude",
                         [(8, 23, 1e-5, 3000), (4, 1, 0.1, 16)], ids=["S31", "S5"])
def test_window_search_on_the_smallest_layers_matches_numpy(lpl_lib, act_frac, factor_frac,
                                                             eta, amplitude):
    """The host window search's bitmap on 1, 2, 7, 8 and 9 inputs, four streams each (its
    byte repeating bucket 0, the bytes of ones for wide rows and the spare byte sit right
    after a bitmap of a few bytes): at S = 31, narrow rows tested against the bitmap, some
    of whose windows wrap past 2^S onto a marked bucket 0 (a build without the repeated bit
    fails here); at S = act_frac + factor_frac = 5, fewer window values than bitmap bits (a
    build that does not clamp the bitmap to 2^S bits fails here; every row is wide). The
    numpy rule's integers at every step."""
    before, rows0 = native.lpl_path_counts(lpl_lib)["window"], native.lpl_window_rows(lpl_lib)
    changed = 0
    for n_in, seed in itertools.product((1, 2, 7, 8, 9), range(4)):
        n_out = 1000
        p = lpl_rate.Params(eta=eta, lam=0.03, tau_mean=50.0, tau_var=50.0, tau_pre=20.0,
                            tau_post=6.0, warmup=1, rounding="dither", var_init=0.01, xi=0.1,
                            ema_frac=12, act_frac=act_frac, factor_frac=factor_frac)
        rng = np.random.default_rng(seed)
        w_np = w_c = rng.integers(-60, 61, (n_out, n_in)).astype(np.int8)
        s_np, s_c = lpl_rate.init_fixed(p, n_in, n_out), lpl_rate.init_fixed(p, n_in, n_out)
        r_np = r_c = rng_init(seed)
        for t in range(40):
            pre = rng.integers(-amplitude, amplitude + 1, n_in)
            post = rng.integers(-amplitude, amplitude + 1, n_out) * (rng.random(n_out) < 0.3)
            w_np, s_np, r_np, st_np = lpl_rate.step_fixed(w_np, pre, post, s_np, p, r_np, 7.0)
            w_c, s_c, r_c, st_c = native.lpl_step(w_c, pre, post, s_c, p, r_c, 7.0, lib=lpl_lib)
            assert tuple(st_c) == tuple(st_np) and np.array_equal(w_c, w_np), (n_in, seed, t)
            changed += st_np.n_changed
        assert r_c == r_np
        for a, b in zip(s_c, s_np):
            assert np.array_equal(a, b), n_in
    rows = native.lpl_window_rows(lpl_lib)
    assert native.lpl_path_counts(lpl_lib)["window"] > before
    kinds = ("marked", "tested") if act_frac + factor_frac == 31 else ("wide",)
    assert all(rows[k] > rows0[k] for k in kinds), (rows0, rows)
    assert changed > 0


def test_window_search_above_65536_inputs_matches_numpy(lpl_lib):
    """The host build's window search indexes inputs in uint32 (the Cortex-M form's uint16
    lists stop at 65535, EL_MAX_UNITS): a 70,000-input layer, sparse rates, takes the window
    path and gives the numpy rule's integers at every step."""
    n_in, n_out = 70_000, 3
    p = lpl_rate.Params(eta=1e-5, lam=0.03, tau_mean=50.0, tau_var=50.0, tau_pre=20.0,
                        tau_post=6.0, warmup=2, rounding="dither", var_init=0.01)
    rng = np.random.default_rng(3)
    w_np = w_c = rng.integers(-60, 61, (n_out, n_in)).astype(np.int8)
    s_np, s_c = lpl_rate.init_fixed(p, n_in, n_out), lpl_rate.init_fixed(p, n_in, n_out)
    r_np = r_c = rng_init(3)
    window, changed = native.lpl_path_counts(lpl_lib)["window"], 0
    for t in range(8):
        pre = rng.integers(-300, 300, n_in) * (rng.random(n_in) < 0.05)
        post = rng.integers(-300, 300, n_out)
        w_np, s_np, r_np, st_np = lpl_rate.step_fixed(w_np, pre, post, s_np, p, r_np, 7.0)
        w_c, s_c, r_c, st_c = native.lpl_step(w_c, pre, post, s_c, p, r_c, 7.0, lib=lpl_lib)
        assert tuple(st_c) == tuple(st_np) and np.array_equal(w_c, w_np), t
        changed += st_np.n_changed
    assert native.lpl_path_counts(lpl_lib)["window"] - window == 6      # every step after warmup
    assert changed > 0


def test_rate_filters_at_the_int32_bound_match_numpy(lpl_lib):
    """Host builds filter rates in int32 when every |x| 2^E and |trace| is at most
    M = (2^31 - 1 - 2^s) / 2^13 (el_lpl.c, filter_fits32), else in int64. With k = 4095 (tau
    15.5) every trace is driven to -X, then every input jumps to +X (the largest difference),
    for X at M (int32: the sum reaches 2^31 - 2^s) and at 2 M (int64; int32 would overflow):
    every step equals the numpy rule."""
    p = lpl_rate.Params(eta=1e-7, lam=0.03, tau_mean=50.0, tau_var=50.0, tau_pre=15.5,
                        tau_post=15.5, warmup=0, rounding="dither", var_init=0.01)
    code = lpl_rate.codes_for(p, 7.0, 4).pre
    assert code.k == 4095
    bound = ((1 << 31) - 1 - (1 << code.s)) >> 13
    edge = bound >> p.ema_frac                           # the largest |x| with |x| 2^E <= M
    n_in, n_out = 5, 4
    w_np = w_c = np.zeros((n_out, n_in), np.int8)
    s_np, s_c = lpl_rate.init_fixed(p, n_in, n_out), lpl_rate.init_fixed(p, n_in, n_out)
    r_np = r_c = rng_init(5)
    tops = []
    for level in (edge, 2 * edge):
        tops.append(0)
        for t in range(140):
            sign = -1 if t < 120 else 1
            pre = sign * np.array([level, level, level, level - 1, 1])
            post = sign * np.array([level, level, 3, 0])
            w_np, s_np, r_np, st_np = lpl_rate.step_fixed(w_np, pre, post, s_np, p, r_np, 7.0)
            w_c, s_c, r_c, st_c = native.lpl_step(w_c, pre, post, s_c, p, r_c, 7.0, lib=lpl_lib)
            for f, a, b in zip(s_np._fields, s_c, s_np):
                assert np.array_equal(a, b), (level, t, f)
            assert tuple(st_c) == tuple(st_np) and r_c == r_np, (level, t)
            tops[-1] = max(tops[-1], int(np.abs(s_np.pre_trace).max()))
    assert 0.99 * bound < tops[0] <= bound and tops[1] > 1.9 * bound


# -- build and fallback ---------------------------------------------------------------------

def _python(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env}, cwd=ROOT)


def test_numpy_fallback_with_one_line_notice():
    code = ("import numpy as np; from edgelearn.kernels import lif_kernels;"
            "from edgelearn.kernels.image import from_image;"
            "q = from_image(open('tests/vectors/lif_ff_int8.bin','rb').read());"
            "z = np.load('tests/vectors/lif_ff_int8.npz');"
            "r = lif_kernels.qrun(q, z['x'], impl='native');"
            "r = lif_kernels.qrun(q, z['x'], impl='native');"
            "print(np.array_equal(r.output, z['output']))")
    r = _python(code, {"EDGELEARN_NATIVE": "0"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "True"
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "numpy kernel" in lines[0] and "EDGELEARN_NATIVE=0" in lines[0]


def test_build_is_cached_by_source_hash(tmp_path):
    fw = tmp_path / "firmware"
    shutil.copytree(ROOT / "firmware", fw, ignore=shutil.ignore_patterns("build"))
    cache = tmp_path / "cache"
    env = {"EDGELEARN_FIRMWARE": str(fw), "EDGELEARN_CACHE": str(cache)}
    code = "from edgelearn.kernels import native; print(native.library()._name)"
    first = _python(code, env)
    assert first.returncode == 0 and first.stderr == "", first.stderr
    path = Path(first.stdout.strip())
    assert path.parent == cache and path.is_file()
    mtime = path.stat().st_mtime_ns
    again = _python(code, env)
    assert Path(again.stdout.strip()) == path and path.stat().st_mtime_ns == mtime
    src = fw / "src" / "el_lif.c"
    src.write_text(src.read_text() + "\n/* changed */\n")
    changed = _python(code, env)
    assert changed.returncode == 0
    assert Path(changed.stdout.strip()) != path
    assert not list(cache.glob(".el-*"))      # no temporary left behind
    assert len(list(cache.glob("el-lib-*.so"))) == 2


def test_native_engine_equals_the_device_engine(lib):
    """The C engine (the host's fast path) and edgelearn.device.engine on the headline model
    with LPL on the hidden layer: equal features, readout accumulators, learned weights and
    PRNG position, sample after sample (past the LPL warm-up)."""
    from edgelearn.data import load_speech_digits
    from edgelearn.device.engine import default_lpl

    q, la, ce, pe = headline_pair(lib, default_lpl())
    for x in load_speech_digits("new_user").x[:4]:      # 400 steps, warm-up 200
        run_equal(q, la, ce, pe, x)
    assert ce.counters()["lpl_updates"] == pe.counters["lpl_updates"] > 0
    assert not np.array_equal(ce.weights(0, la.n_out, la.n_in), la.weight)


def test_edgelearn_run_uses_the_c_kernel_for_quantized_models(tmp_path):
    """`edgelearn run` on a quantized model: the C integer kernel by default, numpy with
    --backend numpy, identical outputs; a float model refuses --backend c in one line."""
    from edgelearn.io.onnx_quant import save_quant_onnx
    from edgelearn.kernels.image import from_image

    image = (VEC / "lif_rec_spikes.bin").read_bytes()
    qnet = from_image(image)
    model = tmp_path / "q.onnx"
    save_quant_onnx(qnet, model)
    with np.load(VEC / "lif_rec_spikes.npz", allow_pickle=False) as z:
        x, want = z["x"], z["output"]
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    outs = {}
    for backend in ("default", "numpy"):
        extra = [] if backend == "default" else ["--backend", "numpy"]
        r = subprocess.run([sys.executable, "-m", "edgelearn", "run", str(model), "--input",
                            str(tmp_path / "x.npy"), "-o", str(tmp_path / f"{backend}.npz"),
                            *extra], capture_output=True, text=True, cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert r.returncode == 0, r.stderr
        assert "numpy kernel" not in r.stderr          # the C library ran (no fallback notice)
        with np.load(tmp_path / f"{backend}.npz", allow_pickle=False) as z:
            outs[backend] = z["output"]
    assert np.array_equal(outs["default"], want) and np.array_equal(outs["numpy"], want)
    r = subprocess.run([sys.executable, "-m", "edgelearn", "run",
                        str(ROOT / "models" / "randman_small.onnx"), "--input",
                        str(tmp_path / "x.npy"), "-o", str(tmp_path / "f.npz"), "--backend", "c"],
                       capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "quantized" in r.stderr


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(qnetworks())
def test_native_engine_takes_every_input_width(net_rng):
    """The C engine steps inputs of 2..16 bits (an 8-bit network's narrowed by
    el_native_engine_run, wider ones converted by the engine) to the device engine's
    readout accumulators, whether the array holds int64 (narrowed in C a step at a time),
    int16, int8 (when the values fit) or int32 (converted to int64 first)."""
    from edgelearn.device.engine import Engine, EngineConfig
    from edgelearn.kernels.image import to_image
    from edgelearn.memory.arena import Arena

    qnet, rng, _ = net_rng
    assume(any(la.spiking for la in qnet.layers))      # the engine takes features from spikes
    m = 1 << (qnet.input_bits - 1)
    x = rng.integers(-m, m, (12, qnet.n_in))
    pe = Engine(qnet, Arena(1 << 22), None, EngineConfig(hep=None, readout="max", seed=1))
    pe.run_sample(x)
    dtypes = (np.int64, np.int32, np.int16) + ((np.int8,) if qnet.input_bits <= 8 else ())
    for dtype in dtypes:
        ce = native.NativeEngine(native.library(), to_image(qnet), readout="max", seed=1)
        ce.begin()
        ce.run(x.astype(dtype))
        assert np.array_equal(ce.array(1, 0, 0, np.int32, qnet.n_out), pe.output), dtype


def test_engine_run_refuses_an_input_of_the_wrong_shape(lib):
    """el_native_engine_run reads T x n_in values: an input of another width, or not 2-D, is
    refused before C reads past it, with the shape it expected."""
    from edgelearn.adapt.bundle import load_bundle
    from edgelearn.errors import ModelError
    from edgelearn.kernels.image import to_image

    q = load_bundle(ROOT / "models" / "speech_digits.onnx").qnet
    ce = native.NativeEngine(lib, to_image(q), seed=1)
    ce.begin()
    for shape in ((5, q.n_in - 1), (5, q.n_in + 1), (q.n_in,), (2, 5, q.n_in)):
        with pytest.raises(ModelError, match=rf"input must be \[T, {q.n_in}\], got shape"):
            ce.run(np.zeros(shape, np.int64))
    ce.run(np.zeros((5, q.n_in), np.int64))
    assert ce.counters()["steps"] == 5



def test_engine_run_in_c_refuses_a_value_width_it_does_not_know(lib):
    """el_native_engine_run takes 1-, 2- or 8-byte values; any other width returns -1 and steps
    nothing (NativeEngine.run never passes one: it converts such arrays to int64)."""
    from edgelearn.adapt.bundle import load_bundle
    from edgelearn.kernels.image import to_image

    q = load_bundle(ROOT / "models" / "speech_digits.onnx").qnet
    ce = native.NativeEngine(lib, to_image(q), seed=1)
    ce.begin()
    x = np.zeros((3, q.n_in), np.int32)
    assert lib.el_native_engine_run(ce._ne_addr, x.ctypes.data, 4, 3, None) == -1
    assert ce.counters()["steps"] == 0
    ce.run(x)                                            # the Python side converts int32
    assert ce.counters()["steps"] == 3
