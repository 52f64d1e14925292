"""Verify an ONNX graph against the numpy reference on seeded probe inputs (L2).

Step graphs are checked *teacher-forced*: for each probe step a random input and a random
state (membranes spread around the threshold so resets happen, currents of the order of the
threshold) go into both onnxruntime and :func:`edgelearn.kernels.lif_float.layer_step`; every
layer's current, membrane and spikes must agree. Scan graphs are checked on a free-running
probe sequence.

Float32 matmuls may sum in a different order, so values are compared with the tolerance

    |ort - ref| <= RTOL * (1 + max|ref| of that layer and step)

and a spike may differ only where the reference membrane lies within that tolerance of the
threshold (the comparison is then ambiguous); that sample is not compared downstream of the
flip for that step (step graphs) or for the rest of the sequence (scan graphs).
A disagreement raises VerificationError naming layer, step, sample, neuron and deviation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgelearn.errors import VerificationError
from edgelearn.io.onnx_guard import run_checked
from edgelearn.kernels.lif_float import LayerState, layer_step
from edgelearn.model import Network

RTOL = 1e-4
PROBE_STEPS = 6
PROBE_BATCH = 3
PROBE_SEED = 20261129


@dataclass(frozen=True)
class LayerIO:
    """Graph tensor names of one layer's state (None: not carried by the graph)."""

    current_in: str | None
    membrane_in: str | None
    current_out: str | None
    membrane_out: str | None
    spikes_in: str | None = None     # a carried spike state (snnTorch RLeaky/RSynaptic)
    spikes_out: str | None = None


@dataclass(frozen=True)
class StepIO:
    """How a step graph's inputs/outputs map onto a Network."""

    input: str
    output: str
    layers: tuple[LayerIO, ...]


def probe_inputs(net: Network, rng: np.random.Generator, steps: int, batch: int) -> np.ndarray:
    """[steps, batch, n_in] float32: sample 0 binary spikes, the others Gaussian."""
    x = rng.standard_normal((steps, batch, net.n_in)).astype(np.float32)
    x[:, 0] = (rng.random((steps, net.n_in)) < 0.3).astype(np.float32)
    return x


def probe_state(net: Network, rng: np.random.Generator, batch: int) -> tuple[LayerState, ...]:
    out = []
    for la in net.layers:
        theta = la.threshold if la.spiking else np.ones(la.n_out, np.float32)
        cur = (rng.standard_normal((batch, la.n_out)) * theta).astype(np.float32)
        mem = (rng.uniform(-1.0, 2.0, (batch, la.n_out)) * theta).astype(np.float32)
        out.append(LayerState(cur, mem))
    return tuple(out)


def _compare(what: str, layer, t: int, got: np.ndarray, ref: np.ndarray, live: np.ndarray,
             path: str) -> None:
    if got.shape != ref.shape:
        raise VerificationError(f"{path}: layer '{layer.name}' step {t}: {what} has shape "
                                f"{got.shape}, the reference {ref.shape}")
    tol = RTOL * (1.0 + float(np.max(np.abs(ref))) if ref.size else 1.0)
    dev = np.where(live[:, None], np.abs(got.astype(np.float64) - ref), 0.0)
    bad = ~(dev <= tol)  # NaN counts as bad
    if np.any(bad):
        b, j = np.argwhere(bad)[0]
        raise VerificationError(
            f"{path}: layer '{layer.name}' step {t} sample {b} neuron {j}: {what} "
            f"{float(got[b, j]):.6g} from onnxruntime vs {float(ref[b, j]):.6g} from the numpy "
            f"reference (deviation {float(dev[b, j]):.3g}, tolerance {tol:.3g})")


def _compare_spikes(layer, t: int, got_u: np.ndarray, ref_u: np.ndarray, live: np.ndarray,
                    path: str) -> np.ndarray:
    """Compare spikes implied by membranes; return the samples still comparable."""
    got_s, ref_s = got_u > layer.threshold, ref_u > layer.threshold
    tol = RTOL * (1.0 + float(np.max(np.abs(ref_u))))
    flip = (got_s != ref_s) & live[:, None]
    ambiguous = np.abs(ref_u - layer.threshold) <= tol
    if np.any(flip & ~ambiguous):
        b, j = np.argwhere(flip & ~ambiguous)[0]
        raise VerificationError(
            f"{path}: layer '{layer.name}' step {t} sample {b} neuron {j}: spike "
            f"{int(got_s[b, j])} from onnxruntime vs {int(ref_s[b, j])} from the numpy reference")
    return live & ~np.any(flip, axis=1)


