"""rule_memory_bytes equals what init/init_fixed actually allocate."""

import numpy as np
import pytest

from edgelearn.errors import ParameterError
from edgelearn.rules import istdp, lpl_rate, lpl_spiking, oja, rule_memory_bytes, triplet_stdp
from edgelearn.rules.base import StateBytes, state_nbytes

CASES = [
    (lpl_rate, {}),
    (lpl_rate, {"lam_decorr": 10.0}),
    (lpl_rate, {"tau_pre": 20.0, "tau_post": 10.0, "lam_decorr": 1.0}),
    (lpl_rate, {"lam_hom": 1.0}),
    (lpl_rate, {"lam_hom": 1.0, "rate_target": 0.2}),
    (lpl_spiking, {"variant": "exact"}),
    (lpl_spiking, {"variant": "factorised"}),
    (lpl_spiking, {"variant": "exact", "delay": 5e-3}),
    (triplet_stdp, {}),
    (istdp, {}),
    (oja, {}),
]


@pytest.mark.parametrize("mod,kw", CASES)
@pytest.mark.parametrize("n_in,n_out", [(1, 1), (7, 3), (128, 64)])
def test_memory_equals_allocation(mod, kw, n_in, n_out):
    p = mod.Params(**kw)
    assert isinstance(p, StateBytes)
    assert rule_memory_bytes(p, n_in, n_out) == state_nbytes(mod.init_fixed(p, n_in, n_out))
    assert rule_memory_bytes(p, n_in, n_out, fixed=False) == state_nbytes(mod.init(p, n_in, n_out))


def test_lpl_rate_has_no_per_synapse_state():
    p = lpl_rate.Params()
    a = rule_memory_bytes(p, 100, 10)
    b = rule_memory_bytes(p, 1000, 10)
    assert a == b == 10 * 10 + 4          # 10 bytes per output neuron + step count


def test_spiking_exact_pays_per_synapse():
    ex = lpl_spiking.Params(variant="exact")
    fa = lpl_spiking.Params(variant="factorised")
    d = rule_memory_bytes(ex, 200, 50) - rule_memory_bytes(ex, 100, 50)
    assert d == 100 * (8 + 4 * 50)        # per input: eps traces + two int16 per synapse
    d = rule_memory_bytes(fa, 200, 50) - rule_memory_bytes(fa, 100, 50)
    assert d == 100 * 16


def test_state_after_steps_keeps_size_and_dtypes():
    from edgelearn.fixed import rng_init
    p = lpl_rate.Params(warmup=0, lam_decorr=1.0)
    st = lpl_rate.init_fixed(p, 6, 4)
    w = np.zeros((4, 6), np.int8)
    rng = rng_init(0)
    for _ in range(3):
        w, st, rng, _ = lpl_rate.step_fixed(w, np.ones(6, np.int16) * 100,
                                            np.arange(4, dtype=np.int16) * 50, st, p, rng, 7)
    assert state_nbytes(st) == rule_memory_bytes(p, 6, 4)


def test_object_without_protocol_refused():
    with pytest.raises(ParameterError, match="does not report its memory"):
        rule_memory_bytes(object(), 3, 3)


def test_homeostatic_target_is_charged():
    p = lpl_rate.Params(lam_hom=1.0)
    q = lpl_rate.Params(lam_hom=1.0, rate_target=0.1)
    assert rule_memory_bytes(p, 10, 6) - rule_memory_bytes(q, 10, 6) == 4 * 6
    assert rule_memory_bytes(p, 10, 6) == state_nbytes(lpl_rate.init_fixed(p, 10, 6))
