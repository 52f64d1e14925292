"""Post-training quantization, the quantized ONNX profile and tools/quantize.py."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from edgelearn.errors import FixedPointError, InputError, ModelFileError
from edgelearn.io import save_onnx
from edgelearn.io.onnx_quant import build_quant_model, load_quantized, save_quant_onnx
from edgelearn.kernels.image import to_image
from edgelearn.kernels.lif_fixed import quantize_input
from edgelearn.kernels.lif_kernels import qrun
from edgelearn.kernels.step_graph import build_step_graph, run_step_graph
from edgelearn.quant import evaluate, format_report, quantize_network

from _fixed_nets import random_net, spikes, teacher_labels

ROOT = Path(__file__).parent.parent


def test_quantize_random_network_agrees_with_float():
    net = random_net()
    qnet, rep = quantize_network(net, spikes(1))
    x = spikes(2, B=64)
    res = evaluate(net, qnet, x, teacher_labels(net, x), report=rep)
    assert res["float_accuracy"] == 1.0
    assert res["fixed_accuracy"] >= 0.95
    assert res["spike_agreement"]["hidden"] >= 0.97
    assert not rep.warnings                     # nothing saturates with the chosen shifts
    for row in rep.layers:
        assert 0.2 < row.range_used <= 0.5 + 1e-9
    assert "accuracy on 64 test samples" in format_report(rep)


def test_float_input_is_scaled_to_int8():
    net = random_net(recurrent=False)
    x = np.random.default_rng(3).normal(0, 1, (30, 8, 24)).astype(np.float32)
    qnet, rep = quantize_network(net, x)
    assert qnet.input_bits == 8 and qnet.input_scale == pytest.approx(np.abs(x).max() / 127)
    xi = quantize_input(qnet, x)
    assert xi.min() >= -127 and xi.max() <= 127
    assert evaluate(net, qnet, x)["spike_agreement"]["hidden"] > 0.95


def test_saturation_warning_names_layer_and_fraction():
    net = random_net()
    qnet, rep = quantize_network(net, spikes(1), shifts={"hidden": 7})
    assert rep.warnings
    assert any("layer 'hidden'" in w and "% of neuron-steps" in w and "calibration" in w
               for w in rep.warnings)
    assert rep.layers[0].clipped["calibration"][1] > 0


def test_bad_calibration_shape_and_options():
    net = random_net()
    with pytest.raises(InputError, match=r"expects \[T, B, 24\]"):
        quantize_network(net, np.zeros((10, 4, 23)))
    with pytest.raises(InputError, match="NaN"):
        quantize_network(net, np.full((10, 4, 24), np.nan))
    with pytest.raises(FixedPointError, match="unknown layer"):
        quantize_network(net, spikes(1), shifts={"nope": 1})
    with pytest.raises(FixedPointError, match="state_bits"):
        quantize_network(net, spikes(1), state_bits=8)


def test_step_graph_interpreter_matches_kernel():
    net = random_net()
    qnet, _ = quantize_network(net, spikes(1))
    x = spikes(4, T=20, B=3).astype(np.int64)
    rec = qrun(qnet, x, record=("spikes",))
    g = build_step_graph(qnet, batch=3)
    state = {n: np.zeros(s, np.float32) for n, s in g.inputs[1:]}
    for t in range(20):
        out = run_step_graph(g, {"input": x[t], **state})
        state = {n: out[n[:-3] + "_out"] for n in state}
        assert np.array_equal(out["output"], rec.output[t])
        assert np.array_equal(out["hidden.spikes"], rec.spikes["hidden"][t])


def test_quantized_onnx_runs_bit_exact_in_onnxruntime(tmp_path):
    net = random_net()
    qnet, _ = quantize_network(net, spikes(1))
    path = tmp_path / "q.onnx"
    save_quant_onnx(qnet, path)
    back = load_quantized(path)             # verifies against the kernel on probe inputs
    assert to_image(back) == to_image(qnet)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = spikes(5, T=30, B=8).astype(np.int64)
    rec = qrun(qnet, x, record=("spikes",))
    names = [o.name for o in sess.get_outputs()]
    state = {i.name: np.zeros((8, int(i.shape[1])), np.float32) for i in sess.get_inputs()
             if i.name != "input"}
    for t in range(30):
        out = dict(zip(names, sess.run(None, {"input": x[t].astype(np.float32), **state})))
        state = {n: out[n[:-3] + "_out"] for n in state}
        assert np.array_equal(out["output"], rec.output[t])
        assert np.array_equal(out["hidden.spikes"], rec.spikes["hidden"][t])


def test_float_model_refused_where_quantized_needed(tmp_path):
    path = tmp_path / "f.onnx"
    save_onnx(random_net(), path)
    with pytest.raises(ModelFileError, match="is a float model.*quantize"):
        load_quantized(path)


def test_export_refuses_32_bit_state():
    qnet, _ = quantize_network(random_net(), spikes(1), state_bits=32)
    with pytest.raises(FixedPointError, match="16-bit state"):
        build_quant_model(qnet)


def _tool(*args):
    return subprocess.run([sys.executable, str(ROOT / "tools" / "quantize.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)


def test_quantize_tool_end_to_end_and_errors(tmp_path):
    net = random_net()
    save_onnx(net, tmp_path / "m.onnx")
    x = spikes(6, B=40)                      # [T, B, C] -> data files are [N, T, C]
    np.savez(tmp_path / "calib.npz", x=np.transpose(x, (1, 0, 2)).astype(np.uint8))
    np.savez(tmp_path / "test.npz", x=np.transpose(x, (1, 0, 2)).astype(np.uint8),
             y=teacher_labels(net, x))
    r = _tool(tmp_path / "m.onnx", "--calib", tmp_path / "calib.npz", "--test",
              tmp_path / "test.npz", "-o", tmp_path / "q.onnx", "--image", tmp_path / "q.bin",
              "--json", tmp_path / "r.json")
    assert r.returncode == 0, r.stderr
    assert "spike agreement" in r.stdout and "float 100.00 %" in r.stdout
    assert (tmp_path / "q.onnx").stat().st_size > 0 and (tmp_path / "q.bin").read_bytes()[:4] == b"ELQN"
    # wrong calibration shape -> exit 2, one line
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 10, 23), np.uint8))
    r = _tool(tmp_path / "m.onnx", "--calib", tmp_path / "bad.npz", "-o", tmp_path / "x.onnx")
    assert r.returncode == 2 and "expects [T, B, 24]" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.onnx").exists()
    # saturating shift -> warning naming the layer, still exit 0
    r = _tool(tmp_path / "m.onnx", "--calib", tmp_path / "calib.npz", "-o", tmp_path / "s.onnx",
              "--shift", "hidden=7")
    assert r.returncode == 0 and "warning: layer 'hidden'" in r.stderr
    # an already quantized model -> exit 2
    r = _tool(tmp_path / "q.onnx", "--calib", tmp_path / "calib.npz", "-o", tmp_path / "y.onnx")
    assert r.returncode == 2 and "already quantized" in r.stderr


VEC = ROOT / "tests" / "vectors"


@pytest.mark.parametrize("case", ["ff_int8", "rec_spikes", "saturating"])
def test_onnx_graph_reproduces_shared_vectors(case, tmp_path):
    """Reset to zero, bias, negative shifts, int8 inputs and saturation in onnxruntime."""
    from edgelearn.kernels.image import from_image
    qnet = from_image((VEC / f"lif_{case}.bin").read_bytes())
    with np.load(VEC / f"lif_{case}.npz", allow_pickle=False) as z:
        v = {k: z[k] for k in z.files}
    path = tmp_path / "v.onnx"
    save_quant_onnx(qnet, path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    x = v["x"]
    state = {i.name: np.zeros((x.shape[1], int(i.shape[1])), np.float32)
             for i in sess.get_inputs() if i.name != "input"}
    for t in range(x.shape[0]):
        out = dict(zip(names, sess.run(None, {"input": x[t].astype(np.float32), **state})))
        state = {n: out[n[:-3] + "_out"] for n in state}
        assert np.array_equal(out["output"], v["output"][t])
        for la in qnet.layers:
            assert np.array_equal(out[f"{la.name}.membrane_out"], v[f"membrane__{la.name}"][t])


def test_float32_decay_split_equals_apply_decay():
    """The exchange graphs' decay (d = 64 d_hi + d_lo, two floors) is round_shift(x d, 12) for
    every 12-bit d and int16 x (all d, 2000 x incl. the extremes), evaluated in float32."""
    from edgelearn.fixed import apply_decay
    from edgelearn.kernels.step_graph import StepGraph, _decay
    x = np.concatenate([[-32768, -32767, -1, 0, 1, 32766, 32767],
                        np.random.default_rng(9).integers(-32768, 32768, 1993)])
    d = np.arange(4097)
    g = StepGraph()
    out = _decay(g, "x", d, "t")
    g.outputs = [(out, None)]
    got = run_step_graph(g, {"x": x[:, None].astype(np.float32)})[out]
    assert np.array_equal(got, apply_decay(x[:, None], d[None, :]))
