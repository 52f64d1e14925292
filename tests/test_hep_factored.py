import numpy as np

from edgelearn.device.hep_factored import accumulator_count, factored_hep_update
from edgelearn.rules.hep import EnergyHead, schemes


def test_factored_update_equals_full_estimator():
    rng = np.random.default_rng(0)
    for seed in range(3):
        h1 = EnergyHead((20, 8, 5), seed=seed)
        h2 = EnergyHead((20, 8, 5), seed=seed)
        x = rng.normal(size=20)
        g = h1.hep_gradient(x, 3, 0.5, 4)
        h1.apply(g, 0.1)
        sc = schemes.hep_scheme(4)
        info = factored_hep_update(h2, x, 3, 0.1, 0.5, sc.nodes, sc.weights)
        assert info["applied"]
        for a, b in zip(h1.weights + h1.biases, h2.weights + h2.biases):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_accumulator_count_is_biases_plus_deep_synapses():
    assert accumulator_count((138, 16, 10)) == 16 + 10 + 160
    assert accumulator_count((20, 8, 6, 5)) == 8 + 6 + 5 + 48 + 30
