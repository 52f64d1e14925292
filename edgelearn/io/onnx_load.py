"""Read ONNX files: the edgelearn profile, recognised third-party step graphs, or opaque (L2).

    load_network(path, verify=True) -> Network               (ModelFileError if not recognised)
    load_model(path, verify=True)   -> Network | OpaqueModel

Every file is checked before anything large is allocated: size on disk, protobuf parse,
onnx.checker, declared initializer sizes, graph inputs/outputs, operator set, metadata. A
profile file's network is then verified against the numpy reference (see onnx_verify).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from edgelearn.errors import EdgelearnError, ModelError, ModelFileError
from edgelearn.io import onnx_meta as M
from edgelearn.io.onnx_guard import check_graph_bounds
from edgelearn.io.onnx_parse import parse_model_bytes
from edgelearn.io.onnx_verify import PROBE_BATCH, LayerIO, StepIO, verify_scan, verify_step
from edgelearn.io.ort_session import make_session
from edgelearn.model import MAX_PARAMETERS, Layer, Network

MAX_FILE_BYTES = 2**31 - 1
PROFILE_OPS = {"Mul", "Add", "Sub", "Gemm", "Greater", "Cast", "Identity", "Scan", "Transpose",
               "MatMul"}


def read_model_file(path: str | os.PathLike,
                    check: bool = True) -> tuple[onnx.ModelProto, bytes]:
    """Parse an ONNX file and check sizes, operators and (``check``) onnx.checker;
    ModelFileError when it is not valid. load_model passes check=False and runs the checker
    after the profile checks, whose messages are more precise."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ModelFileError(f"cannot read model file '{path}': {exc.strerror}") from None
    if path.is_dir():
        raise ModelFileError(f"model path '{path}' is a directory")
    if size == 0:
        raise ModelFileError(f"model file '{path}' is empty")
    if size > MAX_FILE_BYTES:
        raise ModelFileError(f"model file '{path}' is {size} bytes, above the 2 GiB ONNX limit")
    data = path.read_bytes()
    model = parse_model_bytes(data, str(path))
    if check:
        run_checker(model, str(path))
    return model, data


def run_checker(model: onnx.ModelProto, what: str = "model") -> None:
    """onnx.checker with its first message line as a ModelFileError."""
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # the checker raises ValidationError and a few others
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelFileError(f"'{what}' fails the ONNX checker: {line[:200]}") from None


def tensor_array(tensor, what: str = "model") -> np.ndarray:
    """numpy_helper.to_array with its failures as one-line ModelFileErrors."""
    try:
        return numpy_helper.to_array(tensor)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        raise ModelFileError(f"'{what}': tensor '{tensor.name}' cannot be read "
                             f"({type(exc).__name__}: {str(exc)[:100]})") from None


def initializer_arrays(graph, what: str = "model") -> dict[str, np.ndarray]:
    return {t.name: tensor_array(t, what) for t in graph.initializer}


def _profile_ops(graph, what: str) -> None:
    for node in graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type not in PROFILE_OPS:
            raise ModelFileError(f"'{what}': unknown op '{node.op_type}' (node '{node.name}') "
                                 f"in an edgelearn profile graph; allowed {sorted(PROFILE_OPS)}")
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _profile_ops(attr.g, what)


def _tensor(inits: dict, layer: str, role: str, name, shape: tuple, what: str):
    if name is None:
        return None
    if not isinstance(name, str) or name not in inits:
        raise ModelFileError(f"'{what}': layer '{layer}' {role} tensor {name!r} is not an "
                             f"initializer of the graph")
    arr = inits[name]
    if arr.dtype != np.float32:
        raise ModelFileError(f"'{what}': layer '{layer}' {role} must be float32, got {arr.dtype}")
    if arr.shape != shape:
        raise ModelFileError(f"'{what}': layer '{layer}' {role} has shape "
                             f"{'x'.join(map(str, arr.shape))}, expected "
                             f"{'x'.join(map(str, shape))}")
    if not np.all(np.isfinite(arr)):
        raise ModelFileError(f"'{what}': layer '{layer}' {role} contains NaN or Inf")
    return arr


