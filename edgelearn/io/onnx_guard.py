"""Bounds for untrusted ONNX graphs (L2; the ONNX part of the boundary layer).

Static, before onnxruntime or the recogniser touches a graph (:func:`check_graph_bounds`):

  * every tensor whose shape ONNX shape inference (with data propagation) can determine holds
    at most ``limits().tensor_bytes`` bytes, or twice the graph's largest initializer if that
    is more (SizeLimitError) - this catches ConstantOfShape/Expand/Tile/Range/Pad of constant
    sizes, which onnxruntime would otherwise fold at load;
  * a Loop whose trip count is a constant runs at most ``limits().loop_iterations`` times
    (WorkLimitError);
  * subgraphs (Loop/Scan/If bodies) nest at most MAX_GRAPH_DEPTH deep (DepthLimitError).

At run time (:class:`GuardedSession`, used by edgelearn.io.ort_session for every graph read
from a file): tensors come from one onnxruntime arena capped at ``limits().runtime_bytes``
(SizeLimitError when a run needs more), and each run is stopped after
``limits().run_seconds`` (WorkLimitError) - this bounds what no static check can, e.g. a Loop
whose trip count or a ConstantOfShape whose size is computed from the input.
"""

from __future__ import annotations

import threading

import numpy as np
import onnx
from onnx import numpy_helper

from edgelearn.boundary import limits
from edgelearn.errors import DepthLimitError, LimitError, SizeLimitError, WorkLimitError
from edgelearn.io.onnx_meta import tensor_size

MAX_GRAPH_DEPTH = 8


def _itemsize(elem_type: int) -> int:
    try:
        return int(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).itemsize)
    except (KeyError, TypeError, ValueError):
        return 8


def tensor_cap(model: onnx.ModelProto) -> int:
    """Bytes any one tensor of ``model`` may hold (see the module docstring)."""
    largest = max((tensor_size(t) * _itemsize(t.data_type) for t in model.graph.initializer),
                  default=0)
    return max(limits().tensor_bytes, 2 * largest)


def _constants(graph, outer: dict) -> dict:
    """Scalar-or-small constant values visible in ``graph``: its initializers and Constant
    nodes, plus those of enclosing graphs (``outer``)."""
    found = dict(outer)
    for init in graph.initializer:
        if tensor_size(init) <= 16:
            found[init.name] = numpy_helper.to_array(init)
    for node in graph.node:
        if node.op_type == "Constant" and node.output and node.attribute \
                and node.attribute[0].type == onnx.AttributeProto.TENSOR \
                and tensor_size(node.attribute[0].t) <= 16:
            found[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return found


def _check_loops(graph, what: str, depth: int = 0, outer: dict | None = None) -> None:
    if depth > MAX_GRAPH_DEPTH:
        raise DepthLimitError(f"'{what}': subgraphs are nested more than {MAX_GRAPH_DEPTH} deep")
    consts = _constants(graph, outer or {})
    cap = limits().loop_iterations
    for node in graph.node:
        if node.op_type == "Loop" and node.domain in ("", "ai.onnx") and node.input \
                and node.input[0] in consts:
            trips = consts[node.input[0]]
            if trips.size == 1 and int(trips.reshape(-1)[0]) > cap:
                raise WorkLimitError(f"'{what}': Loop node '{node.name}' runs "
                                     f"{int(trips.reshape(-1)[0])} iterations, limit {cap}")
        for attr in node.attribute:
            subs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else \
                list(attr.graphs) if attr.type == onnx.AttributeProto.GRAPHS else []
            for sub in subs:
                _check_loops(sub, what, depth + 1, consts)


def _known_bytes(vi) -> int | None:
    t = vi.type.tensor_type
    if not vi.type.HasField("tensor_type") or not t.HasField("shape"):
        return None
    n = 1
    for d in t.shape.dim:
        if not d.HasField("dim_value"):
            return None
        n *= max(int(d.dim_value), 0)
    return n * _itemsize(t.elem_type)


def check_graph_bounds(model: onnx.ModelProto, what: str = "model") -> None:
    """Refuse a graph that statically needs more than the limits allow (module docstring)."""
    _check_loops(model.graph, what)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 - inference is advisory; the run-time guard still holds
        return
    cap = tensor_cap(model)
    g = inferred.graph
    for vi in list(g.value_info) + list(g.output):
        nbytes = _known_bytes(vi)
        if nbytes is not None and nbytes > cap:
            raise SizeLimitError(f"'{what}': tensor '{vi.name}' would take {nbytes} bytes, "
                                 f"limit {cap}")


# -- run time ------------------------------------------------------------------------------

_arena_lock = threading.Lock()
_arena_bytes: int | None = None


def capped_arena(ort) -> int:
    """Register (once per process) the onnxruntime arena that untrusted sessions share;
    returns its size in bytes."""
    global _arena_bytes
    with _arena_lock:
        if _arena_bytes is None:
            size = int(limits().runtime_bytes)
            info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0,
                                     ort.OrtMemType.DEFAULT)
            ort.create_and_register_allocator(info, ort.OrtArenaCfg(size, 1, -1, -1))
            _arena_bytes = size
        return _arena_bytes


class GuardedSession:
    """An onnxruntime session whose runs are limited in memory (the capped arena) and time.

    ``run(output_names, feed)`` behaves like ``InferenceSession.run`` but raises
    WorkLimitError when it takes longer than ``limits().run_seconds`` and SizeLimitError when
    it needs more memory than the arena holds."""

    def __init__(self, session, ort, what: str) -> None:
        self.session, self._ort, self.what = session, ort, what

    def get_inputs(self):
        return self.session.get_inputs()

    def get_outputs(self):
        return self.session.get_outputs()

    def run(self, output_names, feed):
        seconds = limits().run_seconds
        options = self._ort.RunOptions()
        options.log_severity_level = 4
        timer = threading.Timer(seconds, setattr, (options, "terminate", True))
        timer.daemon = True
        timer.start()
        try:
            return self.session.run(output_names, feed, options)
        except Exception as exc:  # onnxruntime's own error types
            text = str(exc)
            if "terminate flag" in text:
                raise WorkLimitError(f"{self.what}: an onnxruntime run took longer than "
                                     f"{seconds:g} s (limit run_seconds)") from None
            if "bfc_arena" in text or "Available memory of" in text:
                raise SizeLimitError(f"{self.what}: an onnxruntime run needs more than the "
                                     f"{_arena_bytes} bytes untrusted graphs may use "
                                     f"(limit runtime_bytes)") from None
            raise
        finally:
            timer.cancel()


def run_checked(session, output_names, feed, error: type, message: str):
    """``session.run(output_names, feed)``; a LimitError passes through, any other
    onnxruntime failure becomes ``error("MESSAGE: <onnxruntime's first line>")``."""
    try:
        return session.run(output_names, feed)
    except LimitError:
        raise
    except Exception as exc:  # onnxruntime's own error types
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise error(f"{message}: {line[:200]}") from None
