"""Reader (and a small writer) for the Spiking Heidelberg Digits HDF5 layout (Cramer et al. 2020).

Layout of an SHD file (shd_train.h5 / shd_test.h5):

    spikes/times   N ragged float arrays, spike times in seconds
    spikes/units   N ragged uint16 arrays, the channel (0..699) of each spike
    labels         [N] integer class labels (20 classes: English and German digits)
    extra/speaker  [N] speaker ids (optional)

:func:`load_shd` bins each sample into x [n_bins, C] spike counts (uint8, saturating at 255):

    bin     = floor(t / max_time * n_bins)      spikes with t >= max_time are dropped
    channel = unit // downsample                 C = ceil(n_units / downsample)

h5py is imported only when a file is read or written (``pip install edgelearn[data]``).
Malformed files raise DataError naming the file and what is wrong.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from edgelearn.atomic import atomic_write_bytes
from edgelearn.boundary import check_hdf5_sizes, limits
from edgelearn.data.dataset import Dataset
from edgelearn.errors import DataError, SizeLimitError

SHD_UNITS = 700
SHD_CLASSES = 20


def _h5py():
    try:
        import h5py
    except ImportError:
        raise DataError("reading SHD files needs h5py: pip install h5py (or edgelearn[data])"
                        ) from None
    return h5py


def load_shd(path: str | os.PathLike, n_bins: int = 100, max_time: float = 1.0,
             downsample: int = 1, n_units: int = SHD_UNITS, n_classes: int | None = None,
             limit: int | None = None) -> Dataset:
    """Read an SHD-layout HDF5 file into a Dataset x uint8 [N, n_bins, ceil(n_units/downsample)].

    Args:
        path: the .h5 file.
        n_bins: T, number of time bins spanning [0, max_time).
        max_time: seconds covered; later spikes are dropped.
        downsample: merge this many neighbouring channels into one.
        n_units: input channels in the file (700 for SHD); a larger unit id is an error.
        n_classes: number of classes (default 20, as in SHD); a label >= n_classes is a
            DataError.
        limit: read only the first ``limit`` samples.
    """
    if int(n_bins) < 1:
        raise DataError(f"SHD n_bins must be >= 1, got {n_bins}")
    if not (np.isfinite(max_time) and max_time > 0):
        raise DataError(f"SHD max_time must be > 0 seconds, got {max_time}")
    if int(downsample) < 1:
        raise DataError(f"SHD downsample must be >= 1, got {downsample}")
    if int(n_units) < 1:
        raise DataError(f"SHD n_units must be >= 1, got {n_units}")
    h5py = _h5py()
    path = Path(path)
    if not path.is_file():
        raise DataError(f"SHD file '{path}' does not exist")
    check_hdf5_sizes(path, f"SHD file '{path}'", error=DataError)
    try:
        fh = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise DataError(f"SHD file '{path}' is not a readable HDF5 file: "
                        f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    with fh:
        return _read(fh, path, int(n_bins), float(max_time), int(downsample), int(n_units),
                     n_classes, limit)


def _dataset(fh, key: str, path: Path):
    try:
        obj = fh[key]
    except KeyError:
        raise DataError(f"SHD file '{path}' has no '{key}' dataset (top level: "
                        f"{', '.join(sorted(fh.keys())) or 'empty'})") from None
    if not hasattr(obj, "shape"):
        raise DataError(f"SHD file '{path}': '{key}' is a group, expected a dataset")
    return obj


def _read(fh, path: Path, n_bins: int, max_time: float, downsample: int, n_units: int,
          n_classes: int | None, limit: int | None) -> Dataset:
    times_ds = _dataset(fh, "spikes/times", path)
    units_ds = _dataset(fh, "spikes/units", path)
    labels_ds = _dataset(fh, "labels", path)
    try:
        labels = np.asarray(labels_ds[()])
    except (OSError, ValueError, TypeError) as exc:
        raise DataError(f"SHD file '{path}': 'labels' is unreadable ({exc})") from None
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(f"SHD file '{path}': 'labels' must be a 1-d integer array, got shape "
                        f"{labels.shape} dtype {labels.dtype}")
    n = labels.shape[0]
    if len(times_ds) != n or len(units_ds) != n:
        raise DataError(f"SHD file '{path}': spikes/times has {len(times_ds)} samples, "
                        f"spikes/units {len(units_ds)}, labels {n}")
    if limit is not None:
        if int(limit) < 1:
            raise DataError(f"SHD limit must be >= 1, got {limit}")
        n = min(n, int(limit))
        labels = labels[:n]
    if n == 0:
        raise DataError(f"SHD file '{path}' holds no samples")
    if n_classes is None:
        n_classes = SHD_CLASSES
    c = -(-n_units // downsample)
    nbytes = n * n_bins * c * 2
    if nbytes > limits().array_bytes:
        raise SizeLimitError(f"SHD file '{path}': {n} samples of {n_bins} bins x {c} channels "
                             f"take {nbytes} bytes while binning, limit {limits().array_bytes} "
                             f"(limit array_bytes; use --limit, fewer --bins or --downsample)")
    x = np.zeros((n, n_bins, c), dtype=np.uint16)
    for i in range(n):
        try:
            t = np.asarray(times_ds[i], dtype=np.float64)
            u = np.asarray(units_ds[i])
        except (OSError, ValueError, TypeError) as exc:
            raise DataError(f"SHD file '{path}': sample {i} is unreadable ({exc})") from None
        if t.ndim != 1 or u.ndim != 1 or t.shape != u.shape:
            raise DataError(f"SHD file '{path}': sample {i} has {t.size} times but {u.size} "
                            f"units")
        if u.size and u.dtype.kind not in "iu":
            raise DataError(f"SHD file '{path}': sample {i} units must be integers, got "
                            f"{u.dtype}")
        if not np.all(np.isfinite(t)) or (t.size and t.min() < 0):
            raise DataError(f"SHD file '{path}': sample {i} has negative or non-finite spike "
                            f"times")
        if u.size and (int(u.max()) >= n_units or int(u.min()) < 0):
            raise DataError(f"SHD file '{path}': sample {i} has unit {int(u.max())}, expected "
                            f"units in [0, {n_units})")
        keep = t < max_time
        b = np.floor(t[keep] * (n_bins / max_time)).astype(np.int64)
        np.add.at(x[i], (np.minimum(b, n_bins - 1), u[keep].astype(np.int64) // downsample), 1)
    meta: dict = {"source": str(path), "format": "shd", "n_bins": n_bins, "max_time": max_time,
                  "downsample": downsample, "n_units": n_units}
    if "extra" in fh and "speaker" in fh["extra"]:
        speaker = np.asarray(fh["extra"]["speaker"][()])
        if speaker.ndim == 1 and speaker.shape[0] >= n:
            meta["speaker"] = speaker[:n].astype(np.int64)
    return Dataset(np.minimum(x, 255).astype(np.uint8), labels.astype(np.int64), n_classes,
                   f"shd/{path.stem}", meta)


def write_shd(path: str | os.PathLike, times: list, units: list, labels,
              speakers=None) -> None:
    """Write samples in the SHD layout (ragged float32 times in s, uint16 units), atomically."""
    h5py = _h5py()
    if not (len(times) == len(units) == len(labels)):
        raise DataError(f"write_shd: {len(times)} time arrays, {len(units)} unit arrays, "
                        f"{len(labels)} labels")
    buf = io.BytesIO()
    with h5py.File(buf, "w") as fh:
        spikes = fh.create_group("spikes")
        ft = h5py.vlen_dtype(np.dtype("float32"))
        fu = h5py.vlen_dtype(np.dtype("uint16"))
        dt = spikes.create_dataset("times", (len(times),), dtype=ft)
        du = spikes.create_dataset("units", (len(units),), dtype=fu)
        for i, (t, u) in enumerate(zip(times, units)):
            dt[i] = np.asarray(t, dtype=np.float32)
            du[i] = np.asarray(u, dtype=np.uint16)
        fh.create_dataset("labels", data=np.asarray(labels, dtype=np.uint8))
        if speakers is not None:
            fh.create_group("extra").create_dataset("speaker",
                                                    data=np.asarray(speakers, dtype=np.uint8))
    atomic_write_bytes(path, buf.getvalue())
