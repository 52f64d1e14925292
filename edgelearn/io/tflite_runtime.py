"""One import shim for TFLite interpreters (L2): LiteRT, tflite-runtime, TFLite Micro.

    make_interpreter(model: bytes) -> (interpreter, backend name)   LiteRT, else tflite-runtime
    TfliteStepper(model, backend="litert"|"tflm", arena=...)        run the exported step graph
    probe_tflm_arena(model: bytes) -> int                           smallest working TFLM arena

ai-edge-litert (LiteRT) works with numpy 2; tflite-runtime 2.14 (the last release) needs
numpy < 2; both expose the same ``Interpreter`` API. The TFLite Micro Python interpreter
(``pip install --pre tflite-micro``) aborts the whole process when its arena is too small, so
arena sizes are probed in child processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np

from edgelearn.errors import TargetError

BACKENDS = ("litert", "tflite-runtime", "tflm")


def _interpreter(cls, name: str, model: bytes):
    """The builtin kernels without default delegates: the integer graph needs none, and LiteRT
    would otherwise create the XNNPACK delegate and print an INFO line on stderr."""
    if name == "litert":
        from ai_edge_litert.interpreter import OpResolverType
        return cls(model_content=bytes(model), num_threads=1,
                   experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    return cls(model_content=bytes(model), num_threads=1)


def make_interpreter(model: bytes, prefer: str | None = None):
    """A TFLite ``Interpreter`` on ``model`` bytes: (interpreter, backend name).

    Tries ai_edge_litert, then tflite_runtime (or only ``prefer`` when given).
    """
    errors = []
    for name in ([prefer] if prefer else ["litert", "tflite-runtime"]):
        try:
            if name == "litert":
                from ai_edge_litert.interpreter import Interpreter
            elif name == "tflite-runtime":
                from tflite_runtime.interpreter import Interpreter
            else:
                raise TargetError(f"unknown TFLite backend {name!r}; choose from {BACKENDS[:2]}")
        except ImportError as exc:      # numpy-1 builds fail here under numpy 2 as well
            errors.append(f"{name}: {exc}")
            continue
        try:
            interp = _interpreter(Interpreter, name, model)
            interp.allocate_tensors()
        except Exception as exc:       # SystemError: a numpy-1 build under numpy 2
            hint = ""
            if isinstance(exc, SystemError) and np.lib.NumpyVersion(np.__version__) >= "2.0.0":
                hint = f" ({name} was built for numpy < 2; this is numpy {np.__version__})"
            raise TargetError(f"{name} cannot load the model: "
                              f"{(str(exc).splitlines() or [type(exc).__name__])[0]}{hint}") \
                from None
        return interp, name
    raise TargetError("no TFLite interpreter is importable (" + "; ".join(errors) + ")")


def io_names(model: bytes) -> tuple[list, list]:
    """Names of the first subgraph's input and output tensors, read from the flatbuffer."""
    try:
        from ai_edge_litert import schema_py_generated as s
    except ImportError as exc:
        raise TargetError(f"reading .tflite tensor names needs ai-edge-litert: {exc}") from None
    sg = s.Model.GetRootAsModel(bytes(model), 0).Subgraphs(0)
    name = lambda i: sg.Tensors(i).Name().decode("utf-8")  # noqa: E731
    return ([name(sg.Inputs(k)) for k in range(sg.InputsLength())],
            [name(sg.Outputs(k)) for k in range(sg.OutputsLength())])


