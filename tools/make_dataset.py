#!/usr/bin/env python3
"""Generate the speech-digits spiking data set with espeak-ng and ship it compressed.

    python tools/make_dataset.py                       # writes edgelearn/data/bundled/speech_digits.npz
    python tools/make_dataset.py --out /tmp/sd.npz --train 400 --test 100 --new-user 100

Each utterance: the digit's word ("zero".."nine") spoken by one voice of the split
(edgelearn.data.speech.splits) at a random speed (120-220 wpm), pitch (20-80), SSML pitch range
and final punctuation; leading/trailing silence trimmed (espeak's padding depends on the
punctuation); a random level (-10..+6 dB); placed at a random onset (0-150 ms) in a 1.2 s buffer
whose first 0.2 s are pre-roll; background noise (white/pink/brown/hum) at an SNR drawn from
{5, 10, 15, 20, 30} dB; a 64-channel gammatone filterbank (log-spaced 100 Hz-8 kHz, half-wave
rectification, 1 ms frames, log compression); a causal spike encoder (absolute floor, smoothing,
adaptation; integrate-and-fire) counted in 10 ms bins; the pre-roll bins dropped -> [100, 64]
uint8. Every utterance draws from its own Generator seeded by (seed, split, index), so the output
is byte-identical for a given seed and espeak-ng version.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgelearn.atomic import atomic_write_bytes
from edgelearn.data.dataset import npz_bytes
from edgelearn.data.speech.encoder import EncoderParams, encode
from edgelearn.data.speech.espeak import PITCH_RANGES, speak, trim_silence
from edgelearn.data.speech.filterbank import Filterbank, FilterbankParams
from edgelearn.data.speech.mix import NOISE_KINDS, mix
from edgelearn.data.speech.splits import (
    SPLITS,
    WHISPER_VARIANTS,
    split_voices,
    voice_name,
)
from edgelearn.errors import EdgelearnError
from edgelearn.progress import Progress

GENERATOR_VERSION = 1
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
PUNCTUATION = ("", ".", "?", "!", ",")
SNRS_DB = (5.0, 10.0, 15.0, 20.0, 30.0)
PREROLL_S = 0.2
DEFAULT_OUT = ROOT / "edgelearn" / "data" / "bundled" / "speech_digits.npz"


def utterance(split_id: int, index: int, voices, seed: int, fb: Filterbank, enc: EncoderParams,
              whisper_every: int = 0) -> tuple[np.ndarray, int, int, dict]:
    """One utterance: spikes [T, C] uint8, label, voice index, and its settings."""
    rng = np.random.default_rng([seed, split_id, index])
    label = index % len(WORDS)
    if whisper_every:
        # new_user: alternate between whisper voices and the held-out accent's voices
        pool = [k for k, (_, v) in enumerate(voices) if (v in WHISPER_VARIANTS) == (index % 2 == 0)]
        voice = int(pool[rng.integers(len(pool))])
    else:
        voice = int(rng.integers(len(voices)))
    accent, variant = voices[voice]
    speed = int(rng.integers(120, 221))
    pitch = int(rng.integers(20, 81))
    prange = PITCH_RANGES[int(rng.integers(len(PITCH_RANGES)))]
    punct = PUNCTUATION[int(rng.integers(len(PUNCTUATION)))]
    level_db = float(rng.uniform(-10.0, 6.0))
    snr = float(SNRS_DB[int(rng.integers(len(SNRS_DB)))])
    kind = NOISE_KINDS[int(rng.integers(len(NOISE_KINDS)))]
    audio, rate = speak(WORDS[label] + punct, accent, variant, speed, pitch, prange)
    if rate != int(fb.params.sample_rate):
        raise EdgelearnError(f"espeak-ng wrote {rate} Hz audio, the filterbank expects "
                             f"{fb.params.sample_rate} Hz")
    word = trim_silence(audio, rate) * 10 ** (level_db / 20.0)
    dur = word.shape[0] / rate
    total_s = enc.n_bins * enc.bin_frames * enc.frame_seconds
    onset = float(rng.uniform(0.0, min(0.15, max(0.0, total_s - 0.02 - dur))))
    n_total = int(round((total_s + PREROLL_S) * rate))
    x = mix(word, n_total, int(round((PREROLL_S + onset) * rate)), snr, kind, rate, rng)
    env = fb.envelopes(x)
    pre_bins = int(round(PREROLL_S / (enc.bin_frames * enc.frame_seconds)))
    enc_long = EncoderParams(**{**enc.__dict__, "n_bins": enc.n_bins + pre_bins})
    spikes = encode(env, enc_long)[pre_bins:]
    info = dict(speed=speed, pitch=pitch, range=prange, punct=punct, level_db=round(level_db, 2),
                snr_db=snr, noise=kind, onset_s=round(onset, 4), duration_s=round(dur, 4))
    return spikes, label, voice, info


def espeak_version() -> str:
    try:
        out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True,
                             timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.strip().split("Data at")[0].strip()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train", type=int, default=4000, help="train utterances")
    ap.add_argument("--test", type=int, default=1000, help="test utterances")
    ap.add_argument("--new-user", type=int, default=1200, help="new-user utterances")
    ap.add_argument("--channels", type=int, default=64)
    args = ap.parse_args(argv)
    try:
        fbp = FilterbankParams(n_channels=args.channels)
        fb = Filterbank(fbp)
        enc = EncoderParams()
        voices = split_voices(args.seed)
        counts = {"train": args.train, "test": args.test, "new_user": args.new_user}
        if min(counts.values()) < 1:
            raise EdgelearnError(f"every split needs >= 1 utterance, got {counts}")
        arrays: dict[str, np.ndarray] = {}
        bar = Progress(sum(counts.values()), "speech digits", unit="utt")
        settings: dict[str, list] = {}
        for split_id, split in enumerate(SPLITS):
            n = counts[split]
            xs = np.zeros((n, enc.n_bins, args.channels), dtype=np.uint8)
            ys = np.zeros(n, dtype=np.int64)
            vs = np.zeros(n, dtype=np.int32)
            settings[split] = []
            for i in range(n):
                xs[i], ys[i], vs[i], info = utterance(
                    split_id, i, voices[split], args.seed, fb, enc,
                    whisper_every=2 if split == "new_user" else 0)
                settings[split].append(info)
                bar.update(postfix=split)
            order = np.random.default_rng([args.seed, split_id, 1 << 30]).permutation(n)
            key = "newuser" if split == "new_user" else split
            arrays[f"{key}_x"] = xs[order]
            arrays[f"{key}_y"] = ys[order]
            arrays[f"{key}_voice"] = vs[order]
        bar.close()
        meta = {
            "name": "speech_digits",
            "generator": "tools/make_dataset.py",
            "generator_version": GENERATOR_VERSION,
            "espeak_ng": espeak_version(),
            "seed": args.seed,
            "classes": list(WORDS),
            "n_classes": len(WORDS),
            "bin_seconds": enc.bin_frames * enc.frame_seconds,
            "splits": {s: {"n": counts[s],
                           "voices": [voice_name(a, v) for a, v in voices[s]]} for s in SPLITS},
            "filterbank": fbp.__dict__,
            "encoder": enc.__dict__,
            "recipe": {"speed": [120, 220], "pitch": [20, 80], "pitch_ranges": PITCH_RANGES,
                       "punctuation": PUNCTUATION, "level_db": [-10, 6], "snr_db": SNRS_DB,
                       "noise": NOISE_KINDS, "onset_s": [0, 0.15], "preroll_s": PREROLL_S,
                       "new_user": "even index: whisper variant (any accent); odd: held-out "
                                   "accent en-gb-x-gbcwmd"},
        }
        arrays["meta"] = np.asarray(json.dumps(meta, sort_keys=True))
        atomic_write_bytes(args.out, npz_bytes(arrays))
        size = args.out.stat().st_size
        print(f"wrote {args.out} ({size / 2**20:.2f} MiB): " + ", ".join(
            f"{s} {counts[s]} utterances / {len(voices[s])} voices" for s in SPLITS))
    except EdgelearnError as exc:
        print(f"make_dataset: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
