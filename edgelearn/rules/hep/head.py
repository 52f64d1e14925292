"""EnergyHead: the energy-based classifier head trained by real-valued hEP (see energy.py).

    head = EnergyHead((128, 64, 10), seed=0)            # training init, see EnergyHead
    head.loss(x, y)                                     # free relaxation, mean cross-entropy
    g = head.hep_gradient(x, y, amplitude=0.5, nudges=6)  # list shaped like head.weights
    g.biases, g.info                                    # bias gradients, relaxation diagnostics
    head.exact_gradient(x, y); head.ep_gradient(x, y, beta, centered=True)
    head.hep_update(x, y, lr=0.05)                      # one online step (in place)

x is [n_in] or [B, n_in] (clamped features, e.g. spike rates), y an int label or [B] ints.
Losses and gradients are batch means. ``nudges`` is the number of DISTINCT nudge values the
estimator relaxes at (the free phase is extra and always computed); real hEP with ``nudges = D``
oscillates beta = b cos(theta) with M = 2 D - 1 phase samples (schemes.hep_scheme).

All arithmetic is real float64; nothing here creates a complex array.
"""

from __future__ import annotations

import io as _io
from collections.abc import Callable, Sequence

import numpy as np

from edgelearn.atomic import atomic_open
from edgelearn.boundary import read_npz
from edgelearn.errors import InputError, ModelFileError, ParameterError
from edgelearn.rules.hep import energy as en
from edgelearn.rules.hep import schemes as sc
from edgelearn.rules.hep.relax import RelaxationError, Relaxer, RelaxParams, RelaxResult

_UNSET = object()
MAX_LAYERS = 16          # weight layers a head file may declare
MAX_UNITS = 1 << 16      # units per layer a head file may declare


class Gradient(list):
    """Weight gradients (a list shaped like head.weights) with ``.biases`` (list shaped like
    head.biases) and ``.info`` (relaxation diagnostics: method, amplitude, nudges, relax_steps,
    free_steps, converged, residual, solver; the exact gradient has method, relax_steps,
    converged and residual)."""

    def __init__(self, weights, biases, info=None) -> None:
        super().__init__(weights)
        self.biases = list(biases)
        self.info = dict(info or {})

    def flat(self) -> np.ndarray:
        """All weight then bias gradients as one vector (for error norms)."""
        return np.concatenate([np.ravel(a) for a in list(self) + self.biases])


