"""An unrecognised step graph, run as-is in onnxruntime for inference only (L2).

The graph must follow the step convention ``forward(x, *state) -> (out, *state)``: the first
graph input is x [B, n_in], the first output is out [B, n_out], and the remaining inputs and
outputs are state tensors paired by position (all start at zero). Learning needs the layer
structure (weights, decays, thresholds), which could not be recovered; ``why_no_learning``
says what was missing.
"""

from __future__ import annotations

import numpy as np

from edgelearn.errors import InputError, ModelFileError
from edgelearn.io.onnx_guard import run_checked
from edgelearn.io.onnx_meta import value_info_shape
from edgelearn.io.ort_session import make_session
from edgelearn.runtime.reference import as_sequence


class OpaqueModel:
    """Inference-only wrapper of a step graph edgelearn could not map onto its neuron model.

    Attributes:
        why_no_learning: one line saying why the layers could not be recovered.
        n_in, n_out: input / output channels.
        state_shapes: per state input, its fixed shape with the batch dimension as None.
        batch: the fixed batch size of the graph, or None if any batch size is accepted.
    """

    def __init__(self, model, data: bytes, why: str, what: str = "model") -> None:
        self.why_no_learning = why
        self.path = what
        init_names = {t.name for t in model.graph.initializer}
        inputs = [i for i in model.graph.input if i.name not in init_names]
        outputs = list(model.graph.output)
        if not inputs or not outputs:
            raise ModelFileError(f"'{what}': graph has no inputs or no outputs")
        if len(inputs) != len(outputs):
            raise ModelFileError(f"'{what}' is not a step graph forward(x, *state) -> "
                                 f"(out, *state): {len(inputs) - 1} state inputs but "
                                 f"{len(outputs) - 1} state outputs ({why})")
        shapes = [value_info_shape(i) for i in inputs]
        for vi, shape in zip(inputs, shapes):
            if len(shape) != 2 or not isinstance(shape[1], int) or shape[1] <= 0:
                raise ModelFileError(f"'{what}': input '{vi.name}' must be [batch, n] with a "
                                     f"fixed n, got {shape} ({why})")
            if vi.type.tensor_type.elem_type != 1:
                raise ModelFileError(f"'{what}': input '{vi.name}' must be float32 ({why})")
        out_shape = value_info_shape(outputs[0])
        self.input_name = inputs[0].name
        self.state_names = [i.name for i in inputs[1:]]
        self.output_names = [o.name for o in outputs]
        self.n_in = int(shapes[0][1])
        self.n_out = int(out_shape[-1]) if out_shape and isinstance(out_shape[-1], int) else None
        self.state_sizes = [int(s[1]) for s in shapes[1:]]
        fixed = {s[0] for s in shapes if isinstance(s[0], int)}
        self.batch = fixed.pop() if len(fixed) == 1 else None
        self.name = model.graph.name or "opaque"
        self._session = make_session(data, what=f"'{what}'", proto=model)

    def __repr__(self) -> str:
        return (f"OpaqueModel('{self.path}', n_in={self.n_in}, n_out={self.n_out}, "
                f"states={len(self.state_names)})")

    def run(self, x: np.ndarray) -> np.ndarray:
        """Run a sequence [T, n_in] or [T, B, n_in] from zero state; returns [T, B, n_out]."""
        arr = as_sequence(self, x)  # same checks as for a Network (uses .n_in and .name)
        T, B, _ = arr.shape
        if self.batch is not None and B != self.batch:
            raise InputError(f"model '{self.path}' was exported for batch {self.batch}, "
                             f"got batch {B}")
        state = [np.zeros((B, n), np.float32) for n in self.state_sizes]
        outs = []
        for t in range(T):
            feed = {self.input_name: arr[t], **dict(zip(self.state_names, state))}
            res = run_checked(self._session, self.output_names, feed, InputError,
                              f"onnxruntime failed at step {t}")
            outs.append(np.asarray(res[0], np.float32).reshape(B, -1))
            state = [np.asarray(r, np.float32) for r in res[1:]]
        return np.stack(outs)
