"""Adaptation streams named on the command line.

    STREAM  := SOURCE [ "@" OPTION { "," OPTION } ]
    SOURCE  := new_user             the bundled speech-digits new-user split
             | speech:SPLIT         any split of the bundled speech digits (train, test, new_user)
             | PATH.npz             a data set saved with edgelearn.data.save_npz
    OPTION  := voice=NAME           only the samples of that voice (one user)
             | accent=NAME          only the voices whose name up to the first '+' is NAME
             | KIND=SEVERITY        a drift of the stream (edgelearn.data.streams), applied in
                                    the order written; KIND is one of
                                    gain (GainDrift), shift (ChannelShift), dead (DeadChannels),
                                    noise (NoiseSpikes), warp (TimeWarp),
                                    tilt (SpectralTilt, dB), bank (BankShift, channels)

Voices are the data set's per-sample ``meta["voice"]`` indices into ``meta["voices"]`` (names);
``voice=`` and ``accent=`` need them. Example: ``new_user@voice=en-gb+whisper,gain=0.3``.

The stream holds min(limit, samples left after the filters) samples (never repeated), visited
in a seeded order grouped by voice (as new speakers would arrive one after another):
``edgelearn.data.streams.make_stream(filtered, drifts, n, seed, group_key="voice")``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgelearn.data import Dataset, load_npz, load_speech_digits
from edgelearn.data.streams import (BankShift, ChannelShift, DeadChannels, GainDrift,
                                    NoiseSpikes, SpectralTilt, TimeWarp, Transform, make_stream)
from edgelearn.errors import DataError, ParameterError

DRIFTS: dict[str, type[Transform]] = {"gain": GainDrift, "shift": ChannelShift,
                                      "dead": DeadChannels, "noise": NoiseSpikes,
                                      "warp": TimeWarp, "tilt": SpectralTilt,
                                      "bank": BankShift}
USER_KEYS = ("voice", "accent")


@dataclass(frozen=True)
class StreamSpec:
    """A parsed STREAM: its source, user filters and drifts (kind, severity) in order."""

    source: str
    users: tuple[tuple[str, str], ...] = ()
    drifts: tuple[tuple[str, float], ...] = ()

    def __str__(self) -> str:
        opts = [f"{k}={v}" for k, v in self.users] + [f"{k}={s!r}" for k, s in self.drifts]
        return self.source + ("@" + ",".join(opts) if opts else "")


def split_source(spec: str) -> tuple[str, str]:
    """``"new_user@voice=x"`` -> ("new_user", "voice=x"); a path may itself hold '@'."""
    spec = str(spec)
    cut = spec.find(".npz@")
    if cut >= 0:
        return spec[:cut + 4], spec[cut + 5:]
    source, _, opts = spec.partition("@")
    return source, opts


def parse_options(spec: str, opts: str) -> list[tuple[str, str]]:
    """``"a=1,b=2"`` -> [("a", "1"), ("b", "2")], refusing items without '='."""
    out = []
    for item in (opts.split(",") if opts else []):
        key, eq, value = item.partition("=")
        if not eq or not key or not value:
            raise DataError(f"stream {spec!r}: option {item!r} is not KEY=VALUE")
        out.append((key.strip(), value.strip()))
    return out


def parse_severity(spec: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value):
        raise DataError(f"stream {spec!r}: severity {text!r} is not a finite number")
    return value


def parse_stream(spec: str) -> StreamSpec:
    """Parse a STREAM (see the module docstring); errors name the bad option."""
    source, opts = split_source(spec)
    users, drifts = [], []
    for key, value in parse_options(spec, opts):
        if key in USER_KEYS:
            users.append((key, value))
        elif key in DRIFTS:
            drifts.append((key, parse_severity(spec, value)))
        else:
            raise DataError(f"stream {spec!r}: unknown option {key!r}; use voice=, accent= or "
                            f"a drift {'=, '.join(DRIFTS)}=")
    return StreamSpec(source, tuple(users), tuple(drifts))


def load_dataset(spec: str) -> Dataset:
    """The data set of a SOURCE (no options)."""
    if spec == "new_user":
        return load_speech_digits("new_user")
    if spec.startswith("speech:"):
        return load_speech_digits(spec.split(":", 1)[1])
    if spec.endswith(".npz"):
        if not Path(spec).exists():
            raise DataError(f"stream file {spec} does not exist")
        return load_npz(spec)
    raise DataError(f"unknown stream {spec!r}; use new_user, speech:SPLIT or a .npz file")


def accent_of(voice: str) -> str:
    """The accent of a voice name: up to the first '+' ('en-gb+whisper' -> 'en-gb')."""
    return voice.split("+", 1)[0]


def voice_names(ds: Dataset) -> np.ndarray | None:
    """Per-sample voice names of ``ds`` (None when it records no voices)."""
    idx, names = ds.meta.get("voice"), ds.meta.get("voices")
    if not isinstance(idx, np.ndarray) or not isinstance(names, (list, tuple, np.ndarray)):
        return None
    names = np.asarray([str(n) for n in names])
    if idx.shape != (len(ds),) or (idx.size and (idx.min() < 0 or idx.max() >= names.size)):
        raise DataError(f"data set '{ds.name}': meta 'voice' does not index its {names.size} "
                        f"voice names")
    return names[idx]


def user_filter(ds: Dataset, users: tuple[tuple[str, str], ...], spec: str) -> Dataset:
    """The samples of ``ds`` that every (voice=|accent=) filter keeps."""
    if not users:
        return ds
    names = voice_names(ds)
    if names is None:
        raise DataError(f"stream {spec!r}: data set '{ds.name}' records no voices "
                        f"(meta 'voice' and 'voices'), so it has no users to select")
    keep = np.ones(len(ds), dtype=bool)
    for key, value in users:
        of = names if key == "voice" else np.asarray([accent_of(n) for n in names])
        hit = of == value
        if not hit.any():
            raise DataError(f"stream {spec!r}: data set '{ds.name}' has no samples of {key} "
                            f"{value!r}")
        keep &= hit
    if not keep.any():
        raise DataError(f"stream {spec!r}: no sample of '{ds.name}' passes every filter")
    return ds.subset(keep, f"{ds.name}@{','.join(f'{k}={v}' for k, v in users)}")


def segment_names(ds: Dataset, indices: np.ndarray) -> list[str] | None:
    """Per stream sample, which kind of user it comes from (None without voices): "whisper
    voices" for whisper variants, else the voice's accent ("unseen accent NAME" on the
    new-user split, whose non-whisper voices are all the held-out accent)."""
    names = voice_names(ds)
    if names is None:
        return None
    unseen = "unseen accent " if ds.meta.get("split") == "new_user" else "accent "
    return ["whisper voices" if "whisper" in v else unseen + accent_of(v)
            for v in names[np.asarray(indices)]]


def load_stream(spec: str, n_in: int, seed: int = 0, limit: int | None = None,
                segments: bool = False):
    """(x [N, T, n_in], y [N], data set) of a STREAM, checked against the model's input;
    with ``segments`` a fourth element: :func:`segment_names` of the stream's samples."""
    parsed = parse_stream(spec)
    ds = load_dataset(parsed.source)
    if ds.x.shape[2] != n_in:
        raise DataError(f"stream '{spec}' has {ds.x.shape[2]} channels but the model expects "
                        f"{n_in}")
    ds = user_filter(ds, parsed.users, spec)
    try:
        drifts = [DRIFTS[k](severity=s) for k, s in parsed.drifts]
    except ParameterError as exc:
        raise DataError(f"stream {spec!r}: {exc}") from None
    group = "voice" if isinstance(ds.meta.get("voice"), np.ndarray) else None
    n = len(ds) if limit is None else min(int(limit), len(ds))
    if n < 1:
        raise DataError(f"stream '{spec}' would be empty (limit {limit})")
    stream = make_stream(ds, drifts, n_samples=n, seed=seed, group_key=group)
    x, y = stream.as_arrays()
    if segments:
        return x, y, ds, segment_names(ds, stream.indices)
    return x, y, ds
