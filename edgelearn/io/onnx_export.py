"""Export a Network as an edgelearn-profile ONNX model: one-timestep graph or Scan graph (L2).

Per layer ``p`` the step graph computes, in exactly the order of the numpy reference
(edgelearn.kernels.lif_float) so float32 rounding matches wherever the matmul does:

    R  = Cast(Greater(U_in, theta))                      reset signal (spike of the last step)
    I' = ((alpha * I_in + Gemm(h, W^T)) + b) + Gemm(R, V^T)
    U' = (beta * U_in + I') - theta * R                  subtract
    U' = (beta * U_in + I') * (1 - R)                    zero
    U' = (beta * U_in) * (1 - R) + I'                    zero_immediate
    U' =  beta * U_in + I'                               readout (output)
    S' = Cast(Greater(U', theta))                        -> h of the next layer

The Scan graph wraps the same body: states are Scan state variables, ``input`` [T, B, n_in] is
the scanned input, ``output`` and ``<p>.spikes`` are scan outputs [T, B, n]. Weights and
constants are initializers of the main graph, referenced from the body (outer scope).
"""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgelearn.atomic import atomic_write_bytes
from edgelearn.errors import ModelError
from edgelearn.io import onnx_meta as M
from edgelearn.model import Layer, Network

_F = TensorProto.FLOAT


def _layer_nodes(layer: Layer, h: str, cur_in: str, mem_in: str, cur_out: str, mem_out: str,
                 spikes: str | None, prefix: str = "", wx: str | None = None) -> list:
    """Nodes of one layer step; ``prefix`` keeps intermediate names unique inside a body;
    ``wx`` names an already computed W h (the Scan graph hoists the first projection)."""
    p = layer.name
    t = lambda s: f"{prefix}{p}/{s}"  # noqa: E731
    nodes = [helper.make_node("Mul", [f"{p}.alpha", cur_in], [t("a_i")], name=t("decay_current"))]
    if wx is None:
        wx = t("wx")
        nodes.append(helper.make_node("Gemm", [h, f"{p}.weight"], [wx], transB=1,
                                      name=t("weight")))
    last = t("i1")
    nodes.append(helper.make_node("Add", [t("a_i"), wx], [last], name=t("add_input")))
    if layer.bias is not None:
        nodes.append(helper.make_node("Add", [last, f"{p}.bias"], [t("i2")], name=t("bias")))
        last = t("i2")
    nodes.append(helper.make_node("Mul", [f"{p}.beta", mem_in], [t("b_u")],
                                  name=t("decay_membrane")))
    if layer.spiking:
        nodes += [
            helper.make_node("Greater", [mem_in, f"{p}.threshold"], [t("r_bool")],
                             name=t("reset_compare")),
            helper.make_node("Cast", [t("r_bool")], [t("r")], to=_F, name=t("reset_cast")),
        ]
    if layer.recurrent is not None:
        nodes += [
            helper.make_node("Gemm", [t("r"), f"{p}.recurrent"], [t("vr")], transB=1,
                             name=t("recurrent")),
            helper.make_node("Add", [last, t("vr")], [t("i3")], name=t("add_recurrent")),
        ]
        last = t("i3")
    nodes.append(helper.make_node("Identity", [last], [cur_out], name=t("current_out")))
    if not layer.spiking:
        nodes.append(helper.make_node("Add", [t("b_u"), cur_out], [mem_out], name=t("integrate")))
        return nodes
    if layer.reset == "zero_immediate":
        nodes += [
            helper.make_node("Sub", ["edgelearn.one", t("r")], [t("keep")], name=t("reset_keep")),
            helper.make_node("Mul", [t("b_u"), t("keep")], [t("b_k")], name=t("reset_zero")),
            helper.make_node("Add", [t("b_k"), cur_out], [mem_out], name=t("integrate")),
        ]
    elif layer.reset == "subtract":
        nodes += [
            helper.make_node("Add", [t("b_u"), cur_out], [t("u1")], name=t("integrate")),
            helper.make_node("Mul", [f"{p}.threshold", t("r")], [t("tr")], name=t("reset_amount")),
            helper.make_node("Sub", [t("u1"), t("tr")], [mem_out], name=t("reset_subtract")),
        ]
    else:
        nodes += [
            helper.make_node("Add", [t("b_u"), cur_out], [t("u1")], name=t("integrate")),
            helper.make_node("Sub", ["edgelearn.one", t("r")], [t("keep")], name=t("reset_keep")),
            helper.make_node("Mul", [t("u1"), t("keep")], [mem_out], name=t("reset_zero")),
        ]
    nodes += [
        helper.make_node("Greater", [mem_out, f"{p}.threshold"], [t("s_bool")], name=t("fire")),
        helper.make_node("Cast", [t("s_bool")], [spikes], to=_F, name=t("fire_cast")),
    ]
    return nodes


