"""Atomic checkpoints: one .npz holding named arrays plus a JSON document.

The JSON (loop position, metrics so far, RNG state, configuration) is stored as a uint8 array
under the key ``__json__`` so that arrays and metadata are written in one atomic rename: a run
killed at any moment leaves either the previous checkpoint or the new one, never a mix.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from edgelearn.atomic import atomic_write_bytes
from edgelearn.errors import DataError

_JSON_KEY = "__json__"


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
    """Read a checkpoint written by :func:`save_checkpoint` (no pickle)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k != _JSON_KEY}
            if _JSON_KEY not in z.files:
                raise DataError(f"checkpoint {path} has no metadata record")
            doc = json.loads(z[_JSON_KEY].tobytes().decode("utf-8"))
    except (OSError, ValueError, zipfile.BadZipFile, json.JSONDecodeError, EOFError) as exc:
        raise DataError(f"checkpoint {path} is unreadable: {exc}") from None
    return arrays, doc
