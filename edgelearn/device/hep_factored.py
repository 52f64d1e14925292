"""Real-valued hEP with the fewest accumulators a clamped input allows (docs/protocol.md 8.4).

The estimate is a weighted sum over the visited nudges j of local products (energy.py):

    dL/dW_k ~= (1/b) sum_j w_j (-s_k^(j) s_{k-1}^(j)T),      dL/db_k ~= (1/b) sum_j w_j (-s_k^(j))

For the first layer the presynaptic side is the clamped input x, the same in every phase, so

    dL/dW_1 = (1/b) sum_j w_j (-s_1^(j)) x^T = (dL/db_1) x^T

and the per-synapse accumulator of W_1 is not needed: the bias accumulator of layer 1 (one
number per hidden unit) carries it, and the outer product with x is formed once when the update
is applied. Deeper layers (both sides relax) keep one accumulator per synapse
(``edgelearn.memory.layout.hep_accumulator_count``). The numbers equal
``EnergyHead.hep_gradient`` up to float rounding (tested).
"""

from __future__ import annotations

import numpy as np

from edgelearn.errors import ParameterError
from edgelearn.memory.layout import hep_accumulator_count as accumulator_count  # noqa: F401
from edgelearn.rules.hep import EnergyHead


def factored_hep_update(head: EnergyHead, x: np.ndarray, y: int, lr: float, amplitude: float,
                        nodes, weights) -> dict:
    """One real-hEP SGD step on a single sample, in place (binary64); returns diagnostics.

    ``nodes`` t_j and ``weights`` w_j are the nudge table (nudge b t_j, in visiting order).
    The step is skipped (weights untouched) if a phase did not converge or an accumulator is
    not finite.
    """
    b = float(amplitude)
    if not (b > 0 and np.isfinite(b) and lr > 0):
        raise ParameterError(f"hEP needs amplitude > 0 and lr > 0, got {amplitude}, {lr}")
    x2 = np.asarray(x, dtype=np.float64)[None, :]
    onehot = np.zeros((1, head.n_out))
    onehot[0, int(y)] = 1.0
    rx = head.relaxer()
    res = rx.relax(x2)
    z, converged, steps = res.z, res.converged, res.iterations
    acc_b = [np.zeros(n) for n in head.sizes[1:]]
    acc_w = [np.zeros_like(W) for W in head.weights[1:]]
    for t, w in zip(nodes, weights):
        if t != 0.0:
            res = rx.relax(x2, b * t, onehot, init=z)
            z, converged, steps = res.z, converged and res.converged, steps + res.iterations
        ss = res.s
        c = -w / b
        for k, s in enumerate(ss):
            acc_b[k] += c * s[0]
            if k >= 1:
                acc_w[k - 1] += c * np.outer(s[0], ss[k - 1][0])
    finite = all(np.all(np.isfinite(a)) for a in acc_b + acc_w)
    if converged and finite:
        head.weights[0] -= lr * np.outer(acc_b[0], x2[0])
        for k in range(1, len(head.weights)):
            head.weights[k] -= lr * acc_w[k - 1]
        for k, a in enumerate(acc_b):
            head.biases[k] -= lr * a
    return {"applied": bool(converged and finite), "converged": bool(converged),
            "relax_steps": int(steps)}
