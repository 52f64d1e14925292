"""Open a model file of any supported kind, by content (L2).

ONNX (protobuf) files go to :func:`edgelearn.io.onnx_load.load_model`; NIR files (HDF5,
recognised by the HDF5 signature) to :func:`edgelearn.io.nir_io.load_nir`, which needs dt.
:func:`load_any_model` also opens the integer forms: a quantized-profile ONNX file and a
device image (``.bin``, magic ``ELQN``), as a QNetwork.
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


def load_any_model(path: str | os.PathLike, dt: float | None = None, verify: bool = True):
    """Network, OpaqueModel, or QNetwork (a quantized-profile ONNX file or a device image)."""
    from edgelearn.kernels.image import MAGIC, from_image

    kind = file_kind(path)
    with open(path, "rb") as fh:
        head = fh.read(len(MAGIC))
    if head == MAGIC:
        return from_image(Path(path).read_bytes())
    if kind == "onnx":
        from edgelearn.io import onnx_meta as M
        from edgelearn.io.onnx_load import read_model_file

        model, _ = read_model_file(path, check=False)
        if M.KEY_QUANTIZED in M.read_metadata(model):
            from edgelearn.io.onnx_quant import load_qnetwork

            return load_qnetwork(path, verify=verify)
    return load_any(path, dt=dt, verify=verify)
