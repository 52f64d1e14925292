"""Property test: any valid network survives export -> import and runs the same in onnxruntime."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgelearn.io import OnnxRuntimeBackend, model_bytes
from edgelearn.io.onnx_load import network_from_profile, parse_model_bytes, verify_profile
from edgelearn.model import Layer, Network
from edgelearn.runtime.reference import run


@st.composite
def networks(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    sizes = draw(st.lists(st.integers(1, 9), min_size=2, max_size=4))
    readout = draw(st.booleans())
    layers = []
    for k, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        last = k == len(sizes) - 2
        spiking = not (last and readout)
        per = draw(st.booleans())
        const = (lambda lo, hi: rng.uniform(lo, hi, n_out)) if per else \
            (lambda lo, hi: float(rng.uniform(lo, hi)))
        layers.append(Layer(
            f"l{k}", rng.standard_normal((n_out, n_in)) * 1.5,
            alpha=const(0.0, 1.0), beta=const(0.0, 1.0), threshold=const(0.2, 2.0),
            reset=draw(st.sampled_from(["subtract", "zero"])), spiking=spiking,
            bias=rng.standard_normal(n_out) * 0.3 if draw(st.booleans()) else None,
            recurrent=rng.standard_normal((n_out, n_out)) if spiking and draw(st.booleans())
            else None))
    return Network(tuple(layers), name="prop", dt=draw(st.sampled_from([1e-4, 1e-3])))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(net=networks(), graph=st.sampled_from(["step", "scan"]), batch=st.integers(1, 5))
def test_export_import_run(net, graph, batch):
    data = model_bytes(net, graph)
    back, kind = network_from_profile(parse_model_bytes(data, "prop"), "prop")
    assert kind == graph
    verify_profile(data, back, kind, "prop")
    for a, b in zip(net.layers, back.layers):
        np.testing.assert_array_equal(a.weight, b.weight)
        np.testing.assert_array_equal(a.beta, b.beta)
    x = (np.random.default_rng(0).random((15, batch, net.n_in)) < 0.4).astype(np.float32) * 2
    ref = run(net, x)
    got = OnnxRuntimeBackend(back, graph).run(x)
    np.testing.assert_allclose(got.output, ref.output, atol=1e-4)
    for name in ref.spikes:
        np.testing.assert_array_equal(got.spikes[name], ref.spikes[name])
