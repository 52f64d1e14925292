"""Declared sizes of HDF5 datasets, checked before any is read (L0; h5py imported lazily).

    check_hdf5_sizes(path, what, error)

Each dataset's declared bytes (shape times item size) must be at most
``limits().array_bytes`` and at most ``limits().compression_ratio`` times the storage it
occupies in the file plus 64 KiB: a chunked dataset that stores nothing reads as its fill value,
of any declared size, so a 100 KB file could otherwise make a reader allocate gigabytes.
Used by the NIR reader (edgelearn.io.nir_io) and the SHD reader (edgelearn.data.shd).
"""

from __future__ import annotations

import os

from edgelearn.boundary.limits import limits
from edgelearn.errors import EdgelearnError, SizeLimitError

SLACK = 64 * 1024


def check_hdf5_sizes(path: str | os.PathLike, what: str, error: type[EdgelearnError],
                     kind: str = "HDF5") -> None:
    """Refuse (SizeLimitError) an HDF5 file whose datasets declare more than they can hold;
    ``error`` ("WHAT is not a readable KIND file: ...") for a file h5py cannot open, or when
    h5py is missing."""
    try:
        import h5py
    except ImportError:
        raise error("reading HDF5 files needs the 'h5py' package: pip install "
                    "'edgelearn[nir]'") from None
    found: list[tuple[str, int, int]] = []

    def visit(name, obj) -> None:
        if isinstance(obj, h5py.Dataset):
            n = 1
            for d in obj.shape or ():
                n *= int(d)
            found.append((name, n * obj.dtype.itemsize, int(obj.id.get_storage_size())))

    try:
        with h5py.File(path, "r") as f:
            f.visititems(visit)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise error(f"{what} is not a readable {kind} file: {line[:150]}") from None
    cap, ratio = limits().array_bytes, limits().compression_ratio
    for name, declared, stored in found:
        bound = min(cap, ratio * stored + SLACK)
        if declared > bound:
            raise SizeLimitError(f"{what}: dataset '{name}' declares {declared} bytes but "
                                 f"stores {stored} (at most {bound} allowed)")
