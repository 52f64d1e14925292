"""The labelled spiking data set container and its .npz file format (L2).

A :class:`Dataset` holds N samples of T time bins by C input channels:

    x  [N, T, C]  uint8 spike counts per bin (or float32 rates/values), finite, >= 0 for counts
    y  [N]        int64 class labels, 0 <= y < n_classes

File format (``save_npz``/``load_npz``): an uncompressed-pickle-free ``np.savez_compressed``
archive with keys ``x``, ``y``, ``n_classes`` (int64 scalar), ``name`` (str scalar) and ``meta``
(a JSON string). Per-sample arrays in ``meta`` (e.g. speaker ids) are stored as extra keys
``meta__<key>``. Files are written atomically (edgelearn.atomic).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgelearn.atomic import atomic_write_bytes
from edgelearn.boundary import read_npz
from edgelearn.errors import DataError

ALLOWED_X_DTYPES = (np.uint8, np.float32)


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr = np.array(arr, copy=True)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled data set of spike-count (uint8) or float32 sequences.

    Attributes:
        x: [N, T, C] uint8 spike counts per time bin, or float32 values.
        y: [N] int64 labels in [0, n_classes).
        n_classes: number of classes (>= 1).
        name: a short name used in messages ("speech_digits/train").
        meta: free-form metadata (JSON-serialisable values, or numpy arrays of length N that
            describe each sample, e.g. ``meta["speaker"]``).
    """

    x: np.ndarray
    y: np.ndarray
    n_classes: int
    name: str = "dataset"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        name = str(self.name)
        x = np.asarray(self.x)
        y = np.asarray(self.y)
        if x.dtype not in ALLOWED_X_DTYPES:
            if x.dtype.kind in "iub" and x.size and (x.min() < 0 or x.max() > 255):
                raise DataError(f"dataset '{name}': integer x must be spike counts in [0, 255], "
                                f"got range [{x.min()}, {x.max()}]")
            if x.dtype.kind in "iub":
                x = x.astype(np.uint8)
            elif x.dtype.kind == "f":
                x = x.astype(np.float32)
            else:
                raise DataError(f"dataset '{name}': x must be uint8 or float32, got {x.dtype}")
        if x.ndim != 3:
            raise DataError(f"dataset '{name}': x must have shape [N, T, C], got shape "
                            f"{tuple(x.shape)}")
        if x.shape[0] == 0:
            raise DataError(f"dataset '{name}': is empty (0 samples)")
        if x.shape[1] == 0 or x.shape[2] == 0:
            raise DataError(f"dataset '{name}': x has an empty time or channel axis, shape "
                            f"{tuple(x.shape)}")
        if x.dtype == np.float32 and not np.all(np.isfinite(x)):
            raise DataError(f"dataset '{name}': x contains NaN or Inf")
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise DataError(f"dataset '{name}': y must have shape [{x.shape[0]}], got shape "
                            f"{tuple(y.shape)}")
        if y.dtype.kind not in "iu":
            if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
                y = y.astype(np.int64)
            else:
                raise DataError(f"dataset '{name}': labels y must be integers, got {y.dtype}")
        y = y.astype(np.int64)
        try:
            n_classes = int(self.n_classes)
        except (TypeError, ValueError):
            raise DataError(f"dataset '{name}': n_classes must be an integer, got "
                            f"{self.n_classes!r}") from None
        if n_classes < 1:
            raise DataError(f"dataset '{name}': n_classes must be >= 1, got {n_classes}")
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= n_classes:
            bad = int(np.flatnonzero((y < 0) | (y >= n_classes))[0])
            raise DataError(f"dataset '{name}': label {int(y[bad])} of sample {bad} is out of "
                            f"range [0, {n_classes})")
        meta = dict(self.meta or {})
        for key, value in meta.items():
            if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] != x.shape[0]:
                raise DataError(f"dataset '{name}': meta['{key}'] has {value.shape[0]} entries "
                                f"for {x.shape[0]} samples")
        object.__setattr__(self, "x", _readonly(x))
        object.__setattr__(self, "y", _readonly(y))
        object.__setattr__(self, "n_classes", n_classes)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "meta", meta)

    # -- convenience -------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_steps(self) -> int:
        """T, the number of time bins per sample."""
        return int(self.x.shape[1])

    @property
    def n_channels(self) -> int:
        """C, the number of input channels."""
        return int(self.x.shape[2])

    def subset(self, index, name: str | None = None) -> Dataset:
        """The samples at ``index`` (an int array or boolean mask), per-sample meta included."""
        idx = np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        if idx.size == 0:
            raise DataError(f"dataset '{self.name}': subset selects no samples")
        if idx.min() < -len(self) or idx.max() >= len(self):
            raise DataError(f"dataset '{self.name}': subset index {int(idx.max())} out of range "
                            f"for {len(self)} samples")
        meta = {k: (v[idx] if _per_sample(v, len(self)) else v) for k, v in self.meta.items()}
        return Dataset(self.x[idx], self.y[idx], self.n_classes, name or self.name, meta)

    def time_major(self) -> np.ndarray:
        """x as float32 [T, N, C], the layout of edgelearn.runtime.reference.run."""
        return np.ascontiguousarray(np.transpose(self.x, (1, 0, 2)).astype(np.float32))


