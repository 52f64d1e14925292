"""The shipped models quantize to int8 within 1.0 accuracy point of float (issue 4)."""

from pathlib import Path

import numpy as np
import pytest

from edgelearn.io import load_network
from edgelearn.quant import evaluate, quantize_network

MODELS = Path(__file__).parent.parent / "models"


def _data(name):
    if name == "randman_small":
        from edgelearn.data.randman import randman_splits
        return randman_splits(n_classes=10, n_units=32, n_steps=50, dim_manifold=2, alpha=2.0,
                              samples_per_class=200, seed=0)
    from edgelearn.data import load_speech_digits
    return load_speech_digits("train"), load_speech_digits("test")


def _tbc(x):
    return np.transpose(np.asarray(x), (1, 0, 2)).astype(np.float32)


# speech_digits is produced by another part of the project; the test runs once the file exists
SHIPPED = [n for n in ("randman_small", "speech_digits") if (MODELS / f"{n}.onnx").is_file()]


@pytest.mark.parametrize("name", SHIPPED)
def test_int8_within_one_point_of_float(name):
    net = load_network(MODELS / f"{name}.onnx")
    train, test = _data(name)
    qnet, rep = quantize_network(net, _tbc(train.x[:256]))
    res = evaluate(net, qnet, _tbc(test.x), test.y, report=rep)
    assert abs(res["fixed_accuracy"] - res["float_accuracy"]) <= 0.010 + 1e-12
    assert not rep.warnings
    assert min(res["spike_agreement"].values()) > 0.95


def test_randman_small_is_shipped():
    assert "randman_small" in SHIPPED
