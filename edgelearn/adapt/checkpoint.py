"""Atomic checkpoints: one .npz holding named arrays plus a JSON document.

The JSON (loop position, metrics so far, RNG state, configuration) is stored as a uint8 array
under the key ``__json__`` so that arrays and metadata are written in one atomic rename: a run
killed at any moment leaves either the previous checkpoint or the new one, never a mix.

A checkpoint is read like any untrusted file (edgelearn.boundary: array sizes and JSON depth
checked before allocation); a damaged one is refused with a message that says how to start
over (delete it, or rerun with ``--fresh``).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

from edgelearn.atomic import atomic_write_bytes
from edgelearn.boundary import parse_json, read_npz
from edgelearn.errors import DataError, LimitError

_JSON_KEY = "__json__"
START_OVER = "delete it or rerun with --fresh to start over"


def damaged(path: str | os.PathLike, why: str) -> DataError:
    """The error for a checkpoint that cannot be resumed (says how to start over)."""
    return DataError(f"checkpoint {path} is damaged ({why}); {START_OVER}")


def save_checkpoint(path: str | os.PathLike, arrays: dict[str, np.ndarray], doc: dict) -> None:
    """Write ``arrays`` and ``doc`` (JSON-serialisable) to ``path`` atomically."""
    for k, v in arrays.items():
        if np.asarray(v).dtype == object:
            raise DataError(f"checkpoint array '{k}' has dtype object; only numeric arrays")
    buf = io.BytesIO()
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    payload[_JSON_KEY] = np.frombuffer(json.dumps(doc).encode("utf-8"), dtype=np.uint8)
    np.savez(buf, **payload)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """Read a checkpoint written by :func:`save_checkpoint` (no pickle); DataError naming the
    damage and how to start over if it cannot be read."""
    path = Path(path)
    try:
        arrays = read_npz(path, what="the archive", error=DataError)
        if _JSON_KEY not in arrays:
            raise DataError("no metadata record")
        record = arrays.pop(_JSON_KEY)
        if record.dtype != np.uint8 or record.ndim != 1:
            raise DataError("metadata record is not UTF-8 bytes")
        doc = parse_json(record.tobytes(), "the metadata record", error=DataError)
        if not isinstance(doc, dict):
            raise DataError("metadata record is not a JSON object")
    except (DataError, LimitError) as exc:
        raise damaged(path, str(exc)) from None
    return arrays, doc