def _initializers(net: Network) -> list:
    inits = []
    if any(la.spiking and la.reset in ("zero", "zero_immediate") for la in net.layers):
        inits.append(numpy_helper.from_array(np.ones(1, np.float32), "edgelearn.one"))
    for la in net.layers:
        p = la.name
        arrays = {"weight": la.weight, "alpha": la.alpha, "beta": la.beta}
        if la.spiking:
            arrays["threshold"] = la.threshold
        if la.bias is not None:
            arrays["bias"] = la.bias
        if la.recurrent is not None:
            arrays["recurrent"] = la.recurrent
        for k, arr in arrays.items():
            inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, np.float32),
                                                 f"{p}.{k}"))
    return inits


def layers_json(net: Network) -> list[dict]:
    """The ``edgelearn.layers`` metadata entries of a network."""
    out = []
    for la in net.layers:
        p = la.name
        out.append({
            "name": p, "kind": la.kind, "n_in": la.n_in, "n_out": la.n_out,
            "reset": la.reset, "spiking": bool(la.spiking),
            "alpha": M.constant_to_json(la.alpha), "beta": M.constant_to_json(la.beta),
            "threshold": M.constant_to_json(la.threshold),
            "tensors": {
                "weight": f"{p}.weight", "alpha": f"{p}.alpha", "beta": f"{p}.beta",
                "threshold": f"{p}.threshold" if la.spiking else None,
                "bias": None if la.bias is None else f"{p}.bias",
                "recurrent": None if la.recurrent is None else f"{p}.recurrent",
            },
        })
    return out


def profile_metadata(net: Network, graph: str) -> dict[str, str]:
    """All metadata_props entries of the profile for ``net``."""
    return {
        M.KEY_VERSION: str(M.PROFILE_VERSION),
        M.KEY_GRAPH: graph,
        M.KEY_NETWORK: json.dumps({"name": net.name, "dt": float(net.dt), "n_in": net.n_in,
                                   "n_out": net.n_out, "meta": dict(net.meta)}),
        M.KEY_LAYERS: json.dumps(layers_json(net)),
    }


def _vi(name: str, *dims) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, _F, list(dims))


def _state_names(net: Network):
    for la in net.layers:
        for kind in M.STATE_KINDS:
            yield la, kind


def build_step_model(net: Network) -> onnx.ModelProto:
    """The one-timestep graph of ``net`` (unchecked ModelProto, metadata included)."""
    nodes, h = [], M.INPUT
    for la in net.layers:
        p = la.name
        spk = M.spikes_name(p) if la.spiking else None
        nodes += _layer_nodes(la, h, M.state_in(p, "current"), M.state_in(p, "membrane"),
                              M.state_out(p, "current"), M.state_out(p, "membrane"), spk)
        h = spk if la.spiking else M.state_out(p, "membrane")
    nodes.append(helper.make_node("Identity", [h], [M.OUTPUT], name="output"))
    inputs = [_vi(M.INPUT, "B", net.n_in)]
    inputs += [_vi(M.state_in(la.name, k), "B", la.n_out) for la, k in _state_names(net)]
    outputs = [_vi(M.OUTPUT, "B", net.n_out)]
    outputs += [_vi(M.state_out(la.name, k), "B", la.n_out) for la, k in _state_names(net)]
    outputs += [_vi(M.spikes_name(la.name), "B", la.n_out) for la in net.layers if la.spiking]
    graph = helper.make_graph(nodes, f"{net.name}_step", inputs, outputs, _initializers(net))
    return _finish(graph, net, "step")


