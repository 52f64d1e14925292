"""Surrogate-gradient BPTT for the network IR, split into a recording forward pass and a backward
pass that accepts externally measured traces (L2, numpy only).

Forward (same equations and float order as :mod:`edgelearn.kernels.lif_float`), per layer:

    R[n] = S[n-1]                                   reset signal (previous step's spike)
    I[n] = alpha I[n-1] + W x[n] (+ b) (+ V R[n])
    U[n] = beta U[n-1] + I[n] - theta R[n]          (subtract)  |  (1 - R[n]) (beta U[n-1] + I[n])  (zero)
    S[n] = H(U[n] - theta)                          readout: U[n] = beta U[n-1] + I[n], no spikes

Backward (reverse mode through time, layer by layer from the readout down), with the surrogate
sigma'(U) = 1 / (1 + k |U - theta|)^2 in place of H'(U - theta):

    gS[n] = dL/dS[n] from above (next layer's input, regularisers)
            + V^T gI[n+1]                                          (recurrent)
            - theta gU[n+1]   |  -(beta U[n] + I[n+1]) gU[n+1]      (reset term, unless detached)
    gU[n] = sigma'(U[n]) gS[n] + beta gU[n+1]   |  beta (1 - S[n]) gU[n+1]       (zero reset)
    gI[n] = gU[n] + alpha gI[n+1]               |  (1 - R[n]) gU[n] + alpha gI[n+1]
    dL/dW = sum_n gI[n]^T x[n],  dL/db = sum_n gI[n],  dL/dV = sum_n gI[n]^T R[n],
    dL/dx[n] = gI[n] W  (passed to the layer below as its dL/dS)

The backward pass only reads the trace (inputs, membranes, spikes; currents only for a zero reset
with an attached reset), so a trace measured on a noisy device (in-the-loop training as on
BrainScaleS-2) can be substituted for the simulated one via :meth:`Trace.from_measurements`.

With ``pseudo_scale=k`` the forward pass replaces H by phi(v) = 1/k + v / (1 + k|v|), whose
derivative is exactly the surrogate; the backward pass is then the exact gradient of that smooth
pseudo-network (used by the finite-difference test).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgelearn.errors import InputError, ModelError
from edgelearn.model import Layer, Network
from edgelearn.runtime.reference import as_sequence
from edgelearn.train.config import TrainConfig
from edgelearn.train.lpl_aux import device_drift_loss, filter_rate, lpl_aux_loss


@dataclass
class LayerTrace:
    """What one layer saw and did over a sequence; all arrays [T, B, n].

    Attributes:
        input: x[n], the layer's input [T, B, n_in] (spikes of the layer below, or data).
        membrane: U[n] [T, B, n_out] (the value compared with the threshold).
        spikes: S[n] [T, B, n_out], None for the readout.
        current: I[n] [T, B, n_out] or None (only needed for zero reset without detach).
    """

    input: np.ndarray
    membrane: np.ndarray
    spikes: np.ndarray | None = None
    current: np.ndarray | None = None


@dataclass
class Trace:
    """Per-layer traces of one forward pass (simulated or measured); ``layers`` in network order."""

    layers: tuple[LayerTrace, ...]
    pseudo_scale: float | None = None

    @property
    def output(self) -> np.ndarray:
        """The readout membrane (or last layer's spikes) [T, B, n_out]."""
        last = self.layers[-1]
        return last.membrane if last.spikes is None else last.spikes

    @classmethod
    def from_measurements(cls, net: Network, x: np.ndarray, membrane: dict[str, np.ndarray],
                          spikes: dict[str, np.ndarray],
                          current: dict[str, np.ndarray] | None = None) -> "Trace":
        """Build a trace from measured arrays keyed by layer name ([T, B, n] or [T, n]).

        The input of layer k > 0 is the measured spikes of layer k-1, as on a device where the
        backward pass sees what the hardware actually did.
        """
        seq = as_sequence(net, x)
        T, B, _ = seq.shape
        current = current or {}
        out = []
        h = seq
        for layer in net.layers:
            u = _measured(net, layer, "membrane", membrane, T, B)
            s = _measured(net, layer, "spikes", spikes, T, B) if layer.spiking else None
            c = _measured(net, layer, "current", current, T, B) if layer.name in current else None
            out.append(LayerTrace(h, u, s, c))
            h = s if layer.spiking else u
        return cls(tuple(out))

    @classmethod
    def from_recording(cls, net: Network, x: np.ndarray, rec) -> "Trace":
        """From an :class:`edgelearn.runtime.reference.Recording` that recorded spikes and membrane."""
        return cls.from_measurements(net, x, rec.membrane, rec.spikes, rec.current or None)


def _measured(net: Network, layer: Layer, what: str, d: dict, T: int, B: int) -> np.ndarray:
    if layer.name not in d:
        raise InputError(f"measured trace lacks {what} of layer '{layer.name}' "
                         f"(has {sorted(d)})")
    arr = np.asarray(d[layer.name], dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[:, None, :]
    if arr.shape != (T, B, layer.n_out):
        raise InputError(f"measured {what} of layer '{layer.name}' has shape {arr.shape}, "
                         f"expected {(T, B, layer.n_out)}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"measured {what} of layer '{layer.name}' contains NaN or Inf")
    return arr


@dataclass
class Gradients:
    """dL/dparameter per layer name: keys 'weight' and, where present, 'bias', 'recurrent'.

    ``loss`` is the total loss, ``parts`` its terms ('ce', 'upper', 'lower'; 'lpl' and 'drift'
    when on, edgelearn.train.lpl_aux), ``logits`` the time-reduced readout [B, n_out] (None when
    an output gradient was given instead of labels), ``rates`` the mean spikes per step of each spiking layer.
    """

    layers: dict[str, dict[str, np.ndarray]]
    loss: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)
    logits: np.ndarray | None = None
    rates: dict[str, float] = field(default_factory=dict)

    def global_norm(self) -> float:
        return float(np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2))
                                 for d in self.layers.values() for g in d.values())))


