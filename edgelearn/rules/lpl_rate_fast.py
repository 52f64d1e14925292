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
from edgelearn.rules import base, lpl_codes, qmath
from edgelearn.rules.base import FixedStats
from edgelearn.rules.lpl_rate import GAIN_FRAC, INV_FRAC, RULE, Params, State, codes_for

PRNG_BLOCK = 1 << 15        # words hashed per refill of the PRNG window
SMALL_CANDIDATES = 12       # expected candidate synapses below which the window search is used
I64 = np.int64


class _Words:
    """Precomputed PRNG words for a run of steps with the same word layout, already masked.

    A step with ``total`` words uses words counter .. counter + total - 1; a block holds the
    words of ``m`` consecutive steps ([m, total]) and, per segment, ``word & mask`` as int64
    (the masks of the stochastic shifts that consume them), so a step only slices rows.
    """

    def __init__(self, masks: np.ndarray, block: int) -> None:
        self.masks = masks.astype(np.uint32)          # [total]
        self.total = int(masks.size)
        self.m = max(1, int(block) // max(self.total, 1))
        self.key = -1
        self.start = 0
        self.rows = np.zeros((0, self.total), np.int64)
        self.i = 0             # row of the last step
        self.gen = 0           # number of refills (derived per-block tables key on it)

    def row(self, rng: RngState) -> np.ndarray:
        off = (rng.counter - self.start) & 0xFFFFFFFF
        i, rem = divmod(off, self.total) if self.total else (0, 0)
        if rng.key != self.key or rem or i >= self.rows.shape[0]:
            self.key, self.start, i = rng.key, rng.counter, 0
            n = self.m * self.total
            w = qmath.rng_words_at(rng, np.arange(n, dtype=np.uint32)).reshape(self.m,
                                                                              self.total)
            np.bitwise_and(w, self.masks, out=w)
            self.rows = w.astype(np.int64)
            self.gen += 1
        self.i = i
        return self.rows[i]


class _Ema:
    """x += stochastic_shift(fit_shift((target - x) * k, s), r) on int64 vectors, in place,
    elementwise with per-element codes (so several averages with different rates run as one
    stacked vector), ``r`` already masked to the low s bits (int64)."""

    def __init__(self, segments: list[tuple[qmath.RateCode, int]]) -> None:
        k, s, pre = [], [], []
        for code, n in segments:
            sc = int(code.s)
            k.append(np.full(n, code.k, np.int64))
            s.append(np.full(n, min(sc, qmath.MAX_SHIFT), np.int64))
            pre.append(np.full(n, max(sc - qmath.MAX_SHIFT, 0), np.int64))
        cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0, np.int64)  # noqa
        self.k, self.s, self.pre = cat(k), cat(s), cat(pre)
        self.has_pre = bool(np.any(self.pre))
        self.pre_half = np.where(self.pre > 0, np.left_shift(1, np.maximum(self.pre - 1, 0)),
                                 0).astype(np.int64)
        self.mask = (np.left_shift(np.ones_like(self.s), self.s) - 1).astype(np.int64)

    def apply(self, x: np.ndarray, target: np.ndarray, rm: np.ndarray, t: np.ndarray) -> None:
        np.subtract(target, x, t)
        np.multiply(t, self.k, t)
        if self.has_pre:                       # fit_shift: round_shift by s - 32 first
            np.add(t, self.pre_half, t)
            np.right_shift(t, self.pre, t)
        np.add(t, rm, t)
        np.right_shift(t, self.s, t)
        np.add(x, t, x)


def _kcode(code):
    """(k, s) of a scale code, or None when the term is off."""
    return None if code is None else (int(code.k), int(code.s))


def _apply_scale(v: np.ndarray, code) -> None:
    """v = lpl_rate._scale(v, value) in place, for the code of ``value``."""
    if code is None:
        v[...] = 0
        return
    k, s = code
    np.multiply(v, I64(k), out=v)
    if s > 0:
        np.add(v, I64(1 << (s - 1)), out=v)
        np.right_shift(v, s, out=v)
    elif s < 0:
        np.left_shift(v, -s, out=v)


