"""One interface over the implementations of the integer LIF kernel (TFLM style; L1).

* ``reference``: :func:`edgelearn.kernels.lif_fixed.reference_step`, docs/fixed-point.md
  section 5 as it reads (int64, nothing cached): the specification;
* ``optimised``: :func:`edgelearn.kernels.lif_fast.step`, the same integers with float32 BLAS
  when exact, event-driven accumulation and cached weight forms (the default);
* ``native`` (whole sequences only, :func:`qrun`): the C firmware's kernel as a shared library
  (:mod:`edgelearn.kernels.native`); without the library (no compiler, ``EDGELEARN_NATIVE=0``)
  the optimised step runs after a one-line notice.

:func:`layer_step` returns the step function of an implementation, all with the signature
``step(qlayer, x, state, mode="auto", binary=None, clip_counts=None) -> (output, QState)``
(``mode`` picks the optimised accumulation: "auto", "dense" or "event"; the reference has
one way and ignores it); :func:`qlayer_step`, :func:`qnetwork_step` and :func:`qrun` run one
layer, one network step, or a sequence. All give the same integers: tests/test_lif_kernels.py
runs each on the shared vectors (tests/vectors/) and on random networks.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from edgelearn.errors import InputError
from edgelearn.kernels import lif_fast, native
from edgelearn.kernels.image import to_image
from edgelearn.kernels.lif_fast import MODES
from edgelearn.kernels.lif_fixed import (QLayer, QNetwork, QNetworkState, QRecording, QState,
                                         as_int_sequence, init_qnetwork_state, reference_step)
from edgelearn.model import check_record, store_traces, trace_buffers

IMPLEMENTATIONS = ("reference", "optimised")        # layer steps
SEQUENCE_IMPLEMENTATIONS = IMPLEMENTATIONS + ("native",)


def _reference(qlayer: QLayer, x: np.ndarray, state: QState, mode: str = "auto",
               binary: bool | None = None, clip_counts: np.ndarray | None = None
               ) -> tuple[np.ndarray, QState]:
    """The reference step behind the common signature (``mode``/``binary`` do not apply)."""
    if mode not in MODES:
        raise InputError(f"mode must be one of {MODES}, got {mode!r}")
    return reference_step(qlayer, x, state, clip_counts)


_STEPS: dict[str, Callable] = {"reference": _reference, "optimised": lif_fast.step}


def layer_step(impl: str = "optimised") -> Callable:
    """The layer step function of ``impl`` ("reference" or "optimised")."""
    if impl not in _STEPS:
        raise InputError(f"LIF kernel implementation must be one of {IMPLEMENTATIONS}, got "
                         f"{impl!r}")
    return _STEPS[impl]


def qlayer_step(qlayer: QLayer, x: np.ndarray, state: QState, mode: str = "auto",
                binary: bool | None = None, clip_counts: np.ndarray | None = None,
                impl: str = "optimised") -> tuple[np.ndarray, QState]:
    """One step of one layer: integer x [B, n_in] -> (output int64 [B, n_out], new state)."""
    return layer_step(impl)(qlayer, x, state, mode, binary, clip_counts)


def qnetwork_step(qnet: QNetwork, x: np.ndarray, state: QNetworkState, mode: str = "auto",
                  impl: str = "optimised") -> tuple[np.ndarray, QNetworkState]:
    """One step of the whole integer network: int x [B, n_in] -> (output [B, n_out], state)."""
    step = layer_step(impl)
    new = []
    binary = None
    for la, st in zip(qnet.layers, state):
        x, st = step(la, x, st, mode, binary)
        binary = True
        new.append(st)
    return x, tuple(new)


def qrun(qnet: QNetwork, x: np.ndarray, record: tuple[str, ...] = ("spikes",),
         mode: str = "auto", state: QNetworkState | None = None, impl: str = "optimised",
         lib=None, threads: int | None = None) -> QRecording:
    """Run an integer sequence x [T, n_in] | [T, B, n_in] through the integer network.

    Records the per-layer traces named in ``record`` (int64; spikes uint8) and the number of
    saturated entries per layer; starts from ``state`` (default: zero). ``impl="native"``
    runs the C kernel (``lib``: a loaded library, default :func:`native.library`) from the
    zero state on ``threads`` threads (default :func:`native.default_threads`; the same
    integers for any count) and leaves ``final_state`` None; the numpy implementations ignore
    ``threads``.
    """
    check_record(record)
    if impl not in SEQUENCE_IMPLEMENTATIONS:
        raise InputError(f"LIF kernel implementation must be one of "
                         f"{SEQUENCE_IMPLEMENTATIONS}, got {impl!r}")
    if mode not in MODES:
        raise InputError(f"mode must be one of {MODES}, got {mode!r}")
    seq = as_int_sequence(qnet, x)
    if impl == "native":
        if state is not None:
            raise InputError("the native LIF kernel runs from the zero state; pass no state")
        lib = lib or native.library()
        if lib is not None:
            return _qrun_native(lib, qnet, seq, record, mode, threads)
        impl = "optimised"
    return _qrun_numpy(layer_step(impl), qnet, seq, record, mode, state)


def _qrun_numpy(step: Callable, qnet: QNetwork, seq: np.ndarray, record: tuple[str, ...],
                mode: str, state: QNetworkState | None) -> QRecording:
    T, B, _ = seq.shape
    state = init_qnetwork_state(qnet, B) if state is None else state
    first_binary = bool(seq.min() >= 0 and seq.max() <= 1)
    out = np.empty((T, B, qnet.n_out), dtype=np.int64)
    rec = QRecording(output=out)
    counts = {la.name: np.zeros(2, dtype=np.int64) for la in qnet.layers}
    traces = trace_buffers(rec, qnet.layers, record, T, B, np.int64, np.uint8)
    for t in range(T):
        h = seq[t]
        binary = first_binary
        new = []
        for la, st in zip(qnet.layers, state):
            h, st = step(la, h, st, mode, binary, counts[la.name])
            binary = True
            new.append(st)
            store_traces(traces, la, t, h, st)
        state = tuple(new)
        out[t] = h
    rec.clipped = {la.name: (int(counts[la.name][0]), int(counts[la.name][1]), T * B * la.n_out)
                   for la in qnet.layers}
    rec.final_state = state
    return rec


def _qrun_native(lib, qnet: QNetwork, seq: np.ndarray, record: tuple[str, ...],
                 mode: str, threads: int | None) -> QRecording:
    T, B, _ = seq.shape
    nn = native.NativeNetwork(lib, to_image(qnet), B, threads)
    sizes = [la.n_out for la in qnet.layers]
    res = nn.run(seq, sizes, qnet.layers[-1].spiking, record, mode)
    rec = QRecording(output=res["output"].astype(np.int64))
    off = 0
    for la in qnet.layers:
        n = B * la.n_out
        for key, dest, dt in (("spikes", rec.spikes, np.uint8), ("current", rec.current, np.int64),
                              ("membrane", rec.membrane, np.int64)):
            if res[key] is not None and (key != "spikes" or la.spiking):
                dest[la.name] = res[key][:, off:off + n].reshape(T, B, la.n_out).astype(dt)
        off += n
    rec.clipped = {la.name: (int(res["clips"][k, 0]), int(res["clips"][k, 1]), T * B * la.n_out)
                   for k, la in enumerate(qnet.layers)}
    return rec
