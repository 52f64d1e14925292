"""Atomic file writes (L0): write to a temp file in the same folder, fsync, rename.

A crash or an error midway leaves either the old file or none, never a partial one. A path
that cannot be written (its folder is a file, no permission, read-only or full disk) raises
OutputError naming the path.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

from edgelearn.errors import OutputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _cannot_write(path: Path, exc: OSError) -> OutputError:
    reason = exc.strerror or type(exc).__name__
    return OutputError(f"cannot write '{path}': {reason}")


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open ``path`` for binary writing; the file appears only if the block succeeds."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write '{path}': it is a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _cannot_write(path, exc) from None
        raise
    with contextlib.suppress(OSError):
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path) as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_png(fig, path: str | os.PathLike, dpi: int = 110, **savefig_kw) -> None:
    """Save a matplotlib figure ``fig`` as PNG to ``path`` atomically (no matplotlib import
    here: any object with ``savefig(file, format=..., dpi=...)`` works)."""
    with atomic_open(path) as fh:
        fig.savefig(fh, format="png", dpi=dpi, **savefig_kw)


def check_folder(path: str | os.PathLike) -> Path:
    """Refuse (OutputError) an output folder that could not be created or written, without
    leaving anything behind: ``path`` or its nearest existing ancestor must be a folder in
    which a folder can be created (tried, then removed)."""
    path = Path(path)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        what = "it is a file" if probe == path else f"'{probe}' is a file"
        raise OutputError(f"cannot use '{path}' as a folder: {what}")
    try:  # the only test that holds for every user and file system: try it
        os.rmdir(tempfile.mkdtemp(prefix=".edgelearn-probe-", dir=probe))
    except OSError as exc:
        raise OutputError(f"cannot write into folder '{probe}': "
                          f"{exc.strerror or exc}") from None
    return path


def make_folder(path: str | os.PathLike) -> Path:
    """Create the output folder ``path`` (and its parents) if needed; OutputError if it is a
    file or cannot be created or written."""
    path = check_folder(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create folder '{path}': {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write into folder '{path}': permission denied")
    return path