def _readout_default(entry: dict, key: str, default, spiking: bool):
    """A layer entry's value for ``key``; absent, or null where a readout does not use it
    (``reset``, ``threshold`` of a non-spiking layer), gives ``default``."""
    value = entry.get(key, default)
    if value is None and not spiking and key in ("reset", "threshold"):
        return default
    return value


def network_from_profile(model: onnx.ModelProto, what: str = "model") -> tuple[Network, str]:
    """Rebuild the Network a profile file describes; returns (network, graph kind).

    Tolerates (and ignores) an ``edgelearn.quantized`` entry; onnx_quant reads that itself.
    """
    meta = M.read_metadata(model)
    M.parse_version(meta)
    if M.KEY_QUANTIZED in meta and M.KEY_LAYERS not in meta:
        raise ModelFileError(f"'{what}' is a quantized edgelearn model (integer weights, no "
                             f"float layers); read it with edgelearn.io.onnx_quant.load_qnetwork")
    kind = meta.get(M.KEY_GRAPH, "")
    if kind not in M.GRAPH_KINDS:
        raise ModelFileError(f"'{what}': metadata {M.KEY_GRAPH} must be one of "
                             f"{M.GRAPH_KINDS}, got {kind!r}")
    info = M.parse_json(meta, M.KEY_NETWORK, dict)
    entries = M.parse_json(meta, M.KEY_LAYERS, list)
    M.parse_quantized(meta)
    if not entries:
        raise ModelFileError(f"'{what}': metadata {M.KEY_LAYERS} lists no layers")
    _profile_ops(model.graph, what)
    inits = initializer_arrays(model.graph, what)
    layers = []
    for k, e in enumerate(entries):
        if not isinstance(e, dict):
            raise ModelFileError(f"'{what}': metadata layer {k} is not a JSON object")
        name = e.get("name")
        try:
            n_in, n_out = int(e["n_in"]), int(e["n_out"])
            tensors = dict(e["tensors"])
            spiking = bool(e.get("spiking", True))
            reset = str(_readout_default(e, "reset", "subtract", spiking))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"'{what}': metadata layer {k} ({name!r}) lacks or mangles "
                                 f"field {exc}") from None
        if not isinstance(name, str):
            raise ModelFileError(f"'{what}': metadata layer {k} has no name")
        if not (0 < n_out and 0 < n_in and n_in * n_out <= MAX_PARAMETERS):
            raise ModelFileError(f"'{what}': layer '{name}' size {n_out}x{n_in} is out of range")
        consts = {c: M.constant_from_json(name, c, _readout_default(
            e, c, 1.0 if c == "threshold" else 0.0, spiking), n_out)
            for c in ("alpha", "beta", "threshold")}
        for c in ("alpha", "beta", "threshold"):
            if c == "threshold" and not spiking:
                continue
            arr = _tensor(inits, name, c, tensors.get(c), (n_out,), what)
            if arr is None or not np.array_equal(arr, consts[c]):
                raise ModelFileError(f"'{what}': layer '{name}' {c} in the graph differs from "
                                     f"the metadata")
        try:
            layers.append(Layer(
                name=name,
                weight=_tensor(inits, name, "weight", tensors.get("weight"), (n_out, n_in), what),
                bias=_tensor(inits, name, "bias", tensors.get("bias"), (n_out,), what),
                recurrent=_tensor(inits, name, "recurrent", tensors.get("recurrent"),
                                  (n_out, n_out), what),
                alpha=consts["alpha"], beta=consts["beta"], threshold=consts["threshold"],
                reset=reset, spiking=spiking))
        except ModelError as exc:
            raise ModelFileError(f"'{what}': {exc}") from None
    try:
        net = Network(tuple(layers), name=str(info.get("name", "network")),
                      dt=float(info.get("dt", 1e-3)), meta=dict(info.get("meta", {}) or {}))
    except (ModelError, TypeError, ValueError) as exc:
        raise ModelFileError(f"'{what}': {exc}") from None
    if info.get("n_in", net.n_in) != net.n_in or info.get("n_out", net.n_out) != net.n_out:
        raise ModelFileError(f"'{what}': metadata says {info.get('n_in')} inputs/"
                             f"{info.get('n_out')} outputs, the layers give {net.n_in}/{net.n_out}")
    check_profile_io(model.graph, net, kind)
    return net, kind


