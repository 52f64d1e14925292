"""Substrate device: mapping, mismatch frozen per instance, read noise fresh, save/reload, errors."""

import numpy as np
import pytest

from edgelearn.errors import InputError, SubstrateError
from edgelearn.model import Layer, Network
from edgelearn.runtime.reference import run
from edgelearn.substrate import (Device, Drift, Faults, Mapping, Mismatch, Preset, Programming,
                                 ReadNoise, get_preset)
from edgelearn.substrate.mapping import to_device, to_weights


def _net(seed=0, recurrent=False):
    rng = np.random.default_rng(seed)
    hid = Layer("hidden", rng.normal(0, 0.4, (16, 8)), alpha=0.8, beta=0.9, threshold=1.0,
                recurrent=rng.normal(0, 0.1, (16, 16)) if recurrent else None,
                bias=rng.normal(0, 0.05, 16))
    out = Layer("out", rng.normal(0, 0.4, (3, 16)), alpha=0.8, beta=0.9, spiking=False)
    return Network((hid, out), name="probe")


def _x(seed=1, T=30, B=4):
    return (np.random.default_rng(seed).random((T, B, 8)) < 0.3).astype(np.float32)


@pytest.mark.parametrize("recurrent", [False, True])
def test_ideal_device_equals_float_reference(recurrent):
    net = _net(recurrent=recurrent)
    dev = Device.create(get_preset("ideal"), 0, net)
    obs = dev.run(_x())
    ref = run(net, _x(), record=("spikes", "membrane"))
    np.testing.assert_array_equal(obs.output, ref.output)
    np.testing.assert_array_equal(obs.spikes["hidden"], ref.spikes["hidden"])
    np.testing.assert_array_equal(obs.membrane["hidden"], ref.membrane["hidden"])


def test_mapping_quantizes_to_six_bits_with_sign_bit():
    m = Mapping(bits=6, sign="sign_bit", g_max_us=1.0)
    w = np.array([[1.0, -0.5, 0.01, -1.0, 0.0]])
    tgt = to_device(w, 1.0, m, "x")
    back = to_weights(tgt.g, 1.0, m)
    np.testing.assert_allclose(back, np.round(w * 63) / 63, atol=1e-7)
    assert tgt.n_clipped == 0
    assert np.all((tgt.g[0] == 0) | (tgt.g[1] == 0))


def test_mismatch_frozen_per_instance_read_noise_not():
    net = _net()
    a, b = Device.create(get_preset("bss2"), 7, net), Device.create(get_preset("bss2"), 7, net)
    c = Device.create(get_preset("bss2"), 8, net)
    for key in a.arrays:
        np.testing.assert_array_equal(a.arrays[key]["gain"], b.arrays[key]["gain"])
        np.testing.assert_array_equal(a.arrays[key]["offset"], b.arrays[key]["offset"])
        assert not np.array_equal(a.arrays[key]["gain"], c.arrays[key]["gain"])
    np.testing.assert_array_equal(a.neurons["hidden"].threshold, b.neurons["hidden"].threshold)
    assert not np.array_equal(a.neurons["hidden"].beta, c.neurons["hidden"].beta)
    # the same instance: fixed pattern is unchanged by running, temporal noise differs per run
    gain0 = a.arrays["hidden"]["gain"].copy()
    o1, o2 = a.run(_x()).output, a.run(_x()).output
    assert not np.array_equal(o1, o2)
    np.testing.assert_array_equal(a.arrays["hidden"]["gain"], gain0)
    # pcm: two reads of the same programmed array differ; the programmed state does not move
    p = Device.create(get_preset("pcm"), 7, net)
    g0 = p.arrays["hidden"]["g_prog"].copy()
    assert not np.array_equal(p.read_weights("hidden"), p.read_weights("hidden"))
    np.testing.assert_array_equal(p.arrays["hidden"]["g_prog"], g0)


def test_writes_pay_programming_noise_and_reset_drift_clock():
    net = _net()
    dev = Device.create(get_preset("pcm"), 3, net)
    dev.advance_time(1000.0)
    w = net.layers[0].weight * 0.9
    g_before = dev.arrays["hidden"]["g_prog"].copy()
    rep = dev.write("hidden", w)
    assert rep.n_written == w.size and rep.n_clipped == 0
    assert not np.array_equal(dev.arrays["hidden"]["g_prog"], g_before)
    assert np.all(dev.arrays["hidden"]["t_prog"] == 1000.0)
    assert dev.write("hidden", w).n_written == 0         # unchanged targets are not rewritten


