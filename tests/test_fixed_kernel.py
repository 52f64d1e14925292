"""Integer LIF kernel: dense == event, float32 BLAS path == int64 path, float twin bound, image."""

import numpy as np
import pytest

from edgelearn.errors import InputError, ModelError, ModelFileError
from edgelearn.kernels.image import from_image, to_image
from edgelearn.kernels.lif_fast import accumulate_dense, accumulate_event
from edgelearn.kernels.lif_fixed import QLayer, QNetwork, dequantize, init_qnetwork_state
from edgelearn.kernels.lif_kernels import qnetwork_step, qrun
from edgelearn.runtime.reference import run


def make_qnet(seed=0, n_in=30, n_h=20, n_out=4, recurrent=True, reset="subtract"):
    rng = np.random.default_rng(seed)
    h = QLayer("h", rng.integers(-127, 128, (n_h, n_in)), alpha=rng.integers(2000, 4000, n_h),
               beta=rng.integers(3000, 4096, n_h), threshold=np.full(n_h, 1200), reset=reset,
               bias=rng.integers(-50, 50, n_h), w_shift=1, v_shift=0,
               recurrent=rng.integers(-127, 128, (n_h, n_h)) if recurrent else None,
               scale=1 / 1200)
    o = QLayer("o", rng.integers(-127, 128, (n_out, n_h)), alpha=3000, beta=3800, threshold=0,
               spiking=False, w_shift=2, scale=1e-3)
    return QNetwork((h, o), name="t", meta={"readout": "max"})


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("activity", [0.0, 0.02, 0.5])
def test_event_path_equals_dense(batch, activity):
    qnet = make_qnet()
    rng = np.random.default_rng(1)
    x = (rng.random((25, batch, 30)) < activity).astype(np.int64)
    dense = qrun(qnet, x, mode="dense", record=("spikes", "membrane"))
    event = qrun(qnet, x, mode="event", record=("spikes", "membrane"))
    auto = qrun(qnet, x, mode="auto")
    assert np.array_equal(dense.output, event.output)
    assert np.array_equal(dense.output, auto.output)
    assert np.array_equal(dense.membrane["h"], event.membrane["h"])


def test_event_path_refuses_non_binary_input():
    qnet = make_qnet()
    with pytest.raises(InputError, match="binary"):
        qrun(qnet, np.full((2, 1, 30), 2), mode="event")


def test_float32_blas_accumulator_matches_int64():
    rng = np.random.default_rng(2)
    # fan-in 3000 with int8 inputs: the exact sum can exceed 2^24, so the int64 path is taken
    la = QLayer("big", rng.integers(-127, 128, (5, 3000)), alpha=0, beta=0, threshold=1)
    x = rng.integers(-127, 128, (3, 3000))
    ref = x.astype(np.int64) @ la.weight.astype(np.int64).T
    assert np.array_equal(accumulate_dense(la, x), ref)
    xs = (rng.random((3, 3000)) < 0.3).astype(np.int64)      # binary: float32 path is exact
    ref = xs @ la.weight.astype(np.int64).T
    assert np.array_equal(accumulate_dense(la, xs), ref)
    assert np.array_equal(accumulate_event(la, xs), ref)


def test_step_equals_run():
    qnet = make_qnet(reset="zero")
    rng = np.random.default_rng(3)
    x = rng.integers(-5, 6, (15, 2, 30))
    rec = qrun(qnet, x)
    st = init_qnetwork_state(qnet, 2)
    for t in range(15):
        out, st = qnetwork_step(qnet, x[t], st)
        assert np.array_equal(out, rec.output[t])


def test_float_twin_bound_on_readout():
    """Without spike decisions, |U_int - U_float/scale| <= (0.5 + 0.5/(1-a)) / (1-b) LSB."""
    rng = np.random.default_rng(4)
    alpha, beta = 3355, 3700            # 0.819, 0.903
    la = QLayer("ro", rng.integers(-30, 31, (6, 20)), alpha=alpha, beta=beta, threshold=0,
                spiking=False, w_shift=0, scale=2e-3, input_scale=0.1)
    qnet = QNetwork((la,), input_scale=0.1)
    x = rng.integers(-3, 4, (200, 4, 20))
    rec = qrun(qnet, x, record=("current", "membrane"))
    assert rec.clipped["ro"][:2] == (0, 0)          # the bound holds without saturation
    twin = run(dequantize(qnet), (x * 0.1).astype(np.float32), record=("current", "membrane"))
    a, b = alpha / 4096, beta / 4096
    bound_i = 0.5 / (1 - a)
    bound_u = (0.5 + bound_i) / (1 - b)
    err_i = np.abs(rec.current["ro"] - twin.current["ro"] / la.scale)
    err_u = np.abs(rec.membrane["ro"] - twin.membrane["ro"] / la.scale)
    fp32 = 1e-5 * np.abs(rec.membrane["ro"]).max()   # float32 rounding of the reference itself
    assert err_i.max() <= bound_i + fp32
    assert err_u.max() <= bound_u + fp32
    assert err_u.max() > 0.5               # the bound is not vacuous: rounding does accumulate


def test_float_twin_spike_agreement():
    qnet = make_qnet(seed=5, recurrent=False)
    rng = np.random.default_rng(6)
    x = (rng.random((60, 8, 30)) < 0.1).astype(np.int64)
    rec = qrun(qnet, x, record=("spikes",))
    twin = run(dequantize(qnet), x.astype(np.float32), record=("spikes",))
    assert np.mean(rec.spikes["h"] == twin.spikes["h"]) >= 0.97