def _cast(layer: Layer, dtype) -> tuple:
    return (layer.weight.astype(dtype), layer.alpha.astype(dtype), layer.beta.astype(dtype),
            layer.threshold.astype(dtype),
            None if layer.bias is None else layer.bias.astype(dtype),
            None if layer.recurrent is None else layer.recurrent.astype(dtype))


def pseudo_spike(v: np.ndarray, k: float) -> np.ndarray:
    """phi(v) = 1/k + v / (1 + k|v|), a smooth step in (0, 2/k) with phi' = 1/(1+k|v|)^2."""
    return 1.0 / k + v / (1.0 + k * np.abs(v))


def surrogate(u: np.ndarray, theta: np.ndarray, k: float) -> np.ndarray:
    """SuperSpike fast-sigmoid derivative 1 / (1 + k |u - theta|)^2."""
    d = 1.0 + k * np.abs(u - theta)
    return 1.0 / (d * d)


def layer_forward(layer: Layer, h: np.ndarray, dtype=np.float32,
                  pseudo_scale: float | None = None) -> LayerTrace:
    """Run one layer over a whole sequence h [T, B, n_in] and record its trace."""
    T, B, n_in = h.shape
    W, alpha, beta, theta, b, V = _cast(layer, dtype)
    n = layer.n_out
    xw = (h.reshape(T * B, n_in) @ W.T).reshape(T, B, n)
    cur_t = np.empty((T, B, n), dtype=dtype)
    mem_t = np.empty((T, B, n), dtype=dtype)
    spk_t = np.empty((T, B, n), dtype=dtype) if layer.spiking else None
    cur = np.zeros((B, n), dtype=dtype)
    mem = np.zeros((B, n), dtype=dtype)
    r = np.zeros((B, n), dtype=dtype)
    subtract = layer.reset == "subtract"
    if layer.spiking and layer.reset == "zero_immediate":
        raise InputError(f"layer '{layer.name}': training a layer with reset 'zero_immediate' "
                         f"(NIR's reset) is not implemented; edgelearn trains 'subtract' and "
                         f"'zero' layers")
    for t in range(T):
        cur = alpha * cur + xw[t]
        if b is not None:
            cur = cur + b
        if not layer.spiking:
            mem = beta * mem + cur
        else:
            if V is not None:
                cur = cur + r @ V.T
            if subtract:
                mem = beta * mem + cur - theta * r
            else:
                mem = (beta * mem + cur) * (1.0 - r)
            if pseudo_scale is None:
                r = (mem > theta).astype(dtype)
            else:
                r = pseudo_spike(mem - theta, pseudo_scale).astype(dtype)
            spk_t[t] = r
        cur_t[t] = cur
        mem_t[t] = mem
    return LayerTrace(h, mem_t, spk_t, cur_t)


