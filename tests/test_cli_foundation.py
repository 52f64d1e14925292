"""edgelearn info / convert / run, and every bad input: one line on stderr, exit 2, no file."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from edgelearn.cli import main
from edgelearn.io import build_model, load_network, save_nir, save_onnx
from edgelearn.runtime.reference import run as run_reference
from test_onnx_profile import make_net, spikes_in
from tests._hang import HANG_SECONDS

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture
def model_path(tmp_path):
    path = tmp_path / "m.onnx"
    save_onnx(make_net("rlif"), path)
    return path


@pytest.fixture
def x_path(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, spikes_in(20, 3, 12))
    return path


def fails(capsys, argv, match, out: Path | None = None):
    """Assert exit 2, one stderr line containing ``match``, no traceback, no output file."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert match in lines[0], lines[0]
    assert "Traceback" not in err
    if out is not None:
        assert not out.exists()
        assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


def test_help_has_examples(capsys):
    for cmd in ("info", "convert", "run"):
        with pytest.raises(SystemExit) as ex:
            main([cmd, "--help"])
        assert ex.value.code == 0
        assert "examples:" in capsys.readouterr().out


def test_every_option_of_every_command_says_what_it_does():
    """README: every command has --help; an option without a help line (once `data baseline
    --time-pools`, `board upload --verify`, the demo's options) leaves its meaning and default
    to guesswork."""
    import argparse

    from edgelearn.cli import build_parser

    def bare(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from bare(sub, path + [name])
            elif action.option_strings and not action.help:
                yield " ".join(path + [action.option_strings[-1]])

    assert list(bare(build_parser(), ["edgelearn"])) == []


def test_info_text_and_json(capsys, model_path):
    assert main(["info", str(model_path)]) == 0
    text = capsys.readouterr().out
    assert "hidden" in text and "rlif" in text and "bytes at int8" in text
    assert main(["info", str(model_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    net = make_net("rlif")
    assert info["parameters"] == net.n_parameters
    assert info["bytes_float32"] == 4 * net.n_parameters and info["bytes_int8"] == net.n_parameters
    assert [la["n_out"] for la in info["layers"]] == [10, 5]


def test_info_quantized(tmp_path, capsys):
    from edgelearn.io.onnx_quant import save_quant_onnx
    from edgelearn.quant import quantize_network

    net = make_net("rlif")
    qnet, _ = quantize_network(net, spikes_in(30, 4, net.n_in))
    save_quant_onnx(qnet, tmp_path / "q.onnx")
    assert main(["info", str(tmp_path / "q.onnx"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "quantized" and info["parameters"] == net.n_parameters
    # the integer input edgelearn run takes: signed input_bits (spikes: 3 bits, scale 1)
    assert (info["input_bits"], info["input_scale"]) == (qnet.input_bits, qnet.input_scale)
    assert main(["info", str(tmp_path / "q.onnx")]) == 0
    out = capsys.readouterr().out
    assert "quantized network" in out
    lim = 1 << (qnet.input_bits - 1)
    assert f"input: signed {qnet.input_bits}-bit integers [{-lim}, {lim - 1}]" in out
    fails(capsys, ["convert", tmp_path / "q.onnx", "-o", tmp_path / "f.onnx"],
          "is a quantized edgelearn model", tmp_path / "f.onnx")


def test_info_opaque(capsys):
    assert main(["info", str(FIX / "snntorch_leaky_zero.onnx"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "opaque" and "reset" in info["why_no_learning"]


@pytest.mark.parametrize("backend", ["numpy", "onnxruntime"])
def test_run_writes_output_and_spikes(tmp_path, capsys, model_path, x_path, backend):
    out = tmp_path / "y.npz"
    assert main(["run", str(model_path), "--input", str(x_path), "-o", str(out),
                 "--backend", backend]) == 0
    y = np.load(out, allow_pickle=False)
    ref = run_reference(make_net("rlif"), np.load(x_path))
    assert y["output"].shape == (20, 3, 5)
    np.testing.assert_array_equal(y["output"], ref.output)
    np.testing.assert_array_equal(y["spikes/hidden"], ref.spikes["hidden"])


def test_run_2d_input_and_opaque(tmp_path, capsys):
    x = tmp_path / "x2.npy"
    np.save(x, spikes_in(10, 1, 8)[:, 0])
    out = tmp_path / "y.npz"
    assert main(["run", str(FIX / "snntorch_leaky_zero.onnx"), "--input", str(x),
                 "-o", str(out)]) == 0
    assert np.load(out)["output"].shape == (10, 1, 6)


def test_convert_nir_and_scan(tmp_path, capsys):
    net = make_net("lif")
    save_nir(net, tmp_path / "m.nir")
    out = tmp_path / "m.onnx"
    assert main(["convert", str(tmp_path / "m.nir"), "--dt", "1e-3", "-o", str(out),
                 "--graph", "scan"]) == 0
    back = load_network(out)
    assert [la.name for la in back.layers] == ["hidden", "last"]
    fails(capsys, ["convert", tmp_path / "m.nir", "-o", tmp_path / "n.onnx"], "--dt",
          tmp_path / "n.onnx")


def test_convert_third_party(tmp_path, capsys):
    out = tmp_path / "t.onnx"
    assert main(["convert", str(FIX / "snntorch_synaptic_leaky.onnx"), "-o", str(out)]) == 0
    assert len(load_network(out).layers) == 2
    fails(capsys, ["convert", FIX / "snntorch_leaky_zero.onnx", "-o", tmp_path / "o.onnx"],
          "cannot be converted", tmp_path / "o.onnx")


# ---- bad model files ----------------------------------------------------------------------

def _write(tmp_path, model) -> Path:
    path = tmp_path / "bad.onnx"
    path.write_bytes(model.SerializeToString() if hasattr(model, "SerializeToString") else model)
    return path


def _good():
    return build_model(make_net("lif"), "step")


def _init(model, name):
    return next(t for t in model.graph.initializer if t.name == name)


def _nan_weight(m):
    w = numpy_helper.to_array(_init(m, "hidden.weight")).copy()
    w[0, 0] = np.nan
    _init(m, "hidden.weight").CopyFrom(numpy_helper.from_array(w, "hidden.weight"))


def _inf_weight(m):
    w = numpy_helper.to_array(_init(m, "last.weight")).copy()
    w[1, 2] = np.inf
    _init(m, "last.weight").CopyFrom(numpy_helper.from_array(w, "last.weight"))


def _shape_mismatch(m):
    w = np.zeros((10, 11), np.float32)
    _init(m, "hidden.weight").CopyFrom(numpy_helper.from_array(w, "hidden.weight"))


def _absurd(m):
    t = _init(m, "hidden.weight")
    t.ClearField("raw_data")
    del t.dims[:]
    t.dims.extend([1 << 20, 1 << 20])


def _unknown_op(m):
    m.graph.node[1].op_type = "FooBar"


def _non_profile_op(m):
    node = m.graph.node[1]
    node.op_type = "Relu"
    del node.attribute[:]
    del node.input[1:]


def _missing_input(m):
    del m.graph.input[1]


def _extra_input(m):
    m.graph.input.append(helper.make_tensor_value_info("junk", onnx.TensorProto.FLOAT, ["B", 3]))


def _wrong_state_shape(m):
    vi = next(i for i in m.graph.input if i.name == "last.membrane_in")
    vi.type.tensor_type.shape.dim[1].dim_value = 7


BAD_MODELS = [
    (_nan_weight, "layer 'hidden' weight contains NaN or Inf"),
    (_inf_weight, "layer 'last' weight contains NaN or Inf"),
    (_shape_mismatch, "layer 'hidden' weight has shape 10x11, expected 10x12"),
    (_absurd, "declares shape [1048576, 1048576]"),
    (_unknown_op, "unknown op 'FooBar' (node 'hidden/weight')"),
    (_non_profile_op, "unknown op 'Relu' (node 'hidden/weight') in an edgelearn profile"),
    (_missing_input, "graph input 'hidden.current_in' is missing"),
    (_extra_input, "unexpected graph input 'junk'"),
    (_wrong_state_shape, "graph input 'last.membrane_in' dimension 1 is 7, expected 5"),
]


@pytest.mark.parametrize("mutate, message", BAD_MODELS, ids=[f.__name__ for f, _ in BAD_MODELS])
@pytest.mark.parametrize("cmd", ["info", "convert", "run"])
def test_bad_model_files(tmp_path, capsys, x_path, mutate, message, cmd):
    model = _good()
    mutate(model)
    path = _write(tmp_path, model)
    out = tmp_path / ("out.onnx" if cmd == "convert" else "out.npz")
    argv = {"info": ["info", path],
            "convert": ["convert", path, "-o", out],
            "run": ["run", path, "--input", x_path, "-o", out]}[cmd]
    fails(capsys, argv, message, None if cmd == "info" else out)


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"\x08\x07\x12\x05hello world, not onnx at all \xff\xfe", "not a valid ONNX file"),
])
def test_garbage_files(tmp_path, capsys, content, message):
    fails(capsys, ["info", _write(tmp_path, content)], message)


def test_truncated_file(tmp_path, capsys, model_path):
    data = model_path.read_bytes()
    for cut in (len(data) // 2, len(data) - 3, 40):
        path = tmp_path / "cut.onnx"
        path.write_bytes(data[:cut])
        out = tmp_path / "c.onnx"
        code = main(["convert", str(path), "-o", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert not out.exists()


def test_missing_model_file(tmp_path, capsys):
    fails(capsys, ["info", tmp_path / "nope.onnx"], "no such file")


def test_custom_domain_op_in_unrecognised_graph(tmp_path, capsys):
    g = helper.make_graph(
        [helper.make_node("Mystery", ["x", "s"], ["y", "s_out"], domain="acme")], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["B", 2]),
         helper.make_tensor_value_info("s", onnx.TensorProto.FLOAT, ["B", 2])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["B", 2]),
         helper.make_tensor_value_info("s_out", onnx.TensorProto.FLOAT, ["B", 2])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                            helper.make_opsetid("acme", 1)], ir_version=8)
    fails(capsys, ["info", _write(tmp_path, m)], "onnxruntime cannot load")


# ---- bad inputs to run --------------------------------------------------------------------

def _npy(tmp_path, arr, name="bad.npy"):
    path = tmp_path / name
    np.save(path, arr, allow_pickle=True)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda: np.zeros((20, 3, 11), np.float32), "expects 12 input channels, got 11"),
    (lambda: np.zeros((20,), np.float32), "must be [T, n_in] or [T, B, n_in]"),
    (lambda: np.zeros((2, 2, 2, 12), np.float32), "must be [T, n_in] or [T, B, n_in]"),
    (lambda: np.zeros((0, 12), np.float32), "empty"),
    (lambda: np.full((5, 12), np.nan, np.float32), "NaN or Inf"),
    (lambda: np.zeros((5, 12), np.complex64), "must be numeric"),
    (lambda: np.array([["a"] * 12] * 5), "must be numeric"),
    (lambda: np.array([None, 1], dtype=object), "holds Python objects"),
])
@pytest.mark.parametrize("backend", ["numpy", "onnxruntime"])
def test_bad_inputs(tmp_path, capsys, model_path, make, message, backend):
    out = tmp_path / "y.npz"
    fails(capsys, ["run", model_path, "--input", _npy(tmp_path, make()), "-o", out,
                   "--backend", backend], message, out)


def test_input_not_npy(tmp_path, capsys, model_path):
    bad = tmp_path / "x.npy"
    bad.write_bytes(b"\x93NUMPY garbage")
    out = tmp_path / "y.npz"
    fails(capsys, ["run", model_path, "--input", bad, "-o", out], "not a readable .npy", out)
    fails(capsys, ["run", model_path, "--input", tmp_path / "none.npy", "-o", out],
          "does not exist", out)
    npz = tmp_path / "x.npz"
    np.savez(npz, a=np.zeros((3, 12)))
    fails(capsys, ["run", model_path, "--input", npz, "-o", out], "(.npz)", out)


def test_absurd_input_shape_refused_before_allocating(tmp_path, capsys, model_path):
    bad = tmp_path / "huge.npy"
    header = {"descr": "<f4", "fortran_order": False, "shape": (1 << 20, 1 << 20, 12)}
    with open(bad, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        fh.write(b"\0" * 64)
    out = tmp_path / "y.npz"
    fails(capsys, ["run", model_path, "--input", bad, "-o", out], "declares shape", out)


def test_opaque_numpy_backend_refused(tmp_path, capsys):
    x = _npy(tmp_path, np.zeros((3, 8), np.float32))
    out = tmp_path / "y.npz"
    fails(capsys, ["run", FIX / "snntorch_leaky_zero.onnx", "--input", x, "-o", out,
                   "--backend", "numpy"], "runs only with --backend onnxruntime", out)


def test_real_entry_point_prints_no_traceback(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    proc = subprocess.run([sys.executable, "-m", "edgelearn", "info", str(bad)],
                          capture_output=True, text=True, timeout=HANG_SECONDS)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
