"""Fast in-place fixed-point LPL (rate form): bit-exact with :func:`lpl_rate.step_fixed`.

:class:`LPLRateFast` binds once to an int8 weight matrix and an integer LPL state (the arrays
of :func:`edgelearn.rules.lpl_rate.init_fixed`, e.g. living in a device arena), validates
everything at construction, and then runs the same integer step as ``step_fixed`` with

* no per-call validation (the caller promises int [n_in] / [n_out] activities in the int16
  range of Q.act_frac, as ``step_fixed`` would check),
* preallocated int64 / uint32 buffers and in-place numpy ops (``out=``),
* rate / scale codes, weight bounds and PRNG offsets computed once,
* the PRNG words of many steps hashed in one block: the rule consumes one contiguous run of
  the counter-based stream per step (pre filter, post filter, weight words, mean, var), so
  words r_k = hash32(key ^ hash32(counter + k)) are precomputed for a window of counters and
  sliced (recomputed when the window is exhausted or the stream is moved elsewhere),
* the pre and post filters (and the mean and variance averages) computed as one stacked
  vector when they share a rate code (the same per-element arithmetic, one pass).

After each :meth:`LPLRateFast.step` the bound weight matrix and state arrays hold exactly what
``step_fixed`` returns (weights, state, PRNG counter; tests/test_lpl_fast.py runs both over long
random streams, dither and full rounding). The per-step integer arithmetic (module docstring of
:mod:`edgelearn.rules.lpl_rate`) is unchanged; decorrelation (``lam_decorr > 0``) and a gain
f'(a) are not supported here (use ``step_fixed``).
"""

from __future__ import annotations

import numpy as np

from edgelearn.errors import InputError, ParameterError
from edgelearn.fixed import RngState
from edgelearn.rules import base, qmath
from edgelearn.rules.base import FixedStats
from edgelearn.rules.lpl_rate import GAIN_FRAC, INV_FRAC, RULE, Params, State, _codes

PRNG_BLOCK = 1 << 15        # words hashed per refill of the PRNG window


def _hash_block(key: int, counter: int, n: int) -> np.ndarray:
    """Words counter .. counter + n - 1 of the stream (uint32), as qmath.rng_words_at."""
    return qmath.rng_words_at(RngState(key, counter), np.arange(n, dtype=np.uint32))


class _Words:
    """A window of precomputed PRNG words of one stream key."""

    def __init__(self, block: int) -> None:
        self.block = int(block)
        self.key = -1
        self.start = 0
        self.buf = np.zeros(0, np.uint32)

    def get(self, rng: RngState, n: int) -> np.ndarray:
        """Words 0..n-1 from the current counter of ``rng`` (a view; do not modify)."""
        off = (rng.counter - self.start) & 0xFFFFFFFF
        if rng.key != self.key or off + n > self.buf.size:
            self.key, self.start = rng.key, rng.counter
            self.buf = _hash_block(rng.key, rng.counter, max(self.block, n))
            off = 0
        return self.buf[off:off + n]


class _Ema:
    """x += stochastic_shift(fit_shift((target - x) * k, s), r) on int64 vectors, in place."""

    def __init__(self, code: qmath.RateCode) -> None:
        self.k = int(code.k)
        s = int(code.s)
        self.pre = s - qmath.MAX_SHIFT if s > qmath.MAX_SHIFT else 0    # round_shift first
        self.s = min(s, qmath.MAX_SHIFT)
        self.mask = np.uint32((1 << self.s) - 1) if self.s > 0 else None

    def apply(self, x: np.ndarray, target: np.ndarray, r: np.ndarray, t: np.ndarray,
              u: np.ndarray) -> None:
        """x, target, t: int64 [n] (t scratch); r: uint32 words [n]; u: uint32 scratch [n]."""
        np.subtract(target, x, out=t)
        np.multiply(t, self.k, out=t)
        if self.pre:
            t += 1 << (self.pre - 1)
            t >>= self.pre
        if self.s:
            np.bitwise_and(r, self.mask, out=u)
            np.add(t, u, out=t, casting="unsafe")
            t >>= self.s
        x += t


def _clip(x: np.ndarray, lo, hi, out: np.ndarray) -> np.ndarray:
    """min(max(x, lo), hi) into ``out`` (np.clip without its Python-level overhead)."""
    np.maximum(x, lo, out=out)
    return np.minimum(out, hi, out=out)