def forward(net: Network, x: np.ndarray, dtype=np.float32,
            pseudo_scale: float | None = None) -> Trace:
    """Simulate ``net`` on x ([T, n_in] or [T, B, n_in]) and record every layer's trace."""
    h = as_sequence(net, x).astype(dtype, copy=False)
    if pseudo_scale is not None and not (np.isfinite(pseudo_scale) and pseudo_scale > 0):
        raise InputError(f"pseudo_scale must be > 0, got {pseudo_scale}")
    layers = []
    for layer in net.layers:
        lt = layer_forward(layer, h, dtype, pseudo_scale)
        layers.append(lt)
        h = lt.spikes if layer.spiking else lt.membrane
    return Trace(tuple(layers), pseudo_scale)


def reduce_time(out: np.ndarray, readout: str) -> np.ndarray:
    """Logits [B, n] from the readout membrane [T, B, n]: max or mean over time."""
    return out.max(axis=0) if readout == "max" else out.mean(axis=0)


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy over the batch and its gradient w.r.t. the logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    ez = np.exp(z)
    p = ez / ez.sum(axis=1, keepdims=True)
    B = logits.shape[0]
    idx = np.arange(B)
    loss = float(-np.mean(np.log(p[idx, labels] + 1e-300)))
    g = p.copy()
    g[idx, labels] -= 1.0
    return loss, g / B


def _readout_grad(out: np.ndarray, g_logits: np.ndarray, readout: str) -> np.ndarray:
    """dL/dU_o[t, b, c] from dL/dz[b, c]."""
    T = out.shape[0]
    g = np.zeros_like(out)
    if readout == "max":
        tmax = out.argmax(axis=0)
        b, c = np.indices(tmax.shape)
        g[tmax, b, c] = g_logits
    else:
        g[:] = g_logits / T
    return g


def _rate_penalty(s: np.ndarray, cfg: TrainConfig) -> tuple[float, float, np.ndarray | None]:
    """Upper/lower rate penalties of one spiking layer and dL/dS [T, B, n] (None if both off)."""
    if cfg.w_upper == 0 and cfg.w_lower == 0:
        return 0.0, 0.0, None
    T, B, n = s.shape
    r = s.mean(axis=0)                                  # [B, n]
    g_r = np.zeros_like(r)
    up = lo = 0.0
    if cfg.w_upper > 0:
        ex = np.maximum(r - cfg.rate_upper, 0.0)
        up = float(cfg.w_upper * np.mean(ex * ex))
        g_r += cfg.w_upper * 2.0 * ex / (B * n)
    if cfg.w_lower > 0:
        de = np.maximum(cfg.rate_lower - r.mean(axis=0), 0.0)      # [n]
        lo = float(cfg.w_lower * np.mean(de * de))
        g_r += -cfg.w_lower * 2.0 * de / (n * B)
    return up, lo, np.broadcast_to(g_r / T, s.shape)


def _lpl_terms(lt: LayerTrace, cfg: TrainConfig, dtype
               ) -> tuple[float, float, np.ndarray | None, np.ndarray | None]:
    """Weighted L_lpl, L_drift of one spiking layer, dL/dS and dL/d(input) (None if off)."""
    if cfg.w_lpl == 0 and cfg.w_drift == 0:
        return 0.0, 0.0, None, None
    s = lt.spikes.astype(np.float64)
    r = filter_rate(cfg.lpl_tau)
    g_s = np.zeros_like(s)
    g_x = None
    lpl = drift = 0.0
    if cfg.w_lpl > 0:
        lpl, g = lpl_aux_loss(s, r, cfg.lpl_lam, cfg.lpl_xi)
        lpl *= cfg.w_lpl
        g_s += cfg.w_lpl * g
    if cfg.w_drift > 0:
        drift, g, gx = device_drift_loss(s, lt.input.astype(np.float64), r, cfg.lpl_lam,
                                         cfg.lpl_xi)
        drift *= cfg.w_drift
        g_s += cfg.w_drift * g
        g_x = (cfg.w_drift * gx).astype(dtype)
    return lpl, drift, g_s.astype(dtype), g_x


