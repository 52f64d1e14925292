"""The headline model on the C engine (NativeEngine) and on edgelearn.device.engine side by side,
with LPL on its hidden layer, for tests that hold the two equal sample after sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def headline_pair(lib, params):
    """(q, la, ce, pe): the headline network, its hidden layer, and the C and Python engines
    with LPL ``params`` on that layer, seed 3, learning on (no hEP)."""
    from edgelearn.adapt.bundle import load_bundle
    from edgelearn.device.engine import Engine, EngineConfig
    from edgelearn.kernels import native
    from edgelearn.kernels.image import to_image
    from edgelearn.kernels.lpl_codes import lpl_block
    from edgelearn.memory.arena import Arena
    from edgelearn.rules.base import qlayer_w_shift

    q = load_bundle(ROOT / "models" / "speech_digits.onnx").qnet
    la = q.layers[0]
    readout = q.meta.get("readout", "max")
    ce = native.NativeEngine(lib, to_image(q), {0: lpl_block(params, qlayer_w_shift(la),
                                                             la.n_out)},
                             readout=readout, seed=3)
    ce.set_learning(True, 3, 0)
    pe = Engine(q, Arena(1 << 21), None, EngineConfig(lpl_layers=(la.name,), hep=None,
                                                      readout=readout, seed=3, lpl=params))
    pe.set_learning(True, False)
    return q, la, ce, pe


def run_equal(q, la, ce, pe, x: np.ndarray) -> dict:
    """One sample x [T, n_in] on both engines: equal hidden features, readout accumulators,
    PRNG position and hidden weights (asserted); returns the Python engine's weights blob."""
    ce.begin()
    ce.run(x)
    r = pe.run_sample(x)
    assert np.array_equal(ce.array(0, 0, 0, np.uint16, la.n_out), r.features)
    assert np.array_equal(ce.array(1, 0, 0, np.int32, q.n_out), pe.output)
    assert ce.rng() == (pe.rng.key, pe.rng.counter)
    w = pe.get_weights()
    assert np.array_equal(ce.weights(0, la.n_out, la.n_in), w[f"{la.name}.weight"])
    return w
