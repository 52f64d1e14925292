import numpy as np
import pytest

from edgelearn.errors import ModelError
from edgelearn.model import Layer, Network


def _w(n_out, n_in, seed=0):
    return np.random.default_rng(seed).normal(size=(n_out, n_in)).astype(np.float32)


def test_scalars_broadcast_per_neuron():
    layer = Layer("h", _w(4, 3), alpha=0.5, beta=0.9, threshold=1.0)
    assert layer.alpha.shape == (4,) and np.all(layer.alpha == 0.5)
    assert layer.kind == "lif" and layer.n_in == 3 and layer.n_out == 4


def test_weights_are_read_only_copies():
    w = _w(2, 2)
    layer = Layer("h", w)
    w[0, 0] = 99.0
    assert layer.weight[0, 0] != 99.0
    with pytest.raises(ValueError):
        layer.weight[0, 0] = 1.0


@pytest.mark.parametrize("kwargs, message", [
    (dict(alpha=1.5), "alpha must lie in [0, 1]"),
    (dict(beta=-0.1), "beta must lie in [0, 1]"),
    (dict(threshold=0.0), "threshold must be > 0"),
    (dict(reset="hold"), "reset must be one of"),
    (dict(alpha=np.ones(3)), "alpha must be a scalar or have 4 entries"),
    (dict(recurrent=np.zeros((3, 3))), "recurrent weight must be 4x4"),
])
def test_invalid_layers_name_layer_and_numbers(kwargs, message):
    with pytest.raises(ModelError, match="layer 'hid'") as info:
        Layer("hid", _w(4, 3), **kwargs)
    assert message in str(info.value)


def test_nan_weight_refused():
    w = _w(4, 3)
    w[1, 1] = np.nan
    with pytest.raises(ModelError, match="NaN"):
        Layer("hid", w)


def test_network_shape_mismatch_message():
    with pytest.raises(ModelError, match="layer 'out' expects 5 inputs, got 4 from layer 'hid'"):
        Network((Layer("hid", _w(4, 3)), Layer("out", _w(2, 5))))


def test_readout_only_last():
    with pytest.raises(ModelError, match="only the last layer"):
        Network((Layer("a", _w(4, 3), spiking=False), Layer("b", _w(2, 4))))


def test_replace_layer_revalidates():
    net = Network((Layer("hid", _w(4, 3)), Layer("out", _w(2, 4), spiking=False)))
    new = net.replace_layer("hid", weight=np.zeros((4, 3)))
    assert np.all(new.layer("hid").weight == 0) and np.any(net.layer("hid").weight != 0)
    with pytest.raises(ModelError):
        net.replace_layer("hid", weight=np.zeros((5, 3)))
    with pytest.raises(ModelError, match="no layer 'nope'"):
        net.layer("nope")
