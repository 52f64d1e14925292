"""Bad parameters are refused with ParameterError; NaN inputs never reach the weights."""

import math

import numpy as np
import pytest

from edgelearn.errors import InputError, ParameterError
from edgelearn.fixed import rng_init
from edgelearn.rules import istdp, lpl_rate, lpl_spiking, oja, triplet_stdp

RULES = [lpl_rate, lpl_spiking, triplet_stdp, istdp, oja]

BAD = [
    (lpl_rate, {"tau_mean": -1.0}, "tau_mean must be > 0"),
    (lpl_rate, {"tau_var": 0.0}, "tau_var must be > 0"),
    (lpl_rate, {"tau_pre": -3.0}, "tau_pre must be >= 0"),
    (lpl_rate, {"xi": 0.0}, "xi must be > 0"),
    (lpl_rate, {"xi": -1e-4}, "xi must be > 0"),
    (lpl_rate, {"xi": math.nan}, "xi must be finite"),
    (lpl_rate, {"eta": math.nan}, "eta must be finite"),
    (lpl_rate, {"lam": math.inf}, "lam must be finite"),
    (lpl_rate, {"xi": 1e-12}, "below one LSB"),
    (lpl_rate, {"w_min": 1.0, "w_max": 0.0}, "w_min < w_max"),
    (lpl_rate, {"rounding": "nearest"}, "rounding must be one of"),
    (lpl_rate, {"act_frac": 14, "factor_frac": 23}, r"act_frac \+ factor_frac"),
    (lpl_rate, {"lam_hom": -1.0}, "lam_hom must be >= 0"),
    (lpl_rate, {"lam_hom": 1.0, "rate_target": -0.1}, "rate_target must be >= 0"),
    (lpl_rate, {"lam_hom": 1.0, "warmup": 0}, "warmup must be >= 1"),
    (lpl_spiking, {"tau_err_rise": -2e-3}, "tau_err_rise must be > 0"),
    (lpl_spiking, {"xi": 0.0}, "xi must be > 0"),
    (lpl_spiking, {"delay": 1e-4}, "delay must be >= dt"),
    (lpl_spiking, {"variant": "approx"}, "variant must be one of"),
    (lpl_spiking, {"tau_mean": math.nan}, "tau_mean must be finite"),
    (triplet_stdp, {"tau_plus": -16.8e-3}, "tau_plus must be > 0"),
    (triplet_stdp, {"kappa": 0.0}, "kappa must be > 0"),
    (istdp, {"tau": -0.02}, "tau must be > 0"),
    (istdp, {"rho0": math.nan}, "rho0 must be finite"),
    (oja, {"eta": 0.0}, "eta must be > 0"),
]


@pytest.mark.parametrize("mod,kw,msg", BAD)
def test_bad_parameters_refused(mod, kw, msg):
    with pytest.raises(ParameterError, match=msg) as e:
        mod.Params(**kw)
    assert "\n" not in str(e.value)


def test_params_are_frozen():
    p = lpl_rate.Params()
    with pytest.raises(Exception):
        p.xi = 1.0


def _float_call(mod, x, y, state, params, n_out, n_in):
    if mod is lpl_spiking:
        return mod.step(x, y, np.ones(n_out), state, params)
    if mod is oja:
        return mod.step(x, y, state, params, w=np.zeros((n_out, n_in)))
    return mod.step(x, y, state, params)


@pytest.mark.parametrize("mod", RULES)
@pytest.mark.parametrize("where", ["pre", "post"])
def test_nan_input_refused_by_float_twin(mod, where):
    n_in, n_out = 5, 3
    p = mod.Params()
    st = mod.init(p, n_in, n_out)
    x = np.zeros(n_in)
    y = np.zeros(n_out)
    (x if where == "pre" else y)[1] = np.nan
    with pytest.raises(InputError, match="non-finite|NaN"):
        _float_call(mod, x, y, st, p, n_out, n_in)


@pytest.mark.parametrize("mod", RULES)
def test_fixed_step_refuses_float_or_nan_and_leaves_weights(mod):
    n_in, n_out = 5, 3
    p = mod.Params()
    st = mod.init_fixed(p, n_in, n_out)
    w = np.arange(15, dtype=np.int8).reshape(3, 5)
    before = w.copy()
    x = np.full(n_in, np.nan)
    y = np.zeros(n_out, np.int16)
    args = (w, x, y) + ((np.full(n_out, 4096),) if mod is lpl_spiking else ())
    with pytest.raises(InputError):
        mod.step_fixed(*args, st, p, rng_init(1), 7)
    np.testing.assert_array_equal(w, before)


def test_lpl_weights_stay_finite_and_int8_under_extreme_inputs():
    p = lpl_rate.Params(warmup=0, eta=1.0, xi=1e-4)
    st = lpl_rate.init_fixed(p, 4, 2)
    w = np.zeros((2, 4), np.int8)
    rng = rng_init(0)
    for t in range(50):
        x = np.full(4, 32767 if t % 2 else -32768, np.int16)
        z = np.full(2, -32768 if t % 2 else 32767, np.int16)
        w, st, rng, stats = lpl_rate.step_fixed(w, x, z, st, p, rng, 7)
    assert w.dtype == np.int8
    assert stats.n_clipped + stats.n_saturated > 0


def test_fixed_input_out_of_range_refused():
    p = lpl_rate.Params()
    st = lpl_rate.init_fixed(p, 4, 2)
    with pytest.raises(InputError, match="int16 range"):
        lpl_rate.step_fixed(np.zeros((2, 4), np.int8), np.full(4, 70000), np.zeros(2, np.int16),
                            st, p, rng_init(0), 7)


def test_quantize_activity_refuses_nan():
    with pytest.raises(InputError):
        lpl_rate.quantize_activity(np.array([0.1, np.nan]), lpl_rate.Params())


def test_wrong_weight_dtype_refused():
    p = lpl_rate.Params()
    st = lpl_rate.init_fixed(p, 4, 2)
    with pytest.raises(InputError, match="int8"):
        lpl_rate.step_fixed(np.zeros((2, 4), np.int16), np.zeros(4, np.int16),
                            np.zeros(2, np.int16), st, p, rng_init(0), 7)