def profile_step_io(net: Network) -> StepIO:
    return StepIO(M.INPUT, M.OUTPUT, tuple(
        LayerIO(M.state_in(la.name, "current"), M.state_in(la.name, "membrane"),
                M.state_out(la.name, "current"), M.state_out(la.name, "membrane"))
        for la in net.layers))


def check_profile_io(graph, net: Network, kind: str) -> None:
    """Check graph inputs/outputs against what the profile prescribes for ``net``."""
    seq = ["T"] if kind == "scan" else []
    ins = {M.INPUT: [*[None] * len(seq), None, net.n_in]}
    outs = {M.OUTPUT: [*[None] * len(seq), None, net.n_out]}
    for la in net.layers:
        for k in M.STATE_KINDS:
            ins[M.state_in(la.name, k)] = [None, la.n_out]
            outs[M.state_out(la.name, k)] = [None, la.n_out]
        if la.spiking:
            outs[M.spikes_name(la.name)] = [*[None] * len(seq), None, la.n_out]
    M.check_io(graph, ins, outs)


def verify_profile(data: bytes, net: Network, kind: str, what: str = "model") -> None:
    """Run the graph in onnxruntime against the numpy reference (VerificationError)."""
    session = make_session(data, what=f"'{what}'")
    if kind == "step":
        verify_step(session, net, profile_step_io(net), path=what)
    else:
        verify_scan(session, net, path=what)


def _fixed_batch(model) -> int | None:
    """The batch size a graph was exported for, if its first input fixes it."""
    init = {t.name for t in model.graph.initializer}
    first = next(i for i in model.graph.input if i.name not in init)
    shape = M.value_info_shape(first)
    return shape[0] if shape and isinstance(shape[0], int) and shape[0] > 0 else None


def load_model(path: str | os.PathLike, verify: bool = True):
    """Load an ONNX file as a Network (profile or recognised third-party step graph) or, when
    the graph is not recognised, as an :class:`OpaqueModel` for inference only."""
    try:
        return _load_model(path, verify)
    except EdgelearnError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, UnicodeError, OverflowError) as exc:
        # a corrupt file can trip the onnx library itself; still one line, no traceback
        raise ModelFileError(f"'{path}' is malformed ({type(exc).__name__}: "
                             f"{str(exc)[:120]})") from None


def _load_model(path, verify: bool):
    from edgelearn.io import onnx_thirdparty
    from edgelearn.io.opaque import OpaqueModel

    model, data = read_model_file(path, check=False)
    what = str(path)
    if M.is_profile(M.read_metadata(model)):
        net, kind = network_from_profile(model, what)
        run_checker(model, what)
        if verify:
            verify_profile(data, net, kind, what)
        return net
    run_checker(model, what)
    check_graph_bounds(model, what)     # before constant folding in the recogniser
    try:
        net, io = onnx_thirdparty.recognise(model, what)
    except onnx_thirdparty.NotRecognised as why:
        return OpaqueModel(model, data, why=str(why), what=what)
    except (ArithmeticError, ValueError, TypeError, KeyError, IndexError) as exc:
        # a graph shape the recogniser did not anticipate: still usable for inference
        return OpaqueModel(model, data, what=what, why=f"structure not recognised "
                           f"({type(exc).__name__}: {str(exc)[:100]})")
    if verify:
        session = make_session(data, what=f"'{what}'")
        verify_step(session, net, io, path=what, batch=_fixed_batch(model) or PROBE_BATCH)
    return net


def load_network(path: str | os.PathLike, verify: bool = True) -> Network:
    """Load an ONNX file as a Network; ModelFileError if it is opaque (saying why)."""
    result = load_model(path, verify=verify)
    if isinstance(result, Network):
        return result
    raise ModelFileError(f"'{path}' runs only as an opaque graph: {result.why_no_learning}")


__all__ = ["load_model", "load_network", "read_model_file", "parse_model_bytes",
           "network_from_profile", "verify_profile", "check_profile_io", "run_checker"]
