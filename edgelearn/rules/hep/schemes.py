"""Nudge schemes: which real nudges beta_j = b t_j to visit and how to weight the readouts.

Every estimator here is a weighted sum of readouts g(t) = dE/dtheta(s*_{b t}) (t in [-1, 1]):

    dL/dtheta  ~=  (1 / b) * sum_j w_j g(t_j)

* one-sided EP:  t = (0, 1),  w = (-1, 1)                          bias O(b)
* centered EP:   t = (1, -1), w = (1/2, -1/2)                      bias O(b^2)
* real hEP (cosine oscillation beta(theta) = b cos(theta), M phase samples theta_m = 2 pi m/M):
  g(theta) is even in theta, g = sum_n c_n cos(n theta) = sum_n c_n T_n(cos theta) (Chebyshev),
  c_n by the DFT of the M samples (c_0 and the Nyquist term c_{M/2} weighted 1/M, others 2/M),
  and  dL/dtheta = (1/b) sum_{n odd} n sin(n pi / 2) c_n = (c_1 - 3 c_3 + 5 c_5 - ...) / b,
  because T_n'(0) = n U_{n-1}(0) = n sin(n pi / 2). Samples m and M - m give the same nudge,
  so M phases visit floor(M/2) + 1 distinct nudges; the t = 0 sample (M divisible by 4) has
  weight 0 and is not visited. The DFT with Nyquist weighting is exactly polynomial interpolation
  at the distinct nodes, so :func:`interpolation_scheme` on those nodes gives the same weights
  (tested); the error falls like rho^-M where rho is the Bernstein-ellipse radius of g's
  analyticity region in t (set by the head's nearest complex-beta singularity over b).

Only the odd part of g matters for the derivative at 0, so what counts is the set of node PAIRS
(+-t): the derivative estimate is Richardson extrapolation of centered-EP quotients
(g(t) - g(-t)) / 2t to t -> 0 in powers of t^2. M = 10 (nodes +-0.309, +-0.809, +-1) and
M = 12 (+-0.5, +-0.866, +-1, plus the weightless 0) both fit an odd quintic, but M = 10's nodes sit
closer to 0, which is why M = 12 was measured worse (the c_7 term aliases into c_5 with weight
5 + 7 = 12 for M = 12 versus 3 + 7 = 10 into c_3 for M = 10). The default for a budget of D
distinct nudges samples the same cosine oscillation at half-step phases (Chebyshev-Gauss
nodes, no weightless node); see :func:`hep_scheme`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgelearn.errors import ParameterError


@dataclass(frozen=True)
class NudgeScheme:
    """nodes t_j (visiting order; nudge = amplitude * t_j), readout weights w_j, and the
    Chebyshev-coefficient matrix coef [deg + 1, J] (c_n = sum_j coef[n, j] g(t_j))."""

    name: str
    nodes: tuple
    weights: tuple
    coef: tuple = ()

    def __post_init__(self) -> None:
        if len(self.nodes) != len(self.weights) or not self.nodes:
            raise ParameterError(f"scheme {self.name!r}: {len(self.nodes)} nodes but "
                                 f"{len(self.weights)} weights")
        if any(abs(t) > 1.0 + 1e-12 for t in self.nodes):
            raise ParameterError(f"scheme {self.name!r}: nodes must lie in [-1, 1]")

    @property
    def distinct(self) -> int:
        """Number of distinct nudge values visited (the 'nudges' budget it uses)."""
        return len(self.nodes)

    @property
    def noise_gain(self) -> float:
        """sqrt(sum w_j^2): std of the estimate per unit readout noise, times 1/b."""
        return float(np.sqrt(np.sum(np.square(self.weights))))


def cheb_deriv0(n: np.ndarray) -> np.ndarray:
    """T_n'(0) = n sin(n pi / 2) (0 for even n)."""
    n = np.asarray(n)
    return n * np.where(n % 2 == 1, np.where(n % 4 == 1, 1.0, -1.0), 0.0)


