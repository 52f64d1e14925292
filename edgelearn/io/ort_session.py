"""onnxruntime sessions for edgelearn (L2): one place that sets session options."""

from __future__ import annotations

import onnxruntime as ort

from edgelearn.errors import ModelFileError


def make_session(model: bytes, threads: int = 1, what: str = "model") -> ort.InferenceSession:
    """An onnxruntime CPU session for a serialized model.

    ``threads`` is the intra-op thread count (1 is fastest for the small per-step matmuls of
    an SNN and leaves cores to other work); inter-op parallelism is off.
    Raises ModelFileError with onnxruntime's first message line when the graph cannot load.
    """
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelFileError(f"onnxruntime cannot load {what}: {line[:300]}") from None
