"""Parse ONNX bytes from an untrusted source, with the checks made before anything large is
allocated: protobuf parse, graph and opset present, declared initializer sizes (and the data
each holds), known operators, no external data (L2). Used by the loaders (onnx_load) and by
onnxruntime sessions made from untrusted bytes (ort_session).
"""

from __future__ import annotations

import onnx
from google.protobuf.message import DecodeError

from edgelearn.errors import ModelFileError
from edgelearn.io import onnx_meta as M
from edgelearn.model import MAX_PARAMETERS


def parse_model_bytes(data: bytes, what: str = "model") -> onnx.ModelProto:
    try:
        model = onnx.ModelProto()
        model.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"'{what}' is not a valid ONNX file (truncated or corrupt: "
                             f"{str(exc)[:120] or type(exc).__name__})") from None
    if not model.HasField("graph") or not model.opset_import:
        raise ModelFileError(f"'{what}' is not a valid ONNX file (no graph or opset; "
                             f"truncated or not ONNX)")
    _check_declared_sizes(model.graph, what)
    _check_known_ops(model.graph, what)
    for init in model.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            raise ModelFileError(f"'{what}': initializer '{init.name}' uses external data, "
                                 f"which edgelearn does not read")
    return model


def _check_known_ops(graph, what: str) -> None:
    """Name the first operator of the standard domain that ONNX does not define."""
    for node in graph.node:
        if not isinstance(node.op_type, str) or not isinstance(node.domain, str):
            raise ModelFileError(f"'{what}': a node's op type or domain is not valid text")
        if node.domain in ("", "ai.onnx") and not onnx.defs.has(node.op_type):
            raise ModelFileError(f"'{what}': unknown op '{node.op_type}' (node '{node.name}')")
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _check_known_ops(attr.g, what)


def _check_declared_sizes(graph, what: str) -> None:
    """Refuse absurd tensors before numpy allocates them."""
    total = 0
    known = set(onnx.TensorProto.DataType.values())
    for init in graph.initializer:
        if init.data_type not in known or init.data_type == onnx.TensorProto.UNDEFINED:
            raise ModelFileError(f"'{what}': initializer '{init.name}' has unknown element type "
                                 f"{init.data_type}")
        n = M.tensor_size(init)
        if any(d < 0 for d in init.dims) or n > MAX_PARAMETERS:
            raise ModelFileError(f"'{what}': initializer '{init.name}' declares shape "
                                 f"{list(init.dims)} ({n} elements), limit {MAX_PARAMETERS}")
        _check_held(init, n, what)
        total += n
    if total > 2 * MAX_PARAMETERS:
        raise ModelFileError(f"'{what}': initializers hold {total} elements in all, limit "
                             f"{2 * MAX_PARAMETERS}")


_PACKED = {getattr(onnx.TensorProto, n) for n in ("INT4", "UINT4", "FLOAT4E2M1")
           if hasattr(onnx.TensorProto, n)}


def _check_held(init, n: int, what: str) -> None:
    """The data an initializer holds must be exactly what its dims declare."""
    if init.data_type in _PACKED or init.data_type == onnx.TensorProto.STRING:
        return
    if init.HasField("raw_data"):
        size = onnx.helper.tensor_dtype_to_np_dtype(init.data_type).itemsize
        if len(init.raw_data) != size * n:
            raise ModelFileError(f"'{what}': initializer '{init.name}' declares {n} elements "
                                 f"({size * n} bytes) but holds {len(init.raw_data)} bytes")
        return
    field = onnx.helper.tensor_dtype_to_field(init.data_type)
    per = 2 if init.data_type in (onnx.TensorProto.COMPLEX64, onnx.TensorProto.COMPLEX128) else 1
    held = len(getattr(init, field))
    if held != per * n:
        raise ModelFileError(f"'{what}': initializer '{init.name}' declares {n} elements but "
                             f"holds {held // per}")


