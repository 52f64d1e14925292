"""Model files (L2): the edgelearn ONNX profile, third-party ONNX step graphs, NIR.

Public API:
    save_onnx(net, path, graph="step")          write a profile file ("step" or "scan"), atomic
    load_network(path, verify=True) -> Network  ModelFileError if not recognisable
    load_model(path, verify=True) -> Network | OpaqueModel
    OnnxRuntimeBackend(net, graph="scan")       run a network's exported graph in onnxruntime
    load_nir(path_or_graph, dt) -> Network      NIR import (needs the ``nir`` extra)
    save_nir(net, path)                         NIR export
    load_any(path, dt=None) -> Network | OpaqueModel   ONNX or NIR by content
Only this package imports onnx.
"""

from edgelearn.io.onnx_export import build_model, model_bytes, save_onnx
from edgelearn.io.onnx_load import load_model, load_network
from edgelearn.io.opaque import OpaqueModel
from edgelearn.io.ort_backend import OnnxRuntimeBackend


def load_nir(path_or_graph, dt: float):
    """Import a NIR graph (file path or nir.NIRGraph) with time step ``dt`` seconds."""
    from edgelearn.io.nir_io import load_nir as _load

    return _load(path_or_graph, dt)


def save_nir(net, path) -> None:
    """Export ``net`` as a NIR file (uses ``net.dt`` for the time constants)."""
    from edgelearn.io.nir_io import save_nir as _save

    _save(net, path)


def load_any(path, dt: float | None = None, verify: bool = True):
    """Load an ONNX or NIR file (NIR needs ``dt``)."""
    from edgelearn.io.model_file import load_any as _load

    return _load(path, dt=dt, verify=verify)


__all__ = ["save_onnx", "load_network", "load_model", "OpaqueModel", "OnnxRuntimeBackend",
           "load_nir", "save_nir", "load_any", "build_model", "model_bytes"]
