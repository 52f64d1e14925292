"""One interface, two implementations of the fixed-point LPL step: lpl_kernels.bind gives the
reference (lpl_rate.step_codes) or the optimised LPLRateFast, with the same integers."""

import dataclasses

import numpy as np
import pytest

from edgelearn.errors import ParameterError
from edgelearn.fixed import rng_init
from edgelearn.rules import lpl_codes, lpl_kernels, lpl_rate


@pytest.mark.parametrize("params", [
    dataclasses.replace(lpl_rate.deploy_default(), eta=1e-3, warmup=20),
    lpl_rate.Params(eta=1e-3, warmup=3, rounding="full", tau_pre=5, lam_hom=0.5),
    lpl_rate.Params(eta=1e-3, warmup=2, rounding="dither", lam_hom=0.2, rate_target=0.1),
])
def test_reference_and_optimised_kernels_agree(params):
    g = np.random.default_rng(5)
    n_in, n_out = 23, 11
    codes = lpl_rate.codes_for(params, 6.0, n_out)
    w0 = g.integers(-60, 60, (n_out, n_in)).astype(np.int8)
    kern, rng = {}, {}
    for impl in lpl_kernels.IMPLEMENTATIONS:
        w = w0.copy()
        st = lpl_codes.init_state(codes, n_in, n_out)
        kern[impl] = (lpl_kernels.bind(codes, w, st, impl), w, st)
        rng[impl] = rng_init(9)
    assert type(kern["optimised"][0]).__name__ == "LPLRateFast"
    for t in range(300):
        pre = (g.random(n_in) < 0.2).astype(np.int64)
        post = (g.random(n_out) < 0.3).astype(np.int64)
        for impl, (k, _, _) in kern.items():
            rng[impl], _, _ = k.step(pre, post, rng[impl], codes.act_frac, spikes=True)
    for k, _, _ in kern.values():
        k.flush()
    assert rng["reference"] == rng["optimised"]
    (_, w_r, s_r), (_, w_o, s_o) = kern["reference"], kern["optimised"]
    np.testing.assert_array_equal(w_r, w_o)
    assert not np.array_equal(w_r, w0)
    for a, b in zip(s_r, s_o):
        np.testing.assert_array_equal(a, b)


def test_decorrelation_binds_the_reference_and_unknown_impl_is_refused():
    codes = lpl_rate.codes_for(lpl_rate.Params(lam_decorr=1.0), 4.0, 5)
    st = lpl_codes.init_state(codes, 3, 5)
    k = lpl_kernels.bind(codes, np.zeros((5, 3), np.int8), st)
    assert isinstance(k, lpl_kernels.ReferenceLPL)
    with pytest.raises(ParameterError, match="implementation must be one of"):
        lpl_kernels.bind(codes, np.zeros((5, 3), np.int8), st, "fast")
