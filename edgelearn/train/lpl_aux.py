"""LPL auxiliary losses on a spiking layer's filtered rates, with their gradients (L2, numpy).

Both work on the rates the device rule sees (edgelearn.rules.lpl_rate with its deployed
filters): a layer's spikes S [T, B, n] and its input x [T, B, n_in] are low-pass filtered with
rate r = 1 - exp(-1/tau) (tau in steps; the filters start at 0 in every sequence):

    z[t] = z[t-1] + r (S[t] - z[t-1]),    xf[t] = xf[t-1] + r (x[t] - xf[t-1]),   z[-1] = 0

Statistics are over the whole minibatch (all t, b) per neuron i, N = T B:
m_i = mean z_i, v_i = mean (z_i - m_i)^2, d = z - m.

1. LPL objective (Halvagal & Zenke 2023, rate form; ``lpl_aux_loss``):

       L_lpl = mean_{t,b,i} 1/2 (z[t] - z[t-1])^2  -  lam mean_i 1/2 log(v_i + xi)

   Its negative gradient w.r.t. z at one step is the device rule's bracket
   B = -(z[t] - z[t-1]) + lam d / (v + xi) up to the factor 1 / (N n) (and, since z[t-1] is not
   detached here, one more slowness term -(z[t] - z[t+1])).

2. Device-rule drift (``device_drift_loss``): the expected update of the device rule on this
   minibatch (gain f' = 1, per step and unit eta), and its mean square,

       B_i[t]  = -(z_i[t] - z_i[t-1]) + lam d_i[t] / (v_i + xi)
       G_ij    = mean_{t,b} B_i[t] xf_j[t]
       L_drift = mean_{i,j} G_ij^2

   L_drift = 0 means the deployed rule is at a fixed point on the training distribution: it
   moves the weights only where the input statistics differ from training.

Both return the loss and its exact gradient w.r.t. S (and, for the drift, w.r.t. x), which
:func:`edgelearn.train.bptt.backward` adds to the layer's spike gradient.
"""

from __future__ import annotations

import math

import numpy as np


def filter_rate(tau: float) -> float:
    """r = 1 - exp(-1/tau): the per-step rate of the device rule's filters (tau in steps)."""
    return -math.expm1(-1.0 / tau)


def low_pass(s: np.ndarray, r: float) -> np.ndarray:
    """z[t] = (1 - r) z[t-1] + r s[t] along axis 0, z[-1] = 0."""
    z = np.empty_like(s)
    acc = np.zeros_like(s[0])
    for t in range(s.shape[0]):
        acc = (1.0 - r) * acc + r * s[t]
        z[t] = acc
    return z


def low_pass_adjoint(g_z: np.ndarray, r: float) -> np.ndarray:
    """dL/ds from dL/dz for z = low_pass(s, r)."""
    g_s = np.empty_like(g_z)
    acc = np.zeros_like(g_z[0])
    for t in range(g_z.shape[0] - 1, -1, -1):
        acc = g_z[t] + (1.0 - r) * acc
        g_s[t] = r * acc
    return g_s


def _step_diff(z: np.ndarray) -> np.ndarray:
    """z[t] - z[t-1] with z[-1] = 0."""
    dz = z.copy()
    dz[1:] -= z[:-1]
    return dz


def _step_diff_adjoint(g: np.ndarray) -> np.ndarray:
    """dL/dz from dL/d(z[t] - z[t-1])."""
    out = g.copy()
    out[:-1] -= g[1:]
    return out


def lpl_aux_loss(s: np.ndarray, r: float, lam: float, xi: float) -> tuple[float, np.ndarray]:
    """(L_lpl, dL_lpl/dS) of spikes ``s`` [T, B, n] (module docstring, item 1)."""
    z = low_pass(s, r)
    T, B, n = z.shape
    N = T * B
    dz = _step_diff(z)
    m = z.mean(axis=(0, 1))
    d = z - m
    v = np.mean(d * d, axis=(0, 1))
    loss = 0.5 * float(np.mean(dz * dz)) - lam * 0.5 * float(np.mean(np.log(v + xi)))
    g_z = _step_diff_adjoint(dz) / (N * n) - lam * d / (N * n * (v + xi))
    return loss, low_pass_adjoint(g_z, r)


def device_drift(s: np.ndarray, x: np.ndarray, r: float, lam: float, xi: float) -> np.ndarray:
    """G [n, n_in]: the device rule's expected per-step update (unit eta) on this batch."""
    return _drift_parts(s, x, r, lam, xi)[0]


def _drift_parts(s, x, r, lam, xi):
    z = low_pass(s, r)
    xf = low_pass(x, r)
    T, B, n = z.shape
    N = T * B
    m = z.mean(axis=(0, 1))
    d = z - m
    v = np.mean(d * d, axis=(0, 1))
    bracket = -_step_diff(z) + lam * d / (v + xi)
    G = bracket.reshape(N, n).T @ xf.reshape(N, -1) / N
    return G, z, xf, d, v, bracket


def device_drift_loss(s: np.ndarray, x: np.ndarray, r: float, lam: float, xi: float
                      ) -> tuple[float, np.ndarray, np.ndarray]:
    """(L_drift, dL/dS [T, B, n], dL/dx [T, B, n_in]) (module docstring, item 2)."""
    G, z, xf, d, v, bracket = _drift_parts(s, x, r, lam, xi)
    T, B, n = z.shape
    n_in = xf.shape[2]
    N = T * B
    loss = float(np.mean(G * G))
    g_G = 2.0 * G / G.size
    g_b = (xf.reshape(N, n_in) @ g_G.T).reshape(T, B, n) / N          # dL/dB[t]
    g_xf = (bracket.reshape(N, n) @ g_G).reshape(T, B, n_in) / N
    inv = 1.0 / (v + xi)
    # B = -(z[t] - z[t-1]) + lam d inv, d = z - m, v = mean d^2
    g_d = lam * inv * g_b
    g_v = -lam * inv * inv * np.sum(g_b * d, axis=(0, 1))
    g_d = g_d + g_v * 2.0 * d / N
    g_z = -_step_diff_adjoint(g_b) + g_d - g_d.sum(axis=(0, 1)) / N
    return loss, low_pass_adjoint(g_z, r), low_pass_adjoint(g_xf, r)
