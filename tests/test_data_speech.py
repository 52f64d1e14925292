"""Speech digits: bundled arrays, voice-disjoint splits, causal filterbank/encoder, determinism."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgelearn.data import load_speech_digits
from edgelearn.data.speech.encoder import EncoderParams, encode
from edgelearn.data.speech.filterbank import (
    Filterbank,
    FilterbankParams,
    centre_frequencies,
)
from edgelearn.data.speech.mix import colored_noise, mix
from edgelearn.data.speech.splits import NEW_USER_ACCENT, split_voices
from edgelearn.data.speech_digits import BUNDLED
from edgelearn.errors import DataError, ParameterError
from tests._hang import HANG_SECONDS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def splits():
    return {s: load_speech_digits(s) for s in ("train", "test", "new_user")}


def test_bundled_shapes_sizes_and_balance(splits):
    assert BUNDLED.stat().st_size < 15 * 2 ** 20
    for name, ds in splits.items():
        assert ds.x.dtype == np.uint8 and ds.x.shape[1:] == (100, 64), name
        assert ds.n_classes == 10 and len(ds) >= 1000
        assert np.all(np.bincount(ds.y, minlength=10) == len(ds) // 10)
        assert 0.05 < ds.x.mean() < 1.0
        assert ds.meta["voice"].shape == (len(ds),)
    assert sum(len(d) for d in splits.values()) >= 3000


def test_splits_are_disjoint_by_voice(splits):
    used = {s: {d.meta["voices"][i] for i in np.unique(d.meta["voice"])}
            for s, d in splits.items()}
    assert not used["train"] & used["test"]
    assert not used["train"] & used["new_user"] and not used["test"] & used["new_user"]
    variant = lambda v: v.split("+", 1)[1] if "+" in v else ""
    assert not {variant(v) for v in used["train"]} & {variant(v) for v in used["test"]}
    for v in used["train"] | used["test"]:
        assert not v.startswith(NEW_USER_ACCENT) and "whisper" not in v
    assert any("whisper" in v for v in used["new_user"])
    assert any(v.startswith(NEW_USER_ACCENT) for v in used["new_user"])
    # en-us-nyc sounds like en-us: only its whisper voices (whisper is held out anyway)
    assert all("whisper" in v for v in used["new_user"] if v.startswith("en-us-nyc"))


def test_split_voices_deterministic():
    assert split_voices(0) == split_voices(0)
    assert split_voices(0)["test"] != split_voices(1)["test"]


def test_unknown_split_and_bad_file(tmp_path):
    with pytest.raises(DataError, match="splits 'train', 'test', 'new_user'"):
        load_speech_digits("validation")
    bad = tmp_path / "sd.npz"
    np.savez(bad, train_x=np.zeros((1, 2, 3), np.uint8))
    with pytest.raises(DataError, match="has no 'train_y' array"):
        load_speech_digits("train", path=bad)


def test_filterbank_is_causal_and_tuned():
    fb = Filterbank(FilterbankParams(n_channels=16))
    rng = np.random.default_rng(0)
    audio = rng.standard_normal(4410) * 0.1
    full = fb.envelopes(audio)
    part = fb.envelopes(audio[:2205])
    assert np.allclose(full[: part.shape[0]], part, atol=1e-3)   # the past does not see the future
    fc = centre_frequencies(fb.params)
    tone = 0.1 * np.sin(2 * np.pi * fc[8] * np.arange(4410) / 22050)
    env = fb.envelopes(tone)
    assert np.argmax(env[50:].mean(axis=0)) == 8


def test_encoder_is_causal_floor_silent_and_bounded():
    p = EncoderParams(n_bins=20)
    rng = np.random.default_rng(1)
    env = rng.uniform(-90, -10, size=(200, 4))
    full = encode(env, p)
    half = encode(env[:100], p)
    assert np.array_equal(full[:10], half[:10])                   # future does not matter
    assert encode(np.full((200, 4), -80.0), p).sum() == 0         # below the absolute floor
    loud = encode(np.full((200, 4), -5.0), p)
    assert loud.max() <= p.bin_frames and loud.sum() > 0
    # a later loud event does not change earlier bins (no normalisation by the maximum)
    env2 = env.copy()
    env2[150:] = 0.0
    assert np.array_equal(encode(env2, p)[:15], full[:15])
    with pytest.raises(ParameterError, match="exceeds one spike per frame"):
        EncoderParams(max_rate=2000.0)


def test_noise_mix_snr():
    rng = np.random.default_rng(2)
    word = np.sin(np.arange(1000) * 0.3)
    for kind in ("white", "pink", "brown", "hum"):
        n = colored_noise(5000, kind, 22050, rng)
        assert abs(np.sqrt(np.mean(n ** 2)) - 1) < 1e-6
    out = mix(word, 5000, 100, 10.0, "white", 22050, np.random.default_rng(3))
    noise = out.copy()
    noise[100:1100] -= word
    snr = 20 * np.log10(np.sqrt(np.mean(word ** 2)) / np.sqrt(np.mean(noise ** 2)))
    assert abs(snr - 10.0) < 0.01
    with pytest.raises(DataError, match="noise kind"):
        colored_noise(10, "purple", 22050, rng)


@pytest.mark.skipif(shutil.which("espeak-ng") is None,
                    reason="espeak-ng (Debian package) is only needed to regenerate the data")
def test_generator_is_byte_deterministic(tmp_path):
    outs = []
    for k in range(2):
        out = tmp_path / f"sd{k}.npz"
        res = subprocess.run([sys.executable, str(ROOT / "tools" / "make_dataset.py"),
                              "--out", str(out), "--train", "6", "--test", "3",
                              "--new-user", "4", "--seed", "7"],
                             capture_output=True, text=True, timeout=HANG_SECONDS, check=False)
        assert res.returncode == 0, res.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    ds = load_speech_digits("new_user", path=tmp_path / "sd0.npz")
    assert ds.x.shape == (4, 100, 64)
    meta = json.loads(str(np.load(tmp_path / "sd0.npz")["meta"]))
    assert meta["seed"] == 7 and meta["splits"]["train"]["n"] == 6


def test_bundled_meta_matches_the_code(splits):
    from edgelearn.data.speech.splits import voice_name
    voices = split_voices(0)
    for name, ds in splits.items():
        assert ds.meta["voices"] == [voice_name(a, v) for a, v in voices[name]]
        assert ds.meta["generator_version"] >= 1 and ds.meta["seed"] == 0
        assert ds.meta["encoder"]["n_bins"] == 100 and ds.meta["filterbank"]["n_channels"] == 64
