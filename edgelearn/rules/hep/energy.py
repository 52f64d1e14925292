"""Energy of the hEP head and its derivatives (pure numpy, real-valued).

Layers k = 1..K with sizes n_0 (clamped input x = s_0), n_1 .. n_{K-1} (hidden), n_K (output).
Weights ``W_k`` [n_k, n_{k-1}] are used in both directions (symmetric coupling), biases b_k [n_k].
The state of layer k is held as its pre-activation ``z_k``; hidden units fire s_k = rho(z_k)
(rho = tanh or the logistic sigmoid), the output is linear, s_K = z_K = o (the logits).

Energy (Hopfield-like, with the Legendre term G_k' = rho^-1 that makes rho the fixed-point map)

    E(s) = sum_k G_k(s_k) - sum_k s_k . (W_k s_{k-1}) - sum_k b_k . s_k ,   G_K(o) = |o|^2 / 2
    F(s) = E(s) + beta * L(o),          L(o) = logsumexp(o) - o_y   (softmax cross-entropy)

L is bounded below and grows at most linearly, so F stays bounded below for negative beta as
well (a squared-error cost would not). Stationary points of F are fixed points of

    z_k = W_k s_{k-1} + W_{k+1}^T s_{k+1} + b_k            (k < K)
    o   = W_K s_{K-1} + b_K - beta * (softmax(o) - onehot(y))

and dE/dW_k = -s_k s_{k-1}^T, dE/db_k = -s_k: every gradient estimate is a local pre*post
product. Batch is the leading axis of every state array; E's parameter derivative is the
batch mean (the loss of a batch is the mean cross-entropy).

With D = diag(rho'(z)) (1 on the output) and A the symmetric block coupling, the Jacobian of the
residual R(z) = z - Phi(z) is J = I - A D + beta * P, P = diag(p) - p p^T on the output block,
and the energy Hessian in s coordinates is H = J D^-1. The exact gradient at the free
equilibrium (implicit differentiation) is dL/dtheta = d/dbeta dE/dtheta with
ds/dbeta = -H^-1 dL/ds = -D J^-1 dL/ds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ACTIVATIONS = ("tanh", "sigmoid")


def act(name: str, z: np.ndarray) -> np.ndarray:
    """rho(z): tanh, or the logistic sigmoid 1 / (1 + exp(-z))."""
    if name == "tanh":
        return np.tanh(z)
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def act_deriv(name: str, z: np.ndarray) -> np.ndarray:
    """rho'(z), computed from z (never from rho(z), which rounds to +-1 for large |z|)."""
    if name == "tanh":
        c = np.cosh(np.clip(z, -350.0, 350.0))
        return 1.0 / (c * c)
    t = np.tanh(0.5 * z)
    return 0.25 * (1.0 - t * t)


def softmax(o: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    e = np.exp(o - o.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def cross_entropy(o: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-sample softmax cross-entropy logsumexp(o) - o_y, shape [B]."""
    m = o.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(o - m).sum(axis=-1)) + m[:, 0]
    return lse - o[np.arange(o.shape[0]), y]


def rates(activation: str, zs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Firing states s_k: rho(z_k) for hidden layers, the logits themselves for the output."""
    return [act(activation, z) for z in zs[:-1]] + [zs[-1]]


def fixed_point_map(Ws: Sequence[np.ndarray], bs: Sequence[np.ndarray], x: np.ndarray,
                    zs: Sequence[np.ndarray], beta: float, onehot: np.ndarray | None,
                    activation: str) -> list[np.ndarray]:
    """Phi(z): the right-hand sides of the fixed-point equations above (one array per layer)."""
    ss = rates(activation, zs)
    K = len(Ws)
    out = []
    prev = x
    for k in range(K):
        inp = prev @ Ws[k].T + bs[k]
        if k + 1 < K:
            inp = inp + ss[k + 1] @ Ws[k + 1]
        elif beta != 0.0:
            inp = inp - beta * (softmax(zs[k]) - onehot)
        out.append(inp)
        prev = ss[k]
    return out


def energy_param_grad(Ws: Sequence[np.ndarray], x: np.ndarray, ss: Sequence[np.ndarray],
                      weight: float, acc_W: list[np.ndarray], acc_b: list[np.ndarray]) -> None:
    """acc += weight * dE/dtheta(s), batch mean; dE/dW_k = -s_k s_{k-1}^T, dE/db_k = -s_k.

    In place: the accumulators are the only per-synapse memory an estimator needs.
    """
    B = x.shape[0]
    prev = x
    c = -weight / B
    for k in range(len(Ws)):
        acc_W[k] += c * (ss[k].T @ prev)
        acc_b[k] += c * ss[k].sum(axis=0)
        prev = ss[k]


def layout(sizes: Sequence[int]) -> list[slice]:
    """Slices of each state layer (1..K) inside the flat state vector."""
    out, start = [], 0
    for n in sizes[1:]:
        out.append(slice(start, start + n))
        start += n
    return out


def coupling_matrix(Ws: Sequence[np.ndarray], sizes: Sequence[int]) -> np.ndarray:
    """The symmetric block coupling A [N, N] between state layers (N = n_1 + .. + n_K)."""
    sl = layout(sizes)
    N = sl[-1].stop
    A = np.zeros((N, N), dtype=np.float64)
    for k in range(1, len(Ws)):
        A[sl[k], sl[k - 1]] = Ws[k]
        A[sl[k - 1], sl[k]] = Ws[k].T
    return A


def jacobian(A: np.ndarray, d: np.ndarray, p: np.ndarray | None, beta: float,
             out: slice) -> np.ndarray:
    """J = I - A D + beta P for each sample: [B, N, N] from d = rho'(z) [B, N], p [B, n_K]."""
    N = d.shape[1]
    J = -A[None, :, :] * d[:, None, :]
    idx = np.arange(N)
    J[:, idx, idx] += 1.0
    if beta != 0.0 and p is not None:
        P = -p[:, :, None] * p[:, None, :]
        o = np.arange(p.shape[1])
        P[:, o, o] += p
        J[:, out, out] += beta * P
    return J