def verify_step(session, net: Network, io: StepIO, path: str = "model",
                steps: int = PROBE_STEPS, batch: int = PROBE_BATCH,
                seed: int = PROBE_SEED) -> None:
    """Teacher-forced probe of a step graph against the reference; raises VerificationError."""
    rng = np.random.default_rng(seed)
    xs = probe_inputs(net, rng, steps, batch)
    out_names = [o.name for o in session.get_outputs()]
    for t in range(steps):
        state = probe_state(net, rng, batch)
        feed = {io.input: xs[t]}
        for la, lio, st in zip(net.layers, io.layers, state):
            if lio.current_in:
                feed[lio.current_in] = st.current
            if lio.membrane_in:
                feed[lio.membrane_in] = st.membrane
            if lio.spikes_in:  # consistent with the membrane: the spike of the last step
                feed[lio.spikes_in] = (st.membrane > la.threshold).astype(np.float32)
        res = dict(zip(out_names, run_checked(session, out_names, feed, VerificationError,
                                              f"{path}: onnxruntime failed on probe step {t}")))
        h, live = xs[t], np.ones(batch, bool)
        for la, lio, st in zip(net.layers, io.layers, state):
            h, new = layer_step(la, h, st)
            if lio.current_out:
                _compare("current", la, t, res[lio.current_out], new.current, live, path)
            if lio.membrane_out:
                _compare("membrane", la, t, res[lio.membrane_out], new.membrane, live, path)
                if la.spiking:
                    live = _compare_spikes(la, t, res[lio.membrane_out], new.membrane, live,
                                           path)
            if lio.spikes_out:
                _compare("spike state", la, t, res[lio.spikes_out], h, live, path)
        _compare("output", net.layers[-1], t, np.asarray(res[io.output]), h, live, path)


def verify_scan(session, net: Network, path: str = "model", steps: int = 2 * PROBE_STEPS,
                batch: int = PROBE_BATCH, seed: int = PROBE_SEED) -> None:
    """Free-running probe of an edgelearn Scan graph against the reference."""
    from edgelearn.io import onnx_meta as M

    rng = np.random.default_rng(seed)
    xs = probe_inputs(net, rng, steps, batch) * 2.0
    state = probe_state(net, rng, batch)
    feed = {M.INPUT: xs}
    for la, st in zip(net.layers, state):
        feed[M.state_in(la.name, "current")] = st.current
        feed[M.state_in(la.name, "membrane")] = st.membrane
    out_names = [o.name for o in session.get_outputs()]
    res = dict(zip(out_names, run_checked(session, out_names, feed, VerificationError,
                                          f"{path}: onnxruntime failed on the probe sequence")))
    live = np.ones(batch, bool)
    for t in range(steps):
        h = xs[t]
        new_state = []
        for la, st in zip(net.layers, state):
            h, st = layer_step(la, h, st)
            new_state.append(st)
            if la.spiking:
                got = res[M.spikes_name(la.name)][t]
                flip = (got != h) & live[:, None]
                ambiguous = np.abs(st.membrane - la.threshold) <= RTOL * (
                    1.0 + float(np.max(np.abs(st.membrane))))
                if np.any(flip & ~ambiguous):
                    b, j = np.argwhere(flip & ~ambiguous)[0]
                    raise VerificationError(
                        f"{path}: layer '{la.name}' step {t} sample {b} neuron {j}: spike "
                        f"{int(got[b, j])} from onnxruntime vs {int(h[b, j])} from the numpy "
                        f"reference")
                live = live & ~np.any(flip, axis=1)
        state = tuple(new_state)
        _compare("output", net.layers[-1], t, np.asarray(res[M.OUTPUT][t]), h, live, path)
    for la, st in zip(net.layers, state):
        _compare("final membrane", la, steps - 1, res[M.state_out(la.name, "membrane")],
                 st.membrane, live, path)
        _compare("final current", la, steps - 1, res[M.state_out(la.name, "current")],
                 st.current, live, path)
