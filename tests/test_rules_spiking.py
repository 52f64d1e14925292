"""Spiking LPL: float vs fixed agreement, exact vs factorised, surrogate twin."""

import numpy as np
import pytest

from edgelearn.fixed import rng_init
from edgelearn.rules import lpl_spiking as L

N_IN, N_OUT, WS = 16, 6, 7


def _drive(variant, steps=3000, seed=0, const_fprime=False, **kw):
    """Run float and fixed on the same spikes; fixed applies from w = 0 each step."""
    rng = np.random.default_rng(seed)
    kw = {"variant": variant, "tau_mean": 1.0, "tau_var": 0.5, "var_init": 0.03, "eta": 0.5, **kw}
    p = L.Params(**kw)
    sf, sq = L.init(p, N_IN, N_OUT), L.init_fixed(p, N_IN, N_OUT)
    r = rng_init(2)
    rates = rng.uniform(0.01, 0.1, N_IN)
    tot_f = np.zeros((N_OUT, N_IN))
    tot_a = np.zeros((N_OUT, N_IN))
    var = np.zeros((N_OUT, N_IN))
    wz = np.zeros((N_OUT, N_IN), np.int8)
    for t in range(steps):
        s = (rng.random(N_IN) < rates).astype(np.int64)
        S = (rng.random(N_OUT) < 0.04).astype(np.int64)
        u = np.full(N_OUT, 0.8) if const_fprime else rng.uniform(0.0, 1.5, N_OUT)
        u_q = np.round(u * 4096).astype(np.int64)
        fq = L.surrogate_q(u_q, 4096, 10)
        dw, sf = L.step(s, S, fq / 4096.0, sf, p)
        w1, sq, r, _ = L.step_fixed(wz, s, S, fq, sq, p, r, WS)
        tot_f += dw * 2 ** WS
        tot_a += w1
        frac = np.abs(dw * 2 ** WS) % 1.0
        var += frac * (1 - frac)
    return p, sf, sq, tot_f, tot_a, np.sqrt(var)


@pytest.mark.parametrize("variant", ["exact", "factorised"])
def test_fixed_matches_float(variant):
    p, sf, sq, tot_f, tot_a, se = _drive(variant)
    T, E = p.trace_frac, p.ema_frac
    np.testing.assert_allclose(sq.mean / 2.0 ** (T + E), sf.mean, rtol=0.02, atol=1e-4)
    np.testing.assert_allclose(sq.var / 2.0 ** (2 * T + E), sf.var, rtol=0.02, atol=1e-4)
    np.testing.assert_allclose(sq.err_f / 2.0 ** (T + E), sf.err_f, rtol=0.05, atol=0.05)
    assert np.abs(tot_f).mean() > 3 * se.mean()                     # updates are resolvable
    assert np.all(np.abs(tot_a - tot_f) <= 4.5 * se + 0.03 * np.abs(tot_f) + 1)
    cos = (tot_a * tot_f).sum() / np.linalg.norm(tot_a) / np.linalg.norm(tot_f)
    assert cos > 0.99


def test_exact_equals_factorised_when_surrogate_is_constant():
    a = _drive("exact", steps=400, seed=4, const_fprime=True)
    b = _drive("factorised", steps=400, seed=4, const_fprime=True)
    # same spikes, f' constant: the kernels commute once the f' trace has settled (~50 steps)
    np.testing.assert_allclose(a[1].el_f, np.outer(b[1].fp_f, b[1].pb_f), rtol=1e-3, atol=1e-7)
    np.testing.assert_allclose(a[3], b[3], rtol=0.02, atol=0.02 * np.abs(a[3]).max())


def test_factorised_differs_when_surrogate_fluctuates():
    a = _drive("exact", steps=400, seed=5)
    b = _drive("factorised", steps=400, seed=5)
    rel = np.linalg.norm(a[3] - b[3]) / np.linalg.norm(a[3])
    assert rel > 1e-3          # an approximation, not an identity


def test_surrogate_twin():
    u = np.linspace(-1.0, 3.0, 81)
    f = L.surrogate(u, 1.0, 10.0)
    q = L.surrogate_q(np.round(u * 4096).astype(np.int64), 4096, 10)
    assert f.max() == 1.0 and q.max() == 4096
    assert np.abs(q / 4096.0 - f).max() <= 2.0 / 4096


def test_delay_line_feeds_predictive_term():
    """With a silent past, a spike now gives err = -pred + Hebb + delta; D steps later the
    delayed copy cancels the predictive part of a new spike."""
    p = L.Params(variant="factorised", delay=3e-3, lam=0.0, delta=0.0, tau_err_rise=1e-5,
                 tau_err_fall=1e-5)
    st = L.init(p, 1, 1)
    errs = []
    for t in range(5):
        S = np.array([1 if t in (0, 3) else 0])
        _, st = L.step(np.array([0]), S, np.ones(1), st, p)
        errs.append(float(st.err_f[0]))
    assert errs[0] == pytest.approx(-1.0, abs=1e-6)
    assert errs[3] == pytest.approx(0.0, abs=1e-6)     # S(t) - S(t-3) = 1 - 1