def _spiking_backward(layer: Layer, lt: LayerTrace, g_s: np.ndarray, cfg: TrainConfig,
                      need_input_grad: bool, dtype) -> tuple[dict, np.ndarray | None]:
    W, alpha, beta, theta, b, V = _cast(layer, dtype)
    u, s = lt.membrane.astype(dtype, copy=False), lt.spikes.astype(dtype, copy=False)
    T, B, n = u.shape
    subtract = layer.reset == "subtract"
    attach = not cfg.detach_reset
    if attach and not subtract and lt.current is None:
        raise InputError(f"layer '{layer.name}': a zero reset with detach_reset=False needs the "
                         f"measured current in the trace")
    cur = None if lt.current is None else lt.current.astype(dtype, copy=False)
    sg = surrogate(u, theta, cfg.surrogate_scale).astype(dtype, copy=False)
    g_i_all = np.empty((T, B, n), dtype=dtype)
    g_u_next = np.zeros((B, n), dtype=dtype)
    g_i_next = np.zeros((B, n), dtype=dtype)
    for t in range(T - 1, -1, -1):
        gs = g_s[t]
        if t + 1 < T:
            if V is not None:
                gs = gs + g_i_next @ V
            if attach:
                if subtract:
                    gs = gs - theta * g_u_next
                else:
                    gs = gs - (beta * u[t] + cur[t + 1]) * g_u_next
        gu = gs * sg[t]
        if t + 1 < T:
            gu = gu + (beta * g_u_next if subtract else beta * (1.0 - s[t]) * g_u_next)
        gi = gu if (subtract or t == 0) else gu * (1.0 - s[t - 1])
        if t + 1 < T:
            gi = gi + alpha * g_i_next
        g_i_all[t] = gi
        g_u_next, g_i_next = gu, gi
    return _param_grads(layer, lt, g_i_all, need_input_grad, W, dtype, s)


def _readout_backward(layer: Layer, lt: LayerTrace, g_u_ext: np.ndarray,
                      need_input_grad: bool, dtype) -> tuple[dict, np.ndarray | None]:
    W, alpha, beta, *_ = _cast(layer, dtype)
    T, B, n = g_u_ext.shape
    g_i_all = np.empty((T, B, n), dtype=dtype)
    gu = np.zeros((B, n), dtype=dtype)
    gi = np.zeros((B, n), dtype=dtype)
    for t in range(T - 1, -1, -1):
        gu = g_u_ext[t] + beta * gu
        gi = gu + alpha * gi
        g_i_all[t] = gi
    return _param_grads(layer, lt, g_i_all, need_input_grad, W, dtype, None)


def _param_grads(layer: Layer, lt: LayerTrace, g_i: np.ndarray, need_input_grad: bool,
                 W: np.ndarray, dtype, s: np.ndarray | None) -> tuple[dict, np.ndarray | None]:
    T, B, n = g_i.shape
    x = lt.input.astype(dtype, copy=False)
    gi2 = g_i.reshape(T * B, n)
    grads = {"weight": gi2.T @ x.reshape(T * B, -1)}
    if layer.bias is not None:
        grads["bias"] = gi2.sum(axis=0)
    if layer.recurrent is not None:
        grads["recurrent"] = g_i[1:].reshape(-1, n).T @ s[:-1].reshape(-1, n)
    g_x = (gi2 @ W).reshape(T, B, -1) if need_input_grad else None
    return grads, g_x


