"""SNN-aware post-training quantization: choose per-layer scales from calibration data.

For layer k with float weights W (max |W| = m) and integer input worth ``in_scale`` per unit:

    weight LSB     s_w = m / 127                  W_int = round(W / s_w)      (int8, full range)
    state LSB      s_u = s_w * in_scale / 2^k     so the contribution is (W_int x_int) << k exactly
    k (w_shift)    the largest integer with  need / s_u <= 2^(bits-1) - 1,
                   need = max(peak |I|, peak |U|, max theta, max |b|) / headroom
                   (peaks of the float model on the calibration data, at ``percentile``),
                   capped so that the worst-case contribution (max row sum |W_int| * max|x|)
                   << k fits int32.
    theta_int = round(theta / s_u), b_int = round(b / s_u), alpha, beta -> 12-bit multipliers.
    recurrent V:   v_shift = ceil(log2(max|V| / (127 s_u))), V_int = round(V / (s_u 2^v_shift)).

So thresholds and the largest currents seen in calibration use about ``headroom`` of the state
range without saturating. The integer network is then run on the calibration data and any
saturation is reported per layer (fraction of neuron-steps clipped) as a warning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edgelearn.errors import FixedPointError, InputError
from edgelearn.fixed import encode_decay, int_range
from edgelearn.kernels.lif_fixed import STATE_BITS, QLayer, QNetwork, quantize_input
from edgelearn.kernels.lif_kernels import qrun
from edgelearn.model import Network
from edgelearn.runtime.reference import run


@dataclass
class LayerReport:
    """Per-layer quantization figures (float values in the model's threshold units)."""

    name: str
    kind: str
    w_shift: int
    v_shift: int
    scale: float                 # state LSB
    weight_scale: float          # float value of one int8 weight step
    threshold_int: int           # largest integer threshold (0 for readouts)
    peak_current: float          # calibration peak |I| of the float model
    peak_membrane: float         # calibration peak |U| of the float model
    range_used: float            # max(peaks, theta) / full state range
    clipped: dict = field(default_factory=dict)   # data name -> (current, membrane) fraction


@dataclass
class QuantReport:
    """What :func:`quantize_network` chose and measured; :func:`evaluate` fills the rest."""

    network: str
    state_bits: int
    input_scale: float
    input_bits: int
    layers: list
    warnings: list = field(default_factory=list)
    float_accuracy: float | None = None
    fixed_accuracy: float | None = None
    twin_accuracy: float | None = None
    spike_agreement: dict = field(default_factory=dict)
    n_test: int = 0

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["layers"] = [dict(la.__dict__) for la in self.layers]
        return d


def _check_calibration(net: Network, calib_x) -> np.ndarray:
    x = np.asarray(calib_x)
    if x.dtype.kind not in "biuf":
        raise InputError(f"calibration data must be numeric, got dtype {x.dtype}")
    if x.ndim == 2:
        x = x[:, None, :]
    if x.ndim != 3 or x.shape[2] != net.n_in or 0 in x.shape:
        raise InputError(f"calibration data has shape {tuple(np.shape(calib_x))}; network "
                         f"'{net.name}' expects [T, B, {net.n_in}] (time, batch, channels)")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise InputError("calibration data contains NaN or Inf")
    return x


def choose_input_format(x: np.ndarray, percentile: float = 100.0) -> tuple[float, int]:
    """(input_scale, input_bits): integer-valued data stay exact (scale 1, 3..16 bits, one bit
    more than the calibration maximum needs; larger test values saturate);
    other data become int8 with scale = percentile(|x|) / 127."""
    if np.all(x == np.round(x)):
        m = int(np.abs(x).max())
        bits = max(3, m.bit_length() + 2)     # one spare bit above the calibration maximum
        if bits <= 16:
            return 1.0, bits
    m = float(np.percentile(np.abs(x), percentile))
    return (m / 127.0 if m > 0 else 1.0), 8


def _peak(a: np.ndarray, percentile: float) -> float:
    a = np.abs(a)
    return float(a.max() if percentile >= 100 else np.percentile(a, percentile))


def quantize_network(net: Network, calib_x, *, state_bits: int = 16, headroom: float = 0.5,
                     percentile: float = 100.0, shifts: dict | None = None
                     ) -> tuple[QNetwork, QuantReport]:
    """Quantize ``net`` using calibration inputs ``calib_x`` [T, B, n_in] (float or counts).

    Args:
        state_bits: width of I and U (16 or 32).
        headroom: fraction of the state range the calibration peaks may use (0 < h <= 4;
            above 1 saturation is expected and reported).
        percentile: peak statistic of |I| and |U| (100 = max).
        shifts: optional {layer name: w_shift} overriding the chosen shifts.
    Returns:
        (QNetwork, QuantReport); report.warnings names every layer that saturated on the
        calibration data with the clipped fraction.
    """
    if state_bits not in STATE_BITS:
        raise FixedPointError(f"state_bits must be one of {STATE_BITS}, got {state_bits}")
    if not 0 < headroom <= 4:
        raise FixedPointError(f"headroom must lie in (0, 4], got {headroom}")
    if not 50 <= percentile <= 100:
        raise FixedPointError(f"percentile must lie in [50, 100], got {percentile}")
    shifts = dict(shifts or {})
    unknown = set(shifts) - {la.name for la in net.layers}
    if unknown:
        raise FixedPointError(f"shift override for unknown layer(s) {sorted(unknown)}; layers "
                              f"are {[la.name for la in net.layers]}")
    for name, k in shifts.items():
        if isinstance(k, bool) or not isinstance(k, int) or not -31 <= k <= 31:
            raise FixedPointError(f"shift override for layer '{name}' must be an integer in "
                                  f"[-31, 31], got {k!r}")
    x = _check_calibration(net, calib_x)
    in_scale, in_bits = choose_input_format(x, percentile)
    with np.errstate(over="ignore", invalid="ignore"):
        rec = run(net, x.astype(np.float32), record=("current", "membrane"))
    for layer in net.layers:
        if not (np.all(np.isfinite(rec.current[layer.name]))
                and np.all(np.isfinite(rec.membrane[layer.name]))):
            raise InputError(f"calibration data drives layer '{layer.name}' of '{net.name}' to "
                             f"NaN or Inf at float32 (inputs up to {float(np.abs(x).max()):.3g});"
                             f" calibrate with inputs in the range the network was trained on")
    hi = int_range(state_bits)[1]
    max_in = float(int_range(in_bits)[1])
    qlayers, rows = [], []
    for k, layer in enumerate(net.layers):
        ls = in_scale if k == 0 else 1.0
        xmax = max(max_in, 1.0) if k == 0 else 1.0
        m = float(np.abs(layer.weight).max())
        s_w = m / 127.0 if m > 0 else 1.0
        w_int = np.clip(np.floor(layer.weight / s_w + 0.5), -127, 127).astype(np.int64)
        pk_i = _peak(rec.current[layer.name], percentile)
        pk_u = _peak(rec.membrane[layer.name], percentile)
        theta = float(layer.threshold.max()) if layer.spiking else 0.0
        bmax = 0.0 if layer.bias is None else float(np.abs(layer.bias).max())
        need = max(pk_i, pk_u, theta, bmax, 1e-30) / headroom
        ws = s_w * ls
        shift = math.floor(math.log2(hi * ws / need))
        row_abs = int(np.abs(w_int).sum(axis=1).max()) or 1
        cap = 30 - math.ceil(math.log2(row_abs * xmax + 1))      # contribution fits int32
        shift = int(max(-31, min(31, shift, cap)))
        if layer.name in shifts:
            shift = int(shifts[layer.name])
        s_u = ws / 2.0 ** shift
        thr = np.floor(layer.threshold / s_u + 0.5).astype(np.int64) if layer.spiking else 0
        if layer.spiking and (np.max(thr) > hi or np.min(thr) < 1):
            raise FixedPointError(f"layer '{layer.name}': threshold {theta:.4g} is "
                                  f"{np.max(thr)} state LSB, outside 1..{hi} for "
                                  f"{state_bits}-bit state (w_shift {shift})")
        bias = None
        if layer.bias is not None:
            bias = np.clip(np.floor(layer.bias / s_u + 0.5), -hi - 1, hi).astype(np.int64)
        v_int, v_shift = None, 0
        if layer.recurrent is not None:
            mv = float(np.abs(layer.recurrent).max())
            if mv > 0:
                v_shift = int(max(-31, min(31, math.ceil(math.log2(mv / (127.0 * s_u))))))
            v_int = np.clip(np.floor(layer.recurrent / (s_u * 2.0 ** v_shift) + 0.5),
                            -127, 127).astype(np.int64)
        qlayers.append(QLayer(name=layer.name, weight=w_int, alpha=encode_decay(layer.alpha),
                              beta=encode_decay(layer.beta), threshold=thr, reset=layer.reset,
                              spiking=layer.spiking, bias=bias, recurrent=v_int, w_shift=shift,
                              v_shift=v_shift, state_bits=state_bits, scale=s_u,
                              input_scale=ls))
        rows.append(LayerReport(name=layer.name, kind=layer.kind, w_shift=shift, v_shift=v_shift,
                                scale=s_u, weight_scale=s_w, threshold_int=int(np.max(thr)),
                                peak_current=pk_i, peak_membrane=pk_u,
                                range_used=max(pk_i, pk_u, theta) / (hi * s_u)))
    qnet = QNetwork(layers=tuple(qlayers), name=net.name, dt=net.dt, input_scale=in_scale,
                    input_bits=in_bits, meta=dict(net.meta))
    report = QuantReport(network=net.name, state_bits=state_bits, input_scale=in_scale,
                         input_bits=in_bits, layers=rows)
    record_saturation(qnet, quantize_input(qnet, x), report, "calibration")
    return qnet, report


def record_saturation(qnet: QNetwork, x_int: np.ndarray, report: QuantReport, what: str,
                      recording=None) -> None:
    """Run (or reuse) the integer network on ``x_int`` and add clipped fractions + warnings."""
    rec = recording if recording is not None else qrun(qnet, x_int, record=())
    for row in report.layers:
        ci, cu, total = rec.clipped[row.name]
        row.clipped[what] = (ci / total, cu / total)
        for part, c in (("current", ci), ("membrane", cu)):
            if c:
                report.warnings.append(
                    f"layer '{row.name}': {part} saturated ({report.state_bits}-bit) in "
                    f"{100.0 * c / total:.3g} % of neuron-steps ({c} of {total}) on {what} data")