def test_out_of_range_writes_are_clipped_and_counted():
    net = _net()
    dev = Device.create(get_preset("bss2"), 0, net)
    w = net.layers[0].weight.copy()
    w[0, :3] = 10.0
    rep = dev.write("hidden", w)
    assert rep.n_clipped == 3 and dev.info()["clipped"] == 3
    assert np.max(dev.read_weights("hidden")) <= dev.w_max["hidden"] + 1e-6
    with pytest.raises(SubstrateError, match=r"3 weights exceed the representable range"):
        dev.write("hidden", w, strict=True)


def test_save_reload_gives_identical_device(tmp_path):
    net = _net(recurrent=True)
    dev = Device.create(get_preset("pcm").replace(read=ReadNoise(kind="pcm", input_sigma=0.05,
                                                                 readout_sigma=0.01)), 5, net)
    dev.advance_time(123.0)
    dev.write("out", net.layers[1].weight * 0.5)
    path = tmp_path / "dev.npz"
    dev.save(path)
    dev2 = Device.load(path)
    assert dev2.info() == dev.info() and dev2.preset == dev.preset
    for key in dev.arrays:
        for f, arr in dev.arrays[key].items():
            np.testing.assert_array_equal(dev2.arrays[key][f], arr)
    # identical futures: same reads, same runs, same writes
    np.testing.assert_array_equal(dev.run(_x()).output, dev2.run(_x()).output)
    dev.write("hidden", net.layers[0].weight * 0.7)
    dev2.write("hidden", net.layers[0].weight * 0.7)
    np.testing.assert_array_equal(dev.arrays["hidden"]["g_prog"], dev2.arrays["hidden"]["g_prog"])


def test_stuck_faults_force_conductances():
    net = _net()
    p = Preset(name="faulty", mapping=Mapping(bits=None), faults=Faults(stuck_off=0.2, stuck_on=0.1))
    dev = Device.create(p, 0, net)
    a = dev.arrays["hidden"]
    np.testing.assert_array_equal(a["g_prog"][a["faults"] == 1], 0.0)
    np.testing.assert_array_equal(a["g_prog"][a["faults"] == 2], 25.0)
    frac = (a["faults"] != 0).mean()
    assert 0.2 < frac < 0.4


@pytest.mark.parametrize("make, msg", [
    (lambda: Mismatch(gain_sigma=-0.1), "gain_sigma must be >= 0"),
    (lambda: Mapping(bits=0), "bits must be an integer in 1..16"),
    (lambda: Mapping(sign="twos"), "sign must be one of"),
    (lambda: Faults(stuck_off=0.7, stuck_on=0.5), "stuck_off \\+ stuck_on must be <= 1"),
    (lambda: ReadNoise(membrane_sigma=float("nan")), "membrane_sigma must be a finite number"),
    (lambda: Programming(kind="magic"), "kind must be one of"),
    (lambda: Drift(t0_s=0.0), "t0_s must be > 0"),
    (lambda: get_preset("memristor"), "unknown substrate preset"),
    (lambda: Preset.from_dict({"mismatch": {"gain_sigma": -1}}), "gain_sigma must be >= 0"),
])
def test_inconsistent_presets_are_refused(make, msg):
    with pytest.raises(SubstrateError, match=msg):
        make()


def test_bad_writes_and_inputs_are_refused(tmp_path):
    dev = Device.create(get_preset("ideal"), 0, _net())
    with pytest.raises(SubstrateError, match="expected shape 16x8, got 8x16"):
        dev.write("hidden", np.zeros((8, 16)))
    with pytest.raises(SubstrateError, match="NaN or Inf"):
        dev.write("hidden", np.full((16, 8), np.nan))
    with pytest.raises(SubstrateError, match="no weight array 'nope'"):
        dev.write("nope", np.zeros((16, 8)))
    with pytest.raises(InputError, match="expects input"):
        dev.run(np.zeros((5, 7)))
    with pytest.raises(SubstrateError, match="seconds >= 0"):
        dev.advance_time(-1)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(SubstrateError, match="cannot read device file"):
        Device.load(bad)
