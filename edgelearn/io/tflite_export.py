"""Write the integer step graph of a QNetwork as a .tflite flatbuffer, without TensorFlow (L2).

The op list is :func:`edgelearn.kernels.step_graph.build_step_graph` (float32 tensors holding
integers below 2^24, so every runtime computes it exactly), mapped one to one onto TFLite builtins:
fc -> FULLY_CONNECTED (weights [n_out, n_in], no bias), add/sub/mul -> ADD/SUB/MUL (no fused
activation, constants broadcast from [n] or [1]), floor -> FLOOR, maximum/minimum ->
MAXIMUM/MINIMUM. One subgraph; inputs ``input`` [B, n_in] then ``<layer>.current_in``,
``<layer>.membrane_in`` [B, n]; outputs ``output``, ``<layer>.spikes`` (spiking layers), then
``<layer>.current_out``, ``<layer>.membrane_out``. The batch B is fixed at export (default 1).

The file is built with the flatbuffers object API of the TFLite schema shipped in
``ai_edge_litert.schema_py_generated`` (ModelT -> Pack -> Finish with identifier b"TFL3"); buffer
0 is the empty sentinel buffer.
"""

from __future__ import annotations

import os

import numpy as np

from edgelearn.atomic import atomic_write_bytes
from edgelearn.errors import TargetError
from edgelearn.kernels.lif_fixed import QNetwork
from edgelearn.kernels.step_graph import build_step_graph


def _schema():
    try:
        import flatbuffers
        from ai_edge_litert import schema_py_generated as s
    except ImportError as exc:
        raise TargetError(f"TFLite export needs the 'tflite' extra (ai-edge-litert, "
                          f"flatbuffers): {exc}") from None
    return flatbuffers, s


def tflite_bytes(qnet: QNetwork, batch: int = 1) -> bytes:
    """The .tflite flatbuffer of the integer step graph of ``qnet`` for a fixed batch."""
    flatbuffers, s = _schema()
    g = build_step_graph(qnet, batch=batch)
    ops_of = {"fc": (s.BuiltinOperator.FULLY_CONNECTED, s.BuiltinOptions.FullyConnectedOptions),
              "add": (s.BuiltinOperator.ADD, s.BuiltinOptions.AddOptions),
              "sub": (s.BuiltinOperator.SUB, s.BuiltinOptions.SubOptions),
              "mul": (s.BuiltinOperator.MUL, s.BuiltinOptions.MulOptions),
              "floor": (s.BuiltinOperator.FLOOR, 0),
              "maximum": (s.BuiltinOperator.MAXIMUM, s.BuiltinOptions.MaximumMinimumOptions),
              "minimum": (s.BuiltinOperator.MINIMUM, s.BuiltinOptions.MaximumMinimumOptions)}
    buffers = [s.BufferT()]                        # buffer 0: the empty sentinel
    tensors, index = [], {}

    def tensor(name: str, shape, data: np.ndarray | None = None) -> int:
        t = s.TensorT()
        t.name = name.encode("utf-8")
        t.shape = [int(d) for d in shape]
        t.type = s.TensorType.FLOAT32
        t.buffer = 0
        if data is not None:
            b = s.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data, dtype="<f4").tobytes(), np.uint8)
            buffers.append(b)
            t.buffer = len(buffers) - 1
        tensors.append(t)
        index[name] = len(tensors) - 1
        return index[name]

    for name, shape in g.inputs:
        tensor(name, shape)
    for name, arr in g.consts.items():
        tensor(name, arr.shape, arr)
    shapes = {name: shape for name, shape in g.inputs}
    shapes.update({name: list(arr.shape) for name, arr in g.consts.items()})
    codes, code_index, operators = [], {}, []
    for op in g.ops:
        a = shapes[op.inputs[0]]
        if op.kind == "fc":
            out_shape = [a[0], shapes[op.inputs[1]][0]]
        elif len(op.inputs) == 2:
            b = shapes[op.inputs[1]]
            out_shape = a if len(a) >= len(b) and a[-1] >= b[-1] else b
        else:
            out_shape = a
        shapes[op.output] = list(out_shape)
        tensor(op.output, out_shape)
        builtin, opt_type = ops_of[op.kind]
        if builtin not in code_index:
            c = s.OperatorCodeT()
            c.builtinCode = builtin
            c.deprecatedBuiltinCode = min(builtin, 127)
            c.version = 1
            codes.append(c)
            code_index[builtin] = len(codes) - 1
        o = s.OperatorT()
        o.opcodeIndex = code_index[builtin]
        o.inputs = [index[i] for i in op.inputs] + ([-1] if op.kind == "fc" else [])
        o.outputs = [index[op.output]]
        if opt_type:
            o.builtinOptionsType = opt_type
            o.builtinOptions = {
                "fc": s.FullyConnectedOptionsT, "add": s.AddOptionsT, "sub": s.SubOptionsT,
                "mul": s.MulOptionsT, "maximum": s.MaximumMinimumOptionsT,
                "minimum": s.MaximumMinimumOptionsT}[op.kind]()
        operators.append(o)
    sg = s.SubGraphT()
    sg.tensors = tensors
    sg.inputs = [index[name] for name, _ in g.inputs]
    sg.outputs = [index[name] for name, _ in g.outputs]
    sg.operators = operators
    sg.name = f"{qnet.name}_int_step".encode("utf-8")
    model = s.ModelT()
    model.version = 3
    model.operatorCodes = codes
    model.subgraphs = [sg]
    model.buffers = buffers
    model.description = f"edgelearn integer step graph of '{qnet.name}'".encode("utf-8")
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def save_tflite(qnet: QNetwork, path: str | os.PathLike, batch: int = 1) -> None:
    """Write the .tflite file atomically."""
    atomic_write_bytes(path, tflite_bytes(qnet, batch=batch))
