"""One interface, three implementations of the integer LIF kernel (edgelearn.kernels.lif_kernels):
the reference step (docs/fixed-point.md as it reads), the optimised numpy step (dense, event
and auto accumulation) and the C kernel give the same integers - on the shared vectors
(tests/vectors/lif_*) and on random networks, inputs and starting states."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _fixed_nets import TRACES, assert_same_recording, qnetworks
from edgelearn.errors import InputError
from edgelearn.kernels import lif_fast, lif_kernels, native
from edgelearn.kernels.image import from_image, to_image
from edgelearn.kernels.lif_fixed import QState, reference_step
from edgelearn.kernels.lif_kernels import qlayer_step, qrun

VEC = Path(__file__).parent / "vectors"
ALL = TRACES


@pytest.fixture(scope="module")
def lib():
    lib = native.library()
    assert lib is not None, native.unavailable_reason()
    return lib


def _runs(binary: bool) -> list[tuple[str, str]]:
    """(impl, mode) pairs that apply to an input (the event path needs binary input)."""
    modes = ("dense", "event", "auto") if binary else ("dense", "auto")
    return [("reference", "auto")] + [(impl, m) for impl in ("optimised", "native")
                                      for m in modes]


def _vector_cases():
    out = []
    for image in sorted(VEC.glob("lif_*.bin")):
        with np.load(image.with_suffix(".npz"), allow_pickle=False) as z:
            x = z["x"]
        for impl, mode in _runs(bool(x.min() >= 0 and x.max() <= 1)):
            out.append(pytest.param(image, impl, mode, id=f"{image.stem}-{impl}-{mode}"))
    return out


@pytest.mark.parametrize("image,impl,mode", _vector_cases())
def test_every_implementation_reproduces_the_shared_vectors(image, impl, mode, lib):
    qnet = from_image(image.read_bytes())
    assert to_image(qnet) == image.read_bytes()
    with np.load(image.with_suffix(".npz"), allow_pickle=False) as z:
        v = {k: z[k] for k in z.files}
    rec = qrun(qnet, v["x"], record=ALL, mode=mode, impl=impl, lib=lib)
    assert np.array_equal(rec.output, v["output"])
    for la in qnet.layers:
        assert np.array_equal(rec.current[la.name], v[f"current__{la.name}"]), la.name
        assert np.array_equal(rec.membrane[la.name], v[f"membrane__{la.name}"]), la.name
        if la.spiking:
            assert np.array_equal(rec.spikes[la.name], v[f"spikes__{la.name}"]), la.name


def _inputs(qnet, rng, T, batch, spikes):
    if spikes:
        return (rng.random((T, batch, qnet.n_in)) < 0.3).astype(np.int64)
    m = 1 << (qnet.input_bits - 1)
    return rng.integers(-m, m, (T, batch, qnet.n_in))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(qnetworks(), st.integers(1, 4), st.booleans())
def test_random_networks_give_the_same_integers_in_every_implementation(net_rng, batch, spikes):
    lib = native.library()
    assert lib is not None, native.unavailable_reason()
    qnet, rng, _ = net_rng
    x = _inputs(qnet, rng, 12, batch, spikes)
    ref = qrun(qnet, x, record=ALL, impl="reference")
    for impl, mode in _runs(spikes)[1:]:
        got = qrun(qnet, x, record=ALL, mode=mode, impl=impl, lib=lib)
        assert_same_recording(got, ref, f"{impl}/{mode}")
        if impl == "optimised":
            for a, b in zip(got.final_state, ref.final_state):
                assert np.array_equal(a.current, b.current)
                assert np.array_equal(a.membrane, b.membrane)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(qnetworks(), st.integers(1, 3), st.booleans(), st.sampled_from(["dense", "auto"]))
def test_one_layer_step_from_any_state_agrees(net_rng, batch, spikes, mode):
    """A step from random states anywhere in the state range (spikes pending, saturation on
    both sides, large decayed values), not only the states a run from zero reaches."""
    qnet, rng, (lo, hi) = net_rng
    la = qnet.layers[0]
    x = _inputs(qnet, rng, 1, batch, spikes)[0]
    edge = np.array([lo, lo + 1, -1, 0, 1, hi - 1, hi])
    pick = lambda: np.where(rng.random((batch, la.n_out)) < 0.3,           # noqa: E731
                            rng.choice(edge, (batch, la.n_out)),
                            rng.integers(lo, hi, (batch, la.n_out), endpoint=True))
    state = QState(pick(), pick())
    counts = {impl: np.zeros(2, np.int64) for impl in lif_kernels.IMPLEMENTATIONS}
    out = {impl: qlayer_step(la, x, state, mode=mode, impl=impl, clip_counts=counts[impl])
           for impl in lif_kernels.IMPLEMENTATIONS}
    (y_r, s_r), (y_o, s_o) = out["reference"], out["optimised"]
    assert np.array_equal(y_r, y_o)
    assert np.array_equal(s_r.current, s_o.current) and np.array_equal(s_r.membrane, s_o.membrane)
    assert np.array_equal(counts["reference"], counts["optimised"])
    # the int32 arrays a device keeps give the same step
    narrow = QState(state.current.astype(np.int32 if la.state_bits == 32 else np.int16),
                    state.membrane.astype(np.int32 if la.state_bits == 32 else np.int16))
    for impl in lif_kernels.IMPLEMENTATIONS:
        y, s = qlayer_step(la, x, narrow, mode=mode, impl=impl)
        assert np.array_equal(y, y_r) and np.array_equal(s.membrane, s_r.membrane), impl


def test_reference_step_is_the_written_rule_on_a_hand_case():
    """Two neurons, one step, numbers worked by hand from docs/fixed-point.md section 5."""
    from edgelearn.kernels.lif_fixed import QLayer
    la = QLayer("h", np.array([[3, -2], [1, 1]]), alpha=np.array([2048, 4096]),
                beta=np.array([3072, 0]), threshold=np.array([10, 5]), reset="subtract",
                bias=np.array([1, 0]), w_shift=-1)
    state = QState(np.array([[5, -3]]), np.array([[11, 4]]))
    # A = [3*2 - 2*1, 2 + 1] = [4, 3];  C = round_shift(A, 1) = [(4+1)>>1, (3+1)>>1] = [2, 2]
    # I' = [round_shift(5*2048, 12) = 3, -3] + C + b = [3+2+1, -3+2] = [6, -1]
    # R = U > theta = [1, 0];  U' = [round_shift(11*3072, 12) = 8, 0] + I' - theta R
    #    = [8 + 6 - 10, 0 - 1] = [4, -1];  S' = U' > theta = [0, 0]
    y, s = reference_step(la, np.array([[2, 1]]), state)
    assert s.current.tolist() == [[6, -1]] and s.membrane.tolist() == [[4, -1]]
    assert y.tolist() == [[0, 0]]
    y2, s2 = lif_fast.step(la, np.array([[2, 1]]), state)
    assert np.array_equal(y2, y) and np.array_equal(s2.membrane, s.membrane)


def test_unknown_implementation_and_native_state_are_refused():
    qnet = from_image((VEC / "lif_ff_int8.bin").read_bytes())
    x = np.zeros((2, 1, qnet.n_in), np.int64)
    with pytest.raises(InputError, match="implementation must be one of"):
        lif_kernels.layer_step("native")               # sequences only
    with pytest.raises(InputError, match="implementation must be one of"):
        qrun(qnet, x, impl="fast")
    with pytest.raises(InputError, match="mode must be one of"):
        qrun(qnet, x, impl="reference", mode="sparse")
    with pytest.raises(InputError, match="zero state"):
        qrun(qnet, x, impl="native", state=qrun(qnet, x).final_state)