class TfliteStepper:
    """Feed named inputs to the step graph and read named outputs, for any backend."""

    def __init__(self, model: bytes, backend: str = "litert", arena: int | None = None):
        self.backend = backend
        if backend == "tflm":
            try:
                from tflite_micro.python.tflite_micro import runtime
            except ImportError as exc:
                raise TargetError(f"TFLite Micro is not installed (pip install --pre "
                                  f"tflite-micro): {exc}") from None
            self.interp = runtime.Interpreter.from_bytes(bytes(model), arena_size=arena)
            ins, outs = io_names(model)          # TFLM's details carry no names
            self._in = [dict(self.interp.get_input_details(i), name=n) for i, n in enumerate(ins)]
            self._out = [dict(self.interp.get_output_details(i), name=n)
                         for i, n in enumerate(outs)]
        else:
            self.interp, self.backend = make_interpreter(model, prefer=backend)
            self._in = self.interp.get_input_details()
            self._out = self.interp.get_output_details()
        self.input_names = [d["name"] for d in self._in]
        self.output_names = [d["name"] for d in self._out]

    def run(self, feeds: dict) -> dict:
        """One invoke: ``feeds`` maps input names to float32 arrays; returns all outputs."""
        for k, d in enumerate(self._in):
            x = np.ascontiguousarray(feeds[d["name"]], dtype=np.float32)
            if self.backend == "tflm":
                self.interp.set_input(x, k)
            else:
                self.interp.set_tensor(d["index"], x)
        self.interp.invoke()
        if self.backend == "tflm":
            return {d["name"]: np.array(self.interp.get_output(k))
                    for k, d in enumerate(self._out)}
        return {d["name"]: np.array(self.interp.get_tensor(d["index"])) for d in self._out}


_PROBE = r"""
import sys, numpy as np
from edgelearn.io.tflite_runtime import TfliteStepper
m = open(sys.argv[1], "rb").read()
st = TfliteStepper(m, backend="tflm", arena=int(sys.argv[2]))
feeds = {d["name"]: np.zeros(d["shape"], np.float32) for d in st._in}
st.run(feeds)
print("ok")
"""


def tflm_works(model_path: str, arena: int, timeout: float = 60.0) -> bool:
    """True if TFLite Micro runs one step of the model with ``arena`` bytes (child process)."""
    try:
        r = subprocess.run([sys.executable, "-c", _PROBE, model_path, str(arena)],
                           capture_output=True, text=True, timeout=timeout,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    except subprocess.TimeoutExpired:
        return False
    return r.returncode == 0 and r.stdout.strip().endswith("ok")


def probe_tflm_arena(model: bytes, hi: int = 1 << 22, granularity: int = 64) -> int:
    """Smallest arena (bytes, to ``granularity``) with which TFLM runs the model.

    Raises TargetError when even ``hi`` bytes fail (or TFLM is not installed).
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.tflite")
        with open(path, "wb") as fh:
            fh.write(model)
        if not tflm_works(path, hi):
            raise TargetError(f"TFLite Micro could not run the model even with a {hi}-byte "
                              f"arena (is tflite-micro installed?)")
        lo = 0
        while hi - lo > granularity:
            mid = (lo + hi) // 2
            if tflm_works(path, mid):
                hi = mid
            else:
                lo = mid
        return hi


def run_sequence(stepper: TfliteStepper, x: np.ndarray) -> dict:
    """Run integer inputs x [T, B, n_in] through a step graph from zero state.

    Returns {"output": [T, B, n_out], "<layer>.spikes": [T, B, n], ...} as float32 arrays.
    """
    state = {d["name"]: np.zeros(d["shape"], np.float32) for d in stepper._in
             if d["name"] != "input"}
    outs: dict = {}
    for t in range(x.shape[0]):
        got = stepper.run({"input": x[t].astype(np.float32), **state})
        for name in state:
            state[name] = got[name[:-3] + "_out"]
        for name, v in got.items():
            if not name.endswith("_out"):
                outs.setdefault(name, []).append(v)
    return {k: np.stack(v) for k, v in outs.items()}


def check_tflite(qnet, model: bytes, batch: int = 1, steps: int = 20, seed: int = 0,
                 arena: int = 1 << 21) -> list:
    """Compare LiteRT (and TFLM when installed) with the integer kernel on random integer
    inputs: [(backend, steps, bit-identical?)]."""
    from edgelearn.kernels.lif_kernels import qrun

    rng = np.random.default_rng(seed)
    x = (rng.random((steps, batch, qnet.n_in)) < 0.2) * rng.integers(1, 4, (steps, batch,
                                                                            qnet.n_in))
    ref = qrun(qnet, x, record=("spikes",))
    backends = ["litert"]
    try:
        import tflite_micro  # noqa: F401
        backends.append("tflm")
    except ImportError:
        pass
    result = []
    for b in backends:
        got = run_sequence(TfliteStepper(model, b, arena if b == "tflm" else None), x)
        same = np.array_equal(got["output"], ref.output) and all(
            np.array_equal(got[f"{k}.spikes"], v) for k, v in ref.spikes.items())
        result.append((b, steps, bool(same)))
    return result