def backward(net: Network, trace: Trace, target: np.ndarray, cfg: TrainConfig) -> Gradients:
    """Gradients of the loss of :mod:`edgelearn.train.config` w.r.t. W, b, V of every layer.

    ``target`` is either the integer labels [B] (the cross-entropy of the max/mean readout is
    used) or dL/d(output) as a float array [T, B, n_out] (then only the rate penalties are added).
    ``trace`` may come from :func:`forward` or from measurements (:meth:`Trace.from_measurements`).
    """
    dtype = cfg.np_dtype
    if len(trace.layers) != len(net.layers):
        raise InputError(f"trace has {len(trace.layers)} layers, network '{net.name}' has "
                         f"{len(net.layers)}")
    out = trace.output.astype(dtype, copy=False)
    T, B, n_out = out.shape
    tgt = np.asarray(target)
    parts: dict[str, float] = {}
    logits = None
    if tgt.dtype.kind in "iu":
        if tgt.shape != (B,):
            raise InputError(f"labels must have shape ({B},), got {tgt.shape}")
        if tgt.size and (tgt.min() < 0 or tgt.max() >= n_out):
            raise InputError(f"labels must lie in [0, {n_out - 1}], got range "
                             f"[{tgt.min()}, {tgt.max()}]")
        if net.layers[-1].spiking:
            raise ModelError(f"network '{net.name}': label loss needs a non-spiking readout")
        logits = reduce_time(out, cfg.readout)
        parts["ce"], g_logits = cross_entropy(logits.astype(np.float64), tgt.astype(np.int64))
        g_above = _readout_grad(out, g_logits.astype(dtype), cfg.readout)
    else:
        g_above = np.asarray(tgt, dtype=dtype)
        if g_above.shape != out.shape:
            raise InputError(f"output gradient must have shape {out.shape}, got {g_above.shape}")
    grads: dict[str, dict[str, np.ndarray]] = {}
    rates: dict[str, float] = {}
    up_total = lo_total = lpl_total = drift_total = 0.0
    for i in range(len(net.layers) - 1, -1, -1):
        layer, lt = net.layers[i], trace.layers[i]
        need = i > 0
        if layer.spiking:
            up, lo, g_reg = _rate_penalty(lt.spikes.astype(dtype, copy=False), cfg)
            lpl, drift, g_aux, g_aux_in = _lpl_terms(lt, cfg, dtype)
            rates[layer.name] = float(np.mean(lt.spikes))
            up_total += up
            lo_total += lo
            lpl_total += lpl
            drift_total += drift
            g_s = g_above if g_reg is None else g_above + g_reg
            if g_aux is not None:
                g_s = g_s + g_aux
            grads[layer.name], g_above = _spiking_backward(layer, lt, g_s, cfg, need, dtype)
            if need and g_aux_in is not None:
                g_above = g_above + g_aux_in
        else:
            grads[layer.name], g_above = _readout_backward(layer, lt, g_above, need, dtype)
    parts["upper"], parts["lower"] = up_total, lo_total
    if cfg.w_lpl > 0 or cfg.w_drift > 0:
        parts["lpl"], parts["drift"] = lpl_total, drift_total
    loss = sum(parts.values())
    ordered = {layer.name: grads[layer.name] for layer in net.layers}
    rates = {layer.name: rates[layer.name] for layer in net.layers if layer.name in rates}
    return Gradients(ordered, float(loss), parts, logits, rates)


def loss_value(net: Network, x: np.ndarray, labels: np.ndarray, cfg: TrainConfig,
               pseudo_scale: float | None = None) -> float:
    """The scalar loss only (same definition as :func:`backward`), e.g. for finite differences."""
    tr = forward(net, x, cfg.np_dtype, pseudo_scale)
    logits = reduce_time(tr.output, cfg.readout).astype(np.float64)
    loss, _ = cross_entropy(logits, np.asarray(labels, dtype=np.int64))
    for layer, lt in zip(net.layers, tr.layers):
        if layer.spiking:
            up, lo, _ = _rate_penalty(lt.spikes, cfg)
            lpl, drift, _, _ = _lpl_terms(lt, cfg, cfg.np_dtype)
            loss += up + lo + lpl + drift
    return float(loss)
