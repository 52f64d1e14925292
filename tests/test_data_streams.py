"""Adaptation streams: deterministic, composable, and each transform does what it says."""

import numpy as np
import pytest

from edgelearn.data.dataset import Dataset
from edgelearn.data.streams import (
    BankShift,
    ChannelShift,
    DeadChannels,
    GainDrift,
    NoiseSpikes,
    SpectralTilt,
    TimeWarp,
    make_stream,
    warp_time,
)
from edgelearn.errors import DataError, ParameterError


@pytest.fixture(scope="module")
def ds():
    rng = np.random.default_rng(0)
    x = rng.poisson(2.0, size=(60, 40, 16)).astype(np.uint8)
    return Dataset(x, np.arange(60) % 5, 5, "toy", {"voice": np.arange(60) // 10})


def test_plain_stream_is_a_seeded_permutation(ds):
    s = make_stream(ds, [], seed=1)
    x, y = s.as_arrays()
    assert len(s) == 60 and sorted(s.indices.tolist()) == list(range(60))
    assert np.array_equal(x, ds.x[s.indices]) and np.array_equal(y, ds.y[s.indices])
    assert not np.array_equal(s.indices, make_stream(ds, [], seed=2).indices)
    assert len(make_stream(ds, [], n_samples=150)) == 150


def test_iteration_matches_arrays_and_is_repeatable(ds):
    s = make_stream(ds, [GainDrift(0.5), ChannelShift(0.5), DeadChannels(0.2), NoiseSpikes(0.1),
                         TimeWarp(0.3)], n_samples=30, seed=4)
    x, y = s.as_arrays()
    for i, (xi, yi) in enumerate(s):
        assert np.array_equal(xi, x[i]) and yi == y[i]
    x2, _ = make_stream(ds, list(s.transforms), n_samples=30, seed=4).as_arrays()
    assert x.tobytes() == x2.tobytes() and x.dtype == np.uint8


def test_group_stream_visits_speakers_one_after_another(ds):
    s = make_stream(ds, [], seed=0, group_key="voice")
    v = ds.meta["voice"][s.indices]
    assert np.count_nonzero(np.diff(v)) == 5          # 6 speakers, 5 changes
    with pytest.raises(DataError, match="no per-sample meta\\['speaker'\\]"):
        make_stream(ds, [], group_key="speaker")


def test_gain_drift_grows_with_position_and_severity(ds):
    def deviation(sev):
        s = make_stream(ds, [GainDrift(sev)], n_samples=60, seed=3)
        x, _ = s.as_arrays()
        g = s._plans[0]
        ratio = x.astype(float).sum(axis=(0, 1)) / ds.x[s.indices].astype(float).sum(axis=(0, 1))
        return g, ratio
    g0, r0 = deviation(0.0)
    assert np.all(g0 == 1.0) and np.allclose(r0, 1.0)
    g, _ = deviation(1.0)
    assert np.all(g[0] == 1.0)                          # drift starts from unity
    assert np.std(np.log(g[-1])) > 0.5 and np.std(np.log(g[5])) < np.std(np.log(g[-1]))
    x, _ = make_stream(ds, [GainDrift(1.0)], n_samples=60, seed=3).as_arrays()
    late = x[-10:].astype(float).mean(axis=(0, 1))
    expect = ds.x[make_stream(ds, [], seed=3).indices][-10:].astype(float).mean(axis=(0, 1))
    assert np.allclose(late / expect, g[-5], rtol=0.35)


def test_channel_shift(ds):
    x, _ = make_stream(ds, [ChannelShift(1.0)], seed=0).as_arrays()
    base, _ = make_stream(ds, [], seed=0).as_arrays()
    assert np.array_equal(x, np.roll(base, 2, axis=2))      # 16 channels * 1.0 / 8 = 2
    x, _ = make_stream(ds, [ChannelShift(0.0, k=-3, wrap=False)], seed=0).as_arrays()
    assert np.array_equal(x[:, :, :-3], base[:, :, 3:]) and x[:, :, -3:].sum() == 0
    x, _ = make_stream(ds, [ChannelShift(1.0, start=0.5)], seed=0).as_arrays()
    assert np.array_equal(x[:30], base[:30]) and not np.array_equal(x[30:], base[30:])


def test_dead_channels(ds):
    s = make_stream(ds, [DeadChannels(0.25)], seed=0)
    x, _ = s.as_arrays()
    dead = s._plans[0]
    assert dead.size == 4
    assert x[:, :, dead].sum() == 0
    alive = np.setdiff1d(np.arange(16), dead)
    assert np.array_equal(x[:, :, alive], ds.x[s.indices][:, :, alive])


def test_noise_spikes_add_the_expected_count(ds):
    base = ds.x[make_stream(ds, [], seed=0).indices].astype(float)
    for sev in (0.05, 0.5):
        x, _ = make_stream(ds, [NoiseSpikes(sev)], seed=0).as_arrays()
        extra = (x.astype(float) - base).mean()
        assert abs(extra - sev) < 0.1 * sev + 0.01
        assert np.all(x >= base)


def test_time_warp():
    x = np.zeros((10, 2), np.uint8)
    x[2, 0] = 1
    x[8, 1] = 3
    slow = warp_time(x, 2.0)
    assert slow[5, 0] == 1 and slow.sum() == 1              # bin 8 moves past the end
    fast = warp_time(x, 0.5)
    assert fast[1, 0] == 1 and fast[4, 1] == 3 and fast.sum() == 4
    f = warp_time(np.arange(10, dtype=np.float32)[:, None], 1.0)
    assert np.allclose(f[:, 0], np.arange(10))


def test_time_warp_severity_spreads_the_centre_of_mass(ds):
    def centre(sev):
        x, _ = make_stream(ds, [TimeWarp(sev)], seed=0).as_arrays()
        t = np.arange(40)[None, :]
        w = x.astype(float).sum(axis=2)
        return (w * t).sum(axis=1) / w.sum(axis=1)
    base = centre(0.0)
    assert np.std(centre(0.5) - base) > np.std(centre(0.1) - base) > 0


def test_spectral_tilt_reaches_its_profile_gradually():
    ones = Dataset(np.full((41, 4, 5), 100, np.uint8), np.zeros(41, int), 1, "flat")
    s = make_stream(ones, [SpectralTilt(12.0)], seed=0)
    x, _ = s.as_arrays()
    assert np.array_equal(x[0], ones.x[0])                        # starts untouched
    # stochastic rounding moves each count by less than 1
    full = 100 * 10.0 ** (np.array([6.0, 3.0, 0.0, -3.0, -6.0]) / 20)   # +6 .. -6 dB
    assert np.allclose(x[-1].mean(axis=0), full, atol=1.0)
    half = 100 * 10.0 ** (np.array([3.0, 1.5, 0.0, -1.5, -3.0]) / 20)   # r = 20/40
    assert np.allclose(x[20].mean(axis=0), half, atol=1.0)
    assert np.all(x[:, :, 2] == 100)                               # the middle keeps its level
    x, _ = make_stream(ones, [SpectralTilt(12.0, ramp=0.5)], seed=0).as_arrays()
    assert np.allclose(x[20].mean(axis=0), full, atol=1.0)              # r = 20/20
    assert np.array_equal(make_stream(ones, [SpectralTilt(0.0)]).as_arrays()[0], ones.x)


def test_spectral_tilt_rounds_counts_without_bias():
    ones = Dataset(np.full((2, 2000, 3), 1, np.uint8), np.zeros(2, int), 1, "ones")
    x, _ = make_stream(ones, [SpectralTilt(20.0, ramp=0.0)], seed=1).as_arrays()
    assert x.dtype == np.uint8
    assert np.allclose(x.astype(float).mean(axis=(0, 1)), 10.0 ** (np.array([10, 0, -10]) / 20),
                       atol=0.04)


def test_bank_shift_moves_content_up_gradually_by_fractions_of_a_channel():
    x = np.zeros((21, 50, 6), np.uint8)
    x[:, :, 1] = 200                                 # all content in channel 1
    flat = Dataset(x, np.zeros(21, int), 1, "one channel")
    out, _ = make_stream(flat, [BankShift(2.0)], seed=0).as_arrays()
    assert np.array_equal(out[0], x[0])                                  # u = 0
    assert np.all(out[-1][:, 3] == 200) and out[-1].sum() == 200 * 50      # u = 2: channel 3
    # sample 5 of 21: u = 2 * 5/20 = 0.5, half of channel 1 moves to channel 2
    assert np.allclose(out[5].mean(axis=0), [0, 100, 100, 0, 0, 0], atol=1.0)
    # sample 15: u = 1.5 (k = 1, f = 0.5): channels 2 and 3
    assert np.allclose(out[15].mean(axis=0), [0, 0, 100, 100, 0, 0], atol=1.0)
    assert out.dtype == np.uint8
    f = make_stream(Dataset(x.astype(np.float32), np.zeros(21, int), 1, "f"),
                    [BankShift(2.0)], seed=0).as_arrays()[0]
    assert f.dtype == np.float32 and np.allclose(f[5, 0], [0, 100, 100, 0, 0, 0])
    edge = np.zeros((2, 4, 6), np.uint8)
    edge[:, :, 5] = 9
    out, _ = make_stream(Dataset(edge, np.zeros(2, int), 1, "top"), [BankShift(1.0, ramp=0)],
                         seed=0).as_arrays()
    assert out.sum() == 0                            # moved past the last channel, channel 0 empty
    assert np.array_equal(make_stream(flat, [BankShift(0.0)]).as_arrays()[0], x[
        make_stream(flat, []).indices])


def test_spectral_tilt_is_bounded_so_values_stay_finite():
    """A tilt past 200 dB is refused: 10^(s/40) overflowed float64 from s of about 12,300 dB
    (0 * inf = NaN in the stream, undefined uint8 casts) and float32 data far sooner; at the
    bound the gains are 10^(+-5) and float data stays finite."""
    with pytest.raises(ParameterError,
                       match="SpectralTilt severity must be \\[0, 200.0\\], got 100000.0"):
        SpectralTilt(1e5)
    ds = Dataset(np.full((2, 3, 4), 1e30, np.float32), np.zeros(2, int), 1, "loud")
    x, _ = make_stream(ds, [SpectralTilt(200.0, ramp=0)]).as_arrays()
    assert np.all(np.isfinite(x)) and x.max() == pytest.approx(1e35, rel=1e-5)


def test_gain_drift_is_bounded_so_values_stay_finite():
    """GainDrift past severity 10 is refused: exp(s B) overflowed float64 (s = 1e5: inf gains,
    0 * inf = NaN, undefined uint8 casts); at the bound a stream stays finite."""
    from edgelearn.data.streams import GainDrift
    with pytest.raises(ParameterError,
                       match="GainDrift severity must be \\[0, 10.0\\], got 100000.0"):
        GainDrift(1e5)
    ds = Dataset(np.full((50, 3, 4), 1.0, np.float32), np.zeros(50, int), 1, "f")
    x, _ = make_stream(ds, [GainDrift(10.0)], seed=1).as_arrays()
    assert np.all(np.isfinite(x)) and x.min() > 0


def test_float_data_stays_float():
    ds = Dataset(np.random.default_rng(0).random((5, 8, 4)).astype(np.float32),
                 np.zeros(5, int), 2, "f")
    x, _ = make_stream(ds, [GainDrift(0.3), NoiseSpikes(0.1), TimeWarp(0.2),
                          SpectralTilt(6.0), BankShift(1.5)]).as_arrays()
    assert x.dtype == np.float32 and np.all(np.isfinite(x))


def test_bad_streams(ds):
    with pytest.raises(DataError, match="would be empty"):
        make_stream(ds, [], n_samples=0)
    with pytest.raises(DataError, match="label 9 of sample 1 is out of range"):
        make_stream((np.zeros((2, 3, 4), np.uint8), np.array([0, 9]), 3), [])
    with pytest.raises(DataError, match="must have shape \\[N, T, C\\]"):
        make_stream((np.zeros((2, 3), np.uint8), np.array([0, 1])), [])
    with pytest.raises(DataError, match="is empty"):
        make_stream((np.zeros((0, 3, 4), np.uint8), np.zeros(0, int), 3), [])
    with pytest.raises(DataError, match="not one of GainDrift"):
        make_stream(ds, ["noise"])
    with pytest.raises(DataError, match="has 60 samples, asked for sample 60"):
        make_stream(ds, []).sample(60)
    with pytest.raises(ParameterError, match="DeadChannels severity must be \\[0, 1.0\\]"):
        DeadChannels(1.5)
    with pytest.raises(ParameterError, match="NoiseSpikes severity must be \\[0, 255.0\\]"):
        NoiseSpikes(-0.1)
    with pytest.raises(ParameterError,
                       match="SpectralTilt severity must be \\[0, 200.0\\], got nan"):
        SpectralTilt(float("nan"))
    with pytest.raises(ParameterError, match="SpectralTilt ramp must lie in \\[0, 1\\], got 2"):
        SpectralTilt(6.0, ramp=2)
    with pytest.raises(ParameterError, match="BankShift severity must be >= 0, got -1"):
        BankShift(-1)
    with pytest.raises(ParameterError, match="BankShift ramp must lie in \\[0, 1\\], got -0.5"):
        BankShift(1.0, ramp=-0.5)


def test_holdout_keeps_speakers_on_both_sides(ds):
    from edgelearn.data.streams import holdout
    adapt, ev = holdout(ds, 0.5, seed=0, group_key="voice")
    assert len(adapt) + len(ev) == len(ds)
    assert set(adapt.meta["voice"]) == set(ev.meta["voice"]) == set(range(6))
    a2, _ = holdout(ds, 0.5, seed=0, group_key="voice")
    assert np.array_equal(a2.x, adapt.x)
    with pytest.raises(DataError, match="fraction must lie in"):
        holdout(ds, 1.0)
