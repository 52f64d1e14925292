"""The LPL starting state measured on training data (rules/lpl_reference, adapt/reference)."""

import dataclasses

import numpy as np
import pytest

from edgelearn.errors import DataError, InputError
from edgelearn.fixed import rng_init
from edgelearn.rules import lpl_codes, lpl_rate
from edgelearn.rules.lpl_reference import BURN_IN, reference_state

HOM = dataclasses.replace(lpl_rate.deploy_default(), pred=0.0, lam=0.0, lam_hom=0.5,
                          rate_target=None, tau_mean=300.0, tau_var=300.0, warmup=50)


def _stream(n=40, T=100, n_in=12, n_out=9, seed=0):
    g = np.random.default_rng(seed)
    rates = g.uniform(0.02, 0.4, n_out)
    pre = g.integers(0, 3, (n, T, n_in)).astype(np.uint8)
    post = (g.random((n, T, n_out)) < rates).astype(np.uint8)
    return pre, post, rates


def test_reference_state_has_the_layout_of_init_state_and_ends_the_warmup():
    pre, post, _ = _stream()
    codes = lpl_rate.codes_for(HOM, 7.0, post.shape[2])
    st = reference_state(codes, pre, post)
    init = lpl_codes.init_state(codes, pre.shape[2], post.shape[2])
    for f, a, b in zip(st._fields, st, init):
        assert a.shape == b.shape and a.dtype == b.dtype, f
    assert int(st.count[0]) == codes.warmup
    np.testing.assert_array_equal(st.target, st.mean)
    assert st.target.size == post.shape[2]          # own target kept per neuron


def test_reference_statistics_equal_the_integer_rules_own_averages():
    """The float reference (time averages of the rule's running mean and variance) matches
    what the integer rule's statistics average to on the same stream (warm-up only, so no
    weight moves): same formats, same filters, same rates."""
    pre, post, rates = _stream(n=60)
    n_in, n_out = pre.shape[2], post.shape[2]
    params = dataclasses.replace(HOM, warmup=10 ** 6)
    codes = lpl_rate.codes_for(params, 7.0, n_out)
    ref = reference_state(codes, pre, post)
    st = lpl_codes.init_state(codes, n_in, n_out)
    st.mean[...] = ref.mean                       # start both at equilibrium
    st.var[...] = ref.var
    st.post_trace[...] = ref.post_trace
    st.pre_trace[...] = ref.pre_trace
    w = np.zeros((n_out, n_in), np.int8)
    rng = rng_init(3)
    A = codes.act_frac
    sums = np.zeros((2, n_out))
    steps = 0
    for t, (x, s) in enumerate(zip(pre.reshape(-1, n_in), post.reshape(-1, n_out))):
        w, st, rng, stats = lpl_rate.step_codes(w, x.astype(np.int64) << A,
                                                s.astype(np.int64) << A, st, codes, rng)
        assert stats.skipped == 1
        if t >= BURN_IN:                          # the window the reference averages
            sums += [st.mean, st.var]
            steps += 1
    mean, var = sums / steps
    np.testing.assert_allclose(mean, ref.mean, rtol=0.01)
    np.testing.assert_allclose(var, ref.var, rtol=0.02)
    # and the mean is the spike rate in Q.(A+E)
    np.testing.assert_allclose(ref.mean / 2.0 ** (A + codes.ema_frac), rates, rtol=0.12)


def test_reference_state_refuses_bad_activity():
    pre, post, _ = _stream(n=2)
    codes = lpl_rate.codes_for(HOM, 7.0, post.shape[2])
    with pytest.raises(InputError, match="pre"):
        reference_state(codes, pre[0], post)
    with pytest.raises(InputError, match="integer"):
        reference_state(codes, pre.astype(np.float32), post)
    with pytest.raises(InputError, match="burn-in"):
        reference_state(codes, pre[:1, :10], post[:1, :10])


def test_reference_weights_start_the_engine_with_a_training_target(speech_bundle_small):
    """lpl_reference_weights gives exactly the engine's LPL state arrays, the engine takes
    them, and homeostasis then starts from the training mean instead of the warm-up."""
    from edgelearn.adapt.reference import lpl_reference_weights
    from edgelearn.device.engine import EngineConfig
    from edgelearn.targets.host import HostTarget

    bundle, x = speech_bundle_small
    cfg = EngineConfig(readout=bundle.network.meta.get("readout", "max"),
                       lpl_layers=bundle.hidden_names, lpl=HOM, hep=None)
    t = HostTarget(bundle.qnet, 512 * 1024, bundle.head, cfg)
    ref = lpl_reference_weights(bundle.qnet, cfg, x, samples=24)
    w = t.get_weights()
    lpl_keys = {k for k in w if ".lpl." in k and w[k].size}
    assert set(ref) == lpl_keys
    for k, v in ref.items():
        assert v.shape == w[k].shape and v.dtype == w[k].dtype
    w.update(ref)
    t.set_weights(w)
    name = bundle.hidden_names[0]
    got = t.get_weights()
    np.testing.assert_array_equal(got[f"state.{name}.lpl.target"], ref[f"state.{name}.lpl.mean"])
    assert int(got[f"state.{name}.lpl.count"][0]) == HOM.warmup
    with pytest.raises(DataError, match="reference samples"):
        lpl_reference_weights(bundle.qnet, cfg, x[:, :, :3])


@pytest.fixture(scope="module")
def speech_bundle_small():
    from edgelearn.adapt.bundle import load_bundle
    from edgelearn.data import load_speech_digits
    bundle = load_bundle("models/speech_digits.onnx")
    return bundle, load_speech_digits("train").x[:24]
