"""Fleet devices from (fleet seed, index): stream options, population SPEC, device derivation,
substrate mismatch factor."""

import numpy as np
import pytest

from edgelearn.adapt.streams import load_stream, parse_stream
from edgelearn.data import load_speech_digits
from edgelearn.errors import DataError, SubstrateError
from edgelearn.fleet.population import (derive_device, list_users, parse_population,
                                        split_users)
from edgelearn.substrate.presets import bss2, get_preset


def test_stream_voice_filter_keeps_only_that_voice():
    ds = load_speech_digits("new_user")
    names = np.asarray(ds.meta["voices"])[ds.meta["voice"]]
    x, y, sub = load_stream("new_user@voice=en-gb+whisper", 64, seed=3)
    want = np.flatnonzero(names == "en-gb+whisper")
    assert len(x) == want.size == len(sub)
    # the same utterances, in a seeded order
    assert sorted(map(bytes, x)) == sorted(bytes(ds.x[j]) for j in want)
    x2, y2, _ = load_stream("new_user@voice=en-gb+whisper", 64, seed=3)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)


def test_stream_accent_and_drift_options():
    x, _, sub = load_stream("new_user@accent=en-gb-x-gbcwmd", 64, seed=0, limit=50)
    names = np.asarray(sub.meta["voices"])[sub.meta["voice"]]
    assert len(x) == 50 and all(n.split("+")[0] == "en-gb-x-gbcwmd" for n in names)
    clean, _, _ = load_stream("new_user@accent=en-gb-x-gbcwmd", 64, seed=0, limit=50)
    noisy, _, _ = load_stream("new_user@accent=en-gb-x-gbcwmd,noise=0.05", 64, seed=0, limit=50)
    assert noisy.astype(int).sum() > clean.astype(int).sum()      # extra Poisson spikes
    plain, _, _ = load_stream("new_user", 64, seed=0, limit=50)
    assert not np.array_equal(plain, clean)


@pytest.mark.parametrize("spec, needle", [
    ("new_user@voice=nobody", "no samples of voice 'nobody'"),
    ("new_user@colour=red", "unknown option 'colour'"),
    ("new_user@gain", "is not KEY=VALUE"),
    ("new_user@dead=3", "DeadChannels severity"),
    ("new_user@gain=lots", "is not a finite number"),
])
def test_bad_stream_options_are_one_line_errors(spec, needle):
    with pytest.raises(DataError, match=needle):
        load_stream(spec, 64)


def test_stream_spec_round_trips():
    s = parse_stream("new_user@voice=en-gb+whisper,gain=0.312,noise=0.02")
    assert str(s) == "new_user@voice=en-gb+whisper,gain=0.312,noise=0.02"


def test_population_spec_parsing():
    pop = parse_population("new_user@user=accent,drift=none/gain:0.1..0.3/noise,voice=x")
    assert pop.user_mode == "accent" and pop.fixed == (("voice", "x"),)
    assert [(d.kind, d.lo, d.hi) for d in pop.drifts] == [
        ("none", 0.0, 0.0), ("gain", 0.1, 0.3), ("noise", 0.0, 0.05)]
    for bad, needle in [("new_user@user=planet", "user='planet'"),
                        ("new_user@drift=gale", "unknown drift 'gale'"),
                        ("new_user@drift=gain:0.5..0.1", "HI < LO"),
                        ("new_user@speed=3", "unknown item 'speed'")]:
        with pytest.raises(DataError, match=needle):
            parse_population(bad)


def test_users_are_sorted_voice_or_accent_names():
    accents = list_users(parse_population("new_user@user=accent"))
    assert accents == sorted(accents) and "en-gb-x-gbcwmd" in accents and len(accents) == 8
    voices = list_users(parse_population("new_user@user=voice,accent=en-gb"))
    assert voices == ["en-gb+whisper", "en-gb+whisperf"]
    assert list_users(parse_population("new_user")) == []


