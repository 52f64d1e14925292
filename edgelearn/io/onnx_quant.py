"""Quantized ONNX files: the integer step graph of a QNetwork for onnxruntime (L2).

The graph is :func:`edgelearn.kernels.step_graph.build_step_graph` written as ONNX opset-17
nodes (MatMul, Add, Sub, Mul, Floor, Max, Min) on float32 tensors that hold integers below 2^24,
so onnxruntime reproduces the integer kernel bit for bit (docs/fixed-point.md, "Exchange graphs").
Tensor names follow the edgelearn profile (``input``, ``<layer>.current_in`` ... ``output``,
``<layer>.spikes``); the batch dimension is symbolic ("B").

Metadata (``metadata_props``): ``edgelearn.profile_version`` "1", ``edgelearn.graph`` "step",
``edgelearn.network`` JSON {name, dt, n_in, n_out, meta}, and ``edgelearn.quantized`` JSON
{"format": "edgelearn-int", "version": 1, "image": base64 of the device image
(edgelearn.kernels.image), "weights": {layer: initializer name}}. There is no
``edgelearn.layers`` entry: float loaders refuse the file and :func:`load_qnetwork` reads it.
Loading checks that the initializers equal the image's weights and runs the graph in
onnxruntime against :func:`edgelearn.kernels.lif_kernels.qrun` on probe inputs (bit-exact).
"""

from __future__ import annotations

import base64
import binascii
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgelearn.atomic import atomic_write_bytes
from edgelearn.errors import ModelFileError, VerificationError
from edgelearn.io import onnx_meta as M
from edgelearn.io.onnx_guard import run_checked
from edgelearn.io.onnx_load import read_model_file, tensor_array
from edgelearn.io.ort_session import make_session
from edgelearn.kernels.image import from_image, to_image
from edgelearn.kernels.lif_fixed import QNetwork, init_qnetwork_state
from edgelearn.kernels.lif_kernels import qnetwork_step
from edgelearn.kernels.step_graph import build_step_graph

FORMAT = "edgelearn-int"
FORMAT_VERSION = 1
_ONNX_OP = {"add": "Add", "sub": "Sub", "mul": "Mul", "floor": "Floor", "maximum": "Max",
            "minimum": "Min", "fc": "MatMul"}


def build_quant_model(qnet: QNetwork) -> onnx.ModelProto:
    """The ONNX ModelProto of the integer step graph of ``qnet`` (batch symbolic)."""
    g = build_step_graph(qnet, batch=1)
    inits, nodes = [], []
    for name, arr in g.consts.items():
        if arr.ndim == 2:                                   # fc weight [n_out, n_in] -> W^T
            arr = np.ascontiguousarray(arr.T)
        inits.append(numpy_helper.from_array(arr.astype(np.float32), name))
    for k, op in enumerate(g.ops):
        nodes.append(helper.make_node(_ONNX_OP[op.kind], list(op.inputs), [op.output],
                                      name=f"n{k}_{op.kind}"))

    def vi(name, shape):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["B", shape[1]])

    graph = helper.make_graph(nodes, f"{qnet.name}_int_step",
                              [vi(n, s) for n, s in g.inputs], [vi(n, s) for n, s in g.outputs],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", M.OPSET)],
                              producer_name="edgelearn")
    model.ir_version = M.IR_VERSION
    M.write_metadata(model, {
        M.KEY_VERSION: str(M.PROFILE_VERSION),
        M.KEY_GRAPH: "step",
        M.KEY_NETWORK: json.dumps({"name": qnet.name, "dt": qnet.dt, "n_in": qnet.n_in,
                                   "n_out": qnet.n_out, "meta": qnet.meta}),
        M.KEY_QUANTIZED: json.dumps({"format": FORMAT, "version": FORMAT_VERSION,
                                     "image": base64.b64encode(to_image(qnet)).decode("ascii"),
                                     "weights": g.weights}),
    })
    onnx.checker.check_model(model)
    return model


def save_quant_onnx(qnet: QNetwork, path: str | os.PathLike) -> None:
    """Write the quantized ONNX file atomically."""
    atomic_write_bytes(path, build_quant_model(qnet).SerializeToString())


def is_quantized_model(model: onnx.ModelProto) -> bool:
    return M.KEY_QUANTIZED in M.read_metadata(model)