def _scale_code(value: float, name: str):
    """(k, s) of lpl_rate._scale, or None for value 0 (then the term is zero)."""
    if value == 0:
        return None
    c = qmath.encode_scale(RULE, name, value)
    return int(c.k), int(c.s)


def _apply_scale(v: np.ndarray, code, out: np.ndarray) -> None:
    """out = lpl_rate._scale(v, value) for the code of ``value`` (in place; v may be out)."""
    if code is None:
        out[...] = 0
        return
    k, s = code
    np.multiply(v, k, out=out)
    if s > 0:
        out += 1 << (s - 1)
        out >>= s
    elif s < 0:
        out <<= -s


class LPLRateFast:
    """One LPL-adapted layer bound to its weight matrix and state (updated in place).

    Args:
        params: LPL rate parameters (``lam_decorr`` must be 0).
        weight: int8 [n_out, n_in], writable; updated in place by :meth:`step`.
        state: fixed state (lpl_rate.init_fixed dtypes and shapes), writable; updated in place.
        w_shift: weight LSB exponent of the rule (``w_float = w_int * 2^-w_shift``).
        prng_block: words hashed per refill of the PRNG window.
    """

    def __init__(self, params: Params, weight: np.ndarray, state: State, w_shift: float,
                 prng_block: int = PRNG_BLOCK) -> None:
        if params.lam_decorr > 0:
            raise ParameterError(f"{RULE}: the fast step does not implement decorrelation "
                                 f"(lam_decorr={params.lam_decorr}); use lpl_rate.step_fixed")
        if not isinstance(weight, np.ndarray) or weight.ndim != 2:
            raise InputError(f"{RULE}: weight must be a 2-D int8 array, got "
                             f"{type(weight).__name__} {np.shape(weight)}")
        n_out, n_in = weight.shape
        base.int8_weights(RULE, weight, n_in, n_out)
        if not weight.flags.writeable:
            raise InputError(f"{RULE}: weight buffer must be writable (it is updated in place)")
        base.check_w_shift(RULE, w_shift)
        want = {"z_prev": ((n_out,), np.int16), "mean": ((n_out,), np.int32),
                "var": ((n_out,), np.int32), "count": ((1,), np.int32),
                "pre_trace": ((n_in if params.tau_pre > 0 else 0,), np.int32),
                "post_trace": ((n_out if params.tau_post > 0 else 0,), np.int32),
                "cov": ((0, 0), np.int32)}
        for f, arr in zip(State._fields, state):
            shape, dt = want[f]
            if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype != dt:
                raise InputError(f"{RULE}: state.{f} must be {np.dtype(dt).name} {shape}, got "
                                 f"{getattr(arr, 'dtype', type(arr).__name__)} {np.shape(arr)}")
            if arr.size and not arr.flags.writeable:
                raise InputError(f"{RULE}: state.{f} must be writable (updated in place)")
        self.params, self.w, self.state = params, weight, state
        self.n_in, self.n_out = n_in, n_out
        p = params
        A, E, P = p.act_frac, p.ema_frac, p.factor_frac
        self.A, self.E = A, E
        codes = _codes(p)
        self.filt_pre = codes.pre is not None
        self.filt_post = codes.post is not None
        self.k_pre = n_in if self.filt_pre else 0
        self.k_post = n_out if self.filt_post else 0
        self.o_w = self.k_pre + self.k_post
        self.full = p.rounding == "full"
        self.k_w = n_out * n_in if self.full else n_out + n_in
        self.warmup = int(p.warmup)
        # filters: stacked [pre | post] trace when both are on with the same code
        self.ema_pre = _Ema(codes.pre) if self.filt_pre else None
        self.ema_post = _Ema(codes.post) if self.filt_post else None
        self.stack_filters = (self.filt_pre and self.filt_post and codes.pre == codes.post)
        self.ema_mean, self.ema_var = _Ema(codes.mean), _Ema(codes.var)
        self.stack_stats = codes.mean == codes.var
        i64 = lambda n: np.zeros(n, np.int64)  # noqa: E731
        n_tr = self.k_pre + self.k_post
        self.tr = i64(n_tr)                     # [pre_trace | post_trace] working copy
        self.tr_target = i64(n_tr)
        self.tr_t = i64(n_tr)
        self.tr_u = np.zeros(n_tr, np.uint32)
        self.x = i64(n_in)                      # Q.A input activity (filtered)
        self.z = i64(n_out)                     # Q.A output activity (filtered)
        self.st = i64(2 * n_out)                # [mean | var] working copy
        self.st_target = i64(2 * n_out)
        self.st_t = i64(2 * n_out)
        self.st_u = np.zeros(2 * n_out, np.uint32)
        self.d = i64(n_out)
        self.inv = i64(n_out)
        self.hebb = i64(n_out)
        self.pred = i64(n_out)
        self.pv = i64(n_out)
        self.zprev = i64(n_out)
        self.num = np.zeros((n_out, n_in), np.int64)
        self.raw = np.zeros((n_out, n_in), np.int64)
        self.r2 = np.zeros((n_out, n_in), np.uint32)
        self.w64 = np.zeros((n_out, n_in), np.int64)
        self.lo_arr = self.hi_arr = None
        self.inv_num = np.int64(1) << np.int64(2 * A + E + INV_FRAC)
        self.xi_q = int(p.xi_q)
        self.lam = _scale_code(p.lam, "lam")
        self.predc = _scale_code(p.pred, "pred")
        eta = qmath.encode_scale(RULE, "eta * 2^w_shift", p.eta * 2.0 ** float(w_shift))
        self.eta_k = int(eta.k)
        self.eta_sh = A + E + int(eta.s) - P
        self.w_shift_total = P + A                          # <= 32 (Params checks)
        self.w_mask = np.uint32((1 << self.w_shift_total) - 1)
        self.lo, self.hi = qmath.int_bounds(p.w_min, p.w_max, w_shift)
        self.int8_bounds = self.lo == qmath.INT8_MIN and self.hi == qmath.INT8_MAX
        self.p_lim = (1 << 40)
        self.words = _Words(prng_block)
        self.reload()

    def reload(self) -> None:
        """Read the bound state arrays into the int64 working copies (after an outside write)."""
        s = self.state
        if self.k_pre:
            self.tr[:self.k_pre] = s.pre_trace
        if self.k_post:
            self.tr[self.k_pre:] = s.post_trace
        self.st[:self.n_out] = s.mean
        self.st[self.n_out:] = s.var
        self.zprev[...] = s.z_prev

    # ----------------------------------------------------------------------------------
    def step(self, pre: np.ndarray, post: np.ndarray, rng: RngState, shift: int = 0,
             stats: bool = False) -> tuple[RngState, FixedStats | None, bool]:
        """One LPL step with activities ``pre << shift`` and ``post << shift`` (Q.act_frac).

        ``pre`` int [n_in], ``post`` int [n_out] (e.g. spike counts with shift=act_frac).
        Updates the bound weight and state arrays in place; returns (rng advanced,
        FixedStats of step_fixed if ``stats`` else None, whether the weight rule ran).
        """
        n_in, n_out, A, E = self.n_in, self.n_out, self.A, self.E
        s = self.state
        count = int(s.count[0])
        skipped = count < self.warmup
        k_w = 0 if skipped else self.k_w
        o_mean = self.o_w + k_w
        total = o_mean + 2 * n_out
        r = self.words.get(rng, total)
        kp, ko = self.k_pre, self.k_post
        # -- input / output rate filters: x~ += r (x - x~), activities are x~ >> E (rounded)
        tgt = self.tr_target
        x, z = self.x, self.z
        if kp:
            np.left_shift(pre, shift + E, out=tgt[:kp])
        else:
            np.left_shift(pre, shift, out=x)
        if ko:
            np.left_shift(post, shift + E, out=tgt[kp:])
        else:
            np.left_shift(post, shift, out=z)
        if self.stack_filters:
            self.ema_pre.apply(self.tr, tgt, r[:self.o_w], self.tr_t, self.tr_u)
        else:
            if kp:
                self.ema_pre.apply(self.tr[:kp], tgt[:kp], r[:kp], self.tr_t[:kp],
                                   self.tr_u[:kp])
            if ko:
                self.ema_post.apply(self.tr[kp:], tgt[kp:], r[kp:self.o_w], self.tr_t[kp:],
                                    self.tr_u[kp:])
        if kp or ko:
            t = self.tr_t
            np.add(self.tr, 1 << (E - 1), out=t) if E else np.copyto(t, self.tr)
            if E:
                t >>= E
            if kp:
                x[...] = t[:kp]
            if ko:
                z[...] = t[kp:]
        # -- bracket (lpl_rate.bracket_fixed, gain 1)
        mean, var = self.st[:n_out], self.st[n_out:]
        d, inv, hebb, pred, pv = self.d, self.inv, self.hebb, self.pred, self.pv
        zE = self.st_target[:n_out]                        # z << E (also the mean target)
        np.left_shift(z, E, out=zE)
        np.subtract(zE, mean, out=d)
        np.add(var, self.xi_q, out=inv)
        np.floor_divide(self.inv_num, inv, out=inv)
        np.multiply(d, inv, out=hebb)
        hebb += 1 << (INV_FRAC - 1)
        hebb >>= INV_FRAC
        _apply_scale(hebb, self.lam, hebb)
        np.subtract(z, self.zprev, out=pred)
        pred <<= E
        _apply_scale(pred, self.predc, pred)
        np.subtract(hebb, pred, out=pv)
        pv *= 1 << GAIN_FRAC                               # gain f' = 1 in Q.12
        pv += 1 << (GAIN_FRAC - 1)
        pv >>= GAIN_FRAC
        pv *= self.eta_k
        sh = self.eta_sh
        if sh > 0:
            pv += 1 << (sh - 1)
            pv >>= sh
        elif sh < 0:
            pv <<= -sh
        nsat = 0
        if stats:
            nsat += int(np.count_nonzero((pv < -self.p_lim) | (pv > self.p_lim - 1)))
        _clip(pv, -self.p_lim, self.p_lim - 1, pv)
        changed = clipped = 0
        if not skipped:
            changed, clipped = self._apply(pv, x, r[self.o_w:o_mean], stats)
        # -- statistics: mean += r (z<<E - mean), var += r (round_shift(d^2, E) - var)
        vt = self.st_target[n_out:]
        np.multiply(d, d, out=vt)
        if E:
            vt += 1 << (E - 1)
            vt >>= E
        if self.stack_stats:
            self.ema_mean.apply(self.st, self.st_target, r[o_mean:total], self.st_t, self.st_u)
        else:
            self.ema_mean.apply(mean, zE, r[o_mean:o_mean + n_out], self.st_t[:n_out],
                                self.st_u[:n_out])
            self.ema_var.apply(var, vt, r[o_mean + n_out:total], self.st_t[n_out:],
                               self.st_u[n_out:])
        if stats:
            nsat += int(np.count_nonzero((self.st < -(1 << 31)) | (self.st > (1 << 31) - 1)))
        _clip(self.st, -(1 << 31), (1 << 31) - 1, self.st)
        np.maximum(var, 0, out=var)
        _clip(z, -32768, 32767, self.zprev)
        # -- write the state back (the arena arrays are the state of record)
        np.copyto(s.mean, mean, casting="unsafe")
        np.copyto(s.var, var, casting="unsafe")
        np.copyto(s.z_prev, self.zprev, casting="unsafe")
        if kp:
            np.copyto(s.pre_trace, self.tr[:kp], casting="unsafe")
        if ko:
            np.copyto(s.post_trace, self.tr[kp:], casting="unsafe")
        if count != self.warmup:
            s.count[0] = min(count + 1, self.warmup)
        rng = RngState(rng.key, (rng.counter + total) & 0xFFFFFFFF)
        st = FixedStats(changed, clipped, nsat, int(skipped)) if stats else None
        return rng, st, not skipped

    def _apply(self, pv: np.ndarray, x: np.ndarray, r: np.ndarray, stats: bool
               ) -> tuple[int, int]:
        """w += stochastic_shift(outer(p, x), P + A) within the bounds (qmath.apply_update)."""
        n_out, n_in = self.n_out, self.n_in
        num, r2, w = self.num, self.r2, self.w
        np.multiply(pv[:, None], x[None, :], out=num)
        if self.full:
            np.bitwise_and(r.reshape(n_out, n_in), self.w_mask, out=r2)
        else:
            np.add(r[:n_out, None], r[None, n_out:], out=r2)          # wraps mod 2^32
            np.bitwise_and(r2, self.w_mask, out=r2)
        np.add(num, r2, out=num, casting="unsafe")
        num >>= self.w_shift_total
        raw = self.raw
        np.add(num, w, out=raw, casting="unsafe")                        # w + dw
        if self.int8_bounds:
            _clip(raw, qmath.INT8_MIN, qmath.INT8_MAX, num)                  # new
        else:
            w64 = self.w64
            np.copyto(w64, w, casting="unsafe")
            np.maximum(raw, np.minimum(self.lo, w64), out=num)
            np.minimum(num, np.maximum(self.hi, w64), out=num)
        changed = clipped = 0
        if stats:
            clipped = int(np.count_nonzero(num != raw))
            changed = int(np.count_nonzero(num != w))
        np.copyto(w, num, casting="unsafe")
        return changed, clipped
