"""Open a model file of any supported kind, by content (L2).

ONNX (protobuf) files go to :func:`edgelearn.io.onnx_load.load_model`; NIR files (HDF5,
recognised by the HDF5 signature) to :func:`edgelearn.io.nir_io.load_nir`, which needs dt.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgelearn.errors import ModelFileError

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def file_kind(path: str | os.PathLike) -> str:
    """'nir' or 'onnx' (anything that is not HDF5 is tried as ONNX)."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"cannot read model file '{path}': no such file")
    if path.is_dir():
        raise ModelFileError(f"model path '{path}' is a directory")
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise ModelFileError(f"cannot read model file '{path}': {exc.strerror}") from None
    return "nir" if head == HDF5_MAGIC else "onnx"


def load_any(path: str | os.PathLike, dt: float | None = None, verify: bool = True):
    """Network (or OpaqueModel for an unrecognised ONNX step graph) from an ONNX or NIR file."""
    if file_kind(path) == "nir":
        if dt is None:
            raise ModelFileError(f"'{path}' is a NIR file, which stores no time step; give "
                                 f"--dt SECONDS (e.g. --dt 1e-3)")
        from edgelearn.io.nir_io import load_nir

        return load_nir(path, dt)
    from edgelearn.io.onnx_load import load_model

    return load_model(path, verify=verify)
