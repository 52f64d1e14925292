"""NIR import/export: round trips, unit conversion at the boundary, refusals."""

import numpy as np
import pytest

nir = pytest.importorskip("nir", reason="NIR support is the optional 'nir' extra")

from edgelearn.errors import ModelFileError  # noqa: E402
from edgelearn.io import load_nir, save_nir  # noqa: E402
from edgelearn.io.nir_io import to_nir_graph  # noqa: E402
from edgelearn.runtime.reference import run  # noqa: E402
from test_onnx_profile import KINDS, RESETS, make_net, spikes_in  # noqa: E402


def _same(a, b):
    for la, lb in zip(a.layers, b.layers, strict=True):
        assert la.name == lb.name and la.spiking == lb.spiking
        if la.spiking:
            assert la.reset == lb.reset
        for f in ("weight", "alpha", "beta", "threshold", "bias", "recurrent"):
            va, vb = getattr(la, f), getattr(lb, f)
            assert (va is None) == (vb is None), f
            if va is not None:
                np.testing.assert_allclose(va, vb, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("reset", RESETS)
def test_nir_round_trip(tmp_path, kind, reset):
    net = make_net(kind, reset)
    save_nir(net, tmp_path / "m.nir")
    back = load_nir(tmp_path / "m.nir", dt=net.dt)
    _same(net, back)
    x = spikes_in(30, 3, net.n_in)
    a, b = run(net, x), run(back, x)
    for k in a.spikes:
        np.testing.assert_array_equal(a.spikes[k], b.spikes[k])


def test_in_memory_graph_and_if_node():
    net = make_net("lif").replace_layer("hidden", alpha=0.0, beta=1.0)
    graph = to_nir_graph(net)
    assert type(graph.nodes["hidden"]).__name__ == "IF"
    assert type(graph.nodes["last"]).__name__ == "CubaLIF"
    _same(net, load_nir(graph, dt=net.dt))


def test_snntorch_convention_gives_unit_gain():
    dt, beta, alpha = 1e-4, 0.9, 0.5
    tau_mem, tau_syn = dt / (1 - beta), dt / (1 - alpha)
    w = np.array([[0.5, -0.25]])
    g = nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([2])}),
        "fc": nir.Linear(weight=w),
        "lif": nir.CubaLIF(tau_syn=np.array([tau_syn]), tau_mem=np.array([tau_mem]),
                           r=np.array([tau_mem / dt]), v_leak=np.zeros(1),
                           v_threshold=np.ones(1), w_in=np.array([tau_syn / dt])),
        "out": nir.Output(output_type={"output": np.array([1])})},
        edges=[("in", "fc"), ("fc", "lif"), ("lif", "out")])
    net = load_nir(g, dt=dt)
    la = net.layers[0]
    np.testing.assert_allclose(la.weight, w, rtol=1e-6)
    np.testing.assert_allclose([la.alpha[0], la.beta[0]], [alpha, beta], rtol=1e-6)
    assert la.reset == "zero_immediate"  # NIR resets to v_reset in the step of the spike


def test_norse_convention_scales_input_by_dt_over_tau():
    dt, tau = 1e-3, 1e-2
    g = nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([1])}),
        "fc": nir.Linear(weight=np.array([[2.0]])),
        "lif": nir.LIF(tau=np.array([tau]), r=np.ones(1), v_leak=np.zeros(1),
                       v_threshold=np.ones(1)),
        "out": nir.Output(output_type={"output": np.array([1])})},
        edges=[("in", "fc"), ("fc", "lif"), ("lif", "out")])
    la = load_nir(g, dt=dt).layers[0]
    np.testing.assert_allclose(la.weight, [[2.0 * dt / tau]], rtol=1e-6)
    np.testing.assert_allclose(la.beta, [1 - dt / tau], rtol=1e-6)


def test_nir_refusals(tmp_path):
    net = make_net("lif")
    with pytest.raises(ModelFileError, match="dt > 0"):
        load_nir(to_nir_graph(net), dt=0.0)
    with pytest.raises(ModelFileError, match="shorter than dt"):
        load_nir(to_nir_graph(net), dt=1.0)
    bad = tmp_path / "bad.nir"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(ModelFileError, match="not a readable NIR file"):
        load_nir(bad, dt=1e-3)
    g = to_nir_graph(net)
    g.nodes["hidden_in"].weight[0, 0] = np.nan
    with pytest.raises(ModelFileError, match="NaN or Inf"):
        load_nir(g, dt=net.dt)
    g = to_nir_graph(net)
    g.nodes["x"] = nir.Threshold(threshold=np.ones(2))
    with pytest.raises(ModelFileError, match="node 'x' is a Threshold"):
        load_nir(g, dt=net.dt)


def test_nested_recurrent_subgraph_like_snntorch_rleaky():
    """snnTorch exports RLeaky as a subgraph input -> lif <-> w_rec -> output."""
    dt, beta, n = 1e-4, 0.8, 3
    tau = np.full(n, dt / (1 - beta))
    rng = np.random.default_rng(0)
    w, v = rng.standard_normal((n, 2)), rng.standard_normal((n, n))
    sub = nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([n])}),
        "lif": nir.LIF(tau=tau, r=tau / dt, v_leak=np.zeros(n), v_threshold=np.ones(n),
                       v_reset=np.zeros(n)),
        "w_rec": nir.Linear(weight=v),
        "output": nir.Output(output_type={"output": np.array([n])})},
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")])
    g = nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([2])}),
        "fc": nir.Linear(weight=w), "rlif": sub,
        "output": nir.Output(output_type={"output": np.array([n])})},
        edges=[("input", "fc"), ("fc", "rlif"), ("rlif", "output")])
    (la,) = load_nir(g, dt=dt).layers
    assert la.name == "rlif_lif" and la.kind == "rlif"
    np.testing.assert_allclose(la.weight, w, rtol=1e-6)
    np.testing.assert_allclose(la.recurrent, v, rtol=1e-6)
    np.testing.assert_allclose(la.beta, beta, rtol=1e-6)


def test_li_readout_without_synapse():
    net = make_net("readout").replace_layer("last", alpha=0.0)
    graph = to_nir_graph(net)
    assert type(graph.nodes["last"]).__name__ == "LI"
    _same(net, load_nir(graph, dt=net.dt))
