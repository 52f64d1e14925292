"""Randman: deterministic, one spike per unit, balanced classes, learnable but not by chance."""

import numpy as np
import pytest

from edgelearn.data.baseline import fit_logistic
from edgelearn.data.randman import (
    RandmanParams,
    eval_manifold,
    make_randman,
    randman_splits,
)
from edgelearn.errors import DataError, ParameterError


def test_shapes_and_one_spike_per_unit():
    ds = make_randman(n_classes=4, n_units=30, n_steps=50, samples_per_class=20, seed=1)
    assert ds.x.shape == (80, 50, 30) and ds.x.dtype == np.uint8
    assert np.all(ds.x.sum(axis=1) == 1)
    assert np.all(np.bincount(ds.y) == 20) and ds.n_classes == 4
    # min-max scaling: each class's spike times of a unit span the first and the last bin
    t = np.argmax(ds.x, axis=1)
    for k in range(4):
        tk = t[ds.y == k]
        assert np.all(tk.min(axis=0) == 0) and np.all(tk.max(axis=0) == 49)


def test_deterministic_and_seed_dependent():
    a = make_randman(n_classes=3, n_units=10, samples_per_class=10, seed=5)
    b = make_randman(n_classes=3, n_units=10, samples_per_class=10, seed=5)
    c = make_randman(n_classes=3, n_units=10, samples_per_class=10, seed=6)
    assert a.x.tobytes() == b.x.tobytes() and np.array_equal(a.y, b.y)
    assert a.x.tobytes() != c.x.tobytes()


def test_n_spikes_and_step_frac():
    ds = make_randman(n_classes=2, n_units=8, n_steps=40, samples_per_class=10, seed=0,
                      n_spikes=3, step_frac=0.5)
    assert np.all(ds.x.sum(axis=1) == 3)
    assert ds.x[:, 20:].sum() == 0


def test_manifold_formula_matches_a_direct_sum():
    rng = np.random.default_rng(0)
    theta = rng.random((3, 2, 2, 5))
    u = rng.random((4, 2))
    got = eval_manifold(theta, u, alpha=2.0)
    want = np.ones((4, 2))
    for j in range(2):
        for d in range(2):
            acc = 0.0
            for i in range(5):
                acc = acc + theta[0, j, d, i] / (i ** 2 + 1) * np.sin(
                    2 * np.pi * (i * u[:, d] * theta[1, j, d, i] + theta[2, j, d, i]))
            want[:, j] *= acc
    assert np.allclose(got, want)


def test_splits_are_disjoint_balanced_and_learnable_but_not_trivially():
    tr, te = randman_splits(test_fraction=0.25, n_classes=10, n_units=20, n_steps=50,
                            dim_manifold=2, samples_per_class=80, seed=3)
    assert len(tr) == 600 and len(te) == 200
    assert np.all(np.bincount(te.y) == 20)
    u_tr = {tuple(r) for r in tr.meta["u"]}
    assert not any(tuple(r) in u_tr for r in te.meta["u"])
    acc = fit_logistic(tr, time_pools=50, steps=150).accuracy(te)
    assert 0.3 < acc < 1.0, acc   # far above chance (0.1), not perfect


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(n_units=0), ParameterError, "n_units must be >= 1"),
    (dict(alpha=0.0), ParameterError, "alpha must be > 0"),
    (dict(step_frac=1.5), ParameterError, "step_frac"),
    (dict(samples_per_class=0), DataError, "samples_per_class must be >= 1"),
])
def test_bad_parameters(kwargs, err, match):
    with pytest.raises(err, match=match):
        make_randman(**{"samples_per_class": 5, **kwargs})


def test_f_cutoff():
    assert RandmanParams(alpha=2.0).f_cutoff == 32
    assert RandmanParams(alpha=2.0, max_f_cutoff=10).f_cutoff == 10