def test_device_is_a_pure_function_of_fleet_seed_and_index():
    pop = parse_population("new_user@user=accent,drift=none/gain:0..1")
    users = list_users(pop)
    a = derive_device(pop, users, "substrate:bss2", 7, 3, (0.5, 1.5))
    assert a == derive_device(pop, users, "substrate:bss2", 7, 3, (0.5, 1.5))
    # the documented draws, by hand
    g = np.random.default_rng([7, 0, 3])
    seed, b, c, d, e = (int(g.integers(0, 2 ** 31)), int(g.integers(0, 2 ** 31)),
                        int(g.integers(0, 2 ** 31)), g.random(), g.random())
    assert a.seed == seed and a.user == users[b % len(users)]
    kind = ("none", "gain")[c % 2]
    assert a.drift == kind
    assert a.severity == (round(d, 3) if kind == "gain" else 0.0)
    assert a.mismatch == round(0.5 + e, 3)
    assert a.target == f"substrate:bss2@mismatch={a.mismatch!r}"
    want = f"new_user@accent={a.user}" + (f",gain={a.severity!r}" if kind == "gain" else "")
    assert a.stream == want
    others = {derive_device(pop, users, "host", 7, i).seed for i in range(50)}
    assert len(others) == 50


def test_held_out_users_are_disjoint_and_seeded():
    users = [f"u{i:02d}" for i in range(10)]
    part, held = split_users(users, 0, 0.3)
    assert len(held) == 3 and not set(part) & set(held) and sorted(part + held) == users
    assert (part, held) == split_users(users, 0, 0.3)
    assert held != split_users(users, 1, 0.3)[1] or part != split_users(users, 1, 0.3)[0]
    with pytest.raises(DataError, match="one side empty"):
        split_users(users, 0, 0.01)


def test_substrate_mismatch_factor_scales_every_sigma():
    base, scaled = bss2().mismatch, get_preset("bss2@mismatch=1.5").mismatch
    for f in ("gain_sigma", "offset_sigma", "threshold_sigma", "tau_syn_sigma", "tau_mem_sigma"):
        assert getattr(scaled, f) == pytest.approx(1.5 * getattr(base, f))
    assert get_preset("bss2@mismatch=0").mismatch.gain_sigma == 0.0
    assert get_preset("bss2@mismatch=1.5").read == bss2().read      # only the mismatch
    for bad in ("bss2@mismatch=-1", "bss2@noise=2", "bss2@mismatch=x", "mars@mismatch=1"):
        with pytest.raises(SubstrateError):
            get_preset(bad)


def test_tilt_and_bank_drifts_are_stream_options_and_population_choices():
    """tilt=dB (SpectralTilt) and bank=channels (BankShift) in a STREAM apply the transforms of
    edgelearn.data.streams exactly as make_stream does; a fleet SPEC draws them in their
    default ranges (tilt 0..20, bank 0..2)."""
    from edgelearn.data.streams import BankShift, SpectralTilt, make_stream
    ds = load_speech_digits("new_user")
    for opt, t in (("tilt=20", SpectralTilt(20.0)), ("bank=1.5", BankShift(1.5))):
        x, _, _ = load_stream(f"new_user@{opt}", 64, seed=2, limit=30)
        want = make_stream(ds, [t], n_samples=30, seed=2, group_key="voice").as_arrays()[0]
        plain, _, _ = load_stream("new_user", 64, seed=2, limit=30)
        assert np.array_equal(x, want) and not np.array_equal(x, plain), opt
    pop = parse_population("new_user@drift=tilt/bank:0.5..1")
    assert [(d.kind, d.lo, d.hi) for d in pop.drifts] == [("tilt", 0.0, 20.0),
                                                          ("bank", 0.5, 1.0)]
    with pytest.raises(DataError, match="SpectralTilt severity"):
        load_stream("new_user@tilt=-3", 64)