def build_scan_model(net: Network) -> onnx.ModelProto:
    """The whole-sequence Scan graph of ``net``.

    The first layer's input projection does not depend on the state, so it is computed for
    all steps at once before the Scan (one [T*B, n_in] x [n_in, n] matmul instead of T small
    ones); the body reads its slice ``body/<first>.wx``.
    """
    pre = "body/"
    first = net.layers[0].name
    wx_seq, wx_body = f"{first}.wx_seq", f"{pre}{first}.wx"
    nodes, h = [], pre + M.INPUT
    for la in net.layers:
        p = la.name
        spk = pre + M.spikes_name(p) if la.spiking else None
        nodes += _layer_nodes(la, h, pre + M.state_in(p, "current"),
                              pre + M.state_in(p, "membrane"), pre + M.state_out(p, "current"),
                              pre + M.state_out(p, "membrane"), spk, prefix=pre,
                              wx=wx_body if p == first else None)
        h = spk if la.spiking else pre + M.state_out(p, "membrane")
    nodes.append(helper.make_node("Identity", [h], [pre + M.OUTPUT], name=pre + "output"))
    states = list(_state_names(net))
    spiking = [la for la in net.layers if la.spiking]
    body_in = [_vi(pre + M.state_in(la.name, k), "B", la.n_out) for la, k in states]
    body_in.append(_vi(wx_body, "B", net.layers[0].n_out))
    body_out = [_vi(pre + M.state_out(la.name, k), "B", la.n_out) for la, k in states]
    body_out.append(_vi(pre + M.OUTPUT, "B", net.n_out))
    # spike scan outputs go through Identity so no body output name is listed twice
    for la in spiking:
        nodes.append(helper.make_node("Identity", [pre + M.spikes_name(la.name)],
                                      [pre + "seq." + M.spikes_name(la.name)],
                                      name=pre + "seq." + la.name))
        body_out.append(_vi(pre + "seq." + M.spikes_name(la.name), "B", la.n_out))
    body = helper.make_graph(nodes, f"{net.name}_body", body_in, body_out)
    scan_in = [M.state_in(la.name, k) for la, k in states] + [wx_seq]
    scan_out = [M.state_out(la.name, k) for la, k in states] + [M.OUTPUT]
    scan_out += [M.spikes_name(la.name) for la in spiking]
    scan = helper.make_node("Scan", scan_in, scan_out, body=body, num_scan_inputs=1,
                            name="sequence")
    inputs = [_vi(M.state_in(la.name, k), "B", la.n_out) for la, k in states]
    inputs.append(_vi(M.INPUT, "T", "B", net.n_in))
    outputs = [_vi(M.state_out(la.name, k), "B", la.n_out) for la, k in states]
    outputs.append(_vi(M.OUTPUT, "T", "B", net.n_out))
    outputs += [_vi(M.spikes_name(la.name), "T", "B", la.n_out) for la in spiking]
    hoist = [helper.make_node("Transpose", [f"{first}.weight"], [f"{first}.weight_t"],
                              perm=[1, 0], name=f"{first}/weight_t"),
             helper.make_node("MatMul", [M.INPUT, f"{first}.weight_t"], [wx_seq],
                              name=f"{first}/weight_seq")]
    graph = helper.make_graph(hoist + [scan], f"{net.name}_scan", inputs, outputs,
                              _initializers(net))
    return _finish(graph, net, "scan")


def _finish(graph, net: Network, kind: str) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", M.OPSET)],
                              producer_name="edgelearn", ir_version=M.IR_VERSION)
    model.doc_string = f"edgelearn {kind} graph of network '{net.name}'"
    M.write_metadata(model, profile_metadata(net, kind))
    return model


def build_model(net: Network, graph: str = "step") -> onnx.ModelProto:
    """Build the step or scan ModelProto of ``net``."""
    if not isinstance(net, Network):
        raise ModelError(f"expected a Network, got {type(net).__name__}")
    if graph not in M.GRAPH_KINDS:
        raise ModelError(f"graph must be one of {M.GRAPH_KINDS}, got {graph!r}")
    return build_step_model(net) if graph == "step" else build_scan_model(net)


def model_bytes(net: Network, graph: str = "step") -> bytes:
    """Serialized ONNX model of ``net`` (for in-memory onnxruntime sessions)."""
    return build_model(net, graph).SerializeToString()


def save_onnx(net: Network, path: str | os.PathLike, graph: str = "step") -> None:
    """Write ``net`` as an edgelearn-profile ONNX file ("step" or "scan" graph), atomically."""
    data = model_bytes(net, graph)
    if len(data) >= 2**31:
        raise ModelError(f"network '{net.name}' serializes to {len(data)} bytes, above the "
                         f"2 GiB ONNX protobuf limit")
    atomic_write_bytes(path, data)
