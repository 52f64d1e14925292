"""onnxruntime sessions for edgelearn (L2): one place that sets session options.

Graphs read from files are untrusted: :func:`make_session` checks their bounds first and runs
them guarded (edgelearn.io.onnx_guard: capped memory arena, time limit per run). Graphs that
edgelearn built itself from a checked Network pass ``trusted=True`` and run unguarded.
onnxruntime's own log lines are switched off (its errors reach the user as exceptions, turned
into one-line messages by the callers).
"""

from __future__ import annotations

import onnxruntime as ort

from edgelearn.errors import ModelFileError
from edgelearn.io.onnx_guard import GuardedSession, capped_arena, check_graph_bounds
from edgelearn.io.onnx_parse import parse_model_bytes

ort.set_default_logger_severity(4)   # fatal only: no log lines before edgelearn's error line


def make_session(model: bytes, threads: int = 1, what: str = "model", trusted: bool = False,
                 proto=None):
    """An onnxruntime CPU session for a serialized model.

    ``threads`` is the intra-op thread count (1 is fastest for the small per-step matmuls of
    an SNN and leaves cores to other work); inter-op parallelism is off. Unless ``trusted``,
    the graph (``proto``, parsed from ``model`` if not given) is checked by
    :func:`~edgelearn.io.onnx_guard.check_graph_bounds` and the session returned is a
    :class:`~edgelearn.io.onnx_guard.GuardedSession`.
    Raises ModelFileError with onnxruntime's first message line when the graph cannot load.
    """
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 4
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not trusted:
        if proto is None:
            proto = parse_model_bytes(model, what.strip("'"))
        check_graph_bounds(proto, what.strip("'"))
        capped_arena(ort)
        opts.add_session_config_entry("session.use_env_allocators", "1")
    try:
        session = ort.InferenceSession(model, sess_options=opts,
                                       providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelFileError(f"onnxruntime cannot load {what}: {line[:300]}") from None
    return session if trusted else GuardedSession(session, ort, what)