def _is_identity(code, bound_bits: int) -> bool:
    """Whether _scale(v, .) == v exactly for every |v| <= 2^bound_bits (k = 2^s, no overflow)."""
    if code is None:
        return False
    k, s = code
    return s >= 0 and k == 1 << s and bound_bits + s <= 62


class LPLRateFast:
    """One LPL-adapted layer bound to its weight matrix and state (updated in place).

    Args:
        codes: the layer's integer constants (edgelearn.rules.lpl_codes.Codes; no covariance
            state), or lpl_rate.Params together with ``w_shift``.
        weight: int8 [n_out, n_in], writable; updated in place by :meth:`step`.
        state: fixed state (lpl_codes.init_state dtypes and shapes), writable.
        w_shift: with Params only: weight LSB exponent (``w_float = w_int * 2^-w_shift``).
        prng_block: words hashed per refill of the PRNG window.
        write_back: write the state arrays after every step (True), or only in :meth:`flush`
            (the working copies are int64; a caller that reads the state between steps must
            keep True or call flush first). The weight matrix is written every step.

    The caller promises what ``lpl_rate.step_codes`` checks: activities in the int16 range (Q.A) and
    bound arrays that nobody else writes (after an outside write call :meth:`reload`).
    """

    def __init__(self, codes: lpl_codes.Codes | Params, weight: np.ndarray, state: State,
                 w_shift: float | None = None, prng_block: int = PRNG_BLOCK,
                 write_back: bool = True) -> None:
        if not isinstance(weight, np.ndarray) or weight.ndim != 2:
            raise InputError(f"{RULE}: weight must be a 2-D int8 array, got "
                             f"{type(weight).__name__} {np.shape(weight)}")
        n_out, n_in = weight.shape
        if isinstance(codes, Params):
            if w_shift is None:
                raise InputError(f"{RULE}: LPLRateFast from Params needs the layer's w_shift")
            codes = codes_for(codes, float(w_shift), n_out)
        c = codes
        if c.decorr:
            raise ParameterError(f"{RULE}: the fast step does not implement decorrelation "
                                 f"(covariance state); use lpl_rate.step_codes")
        base.int8_weights(RULE, weight, n_in, n_out)
        if not weight.flags.writeable:
            raise InputError(f"{RULE}: weight buffer must be writable (it is updated in place)")
        want = {name: (shape, dt) for name, shape, dt in
                lpl_codes.code_state_shapes(c, n_in, n_out)}
        for f, arr in zip(State._fields, state):
            shape, dt = want[f]
            if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype != dt:
                raise InputError(f"{RULE}: state.{f} must be {np.dtype(dt).name} {shape}, got "
                                 f"{getattr(arr, 'dtype', type(arr).__name__)} {np.shape(arr)}")
            if arr.size and not arr.flags.writeable:
                raise InputError(f"{RULE}: state.{f} must be writable (updated in place)")
        self.codes, self.w, self.state = c, weight, state
        self.n_in, self.n_out = n_in, n_out
        self.write_back = bool(write_back)
        A, E, P = c.act_frac, c.ema_frac, c.factor_frac
        self.A, self.E = A, E
        kp = n_in if c.pre is not None else 0
        ko = n_out if c.post is not None else 0
        self.k_pre, self.k_post, self.o_w = kp, ko, kp + ko
        self.full = not c.dither
        self.k_w = n_out * n_in if self.full else n_out + n_in
        self.warmup = int(c.warmup)
        segs = ([(c.pre, kp)] if kp else []) + ([(c.post, ko)] if ko else [])
        self.ema_filt = _Ema(segs)                          # [pre_trace | post_trace]
        self.ema_stat = _Ema([(c.mean, n_out), (c.var, n_out)])    # [mean | var]
        # PRNG word layouts (warm-up: no weight words) with the mask of each word's shift
        self.w_shift_total = P + A                          # <= 32 (check_codes)
        m_w = np.full(self.k_w, (1 << self.w_shift_total) - 1, np.int64)
        self.words_warm = _Words(np.concatenate([self.ema_filt.mask, self.ema_stat.mask]),
                                 prng_block)
        self.words_run = _Words(np.concatenate([self.ema_filt.mask, m_w, self.ema_stat.mask]),
                                prng_block)
        # working state (int64): [pre_trace | post_trace], [mean | var], z_prev, weights
        z = lambda *shape: np.zeros(shape, np.int64)  # noqa: E731
        self.tr, self.tr_t, self.tr_tgt, self.xz = z(kp + ko), z(kp + ko), z(kp + ko), z(kp + ko)
        self.x = self.xz[:kp] if kp else z(n_in)            # Q.A activities
        self.z = self.xz[kp:] if ko else z(n_out)
        self.st, self.st_t, self.st_tgt = z(2 * n_out), z(2 * n_out), z(2 * n_out)
        self.d, self.inv, self.hebb, self.pred, self.pv = (z(n_out) for _ in range(5))
        self.zprev = z(n_out)
        self.w64, self.num, self.u = z(n_out, n_in), z(n_out, n_in), z(n_out, n_in)
        self.raw = z(n_out, n_in)
        self.lo, self.hi = c.w_lo, c.w_hi
        self.lo_m = np.full((n_out, n_in), self.lo, np.int64)
        self.hi_m = np.full((n_out, n_in), self.hi, np.int64)
        self.int8_bounds = self.lo == qmath.INT8_MIN and self.hi == qmath.INT8_MAX
        self.w_mask_m = np.full((n_out, n_in), (1 << self.w_shift_total) - 1, np.int64)
        self.w_sh_m = np.full((n_out, n_in), self.w_shift_total, np.int64)
        # constants as arrays of the operand's length (numpy is ~2x faster on array operands
        # than on scalars for vectors this short)
        c = lambda v, n=n_out: np.full(n, v, np.int64)  # noqa: E731
        n_tr = kp + ko
        self.c_half_e_tr, self.c_e_tr = c(1 << (E - 1) if E else 0, n_tr), c(E, n_tr)
        self.c_e = c(E)
        self.c_half_e, self.c_xi = c(1 << (E - 1) if E else 0), c(codes.xi_q)
        self.c_inv_num = c(1 << (2 * A + E + INV_FRAC))
        self.c_half_inv, self.c_inv_frac = c(1 << (INV_FRAC - 1)), c(INV_FRAC)
        self.lam = _kcode(codes.lam)
        self.predc = _kcode(codes.pred)
        # |hebb| <= 2^43 (an int64 shifted right by 20); |(z - z_prev) << E| <= 2^(17 + E)
        self.homeo = bool(codes.hom)
        self.stores_target = bool(codes.own_target)
        self.hom = _kcode(codes.lam_hom)
        self.target = z(n_out)                               # rho in Q.(A+E)
        if self.homeo and not self.stores_target:
            self.target[...] = codes.rate_target_q
        self.c_hom = z(n_out)
        self.lam_id = _is_identity(self.lam, 43)
        self.pred_id = _is_identity(self.predc, 17 + E)
        pred_bits = 17 + E + (0 if self.predc is None else
                              max(0, self.predc[0].bit_length() - self.predc[1]))
        hom_bits = 43 + (0 if self.hom is None else
                         max(0, self.hom[0].bit_length() - self.hom[1]))
        self.gain_id = max(43, pred_bits, hom_bits) + 2 + GAIN_FRAC <= 62   # b*4096 no wrap
        self.c_gain_one, self.c_gain_half = c(1 << GAIN_FRAC), c(1 << (GAIN_FRAC - 1))
        self.c_gain_frac = c(GAIN_FRAC)
        eta = codes.eta
        self.eta_sh = A + E + int(eta.s) - P
        self.c_eta_k = c(eta.k)
        self.c_eta_half = c(1 << (self.eta_sh - 1) if self.eta_sh > 0 else 0)
        self.c_eta_sh = c(abs(self.eta_sh))
        self.c_p_lo, self.c_p_hi = c(-(1 << 40)), c((1 << 40) - 1)
        self.c_s_lo, self.c_s_hi = c(-(1 << 31), 2 * n_out), c((1 << 31) - 1, 2 * n_out)
        self.c_zero, self.c_z_lo, self.c_z_hi = c(0), c(-32768), c(32767)
        self._in_shift: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.win = (z(2 * n_in), z(2 * n_out), z(n_out))               # window search
        self.two_s = I64(1 << self.w_shift_total)
        self._sorted_gen = -1
        self.absp = z(n_out)
        self._hot = self._hot_tuple()
        self.s_mask = I64((1 << self.w_shift_total) - 1)
        self._p_bound = self._spike_p_bound()
        self.reload()

    def _spike_p_bound(self) -> int | None:
        """Bound on |p| when post activities are spikes (0/1 << act_frac) and the state is in
        range (see :meth:`_check_ranges`), or None when the clip-free path does not apply."""
        cd, A, E = self.codes, self.A, self.E
        rates = (cd.mean, cd.var, cd.pre, cd.post)
        if 2 * A + E > 30 or any(c is not None and c.s > qmath.MAX_SHIFT for c in rates):
            return None
        M = 1 << (A + E)                                     # |d|, mean, zE, rho <= M
        inv_max = int(self.c_inv_num[0]) // int(cd.xi_q)
        if 2 * M * inv_max >= 1 << 62:
            return None

        def scaled(v: int, code) -> int:                     # bound of |_scale(v, .)|
            if code is None:
                return 0
            k, sh = code
            return (v * k >> sh) + 1 if sh >= 0 else v * k << -sh

        hebb = (M * inv_max >> INV_FRAC) + 1
        b = scaled(hebb, self.lam) + scaled(M, self.predc)
        if self.homeo:
            rho = max(M, int(np.abs(self.target).max()) if self.target.size else 0)
            b += scaled(((M + rho) * inv_max >> INV_FRAC) + 1, self.hom)
        b = b * int(self.c_eta_k[0])
        b = (b >> self.eta_sh) + 1 if self.eta_sh >= 0 else b << -self.eta_sh
        return b if b < (1 << 40) - 1 and b.bit_length() + GAIN_FRAC < 62 else None

    def _check_ranges(self) -> bool:
        """Whether the working state lies where the clip-free spike path proves it stays:
        post trace, mean, rho in [0, 2^(A+E)], z_prev in [0, 2^A], var in [0, 2^31)."""
        if self._p_bound is None:
            return False
        M, n = 1 << (self.A + self.E), self.n_out
        ok = lambda a, hi: a.size == 0 or (int(a.min()) >= 0 and int(a.max()) <= hi)  # noqa
        return (ok(self.tr[self.k_pre:], M) and ok(self.st[:n], M) and ok(self.st[n:],
                (1 << 31) - 1) and ok(self.zprev, 1 << self.A)
                and (not self.homeo or ok(self.target, M)))

    def _shifts(self, shift: int) -> tuple[np.ndarray, np.ndarray]:
        """Shift arrays for pre [n_in] and post [n_out]: by shift (+ E when filtered)."""
        v = self._in_shift.get(shift)
        if v is None:
            E = self.E
            v = (np.full(self.n_in, shift + (E if self.k_pre else 0), np.int64),
                 np.full(self.n_out, shift + (E if self.k_post else 0), np.int64))
            self._in_shift[shift] = v
        return v

    def reload(self) -> None:
        """Read the bound weight and state arrays into the working copies."""
        s, kp = self.state, self.k_pre
        if kp:
            self.tr[:kp] = s.pre_trace
        if self.k_post:
            self.tr[kp:] = s.post_trace
        self.st[:self.n_out] = s.mean
        self.st[self.n_out:] = s.var
        self.zprev[...] = s.z_prev
        self.count = int(s.count[0])
        if self.stores_target:
            self.target[...] = s.target
        np.copyto(self.w64, self.w)
        self._bounded = self._check_ranges()

    def flush(self) -> None:
        """Write the working state into the bound state arrays (the weights always are)."""
        s, kp, n = self.state, self.k_pre, self.n_out
        np.copyto(s.mean, self.st[:n], casting="unsafe")
        np.copyto(s.var, self.st[n:], casting="unsafe")
        np.copyto(s.z_prev, self.zprev, casting="unsafe")
        if kp:
            np.copyto(s.pre_trace, self.tr[:kp], casting="unsafe")
        if self.k_post:
            np.copyto(s.post_trace, self.tr[kp:], casting="unsafe")
        s.count[0] = self.count
        if self.stores_target:
            np.copyto(s.target, self.target, casting="unsafe")

    # ----------------------------------------------------------------------------------
    def step(self, pre: np.ndarray, post: np.ndarray, rng: RngState, shift: int = 0,
             stats: bool = False, spikes: bool = False
             ) -> tuple[RngState, FixedStats | None, bool]:
        """One LPL step with activities ``pre << shift`` and ``post << shift`` (Q.act_frac).

        ``pre`` int64 [n_in], ``post`` int64 [n_out] (e.g. spike counts with shift=act_frac).
        Updates the bound weight (and, with write_back, state) arrays in place; returns
        (rng advanced, FixedStats of step_fixed if ``stats`` else None, whether the weight
        rule ran, i.e. not warm-up).

        ``spikes=True`` is the caller's promise that ``post`` holds 0/1 (a spiking layer's
        output) and ``shift == act_frac``; then, when the state is in the range the rule keeps
        it in (checked on reload), the saturations that provably cannot act are skipped (same
        integers: tests compare with ``step_fixed``).
        """
        if spikes and not stats and self._bounded and shift == self.A and self._hot is not None \
                and self.count == self.warmup:
            return self._hot_step(pre, post, rng)
        n_out = self.n_out
        count = self.count
        skipped = count < self.warmup
        r = (self.words_warm if skipped else self.words_run).row(rng)
        kp, ko, o_w = self.k_pre, self.k_post, self.o_w
        o_mean = o_w if skipped else o_w + self.k_w
        x, z, xz, tr = self.x, self.z, self.xz, self.tr
        sub, mul, add, rsh, lsh = (np.subtract, np.multiply, np.add, np.right_shift,
                                   np.left_shift)
        vmax, vmin = np.maximum, np.minimum
        # -- input / output rate filters: x~ += r (x<<E - x~), activities round(x~ / 2^E)
        sh_pre, sh_post = self._shifts(shift)
        tgt = self.tr_tgt
        lsh(pre, sh_pre, tgt[:kp] if kp else x)
        lsh(post, sh_post, tgt[kp:] if ko else z)
        if o_w:
            self.ema_filt.apply(tr, tgt, r[:o_w], self.tr_t)
            add(tr, self.c_half_e_tr, xz)
            rsh(xz, self.c_e_tr, xz)
        # -- bracket (lpl_rate.bracket_fixed with gain 1): p in Q.P
        st = self.st
        mean, var = st[:n_out], st[n_out:]
        d, inv, hebb, pred, pv = self.d, self.inv, self.hebb, self.pred, self.pv
        zE = self.st_tgt[:n_out]                           # z << E (also the mean target)
        lsh(z, self.c_e, zE)
        sub(zE, mean, d)
        add(var, self.c_xi, inv)
        np.floor_divide(self.c_inv_num, inv, inv)
        mul(d, inv, hebb)
        add(hebb, self.c_half_inv, hebb)
        rsh(hebb, self.c_inv_frac, hebb)
        if not self.lam_id:
            _apply_scale(hebb, self.lam)
        sub(z, self.zprev, pred)
        lsh(pred, self.c_e, pred)
        if not self.pred_id:
            _apply_scale(pred, self.predc)
        sub(hebb, pred, pv)
        if self.homeo:                                      # - lam_hom (zbar - rho) / var
            hom = self.c_hom
            sub(mean, self.target, hom)
            mul(hom, inv, hom)
            add(hom, self.c_half_inv, hom)
            rsh(hom, self.c_inv_frac, hom)
            _apply_scale(hom, self.hom)
            sub(pv, hom, pv)
        if not self.gain_id:
            mul(pv, self.c_gain_one, pv)
            add(pv, self.c_gain_half, pv)
            rsh(pv, self.c_gain_frac, pv)
        mul(pv, self.c_eta_k, pv)
        if self.eta_sh > 0:
            add(pv, self.c_eta_half, pv)
            rsh(pv, self.c_eta_sh, pv)
        elif self.eta_sh < 0:
            lsh(pv, self.c_eta_sh, pv)
        nsat = 0
        if not (spikes and shift == self.A):
            self._bounded = False                  # ranges unproven until the next reload
        free = self._bounded and not stats
        if stats:
            nsat += int(np.count_nonzero((pv < self.c_p_lo) | (pv > self.c_p_hi)))
        if not free:
            vmax(pv, self.c_p_lo, out=pv)
            vmin(pv, self.c_p_hi, out=pv)
        changed = clipped = 0
        if not skipped:
            changed, clipped = self._apply(pv, x, r[o_w:o_mean], stats, True)
        # -- statistics: mean += r (z<<E - mean), var += r (round_shift(d^2, E) - var)
        vt = self.st_tgt[n_out:]
        mul(d, d, vt)
        add(vt, self.c_half_e, vt)
        rsh(vt, self.c_e, vt)
        self.ema_stat.apply(st, self.st_tgt, r[o_mean:], self.st_t)
        if stats:
            nsat += int(np.count_nonzero((st < self.c_s_lo) | (st > self.c_s_hi)))
        if free:
            np.copyto(self.zprev, z)
        else:
            vmax(st, self.c_s_lo, out=st)
            vmin(st, self.c_s_hi, out=st)
            vmax(self.st[n_out:], self.c_zero, out=self.st[n_out:])
            vmax(z, self.c_z_lo, out=self.zprev)
            vmin(self.zprev, self.c_z_hi, out=self.zprev)
        if self.stores_target and count + 1 == self.warmup:
            self.target[...] = mean                         # rho = mean at end of warm-up
        if count != self.warmup:
            self.count = min(count + 1, self.warmup)
        if self.write_back:
            self.flush()
        rng = RngState(rng.key, (rng.counter + o_mean + 2 * n_out) & 0xFFFFFFFF)
        return rng, (FixedStats(changed, clipped, nsat, int(skipped)) if stats else None), \
            not skipped

    def _hot_tuple(self):
        """Everything the hot step uses, as one tuple (one unpack instead of ~80 attribute
        loads), or None when the parameters need a branch the hot step does not take."""
        lam_arr = None
        if not self.lam_id:
            if self.lam is None or self.lam[1] <= 0:
                return None
            k, sh = self.lam
            n = self.n_out
            lam_arr = (np.full(n, k, np.int64), np.full(n, 1 << (sh - 1), np.int64),
                       np.full(n, sh, np.int64))
        if not (self.k_pre and self.k_post and not self.ema_filt.has_pre
                and not self.ema_stat.has_pre and self.pred_id and not self.homeo
                and self.gain_id and self.eta_sh > 0 and not self.full):
            return None
        n_out, kp = self.n_out, self.k_pre
        sh_pre, sh_post = self._shifts(self.A)
        f, m = self.ema_filt, self.ema_stat
        o_mean = self.o_w + self.k_w
        return (self.tr_tgt[:kp], self.tr_tgt[kp:], self.tr_tgt, self.tr, self.tr_t, self.xz,
                self.x, self.z, sh_pre, sh_post, f.k, f.s, self.st, self.st_t, self.st_tgt,
                m.k, m.s, self.st[:n_out], self.st[n_out:], self.d, self.inv, self.hebb,
                self.pred, self.pv, self.zprev, self.c_e, self.c_xi, self.c_inv_num,
                self.c_half_inv, self.c_inv_frac, self.c_half_e_tr, self.c_e_tr, self.c_half_e,
                self.c_eta_k, self.c_eta_half, self.c_eta_sh, lam_arr, self.st_tgt[:n_out],
                self.st_tgt[n_out:], self.o_w, o_mean, o_mean + 2 * n_out, self.words_run)

    def _hot_step(self, pre: np.ndarray, post: np.ndarray, rng: RngState
                  ) -> tuple[RngState, None, bool]:
        """:meth:`step` after warm-up on the clip-free spike path, for the common parameter
        shape (both filters, no homeostasis, dither): the same numpy operations on the same
        buffers in the same order, without the branches."""
        (tgt_pre, tgt_post, tgt, tr, tr_t, xz, x, z, sh_pre, sh_post, fk, fs, st, st_t, st_tgt,
         mk, ms, mean, var, d, inv, hebb, pred, pv, zprev, c_e, c_xi, c_inv_num, c_half_inv,
         c_inv_frac, c_half_e_tr, c_e_tr, c_half_e, c_eta_k, c_eta_half, c_eta_sh, lam_arr, zE,
         vt, o_w, o_mean, total, words) = self._hot
        sub, mul, add, rsh, lsh = (np.subtract, np.multiply, np.add, np.right_shift,
                                   np.left_shift)
        r = words.row(rng)
        lsh(pre, sh_pre, tgt_pre)
        lsh(post, sh_post, tgt_post)
        sub(tgt, tr, tr_t)                                 # filters (ema, no pre-rounding)
        mul(tr_t, fk, tr_t)
        add(tr_t, r[:o_w], tr_t)
        rsh(tr_t, fs, tr_t)
        add(tr, tr_t, tr)
        add(tr, c_half_e_tr, xz)
        rsh(xz, c_e_tr, xz)
        lsh(z, c_e, zE)                                    # bracket
        sub(zE, mean, d)
        add(var, c_xi, inv)
        np.floor_divide(c_inv_num, inv, inv)
        mul(d, inv, hebb)
        add(hebb, c_half_inv, hebb)
        rsh(hebb, c_inv_frac, hebb)
        if lam_arr is not None:
            mul(hebb, lam_arr[0], hebb)
            add(hebb, lam_arr[1], hebb)
            rsh(hebb, lam_arr[2], hebb)
        sub(z, zprev, pred)
        lsh(pred, c_e, pred)
        sub(hebb, pred, pv)
        mul(pv, c_eta_k, pv)
        add(pv, c_eta_half, pv)
        rsh(pv, c_eta_sh, pv)
        self._apply(pv, x, r[o_w:o_mean], False, True)
        mul(d, d, vt)                                      # statistics
        add(vt, c_half_e, vt)
        rsh(vt, c_e, vt)
        sub(st_tgt, st, st_t)
        mul(st_t, mk, st_t)
        add(st_t, r[o_mean:], st_t)
        rsh(st_t, ms, st_t)
        add(st, st_t, st)
        np.copyto(zprev, z)
        if self.write_back:
            self.flush()
        return RngState(rng.key, (rng.counter + total) & 0xFFFFFFFF), None, True

    def _apply(self, pv: np.ndarray, x: np.ndarray, rw: np.ndarray, stats: bool,
               from_block: bool = False) -> tuple[int, int]:
        """w += stochastic_shift(outer(p, x), P + A) within the bounds (qmath.apply_update);
        ``rw`` are the weight words masked to the shift (int64). Sets ``self.w_changed``."""
        if not self.full:
            absp = self.absp
            np.absolute(pv, absp)
            xmax = max(x.max(), -x.min()).item()
            if 2 * absp.max().item() * xmax <= 1 << self.w_shift_total:
                np.multiply(absp, xmax, absp)                  # N_i >= max_j |p_i x_j|
                # expected candidate synapses sum_i 2 N_i n_in / 2^S: few -> window search,
                # many -> the dense update is cheaper (same integers either way)
                if absp.sum().item() * 2 * self.n_in <= SMALL_CANDIDATES << self.w_shift_total:
                    return self._apply_small(pv, x, rw, absp, stats, from_block)
        self.w_changed = True
        n_out, n_in = self.n_out, self.n_in
        num, u, w64 = self.num, self.u, self.w64
        add = np.add
        if self.full:
            u = rw.reshape(n_out, n_in)
        else:
            add(rw[:n_out, None], rw[None, n_out:], u)               # a_i + b_j (< 2^33)
            np.bitwise_and(u, self.w_mask_m, u)
        np.multiply(pv[:, None], x[None, :], num)
        add(num, u, num)
        np.right_shift(num, self.w_sh_m, num)
        add(num, w64, num)                                             # raw = w + dw
        raw = None
        if stats:
            raw = self.raw
            np.copyto(raw, num)
        if self.int8_bounds:
            lo, hi = self.lo_m, self.hi_m
        else:
            lo = np.minimum(self.lo_m, w64)
            hi = np.maximum(self.hi_m, w64)
        np.maximum(num, lo, out=num)
        np.minimum(num, hi, out=num)
        changed = clipped = 0
        if stats:
            clipped = int(np.count_nonzero(num != raw))
            changed = int(np.count_nonzero(num != w64))
        self.w64, self.num = num, w64                                   # new weights
        np.copyto(self.w, num, casting="unsafe")
        return changed, clipped

    def _apply_small(self, pv: np.ndarray, x: np.ndarray, rw: np.ndarray, N, stats: bool,
                     from_block: bool = False) -> tuple[int, int]:
        """The dither update when every |p_i x_j| <= N <= 2^(S-1) (S = P + A; N an int or a
        per-row int64 bound N_i, the window below then taken per row): then
        dw_ij = floor((p_i x_j + u_ij) / 2^S) is 0 unless u_ij lies within N of a multiple of
        2^S, i.e. (u_ij + N) mod 2^S < 2N with u_ij = (a_i + b_j) mod 2^S. For each row i the
        columns j whose b_j fall in that window are found by binary search over the sorted
        b (a window of the doubled sorted list, since 2N <= 2^S); only those synapses are
        computed (exactly as the dense path). Every other synapse has dw = 0, which never
        changes a weight, so the result is the dense result."""
        n_out, n_in, S = self.n_out, self.n_in, self.w_shift_total
        a, b = rw[:n_out], rw[n_out:]
        bs2, lohi, cnt = self.win
        lo, hi = lohi[:n_out], lohi[n_out:]
        words = self.words_run
        if from_block:                          # the b words of every step of the block,
            if self._sorted_gen != words.gen:   # sorted once per refill
                o = self.o_w + n_out
                B = words.rows[:, o:o + n_in]
                self._order = B.argsort(axis=1, kind="stable")
                bs = np.take_along_axis(B, self._order, axis=1)
                self._bs2 = np.concatenate([bs, bs + (1 << S)], axis=1)
                self._sorted_gen = words.gen
            order, bs2 = self._order[words.i], self._bs2[words.i]
        else:
            order = b.argsort(kind="stable")
            np.take(b, order, out=bs2[:n_in])
            np.add(bs2[:n_in], self.two_s, bs2[n_in:])           # sorted b, then b + 2^S
        np.add(a, N, lo)
        np.negative(lo, lo)
        np.bitwise_and(lo, self.s_mask, lo)                      # L_i in [0, 2^S)
        np.add(lo, N, hi)
        np.add(hi, N, hi)
        lr = bs2.searchsorted(lohi, "left")
        left, right = lr[:n_out], lr[n_out:]
        np.subtract(right, left, cnt)
        total = int(cnt.sum())
        self.w_changed = False
        if total == 0:
            return 0, 0
        if total <= 16 and not stats:                             # a few synapses: scalars
            mask, lo_w, hi_w = (1 << S) - 1, self.lo, self.hi
            w64, w8 = self.w64, self.w
            for i in np.flatnonzero(cnt).tolist():
                pi, ai = pv.item(i), a.item(i)
                for q in range(left.item(i), right.item(i)):
                    j = order.item(q % n_in)
                    wij = w64.item(i, j)
                    new = wij + ((pi * x.item(j) + ((ai + b.item(j)) & mask)) >> S)
                    new = min(max(new, min(lo_w, wij)), max(hi_w, wij))
                    if new != wij:
                        w64[i, j] = new
                        w8[i, j] = new
                        self.w_changed = True
            return 0, 0
        rows = np.repeat(np.arange(n_out), cnt)
        pos = np.repeat(left - np.cumsum(cnt) + cnt, cnt) + np.arange(total)
        cols = order[pos % n_in]
        num = pv[rows] * x[cols]
        u = (a[rows] + b[cols]) & ((1 << S) - 1)
        w = self.w64[rows, cols]
        raw = w + ((num + u) >> S)
        new = np.minimum(np.maximum(raw, np.minimum(self.lo, w)), np.maximum(self.hi, w))
        moved = new != w
        if moved.any():
            self.w64[rows, cols] = new
            self.w[rows, cols] = new.astype(np.int8)
            self.w_changed = True
        if stats:
            return int(np.count_nonzero(moved)), int(np.count_nonzero(new != raw))
        return 0, 0
