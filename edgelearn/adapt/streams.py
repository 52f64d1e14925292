"""Adaptation streams named on the command line.

    new_user            the bundled speech-digits new-user split, one voice after another
    speech:SPLIT        any split of the bundled speech digits (train, test, new_user)
    PATH.npz            a data set saved with edgelearn.data.save_npz

Samples are visited in a seeded order (grouped by voice when the data set records voices, as
new speakers would arrive one after another).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgelearn.data import Dataset, load_npz, load_speech_digits
from edgelearn.data.streams import make_stream
from edgelearn.errors import DataError


def load_dataset(spec: str) -> Dataset:
    if spec == "new_user":
        return load_speech_digits("new_user")
    if spec.startswith("speech:"):
        return load_speech_digits(spec.split(":", 1)[1])
    if spec.endswith(".npz"):
        if not Path(spec).exists():
            raise DataError(f"stream file {spec} does not exist")
        return load_npz(spec)
    raise DataError(f"unknown stream {spec!r}; use new_user, speech:SPLIT or a .npz file")


def load_stream(spec: str, n_in: int, seed: int = 0, limit: int | None = None
                ) -> tuple[np.ndarray, np.ndarray, Dataset]:
    """(x [N, T, n_in], y [N], data set) of a stream, checked against the model's input."""
    ds = load_dataset(spec)
    if ds.x.shape[2] != n_in:
        raise DataError(f"stream '{spec}' has {ds.x.shape[2]} channels but the model expects "
                        f"{n_in}")
    group = "voice" if isinstance(ds.meta.get("voice"), np.ndarray) else None
    n = len(ds) if limit is None else min(int(limit), len(ds))
    if n < 1:
        raise DataError(f"stream '{spec}' would be empty (limit {limit})")
    stream = make_stream(ds, (), n_samples=n, seed=seed, group_key=group)
    x, y = stream.as_arrays()
    return x, y, ds
