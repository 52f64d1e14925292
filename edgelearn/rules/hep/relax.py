"""Relaxation of the hEP head to an equilibrium of F = E + beta L (free phase: beta = 0).

Two solvers, both vectorised over the batch and both with an iteration cap:

* ``newton``: from rest, the damped dynamics below until max|R| < ``newton_switch`` (so the
  equilibrium found is the stable one the physical system reaches), then Newton's method on
  R(z) = z - Phi(z) with J = I - A D + beta P (see energy.py) with per-sample backtracking (a
  sample whose step fails 4 halvings takes 10 dynamics steps instead). Warm starts go straight
  to Newton. Converges quadratically; used for exact gradients and noise-free estimates.
* ``dynamics``: the physical damped fixed-point dynamics z <- (1 - g) z + g Phi(z) (+ state
  noise), g = ``damping``. Noise-free it stops when max |Phi(z) - z| < tol; with state noise or
  weight read noise it runs a fixed schedule (``noisy_steps``) and the readout is the mean of
  the rates over the last ``average`` steps (a low-pass filtered readout).

Non-convergence is never silent: :class:`RelaxResult` carries ``converged`` and the residual,
and ``strict=True`` raises :class:`RelaxationError` naming the residual and the cap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from edgelearn.errors import EdgelearnError, ParameterError
from edgelearn.rules.hep import energy as en

SOLVERS = ("newton", "dynamics")


class RelaxationError(EdgelearnError):
    """A relaxation did not reach its tolerance within its iteration cap (strict mode)."""


@dataclass(frozen=True)
class RelaxParams:
    """How the head settles.

    solver: 'newton' or 'dynamics' (noise always uses 'dynamics').
    tol: convergence test, max |Phi(z) - z| over units and batch (units of pre-activation).
    max_iter: Newton iteration cap.  newton_switch: from rest, Newton starts once the dynamics
    brought max |Phi(z) - z| below this (globalisation).  damping: g of the dynamics, in (0, 1].
    max_steps: dynamics step cap when noise-free.  noisy_steps: fixed dynamics schedule per
    phase under noise (the first, free phase runs 2x that).  average: readout averaged over the
    last ``average`` steps of a noisy phase (1 = last state). allocate: under noise, estimators
    split their total averaging time (phases x ``average``) across phases in proportion to the
    readout weights |w_j| (for fixed total time this minimises the estimate's variance,
    (sum |w_j|)^2 instead of J sum w_j^2; each phase keeps noisy_steps - average settling steps).
    """

    solver: str = "newton"
    tol: float = 1e-10
    max_iter: int = 60
    newton_switch: float = 0.05
    damping: float = 0.5
    max_steps: int = 5000
    noisy_steps: int = 60
    average: int = 20
    allocate: bool = True

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise ParameterError(f"RelaxParams.solver must be one of {SOLVERS}, got {self.solver!r}")
        if not (self.tol > 0 and np.isfinite(self.tol)):
            raise ParameterError(f"RelaxParams.tol must be > 0, got {self.tol}")
        if not 0.0 < self.damping <= 1.0:
            raise ParameterError(f"RelaxParams.damping must be in (0, 1], got {self.damping}")
        for name in ("max_iter", "max_steps", "noisy_steps", "average"):
            if int(getattr(self, name)) < 1:
                raise ParameterError(f"RelaxParams.{name} must be >= 1, got {getattr(self, name)}")
        if self.average > self.noisy_steps:
            raise ParameterError(f"RelaxParams.average ({self.average}) exceeds noisy_steps "
                                 f"({self.noisy_steps})")


class RelaxResult(NamedTuple):
    """z: flat equilibrium pre-activations [B, N]; s: rates used for the readout (list per layer);
    iterations: solver iterations (Newton) or dynamics steps; converged: all samples within tol;
    residual: max |Phi(z) - z| at the end; unconverged: number of samples not within tol."""

    z: np.ndarray
    s: list
    iterations: int
    converged: bool
    residual: float
    unconverged: int


class Relaxer:
    """Relaxation for one fixed set of weights (builds the coupling matrix once)."""

    def __init__(self, Ws: Sequence[np.ndarray], bs: Sequence[np.ndarray], sizes: Sequence[int],
                 activation: str, params: RelaxParams,
                 noise: Callable[[np.ndarray], np.ndarray] | None = None,
                 weight_read: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        self.Ws, self.bs, self.sizes = list(Ws), list(bs), tuple(sizes)
        self.activation, self.params = activation, params
        self.noise, self.weight_read = noise, weight_read
        self.slices = en.layout(self.sizes)
        self.N = self.slices[-1].stop
        self._A: np.ndarray | None = None

    @property
    def noisy(self) -> bool:
        return self.noise is not None or self.weight_read is not None

    def split(self, z: np.ndarray) -> list[np.ndarray]:
        return [z[:, s] for s in self.slices]

    def rates(self, z: np.ndarray) -> list[np.ndarray]:
        return en.rates(self.activation, self.split(z))

    def phi(self, z: np.ndarray, x: np.ndarray, beta: float, onehot, Ws=None) -> np.ndarray:
        Ws = self.Ws if Ws is None else Ws
        return np.concatenate(en.fixed_point_map(Ws, self.bs, x, self.split(z), beta, onehot,
                                                 self.activation), axis=1)

    def relax(self, x: np.ndarray, beta: float = 0.0, onehot: np.ndarray | None = None,
              init: np.ndarray | None = None, strict: bool = False, steps: int | None = None,
              solver: str | None = None, average: int | None = None) -> RelaxResult:
        """Settle from ``init`` (zeros if None) at nudge ``beta``; see the module docstring."""
        z = np.zeros((x.shape[0], self.N)) if init is None else np.array(init, dtype=np.float64)
        solver = solver or self.params.solver
        if self.noisy:
            res = self._noisy(x, beta, onehot, z, steps or self.params.noisy_steps,
                              average or self.params.average)
        elif solver == "newton":
            res = self._newton(x, beta, onehot, z, init is None)
        else:
            res = self._dynamics(x, beta, onehot, z, steps)
        if strict and not res.converged:
            raise RelaxationError(
                f"hEP head relaxation at beta={beta:g} did not converge: residual "
                f"{res.residual:.3g} > tol {self.params.tol:g} after {res.iterations} "
                f"{'Newton iterations' if solver == 'newton' and not self.noisy else 'steps'} "
                f"({res.unconverged} of {x.shape[0]} samples)")
        return res

    # -- solvers -------------------------------------------------------------------------
    def _d(self, z: np.ndarray) -> np.ndarray:
        d = np.ones_like(z)
        h = self.slices[-1].start
        d[:, :h] = en.act_deriv(self.activation, z[:, :h])
        return d

    def _newton(self, x, beta, onehot, z, cold: bool) -> RelaxResult:
        p = self.params
        g = p.damping
        if self._A is None:
            self._A = en.coupling_matrix(self.Ws, self.sizes)
        out = self.slices[-1]
        R = z - self.phi(z, x, beta, onehot)
        rn = np.abs(R).max(axis=1)
        it = 0
        if cold:
            # globalisation: follow the physical dynamics (which descends the energy towards a
            # stable equilibrium) until Newton's basin is reached, then switch
            while it < p.max_steps and rn.max() > p.newton_switch:
                z = z - g * R
                R = z - self.phi(z, x, beta, onehot)
                rn = np.abs(R).max(axis=1)
                it += 1
        newton = 0
        while newton < p.max_iter and not (rn < p.tol).all():
            newton += 1
            pr = en.softmax(z[:, out]) if beta != 0.0 else None
            J = en.jacobian(self._A, self._d(z), pr, beta, out)
            try:
                delta = np.linalg.solve(J, -R[:, :, None])[:, :, 0]
            except np.linalg.LinAlgError:
                delta = -g * R  # singular Jacobian: a dynamics step instead
            alpha = np.ones(z.shape[0])
            todo = np.ones(z.shape[0], dtype=bool)
            zt, Rt, rt = z.copy(), R.copy(), rn.copy()
            for _ in range(4):
                zc = z[todo] + alpha[todo, None] * delta[todo]
                Rc = zc - self.phi(zc, x[todo], beta, None if onehot is None else onehot[todo])
                rc = np.abs(Rc).max(axis=1)
                ok = (rc < rn[todo]) | (rc < p.tol)
                idx = np.flatnonzero(todo)[ok]
                zt[idx], Rt[idx], rt[idx] = zc[ok], Rc[ok], rc[ok]
                todo[idx] = False
                if not todo.any():
                    break
                alpha[todo] *= 0.5
            if todo.any():  # Newton made no progress there: a few dynamics steps instead
                idx = np.flatnonzero(todo)
                zc = z[idx]
                xo, oo = x[idx], None if onehot is None else onehot[idx]
                for _ in range(10):
                    zc = zc + g * (self.phi(zc, xo, beta, oo) - zc)
                Rc = zc - self.phi(zc, xo, beta, oo)
                zt[idx], Rt[idx], rt[idx] = zc, Rc, np.abs(Rc).max(axis=1)
                it += 10
            z, R, rn = zt, Rt, rt
        conv = rn < p.tol
        return RelaxResult(z, self.rates(z), it + newton, bool(conv.all()), float(rn.max()),
                           int((~conv).sum()))

    def _dynamics(self, x, beta, onehot, z, steps) -> RelaxResult:
        p = self.params
        g = p.damping
        cap = p.max_steps if steps is None else steps
        rn = np.inf
        it = 0
        while it < cap:
            ph = self.phi(z, x, beta, onehot)
            r = np.abs(ph - z).max(axis=1)
            rn = r
            if (r < p.tol).all():
                break
            z = z + g * (ph - z)
            it += 1
        rn = np.abs(self.phi(z, x, beta, onehot) - z).max(axis=1)
        conv = rn < p.tol
        return RelaxResult(z, self.rates(z), it, bool(conv.all()), float(rn.max()),
                           int((~conv).sum()))

    def _noisy(self, x, beta, onehot, z, steps, avg) -> RelaxResult:
        p = self.params
        g = p.damping
        avg = min(avg, steps)
        acc = None
        kick = 0.0
        for t in range(steps):
            Ws = [self.weight_read(W) for W in self.Ws] if self.weight_read else self.Ws
            z = z + g * (self.phi(z, x, beta, onehot, Ws) - z)
            if self.noise is not None:
                zn = self.noise(z)
                kick = max(kick, float(np.sqrt(np.mean((zn - z) ** 2))))
                z = zn
            if t >= steps - avg:
                s = self.rates(z)
                acc = s if acc is None else [a + b for a, b in zip(acc, s)]
        s = [a / avg for a in acc]
        rn = np.abs(self.phi(z, x, beta, onehot) - z).max(axis=1)
        # under noise the residual cannot fall below the noise floor; "converged" means the
        # fixed schedule ran and the noise-free residual is within 0.1 + 5x the rms noise kick.
        conv = rn < 0.1 + 5.0 * kick
        return RelaxResult(z, s, steps, bool(conv.all()), float(rn.max()), int((~conv).sum()))
