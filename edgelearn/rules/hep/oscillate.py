"""Continuous-oscillation mode: beta moves smoothly, the head keeps relaxing, accumulators integrate.

The teaching signal is beta(t) = b cos(theta_t), theta_t = pi/2 + 2 pi t / T (it starts at 0, the
free equilibrium, so there is no jump). Every tick the head takes ``substeps`` damped dynamics
steps z <- z + g (Phi(z; beta(t)) - z) (+ state noise, weight read noise), and after a warm-up of
``warmup`` periods each synapse's single accumulator integrates the local product with a known
phase kernel:

    acc += k(theta_t) * dE/dtheta(s_t),   k(theta) = 2 / (b T P) * sum_{n odd <= H} n sin(n pi/2) cos(n theta)

over P periods, which is (1/b) sum_{n odd <= H} T_n'(0) c_n with c_n the cosine coefficients of
the readout g(theta): the real-hEP estimate with the DFT replaced by a continuous-time projection
truncated at harmonic H. The network lags the drive by its relaxation time tau (steps); the
readout then sees g(theta - delta) with delta = 2 pi tau / (T substeps), which costs a relative
error ~ (n delta)^2 / 2 in harmonic n, so T * substeps should be large against tau * H.
"""

from __future__ import annotations

import numpy as np

from edgelearn.errors import ParameterError
from edgelearn.rules.hep import energy as en
from edgelearn.rules.hep.head import _UNSET, EnergyHead, Gradient
from edgelearn.rules.hep.schemes import cheb_deriv0


def phase_kernel(theta: np.ndarray, harmonics: int) -> np.ndarray:
    """sum_{n odd <= harmonics} n sin(n pi / 2) cos(n theta)."""
    n = np.arange(1, int(harmonics) + 1, 2)
    return (cheb_deriv0(n)[None, :] * np.cos(np.outer(theta, n))).sum(axis=1)


def oscillating_gradient(head: EnergyHead, x, y, amplitude: float = 0.5, period: int = 64,
                         periods: int = 1, harmonics: int = 5, substeps: int = 4,
                         warmup: float = 0.25, noise=_UNSET, weight_read=_UNSET) -> Gradient:
    """Gradient estimate from a continuous cosine oscillation of beta (see module docstring).

    period: ticks per period T; periods: integrated periods P; harmonics: highest odd harmonic
    H read out; substeps: dynamics steps per tick; warmup: periods run before integrating.
    info['relax_steps'] counts every dynamics step (free phase included).
    """
    b = float(amplitude)
    if not (b > 0 and np.isfinite(b)):
        raise ParameterError(f"oscillation amplitude must be > 0, got {amplitude}")
    for name, v in (("period", period), ("periods", periods), ("harmonics", harmonics),
                    ("substeps", substeps)):
        if int(v) < 1:
            raise ParameterError(f"oscillating_gradient {name} must be >= 1, got {v}")
    if period < 2 * harmonics + 2:
        raise ParameterError(f"oscillating_gradient period {period} too short to resolve "
                             f"harmonic {harmonics} (needs >= {2 * harmonics + 2} ticks)")
    x = head._x(x)
    y, onehot = head._y(y, x.shape[0])
    rx = head.relaxer(noise, weight_read)
    free = rx.relax(x, steps=2 * rx.params.noisy_steps if rx.noisy else None)
    z = free.z
    g = rx.params.damping
    accW = [np.zeros_like(W) for W in head.weights]
    accb = [np.zeros_like(bb) for bb in head.biases]
    n_warm = round(float(warmup) * int(period))
    total = n_warm + int(periods) * int(period)
    steps = 0
    scale = 2.0 / (b * period * periods)
    for t in range(total):
        theta = np.pi / 2 + 2.0 * np.pi * t / period
        beta = b * np.cos(theta)
        for _ in range(int(substeps)):
            Ws = [rx.weight_read(W) for W in head.weights] if rx.weight_read else head.weights
            z = z + g * (rx.phi(z, x, beta, onehot, Ws) - z)
            if rx.noise is not None:
                z = rx.noise(z)
            steps += 1
        if t >= n_warm:
            k = scale * phase_kernel(np.array([theta]), harmonics)[0]
            en.energy_param_grad(head.weights, x, rx.rates(z), k, accW, accb)
    return Gradient(accW, accb, {"method": f"oscillating H={harmonics}", "amplitude": b,
                                 "relax_steps": free.iterations + steps,
                                 "free_steps": free.iterations, "converged": free.converged,
                                 "residual": free.residual, "solver": "dynamics"})