def _per_sample(value: Any, n: int) -> bool:
    return isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == n


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"meta value of type {type(obj).__name__} is not JSON-serialisable")


def dataset_arrays(ds: Dataset, prefix: str = "") -> dict[str, np.ndarray]:
    """The arrays that represent ``ds`` in an npz archive (keys optionally prefixed)."""
    arrays: dict[str, np.ndarray] = {
        f"{prefix}x": ds.x, f"{prefix}y": ds.y,
        f"{prefix}n_classes": np.asarray(ds.n_classes, dtype=np.int64),
        f"{prefix}name": np.asarray(ds.name),
    }
    plain = {}
    for key, value in ds.meta.items():
        if _per_sample(value, len(ds)):
            arrays[f"{prefix}meta__{key}"] = value
        else:
            plain[key] = value
    try:
        arrays[f"{prefix}meta"] = np.asarray(json.dumps(plain, default=_json_default,
                                                        sort_keys=True))
    except TypeError as exc:
        raise DataError(f"dataset '{ds.name}': {exc}") from None
    return arrays


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A compressed npz archive of ``arrays`` as bytes (deterministic: fixed zip timestamps)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            arr = np.asarray(arrays[key])
            if arr.dtype.kind == "O":
                raise DataError(f"npz key '{key}': object arrays cannot be stored")
            inner = io.BytesIO()
            np.lib.format.write_array(inner, arr if arr.flags.c_contiguous else arr.copy(),
                                     allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, inner.getvalue(), compresslevel=9)
    return buf.getvalue()


def save_npz(ds: Dataset, path: str | os.PathLike) -> None:
    """Write ``ds`` to ``path`` as a compressed npz archive, atomically and byte-reproducibly."""
    atomic_write_bytes(path, npz_bytes(dataset_arrays(ds)))


def read_npz_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of an npz archive, sizes checked before allocation
    (edgelearn.boundary.read_npz); any unreadable file raises DataError."""
    return read_npz(path, what=f"data file '{path}'", error=DataError)


def dataset_from_arrays(arrays: dict[str, np.ndarray], prefix: str = "",
                        source: str = "archive", default_name: str = "dataset") -> Dataset:
    """Rebuild a Dataset from the keys written by :func:`dataset_arrays` (``source`` names the
    archive in errors; ``default_name`` is the name when the archive stores none)."""
    for key in ("x", "y"):
        if f"{prefix}{key}" not in arrays:
            raise DataError(f"{source}: missing key '{prefix}{key}' (has "
                            f"{', '.join(sorted(arrays)) or 'no keys'})")
    x = arrays[f"{prefix}x"]
    y = arrays[f"{prefix}y"]
    if f"{prefix}n_classes" in arrays:
        n_classes = arrays[f"{prefix}n_classes"]
        if n_classes.shape != () or n_classes.dtype.kind not in "iu":
            raise DataError(f"{source}: '{prefix}n_classes' must be an integer scalar")
        n_classes = int(n_classes)
    else:
        n_classes = int(np.max(y)) + 1 if np.size(y) else 1
    name = str(arrays[f"{prefix}name"]) if f"{prefix}name" in arrays else default_name
    meta: dict = {}
    if f"{prefix}meta" in arrays:
        try:
            meta = json.loads(str(arrays[f"{prefix}meta"]))
        except json.JSONDecodeError as exc:
            raise DataError(f"{source}: '{prefix}meta' is not valid JSON ({exc.msg})") from None
        if not isinstance(meta, dict):
            raise DataError(f"{source}: '{prefix}meta' must be a JSON object")
    tag = f"{prefix}meta__"
    for key, value in arrays.items():
        if key.startswith(tag):
            meta[key[len(tag):]] = value
    return Dataset(x, y, n_classes, name, meta)


def load_npz(path: str | os.PathLike) -> Dataset:
    """Read a Dataset written by :func:`save_npz` (never unpickles)."""
    return dataset_from_arrays(read_npz_arrays(path), source=f"data file '{path}'",
                               default_name=Path(path).stem)