def test_image_roundtrip_and_errors():
    qnet = make_qnet(reset="zero")
    data = to_image(qnet)
    assert len(data) % 4 == 0 and data[:4] == b"ELQN"
    back = from_image(data)
    assert to_image(back) == data
    x = np.random.default_rng(7).integers(-3, 4, (10, 2, 30))
    assert np.array_equal(qrun(back, x).output, qrun(qnet, x).output)
    with pytest.raises(ModelFileError, match="truncated"):
        from_image(data[:-8])
    with pytest.raises(ModelFileError, match="magic"):
        from_image(b"XXXX" + data[4:])
    with pytest.raises(ModelFileError, match="trailing"):
        from_image(data + b"\0\0\0\0")
    with pytest.raises(ModelFileError, match="version"):
        from_image(data[:4] + b"\x09\x00" + data[6:])


def test_validation_messages():
    w = np.zeros((3, 4), np.int64)
    with pytest.raises(ModelError, match=r"weight must lie in \[-128, 127\]"):
        QLayer("a", w + 200, alpha=0, beta=0, threshold=1)
    with pytest.raises(ModelError, match="alpha must lie in"):
        QLayer("a", w, alpha=5000, beta=0, threshold=1)
    with pytest.raises(ModelError, match="integer array"):
        QLayer("a", w.astype(float), alpha=0, beta=0, threshold=1)
    with pytest.raises(ModelError, match="state_bits"):
        QLayer("a", w, alpha=0, beta=0, threshold=1, state_bits=8)
    la = QLayer("a", w, alpha=0, beta=0, threshold=1)
    lb = QLayer("b", np.zeros((2, 5), np.int64), alpha=0, beta=0, threshold=1)
    with pytest.raises(ModelError, match="expects 5 inputs, got 3"):
        QNetwork((la, lb))
    qnet = QNetwork((la,))
    with pytest.raises(InputError, match="expects 4 input channels, got 3"):
        qrun(qnet, np.zeros((2, 1, 3), np.int64))
    with pytest.raises(InputError, match=r"\[-128, 127\]"):
        qrun(qnet, np.full((2, 1, 4), 300))
    with pytest.raises(InputError, match="quantize_input"):
        qrun(qnet, np.full((2, 1, 4), 0.5))


def test_int32_state_arrays_are_widened():
    from edgelearn.kernels.lif_fixed import QState
    from edgelearn.kernels.lif_kernels import qlayer_step
    la = QLayer("w", np.full((2, 3), 100), alpha=4000, beta=4000, threshold=2**30,
                state_bits=32)
    big = np.full((1, 2), 2**30, dtype=np.int32)
    out64, st64 = qlayer_step(la, np.ones((1, 3), np.int64), QState(big.astype(np.int64),
                                                                     big.astype(np.int64)))
    out32, st32 = qlayer_step(la, np.ones((1, 3), np.int64), QState(big, big))
    assert np.array_equal(st64.membrane, st32.membrane) and st32.membrane.min() > 0


def test_zero_immediate_reset_keeps_the_next_input():
    """reset "zero_immediate": after a spike the membrane restarts from zero with the next
    step's input (NIR / snnTorch); "zero" holds it at zero for that step."""
    la = QLayer("h", np.array([[100]]), alpha=0, beta=4096, threshold=150, w_shift=0)
    x = np.array([1, 1, 1, 1])[:, None, None]
    u = {}
    for reset in ("zero", "zero_immediate"):
        qnet = QNetwork((la.replace(reset=reset),))
        u[reset] = qrun(qnet, x, record=("membrane",)).membrane["h"][:, 0, 0].tolist()
    assert u["zero"] == [100, 200, 0, 100]
    assert u["zero_immediate"] == [100, 200, 100, 200]


def test_zero_immediate_equals_its_float_twin_and_survives_the_image():
    """With decays of 0 or 1 and dyadic scales every value is exact, so the integer kernel and
    its float twin agree bit for bit; the image keeps the mode (flag bit 4)."""
    rng = np.random.default_rng(11)
    la = QLayer("h", rng.integers(-20, 60, (12, 16)), alpha=0, beta=4096,
                threshold=np.full(12, 96), reset="zero_immediate", w_shift=0, scale=1 / 64,
                recurrent=rng.integers(-8, 8, (12, 12)), v_shift=0, input_scale=1.0)
    ro = QLayer("o", rng.integers(-30, 31, (3, 12)), alpha=0, beta=2048, threshold=0,
                spiking=False, w_shift=0, scale=1 / 64, input_scale=1.0)
    qnet = QNetwork((la, ro), input_scale=1.0)
    x = (rng.random((40, 3, 16)) < 0.3).astype(np.int64)
    rec = qrun(qnet, x, record=("spikes", "membrane"))
    twin = run(dequantize(qnet), x.astype(np.float32), record=("spikes", "membrane"))
    assert 0.05 < rec.spikes["h"].mean() < 0.9
    np.testing.assert_array_equal(rec.spikes["h"], twin.spikes["h"])
    np.testing.assert_array_equal(rec.membrane["h"] * (1 / 64), twin.membrane["h"])
    back = from_image(to_image(qnet))
    assert back.layers[0].reset == "zero_immediate"
    np.testing.assert_array_equal(qrun(back, x).output, rec.output)
    import struct
    data = bytearray(to_image(qnet))
    name_len, meta_len = struct.unpack_from("<HI", data, 30)
    flags_at = 40 + (name_len + meta_len + 3) // 4 * 4 + 8
    assert data[flags_at] == 0x13            # spiking, recurrent, zero_immediate
    for flags in (0x1B, 0x33):               # two reset modes; a reserved bit
        data[flags_at] = flags
        with pytest.raises(ModelFileError, match="flags"):
            from_image(bytes(data))