def qnetwork_from_model(model: onnx.ModelProto, what: str = "model") -> QNetwork:
    """Rebuild the QNetwork from a quantized file's metadata and check the initializers."""
    meta = M.read_metadata(model)
    if M.KEY_QUANTIZED not in meta:
        raise ModelFileError(f"'{what}' is a float model (no {M.KEY_QUANTIZED} metadata); "
                             f"quantize it first: python tools/quantize.py {what} --calib DATA "
                             f"-o OUT.onnx")
    M.parse_version(meta)
    info = M.parse_quantized(meta)
    if info.get("format") != FORMAT or info.get("version") != FORMAT_VERSION:
        raise ModelFileError(f"'{what}': quantized format {info.get('format')!r} version "
                             f"{info.get('version')!r} is not supported (expected {FORMAT!r} "
                             f"version {FORMAT_VERSION})")
    try:
        image = base64.b64decode(str(info.get("image", "")), validate=True)
    except (binascii.Error, ValueError):
        raise ModelFileError(f"'{what}': {M.KEY_QUANTIZED} image is not valid base64") from None
    qnet = from_image(image)
    inits = {t.name: t for t in model.graph.initializer}
    weights = info.get("weights")
    if not isinstance(weights, dict):
        raise ModelFileError(f"'{what}': {M.KEY_QUANTIZED} 'weights' must be a JSON object "
                             f"{{layer: initializer name}}, got {type(weights).__name__}")
    for la in qnet.layers:
        name = weights.get(la.name)
        if not isinstance(name, str) or name not in inits:
            raise ModelFileError(f"'{what}': layer '{la.name}' weight initializer {name!r} is "
                                 f"missing")
        if tuple(inits[name].dims) != (la.n_in, la.n_out):
            raise ModelFileError(f"'{what}': layer '{la.name}' weight initializer has shape "
                                 f"{list(inits[name].dims)}, the device image "
                                 f"{[la.n_in, la.n_out]}")
        arr = tensor_array(inits[name], what)
        if not np.array_equal(arr.T, la.weight):
            raise ModelFileError(f"'{what}': layer '{la.name}' weight initializer differs from "
                                 f"the device image in the metadata")
    g = build_step_graph(qnet, batch=1)
    try:
        M.check_io(model.graph, {n: [None, shape[1]] for n, shape in g.inputs},
                   {n: [None, shape[1]] for n, shape in g.outputs})
    except ModelFileError as exc:
        raise ModelFileError(f"'{what}': {exc}") from None
    return qnet


def verify_quant(data: bytes, qnet: QNetwork, what: str = "model", steps: int = 8,
                 batch: int = 3, seed: int = 0) -> None:
    """Run the file in onnxruntime against the integer kernel on random probe inputs; raise
    VerificationError naming the first mismatching tensor."""
    session = make_session(data, what=f"'{what}'")
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (qnet.input_bits - 1)), (1 << (qnet.input_bits - 1)) - 1
    lo, hi = max(lo, -8), min(hi, 8)
    state = init_qnetwork_state(qnet, batch)
    for t in range(steps):
        x = rng.integers(lo, hi + 1, size=(batch, qnet.n_in))
        feeds = {M.INPUT: x.astype(np.float32)}
        for la, st in zip(qnet.layers, state):
            feeds[M.state_in(la.name, "current")] = st.current.astype(np.float32)
            feeds[M.state_in(la.name, "membrane")] = st.membrane.astype(np.float32)
        got = dict(zip([o.name for o in session.get_outputs()],
                       run_checked(session, None, feeds, VerificationError,
                                   f"'{what}': onnxruntime failed on probe step {t}")))
        out, state = qnetwork_step(qnet, x, state, mode="dense")
        checks = [(M.OUTPUT, out)]
        for la, st in zip(qnet.layers, state):
            checks += [(M.state_out(la.name, "current"), st.current),
                       (M.state_out(la.name, "membrane"), st.membrane)]
        for name, ref in checks:
            if not np.array_equal(got[name], ref.astype(np.float32)):
                bad = int(np.count_nonzero(got[name] != ref))
                raise VerificationError(f"'{what}': onnxruntime output '{name}' differs from the "
                                        f"integer kernel at step {t} in {bad} entries")


def load_qnetwork(path: str | os.PathLike, verify: bool = True) -> QNetwork:
    """Load a quantized ONNX file (ModelFileError for float models, naming the fix)."""
    model, data = read_model_file(path)
    qnet = qnetwork_from_model(model, str(path))
    if verify:
        verify_quant(data, qnet, str(path))
    return qnet


def load_quantized(path: str | os.PathLike, verify: bool = True) -> QNetwork:
    """Load a quantized network from a device image (.bin, magic b"ELQN") or a quantized ONNX
    file; a float model gives ModelFileError saying how to quantize it."""
    from pathlib import Path

    from edgelearn.kernels.image import MAGIC

    p = Path(path)
    try:
        with open(p, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise ModelFileError(f"cannot read model file '{p}': {exc.strerror}") from None
    if head == MAGIC:
        return from_image(p.read_bytes())
    return load_qnetwork(p, verify=verify)
