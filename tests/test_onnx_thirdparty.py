"""Third-party ONNX step graphs (torch.onnx of snnTorch / plain torch) and the opaque fallback.

Fixtures are made by tools/export_torch_fixture.py; the .npz files hold torch's own outputs.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgelearn.errors import InputError, ModelFileError
from edgelearn.io import OnnxRuntimeBackend, OpaqueModel, load_model, load_network, save_onnx
from edgelearn.model import Network
from edgelearn.runtime.reference import run
from tests._hang import HANG_SECONDS

FIX = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("name, kinds", [
    ("snntorch_synaptic_leaky", [("lif", "subtract", 0.5, 0.875), ("lif", "subtract", 0.0, 0.75)]),
    ("torch_rlif_zero", [("rlif", "zero", 0.625, 0.75), ("readout", None, 0.5, 0.875)]),
    ("snntorch_recurrent", [("rlif", "zero", 0.5, 0.875), ("rlif", "subtract", 0.0, 0.75)]),
])
def test_torch_fixture_reproduces_recorded_spikes_exactly(name, kinds):
    net = load_network(FIX / f"{name}.onnx")
    assert [(la.kind, la.reset if la.spiking else None, float(la.alpha[0]), float(la.beta[0]))
            for la in net.layers] == kinds
    data = np.load(FIX / f"{name}.npz", allow_pickle=False)
    rec = run(net, data["input"], record=("spikes", "membrane"))
    for k, la in enumerate(net.layers):
        if la.spiking:
            assert data[f"spikes/{k}"].sum() > 0
            np.testing.assert_array_equal(rec.spikes[la.name], data[f"spikes/{k}"])
        np.testing.assert_allclose(rec.membrane[la.name], data[f"membrane/{k}"], atol=1e-5)
    if net.layers[-1].spiking:
        np.testing.assert_array_equal(rec.output, data["output"])
    else:
        np.testing.assert_allclose(rec.output, data["output"], atol=1e-5)


def test_recognised_fixture_reexports_and_runs_in_onnxruntime(tmp_path):
    net = load_network(FIX / "snntorch_synaptic_leaky.onnx")
    data = np.load(FIX / "snntorch_synaptic_leaky.npz", allow_pickle=False)
    save_onnx(net, tmp_path / "profile.onnx", graph="scan")
    back = load_network(tmp_path / "profile.onnx")
    rec = OnnxRuntimeBackend(back, "scan").run(data["input"])
    np.testing.assert_array_equal(rec.output, data["output"])


def test_snntorch_zero_reset_is_opaque_with_reason():
    model = load_model(FIX / "snntorch_leaky_zero.onnx")
    assert isinstance(model, OpaqueModel)
    assert "keeps the input of the reset step" in model.why_no_learning
    data = np.load(FIX / "snntorch_leaky_zero.npz", allow_pickle=False)
    np.testing.assert_array_equal(model.run(data["input"]), data["output"])
    with pytest.raises(ModelFileError, match="opaque graph: layer 0: reset-to-zero"):
        load_network(FIX / "snntorch_leaky_zero.onnx")
    with pytest.raises(InputError, match="expects 8 input channels, got 5"):
        model.run(np.zeros((3, 5), np.float32))


def _sigmoid_step(path):
    """forward(x, h) -> (y, h'): h' = sigmoid(W x + h); not a LIF neuron."""
    w = numpy_helper.from_array(np.ones((3, 4), np.float32), "w")
    nodes = [helper.make_node("Gemm", ["x", "w"], ["wx"], transB=1),
             helper.make_node("Add", ["wx", "h"], ["pre"]),
             helper.make_node("Sigmoid", ["pre"], ["h_out"]),
             helper.make_node("Identity", ["h_out"], ["y"])]
    g = helper.make_graph(nodes, "rnn", [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 4]),
        helper.make_tensor_value_info("h", TensorProto.FLOAT, ["B", 3])], [
        helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 3]),
        helper.make_tensor_value_info("h_out", TensorProto.FLOAT, ["B", 3])], [w])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path.write_bytes(model.SerializeToString())


def test_unrecognised_graph_runs_opaque(tmp_path):
    _sigmoid_step(tmp_path / "rnn.onnx")
    model = load_model(tmp_path / "rnn.onnx")
    assert isinstance(model, OpaqueModel)
    assert "Sigmoid" in model.why_no_learning
    y = model.run(np.ones((5, 2, 4), np.float32))
    assert y.shape == (5, 2, 3)
    h = np.zeros((2, 3), np.float32)
    for _ in range(5):
        h = 1 / (1 + np.exp(-(4.0 + h)))
    np.testing.assert_allclose(y[-1], h, rtol=1e-5)


def test_fixed_batch_export_loads(tmp_path):
    """torch.onnx without dynamic axes fixes the batch; verification must respect it."""
    model = onnx.load(str(FIX / "snntorch_synaptic_leaky.onnx"))
    for vi in list(model.graph.input) + list(model.graph.output):
        vi.type.tensor_type.shape.dim[0].dim_value = 1
    path = tmp_path / "fixed.onnx"
    path.write_bytes(model.SerializeToString())
    net = load_network(path)
    data = np.load(FIX / "snntorch_synaptic_leaky.npz", allow_pickle=False)
    np.testing.assert_array_equal(run(net, data["input"]).output, data["output"])


def test_recognised_network_is_a_network():
    assert isinstance(load_model(FIX / "torch_rlif_zero.onnx"), Network)


def test_fixtures_are_small():
    for f in FIX.glob("*"):
        if f.suffix in (".onnx", ".npz"):
            assert f.stat().st_size < 16_000, f


def test_edgelearn_never_imports_torch():
    code = ("import sys, edgelearn.io, edgelearn.io.nir_io, edgelearn.cli; "
            "edgelearn.io.load_model(sys.argv[1]); "
            "print(any(m == 'torch' or m.startswith('torch.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(FIX / "torch_rlif_zero.onnx")],
                         capture_output=True, text=True, timeout=HANG_SECONDS)
    assert out.stdout.strip() == "False", out.stderr
