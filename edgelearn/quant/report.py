"""Float vs fixed evaluation: accuracy, spike agreement, saturation, and the printed report."""

from __future__ import annotations

import numpy as np

from edgelearn.errors import InputError
from edgelearn.kernels.lif_fixed import QNetwork, dequantize, quantize_input
from edgelearn.kernels.lif_kernels import qrun
from edgelearn.model import Network
from edgelearn.quant.calibrate import QuantReport, record_saturation
from edgelearn.runtime.reference import run

READOUTS = ("max", "mean", "last", "count")


def predict(output: np.ndarray, readout: str) -> np.ndarray:
    """Class per sample from an output sequence [T, B, n_out]: argmax over classes of the
    max / mean / last value over time, or of the spike count ("count")."""
    out = np.asarray(output, dtype=np.float64)
    if readout == "max":
        score = out.max(axis=0)
    elif readout in ("mean", "count"):
        score = out.sum(axis=0)
    elif readout == "last":
        score = out[-1]
    else:
        raise InputError(f"readout must be one of {READOUTS}, got {readout!r}")
    return np.argmax(score, axis=1)


def readout_mode(net) -> str:
    """net.meta['readout'] if set, else 'max' for a membrane readout and 'count' for spikes."""
    mode = net.meta.get("readout")
    if mode:
        return mode
    return "max" if not net.layers[-1].spiking else "count"


def evaluate(net: Network, qnet: QNetwork, x: np.ndarray, y: np.ndarray | None = None,
             report: QuantReport | None = None, what: str = "test") -> dict:
    """Compare the float model, the integer kernel and its float twin on x [T, B, n_in].

    Returns (and stores in ``report`` when given): float / fixed / twin accuracy (if labels),
    spike agreement per spiking layer (fraction of neuron-steps where the integer kernel's spike
    equals the float model's), and saturation on this data.
    """
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != net.n_in:
        raise InputError(f"{what} data has shape {x.shape}; network '{net.name}' expects "
                         f"[T, B, {net.n_in}]")
    xf = x.astype(np.float32)
    x_int = quantize_input(qnet, x)
    fl = run(net, xf, record=("spikes",))
    fx = qrun(qnet, x_int, record=("spikes",))
    tw = run(dequantize(qnet), (x_int * qnet.input_scale).astype(np.float32), record=())
    res = {"n": int(x.shape[1])}
    agree = {name: float(np.mean(fl.spikes[name] == fx.spikes[name])) for name in fx.spikes}
    res["spike_agreement"] = agree
    if y is not None:
        y = np.asarray(y).astype(np.int64).ravel()
        if y.shape[0] != x.shape[1]:
            raise InputError(f"{what} labels: {y.shape[0]} labels for {x.shape[1]} samples")
        mode = readout_mode(net)
        res["float_accuracy"] = float(np.mean(predict(fl.output, mode) == y))
        res["fixed_accuracy"] = float(np.mean(predict(fx.output, mode) == y))
        res["twin_accuracy"] = float(np.mean(predict(tw.output, mode) == y))
    if report is not None:
        report.spike_agreement = agree
        report.n_test = res["n"]
        report.float_accuracy = res.get("float_accuracy")
        report.fixed_accuracy = res.get("fixed_accuracy")
        report.twin_accuracy = res.get("twin_accuracy")
        record_saturation(qnet, x_int, report, what, recording=fx)
    return res


def format_report(report: QuantReport) -> str:
    """Human-readable multi-line report."""
    lines = [f"quantized '{report.network}': int8 weights, {report.state_bits}-bit state, "
             f"input {report.input_bits}-bit x {report.input_scale:.6g}"]
    lines.append(f"  {'layer':<12} {'kind':<8} {'w_shift':>7} {'v_shift':>7} {'theta':>7} "
                 f"{'state LSB':>10} {'range used':>10}  clipped I/U (per data set)")
    for la in report.layers:
        clip = ", ".join(f"{k}: {100 * ci:.3g}%/{100 * cu:.3g}%"
                         for k, (ci, cu) in la.clipped.items())
        lines.append(f"  {la.name:<12} {la.kind:<8} {la.w_shift:>7} {la.v_shift:>7} "
                     f"{la.threshold_int:>7} {la.scale:>10.4g} {100 * la.range_used:>9.1f}%  "
                     f"{clip}")
    if report.float_accuracy is not None:
        d = 100 * (report.fixed_accuracy - report.float_accuracy)
        lines.append(f"  accuracy on {report.n_test} test samples: float "
                     f"{100 * report.float_accuracy:.2f} %, int {100 * report.fixed_accuracy:.2f}"
                     f" % ({d:+.2f} points), float twin {100 * report.twin_accuracy:.2f} %")
    if report.spike_agreement:
        agree = ", ".join(f"{k} {100 * v:.2f} %" for k, v in report.spike_agreement.items())
        lines.append(f"  spike agreement float vs int (neuron-steps): {agree}")
    for w in report.warnings:
        lines.append(f"  warning: {w}")
    return "\n".join(lines)