class EnergyHead:
    """Layered energy-based head with symmetric weights, smooth activation, cross-entropy cost.

    sizes: (n_in, n_hidden..., n_out), at least one hidden layer.  activation: 'tanh'|'sigmoid'.
    gain, coupling: the training initialisation, biases 0, input weights W_1 ~ N(0, gain^2 / n_0),
      coupling weights W_k (k >= 2) ~ N(0, coupling^2 / (sqrt(n_{k-1}) + sqrt(n_k))^2) so that
      their largest singular value is about ``coupling`` (< 1: the loop gain between dynamic
      layers is below 1, the free equilibrium is unique and the analyticity radius in beta
      is large; N(0, 1/fan_in) there gives ||W_K|| ~ 1.6 for 32 -> 10, a multistable head).
    max_coupling: after every update (:meth:`apply`) all coupling weights are scaled down
      together if the spectral norm of the coupling matrix A exceeds it (None: never). With
      ||A|| < 1 and rho' <= 1 the energy is strictly convex (Hessian >= (1 - ||A||) I), so the
      free equilibrium is unique and relaxation converges; the nudged energy stays convex for
      |beta| < 2 (1 - ||A||) (the cross-entropy Hessian is <= I/2; a worst-case bound, saturated
      hidden units widen it a lot). Without it, training grows ||W_K|| until the head turns
      multistable and relaxation fails near the folds (measured on SNN features, 64-64-10).
      It also bounds the logit range: after 2 epochs 0.95 gave 89.8 %, 0.8 87.3 %, 0.5 ~72 %.
    seed / rng: explicit randomness for the initialisation (np.random.Generator preferred;
      ``rng`` wins over ``seed``, whose default 0 makes a head made without either reproducible).
    relax: RelaxParams.  noise: state-noise callable z -> z.  weight_read: callable W -> W.
    weights / biases: given parameters ([n_{k+1}, n_k] and [n_{k+1}] per layer, copied as
      float64) instead of the initialisation (biases default to 0 either way).
    """

    def __init__(self, sizes: Sequence[int], *, seed: int = 0,
                 rng: np.random.Generator | None = None, gain: float = 1.0,
                 coupling: float = 0.5, max_coupling: float | None = 0.95,
                 activation: str = "tanh", relax: RelaxParams | None = None,
                 noise: Callable | None = None, weight_read: Callable | None = None,
                 weights: Sequence[np.ndarray] | None = None,
                 biases: Sequence[np.ndarray] | None = None) -> None:
        sizes = tuple(int(n) for n in sizes)
        if len(sizes) < 3 or min(sizes) < 1:
            raise ParameterError(f"EnergyHead sizes must be (n_in, hidden..., n_out) with every "
                                 f"size >= 1 and a hidden layer, got {sizes}")
        if sizes[-1] < 2:
            raise ParameterError(f"EnergyHead needs >= 2 output classes, got {sizes[-1]}")
        if activation not in en.ACTIVATIONS:
            raise ParameterError(f"EnergyHead activation must be one of {en.ACTIVATIONS}, "
                                 f"got {activation!r}")
        if not (gain > 0 and np.isfinite(gain) and coupling > 0 and np.isfinite(coupling)):
            raise ParameterError(f"EnergyHead gain and coupling must be > 0, got {gain}, {coupling}")
        self.sizes, self.activation = sizes, activation
        self.gain, self.coupling = float(gain), float(coupling)
        if max_coupling is not None and not 0 < max_coupling:
            raise ParameterError(f"EnergyHead max_coupling must be > 0 or None, got {max_coupling}")
        self.max_coupling = None if max_coupling is None else float(max_coupling)
        self.relax_params = relax if relax is not None else RelaxParams()
        self.noise, self.weight_read = noise, weight_read
        if weights is None:
            if rng is None:
                rng = np.random.default_rng(seed)
            weights = []
            for k in range(len(sizes) - 1):
                scale = (gain / np.sqrt(sizes[k]) if k == 0 else
                         coupling / (np.sqrt(sizes[k]) + np.sqrt(sizes[k + 1])))
                weights.append(rng.standard_normal((sizes[k + 1], sizes[k])) * scale)
        if biases is None:
            biases = [np.zeros(n) for n in sizes[1:]]
        if len(weights) != len(sizes) - 1 or len(biases) != len(sizes) - 1:
            raise ParameterError(f"EnergyHead sizes {sizes} need {len(sizes) - 1} weight "
                                 f"matrices and bias vectors, got {len(weights)} and "
                                 f"{len(biases)}")
        self.weights = [np.array(W, dtype=np.float64) for W in weights]
        self.biases = [np.array(b, dtype=np.float64) for b in biases]
        for k, (W, b) in enumerate(zip(self.weights, self.biases)):
            if W.shape != (sizes[k + 1], sizes[k]) or b.shape != (sizes[k + 1],):
                raise ParameterError(f"EnergyHead layer {k}: weight {W.shape} / bias {b.shape} "
                                     f"do not match sizes {sizes}")
            if not (np.isfinite(W).all() and np.isfinite(b).all()):
                raise ParameterError(f"EnergyHead layer {k}: non-finite weights or biases")

    # -- basics ------------------------------------------------------------------------------
    @property
    def n_in(self) -> int:
        return self.sizes[0]

    @property
    def n_out(self) -> int:
        return self.sizes[-1]

    @property
    def n_params(self) -> int:
        return sum(W.size + b.size for W, b in zip(self.weights, self.biases))

    def _x(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.n_in:
            raise InputError(f"EnergyHead expects x of shape [{self.n_in}] or [B, {self.n_in}], "
                             f"got {tuple(np.shape(x))}")
        if not np.isfinite(x).all():
            raise InputError("EnergyHead input x contains NaN or Inf")
        return x

    def _y(self, y, B: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.atleast_1d(np.asarray(y))
        if y.shape != (B,) or not np.issubdtype(y.dtype, np.integer):
            raise InputError(f"EnergyHead expects {B} integer labels, got shape {y.shape} "
                             f"dtype {y.dtype}")
        if y.min() < 0 or y.max() >= self.n_out:
            raise InputError(f"EnergyHead label out of range [0, {self.n_out}): "
                             f"{int(y.min())}..{int(y.max())}")
        onehot = np.zeros((B, self.n_out))
        onehot[np.arange(B), y] = 1.0
        return y.astype(np.int64), onehot

    def relaxer(self, noise=_UNSET, weight_read=_UNSET, relax: RelaxParams | None = None) -> Relaxer:
        """A Relaxer bound to the current weights (noise defaults to the head's own)."""
        return Relaxer(self.weights, self.biases, self.sizes, self.activation,
                       relax or self.relax_params,
                       self.noise if noise is _UNSET else noise,
                       self.weight_read if weight_read is _UNSET else weight_read)

    def free_phase(self, x, strict: bool = False, noise=_UNSET, weight_read=_UNSET) -> RelaxResult:
        """Relax with beta = 0 from rest; returns the RelaxResult (check .converged)."""
        return self.relaxer(noise, weight_read).relax(self._x(x), strict=strict)

    def logits(self, x, strict: bool = False) -> np.ndarray:
        """Output-layer state at the free equilibrium, [B, n_out]."""
        return self.free_phase(x, strict=strict).s[-1]

    def predict(self, x) -> np.ndarray | int:
        """argmax of the free-phase logits (an int for a single x of shape [n_in])."""
        single = np.ndim(x) == 1
        pred = self.logits(x).argmax(axis=1)
        return int(pred[0]) if single else pred

    def loss(self, x, y, strict: bool = True) -> float:
        """Mean softmax cross-entropy at the noise-free free equilibrium (Newton, tight tol)."""
        x = self._x(x)
        y, _ = self._y(y, x.shape[0])
        res = self.relaxer(None, None).relax(x, strict=strict, solver="newton")
        return float(en.cross_entropy(res.s[-1], y).mean())

    def accuracy(self, x, y) -> float:
        x = self._x(x)
        y, _ = self._y(y, x.shape[0])
        return float((self.logits(x).argmax(axis=1) == y).mean())

    # -- gradients ---------------------------------------------------------------------------
    def exact_gradient(self, x, y, strict: bool = True) -> Gradient:
        """dL/dtheta by implicit differentiation at the free equilibrium (noise-free, Newton):
        ds/dbeta = -D J^-1 dL/ds, then dL/dW_k = -(ds_k s_{k-1}^T + s_k ds_{k-1}^T), mean over B."""
        x = self._x(x)
        y, onehot = self._y(y, x.shape[0])
        rx = self.relaxer(None, None)
        res = rx.relax(x, strict=strict, solver="newton")
        z, ss = res.z, res.s
        out = rx.slices[-1]
        d = rx._d(z)
        J = en.jacobian(en.coupling_matrix(self.weights, self.sizes), d, None, 0.0, out)
        r = np.zeros_like(z)
        r[:, out] = en.softmax(z[:, out]) - onehot
        v = np.linalg.solve(J, -r[:, :, None])[:, :, 0]
        ds = rx.split(d * v)
        B = x.shape[0]
        gW, gb = [], []
        prev_s, prev_ds = x, np.zeros_like(x)
        for k in range(len(self.weights)):
            gW.append(-(ds[k].T @ prev_s + ss[k].T @ prev_ds) / B)
            gb.append(-ds[k].mean(axis=0))
            prev_s, prev_ds = ss[k], ds[k]
        return Gradient(gW, gb, {"method": "exact", "relax_steps": res.iterations,
                                 "converged": res.converged, "residual": res.residual})

    def estimate(self, x, y, amplitude: float, scheme: sc.NudgeScheme, noise=_UNSET,
                 weight_read=_UNSET, strict: bool = False, harmonics: bool = False) -> Gradient:
        """Generic EP-family estimate (1/b) sum_j w_j dE/dtheta(s*_{b t_j}).

        Phases are visited in the scheme's order, each starting from the previous phase's
        equilibrium (the first from the free equilibrium). One accumulator per parameter.
        harmonics=True also returns the Chebyshev coefficient norms |c_n| in info (this keeps
        one extra accumulator per coefficient; diagnostics only).
        """
        b = float(amplitude)
        if not (b > 0 and np.isfinite(b)):
            raise ParameterError(f"nudge amplitude must be > 0, got {amplitude}")
        x = self._x(x)
        y, onehot = self._y(y, x.shape[0])
        rx = self.relaxer(noise, weight_read)
        free = rx.relax(x, strict=strict,
                        steps=2 * rx.params.noisy_steps if rx.noisy else None)
        accW = [np.zeros_like(W) for W in self.weights]
        accb = [np.zeros_like(bb) for bb in self.biases]
        coef = np.asarray(scheme.coef) if harmonics and scheme.coef else None
        cW = None
        if coef is not None:
            cW = [([np.zeros_like(W) for W in self.weights], [np.zeros_like(bb) for bb in self.biases])
                  for _ in range(coef.shape[0])]
        steps, conv, resid = free.iterations, free.converged, free.residual
        z = free.z
        wabs = np.abs(np.asarray(scheme.weights))
        rp = rx.params
        for j, (t, w) in enumerate(zip(scheme.nodes, scheme.weights)):
            if t == 0.0:
                ss = free.s
            else:
                kw = {}
                if rx.noisy and rp.allocate:
                    a = max(1, round(float(len(wabs) * rp.average * wabs[j] / wabs.sum())))
                    kw = {"average": a, "steps": rp.noisy_steps - rp.average + a}
                res = rx.relax(x, b * t, onehot, init=z, strict=strict, **kw)
                z, ss = res.z, res.s
                steps += res.iterations
                conv &= res.converged
                resid = max(resid, res.residual)
            en.energy_param_grad(self.weights, x, ss, w / b, accW, accb)
            if cW is not None:
                for n in range(coef.shape[0]):
                    en.energy_param_grad(self.weights, x, ss, coef[n, j], cW[n][0], cW[n][1])
        info = {"method": scheme.name, "amplitude": b, "nudges": scheme.distinct,
                "relax_steps": steps, "free_steps": free.iterations, "converged": conv,
                "residual": resid, "solver": "dynamics" if rx.noisy else rx.params.solver}
        if cW is not None:
            info["harmonics"] = np.array([np.sqrt(sum(float(np.sum(a * a)) for a in Wl + bl))
                                          for Wl, bl in cW])
        return Gradient(accW, accb, info)

    def hep_gradient(self, x, y, amplitude: float = 0.5, nudges: int = 6, *,
                     scheme: sc.NudgeScheme | None = None, noise=_UNSET, weight_read=_UNSET,
                     strict: bool = False, harmonics: bool = False) -> Gradient:
        """Real-valued hEP: beta(theta) = amplitude * cos(theta) read out through odd harmonics.

        nudges: number of distinct nudge values (default scheme schemes.hep_scheme: M = 4
        (nudges // 2) phase samples at the Chebyshev-Gauss nodes); pass
        ``scheme=schemes.cosine_scheme(M)`` for a given M, or ``schemes.low_noise_scheme()``
        (least noise gain, more bias).
        """
        return self.estimate(x, y, amplitude, scheme or sc.hep_scheme(nudges), noise,
                             weight_read, strict, harmonics)

    def ep_gradient(self, x, y, beta: float, centered: bool = False, *, noise=_UNSET,
                    weight_read=_UNSET, strict: bool = False) -> Gradient:
        """Classic EP: one-sided (1/beta)(dE(s_beta) - dE(s_0)) or centered
        (1/2beta)(dE(s_beta) - dE(s_-beta)). beta > 0."""
        return self.estimate(x, y, beta, sc.centered_scheme() if centered else sc.one_sided_scheme(),
                             noise, weight_read, strict)

    # -- updates -----------------------------------------------------------------------------
    def apply(self, grad: Gradient, lr: float) -> None:
        """In-place SGD step theta -= lr * grad."""
        for W, g in zip(self.weights, grad):
            W -= lr * g
        for bb, g in zip(self.biases, grad.biases):
            bb -= lr * g
        self.project()

    def coupling_norm(self) -> float:
        """Spectral norm of the symmetric coupling matrix A between dynamic layers."""
        if len(self.weights) == 2:  # one coupling block: ||A|| = ||W_2|| (small Gram matrix)
            W = self.weights[1]
            G = W @ W.T if W.shape[0] <= W.shape[1] else W.T @ W
            return float(np.sqrt(max(np.linalg.eigvalsh(G).max(), 0.0)))
        A = en.coupling_matrix(self.weights, self.sizes)
        return float(np.abs(np.linalg.eigvalsh(A)).max())

    def project(self) -> float:
        """Scale coupling weights so ||A|| <= max_coupling; returns the factor applied (<= 1)."""
        if self.max_coupling is None:
            return 1.0
        n = self.coupling_norm()
        if n <= self.max_coupling:
            return 1.0
        f = self.max_coupling / n
        for W in self.weights[1:]:
            W *= f
        return f

    def hep_update(self, x, y, lr: float, amplitude: float = 0.5, nudges: int = 6,
                   **kw) -> Gradient:
        """One online step: real-hEP gradient on (x, y), applied in place; returns it."""
        if not (lr > 0 and np.isfinite(lr)):
            raise ParameterError(f"hep_update learning rate must be > 0, got {lr}")
        g = self.hep_gradient(x, y, amplitude, nudges, **kw)
        self.apply(g, lr)
        return g

    def choose_amplitude(self, x, y, nudges: int = 6, tol: float = 1e-3, start: float = 2.0,
                         smallest: float = 0.05) -> tuple[float, dict]:
        """Largest amplitude (halving from ``start``) at which the estimate is trustworthy.

        On a calibration batch at amplitude b: (1) every phase converged; (2) the odd Chebyshev
        harmonics decay, |c_top| <= 0.5 |c_top-2| (inside the analyticity radius they fall
        geometrically; past it they do not); (3) the estimate agrees with the one at b/2 within
        ``tol`` (relative). Since the error falls like b^(2P), |g_b - g_b/2| estimates the error
        at b. Returns (amplitude, diagnostics); raises RelaxationError if nothing down to
        ``smallest`` passes. Noise-free relaxations are used (calibrate on the host or before
        the noisy substrate is attached).
        """
        b = float(start)
        diag: dict = {"tried": []}
        while b >= smallest:
            g = self.hep_gradient(x, y, b, nudges, harmonics=True, noise=None, weight_read=None)
            h = g.info["harmonics"]
            odd = np.arange(1, len(h), 2)
            decay = float(h[odd[-1]] / max(h[odd[-2]], 1e-300)) if len(odd) > 1 else 0.0
            half = self.hep_gradient(x, y, b / 2, nudges, noise=None, weight_read=None)
            agree = float(np.linalg.norm(g.flat() - half.flat())
                          / max(np.linalg.norm(half.flat()), 1e-300))
            ok = bool(g.info["converged"] and half.info["converged"] and decay <= 0.5
                      and agree < tol)
            diag["tried"].append({"amplitude": b, "harmonic_decay": decay,
                                  "error_estimate": agree, "converged": g.info["converged"],
                                  "ok": ok})
            if ok:
                diag["amplitude"] = b
                return b, diag
            b /= 2
        diag["amplitude"] = None
        last = diag["tried"][-1] if diag["tried"] else {}
        raise RelaxationError(f"choose_amplitude: no amplitude in [{smallest:g}, {start:g}] passes "
                              f"tol {tol:g} (last tried: {last})")

    # -- memory --------------------------------------------------------------------------------
    def extra_state_bytes(self, batch: int = 1, itemsize: int = 4) -> int:
        """Learning-state bytes beyond the weights: ONE accumulator per weight and bias, plus the
        relaxing state (one pre-activation per unit) and the one-hot target, per sample.
        (Newton's [N, N] Jacobian is a host-side solver detail, not counted.)"""
        return int(itemsize * (self.n_params + batch * (sum(self.sizes[1:]) + self.n_out)))

    def memory_breakdown(self, batch: int = 1, itemsize: int = 4) -> dict:
        return {"weights_bytes": itemsize * self.n_params,
                "accumulator_bytes": itemsize * self.n_params,
                "state_bytes": itemsize * batch * sum(self.sizes[1:]),
                "target_bytes": itemsize * batch * self.n_out,
                "extra_state_bytes": self.extra_state_bytes(batch, itemsize)}

    # -- save / load ---------------------------------------------------------------------------
    def save(self, path) -> None:
        """npz with sizes, activation, gain and W{k}/b{k}; written atomically."""
        arrays = {"sizes": np.array(self.sizes, dtype=np.int64),
                  "activation": np.array(self.activation), "gain": np.array(self.gain),
                  "coupling": np.array(self.coupling),
                  "max_coupling": np.array(np.nan if self.max_coupling is None else self.max_coupling)}
        for k, (W, b) in enumerate(zip(self.weights, self.biases)):
            arrays[f"W{k}"], arrays[f"b{k}"] = W, b
        buf = _io.BytesIO()
        np.savez(buf, **arrays)
        with atomic_open(path) as fh:
            fh.write(buf.getvalue())

    @classmethod
    def load(cls, path, **kw) -> EnergyHead:
        """Read a head written by :meth:`save`. The file is untrusted: array sizes are checked
        before allocation (edgelearn.boundary.read_npz), every field's type and shape is
        checked, and weights must be finite at float32 (the precision a device stores);
        ModelFileError names the problem."""
        what = f"hEP head file {path}"
        f = read_npz(path, what=what, error=ModelFileError)

        def field(key: str, kinds: str, ndim: int | None = 0) -> np.ndarray:
            if key not in f:
                raise ModelFileError(f"{what}: no array '{key}'")
            arr = f[key]
            if arr.dtype.kind not in kinds or (ndim is not None and arr.ndim != ndim):
                raise ModelFileError(f"{what}: '{key}' has dtype {arr.dtype} and shape "
                                     f"{arr.shape}, not what a head file holds")
            return arr

        sizes_arr = field("sizes", "iu", 1)
        if not 3 <= sizes_arr.size <= MAX_LAYERS + 1 or sizes_arr.min() < 1 \
                or sizes_arr.max() > MAX_UNITS:
            raise ModelFileError(f"{what}: sizes {sizes_arr.tolist()[:8]} are not "
                                 f"3..{MAX_LAYERS + 1} layer sizes in 1..{MAX_UNITS}")
        sizes = tuple(int(v) for v in sizes_arr)
        K = len(sizes) - 1
        Ws = [field(f"W{k}", "biuf", 2) for k in range(K)]
        bs = [field(f"b{k}", "biuf", 1) for k in range(K)]
        with np.errstate(over="ignore", invalid="ignore"):
            if any(not np.all(np.isfinite(a.astype(np.float32))) for a in Ws + bs):
                raise ModelFileError(f"{what}: weights or biases are NaN, Inf or beyond float32")
        activation = str(field("activation", "US"))
        gain, coupling = float(field("gain", "biuf")), float(field("coupling", "biuf"))
        mc = float(field("max_coupling", "biuf"))
        kw.setdefault("max_coupling", None if np.isnan(mc) else mc)
        try:
            return cls(sizes, activation=activation, gain=gain, coupling=coupling, weights=Ws,
                       biases=bs, **kw)
        except ParameterError as exc:
            raise ModelFileError(f"{what}: {exc}") from None