def dft_phase_weights(M: int) -> np.ndarray:
    """Per-phase weights of the real hEP readout with M samples theta_m = 2 pi m / M:
    w_m = (1/M) sum_{n odd <= M/2} eps_n n sin(n pi/2) cos(n theta_m), eps_n = 1 at the
    Nyquist n = M/2, else 2 (so that dL/dtheta ~= (1/b) sum_m w_m g(theta_m))."""
    theta = 2.0 * np.pi * np.arange(M) / M
    w = np.zeros(M)
    for n in range(1, M // 2 + 1, 2):
        eps = 1.0 if 2 * n == M else 2.0
        w += eps * cheb_deriv0(np.array(n)) * np.cos(n * theta) / M
    return w


def interpolation_scheme(nodes, degree: int | None = None, name: str = "interp") -> NudgeScheme:
    """Chebyshev fit of g on the given nodes (least squares if degree < len(nodes) - 1),
    differentiated at 0."""
    t = np.asarray(nodes, dtype=np.float64)
    deg = len(t) - 1 if degree is None else int(degree)
    if not 0 <= deg <= len(t) - 1:
        raise ParameterError(f"scheme {name!r}: degree {deg} needs at least {deg + 1} nodes, "
                             f"got {len(t)}")
    V = np.cos(np.outer(np.arccos(np.clip(t, -1, 1)), np.arange(deg + 1)))  # T_n(t_j)
    coef = np.linalg.pinv(V)  # [deg+1, J]
    if deg == len(t) - 1:
        w = lagrange_deriv0([float(v) for v in t], name)
    else:
        w = cheb_deriv0(np.arange(deg + 1)) @ coef
    return NudgeScheme(name, tuple(float(v) for v in t), tuple(float(v) for v in w),
                       tuple(tuple(float(v) for v in row) for row in coef))


def lagrange_deriv0(t: list[float], name: str = "interp") -> list[float]:
    """Weights w_j = L_j'(0) of the interpolating polynomial's derivative at 0 on distinct
    nodes t_j, with L_j(x) = prod_{m != j} (x - t_m) / (t_j - t_m):

        w_j = sum_{k != j} 1 / (t_j - t_k) * prod_{m != j, k} (0 - t_m) / (t_j - t_m)

    in plain float64 arithmetic in a fixed order. The weights travel to devices (the hEP nudge
    table of the config blob), so they must not depend on the machine: the same values through
    LAPACK's pseudo-inverse differ in the last bit between CPUs (OpenBLAS picks its kernels
    by CPU)."""
    J = len(t)
    if len(set(t)) != J:
        raise ParameterError(f"scheme {name!r}: interpolation nodes must be distinct")
    w = []
    for j in range(J):
        s = 0.0
        for k in range(J):
            if k == j:
                continue
            p = 1.0 / (t[j] - t[k])
            for m in range(J):
                if m != j and m != k:
                    p *= (0.0 - t[m]) / (t[j] - t[m])
            s += p
        w.append(s)
    return w


def cosine_scheme(M: int, shift: float = 0.0) -> NudgeScheme:
    """Real hEP with M phase samples theta_m = 2 pi (m + shift) / M of beta = b cos(theta),
    visited over the half cycle (nudge from about +b down to about -b) as an oscillation passes
    them; samples with zero weight (t = 0) are dropped. shift = 0: Chebyshev-Lobatto nodes
    (includes +-b); shift = 0.5: Chebyshev-Gauss nodes cos(pi (2m + 1) / M)."""
    if int(M) < 2:
        raise ParameterError(f"cosine scheme needs M >= 2 phase samples, got {M}")
    if shift not in (0.0, 0.5):
        raise ParameterError(f"cosine scheme shift must be 0 or 0.5, got {shift}")
    M = int(M)
    theta = 2.0 * np.pi * (np.arange(M) + shift) / M
    theta = theta[theta <= np.pi + 1e-12]  # the other half cycle repeats these nudges
    t = np.array([math.cos(v) for v in theta])  # libm, not numpy's CPU-dispatched SIMD cos
    s = interpolation_scheme(t, name=f"real-hEP M={M}" + ("" if shift == 0 else " (shifted)"))
    wmax = max(map(abs, s.weights))
    keep = [j for j in range(len(t)) if abs(s.weights[j]) > 1e-12 * wmax]
    coef = np.asarray(s.coef)[:, keep] if len(keep) < len(t) else np.asarray(s.coef)
    if len(keep) < len(t):  # refit without the weightless node (same odd part)
        s = interpolation_scheme(t[keep], name=s.name)
        coef = np.asarray(s.coef)
    return NudgeScheme(s.name, s.nodes, s.weights, tuple(tuple(float(v) for v in r) for r in coef))


def one_sided_scheme() -> NudgeScheme:
    return NudgeScheme("one-sided EP", (0.0, 1.0), (-1.0, 1.0))


def centered_scheme() -> NudgeScheme:
    return NudgeScheme("centered EP", (1.0, -1.0), (0.5, -0.5))


def low_noise_scheme() -> NudgeScheme:
    """The real scheme exact to third order with the least noise: nodes +-1, +-1/2 (the
    extrema of T_3), visited 1, 1/2, -1/2, -1. With the averaging time split by |w_j| the noise
    std is ~ sum|w_j| / b, and sum w (3t - 4t^3) = 3 with |T_3| <= 1 forces sum|w| >= 3; these
    nodes attain 3 (weights +-4/3 at +-1/2, -+1/6 at +-1; the default 4-nudge scheme has 3.38).
    Its bias is larger than the Chebyshev-Gauss scheme's (fourth order, coefficient ~ the
    product of the nodes); in online training under state noise it measured no better than the
    default (docs/hep.md)."""
    return interpolation_scheme([1.0, 0.5, -0.5, -1.0], degree=3, name="low-noise")


def hep_scheme(nudges: int) -> NudgeScheme:
    """Default real-hEP scheme for a budget of ``nudges`` distinct nudge values (>= 2).

    Only +-pairs of nudges inform the derivative, so the scheme uses P = nudges // 2 pairs: the
    cosine oscillation sampled at M = 4P half-step phases theta_m = 2 pi (m + 1/2) / M, whose
    2P distinct nudges are the Chebyshev-Gauss nodes b cos(pi (2m + 1) / (4P)) (no node at 0).
    Measured on 16-32-10 heads this is ~2x more accurate than M = 10 (Lobatto nodes +-0.309,
    +-0.809, +-1): the extrapolation error scales like the product of the positive nodes.
    An odd budget leaves one nudge unused (a node at 0 or an unpaired node does not lower the
    error of the odd part; measured: M = 13 with 7 nodes is ~3x worse than these 6)."""
    D = int(nudges)
    if D < 2:
        raise ParameterError(f"real hEP needs nudges >= 2 distinct values, got {nudges}")
    P = D // 2
    return cosine_scheme(4 * P, shift=0.5)
