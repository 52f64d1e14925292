"""Read numpy arrays from untrusted .npy/.npz files (or bytes) without pickle and without
allocating more than the file can hold (L0).

    read_npy(path, what, error=InputError) -> ndarray
    read_npz(source, what, error=DataError) -> dict[str, ndarray]   (path or bytes)

Before any array is allocated, its .npy header is read and checked:

  * the dtype is plain data: bool, integers, floats, complex, or fixed-width strings (anything
    holding Python objects is pickled data and refused, as are structured dtypes);
  * declared bytes = prod(shape) * itemsize must fit in the bytes that follow the header (for
    an .npz member: the member's uncompressed size), and at most ``limits().array_bytes``;
  * an .npz member must be stored or deflated, and its uncompressed size may be at most
    ``limits().compression_ratio`` times its compressed size plus 64 KiB (no zip bombs).

Problems raise ``error`` (the caller's kind: DataError for data sets, ModelFileError for model
side files, InputError for inputs) with one line naming the file, the member and the numbers;
exceeded limits raise SizeLimitError.
"""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from edgelearn.boundary.limits import limits
from edgelearn.errors import DataError, EdgelearnError, InputError, SizeLimitError

NPY_MAGIC = b"\x93NUMPY"
ZIP_SLACK = 64 * 1024
READ_CHUNK = 16 << 20
PLAIN_KINDS = "biufcUS"
_PARSE_ERRORS = (ValueError, SyntaxError, TypeError, EOFError, OverflowError, RecursionError,
                 KeyError, IndexError, UnicodeError, NotImplementedError, zipfile.BadZipFile,
                 zipfile.LargeZipFile, zlib.error, OSError, MemoryError)


def _first_line(exc: BaseException) -> str:
    return ((str(exc).strip().splitlines() or [type(exc).__name__])[0])[:160]


def _header(fp, what: str, error: type[EdgelearnError]) -> tuple[tuple, np.dtype]:
    """(shape, dtype) of the .npy stream at ``fp`` (positioned at its start); leaves ``fp`` at
    the first data byte."""
    magic = fp.read(len(NPY_MAGIC))
    if magic != NPY_MAGIC:
        hint = " (a pickle stream?)" if magic[:1] == b"\x80" else ""
        raise error(f"{what} is not a .npy array (magic {magic[:6]!r}){hint}")
    version = (fp.read(1) or b"\0")[0], (fp.read(1) or b"\0")[0]
    if version not in ((1, 0), (2, 0)):
        raise error(f"{what} is not a readable .npy array (format version "
                    f"{version[0]}.{version[1]}; 1.0 and 2.0 are read)")
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) \
        else np.lib.format.read_array_header_2_0
    try:
        shape, _, dtype = read(fp)
    except Exception as exc:  # noqa: BLE001 - numpy's header parser raises many types
        raise error(f"{what} is not a readable .npy array (header: {_first_line(exc)})") \
            from None
    if dtype.hasobject:
        raise error(f"{what} holds Python objects (pickled data), which edgelearn never loads")
    if dtype.kind not in PLAIN_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise error(f"{what} has dtype {dtype}; only plain numbers and strings are read")
    return tuple(int(d) for d in shape), dtype


def _check_declared(shape: tuple, dtype: np.dtype, available: int, what: str) -> int:
    n = 1
    for d in shape:
        n *= d
    nbytes = n * dtype.itemsize
    if nbytes > available:
        raise SizeLimitError(f"{what} declares shape {shape} of {dtype} ({nbytes} bytes) but "
                             f"holds at most {available} bytes")
    cap = limits().array_bytes
    if nbytes > cap:
        raise SizeLimitError(f"{what} declares shape {shape} of {dtype} ({nbytes} bytes), "
                             f"limit {cap} bytes per array")
    return nbytes


def _read_data(fp, shape: tuple, dtype: np.dtype, nbytes: int, what: str,
               error: type[EdgelearnError]) -> np.ndarray:
    arr = np.empty(shape, dtype=dtype)
    buf = memoryview(arr.reshape(-1).view(np.uint8)) if nbytes else memoryview(b"")
    done = 0
    while done < nbytes:     # in chunks: no second copy of the array in memory
        got = fp.readinto(buf[done:done + READ_CHUNK])
        if not got:
            raise error(f"{what} is truncated: {done} of {nbytes} data bytes")
        done += got
    return arr


def _regular_file(path: Path, what: str, error: type[EdgelearnError]) -> None:
    if not path.exists():
        raise error(f"{what} does not exist")
    if not path.is_file():
        raise error(f"{what} is not a regular file")


def read_npy(path: str | os.PathLike, what: str | None = None,
             error: type[EdgelearnError] = InputError) -> np.ndarray:
    """One array from an .npy file (``what`` names it in messages, default "file 'PATH'")."""
    path = Path(path)
    what = what or f"file '{path}'"
    _regular_file(path, what, error)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(4)
            fh.seek(0)
            if head == b"PK\x03\x04":
                raise error(f"{what} holds several arrays (.npz); give one .npy array")
            shape, dtype = _header(fh, what, error)
            nbytes = _check_declared(shape, dtype, size - fh.tell(), what)
            return _read_data(fh, shape, dtype, nbytes, what, error)
    except EdgelearnError:
        raise
    except _PARSE_ERRORS as exc:
        raise error(f"{what} is not a readable .npy array: {_first_line(exc)}") from None


def _member_limit(info: zipfile.ZipInfo, what: str, error: type[EdgelearnError]) -> None:
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise error(f"{what}: member '{info.filename}' uses compression method "
                    f"{info.compress_type}; only stored or deflated members are read")
    if info.compress_type == zipfile.ZIP_STORED:
        bound = info.compress_size
    else:
        bound = limits().compression_ratio * info.compress_size + ZIP_SLACK
    if info.file_size > bound:
        raise SizeLimitError(f"{what}: member '{info.filename}' declares {info.file_size} bytes "
                             f"from {info.compress_size} compressed bytes (at most {bound} "
                             f"possible)")


def read_npz(source: str | os.PathLike | bytes, what: str | None = None,
             error: type[EdgelearnError] = DataError) -> dict[str, np.ndarray]:
    """All arrays of an .npz archive (a path, or the archive's bytes), keyed without '.npy'."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        what = what or "npz data"
        stream = io.BytesIO(bytes(source))
    else:
        path = Path(source)
        what = what or f"file '{path}'"
        _regular_file(path, what, error)
        stream = None
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(stream if stream is not None else path) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                key = info.filename.removesuffix(".npy")
                if key == info.filename:
                    raise error(f"{what}: member '{info.filename}' is not an .npy array")
                if key in out:
                    raise error(f"{what}: array '{key}' appears twice")
                _member_limit(info, what, error)
                name = f"{what}: array '{key}'"
                with zf.open(info) as fh:
                    shape, dtype = _header(fh, name, error)
                    header_len = fh.tell()
                    nbytes = _check_declared(shape, dtype, info.file_size - header_len, name)
                    out[key] = _read_data(fh, shape, dtype, nbytes, name, error)
    except EdgelearnError:
        raise
    except _PARSE_ERRORS as exc:
        raise error(f"{what} is not a readable npz archive: {_first_line(exc)}") from None
    return out
