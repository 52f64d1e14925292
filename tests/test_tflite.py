"""TFLite export: the integer step graph runs bit-exactly in LiteRT and TFLite Micro."""

import argparse
import importlib.util

import numpy as np
import pytest

from edgelearn.cli import cmd_export_tflite
from edgelearn.errors import EdgelearnError
from edgelearn.io import save_onnx
from edgelearn.io.onnx_quant import save_quant_onnx
from edgelearn.io.tflite_export import tflite_bytes
from edgelearn.io.tflite_runtime import (TfliteStepper, io_names, make_interpreter,
                                         probe_tflm_arena, run_sequence)
from edgelearn.kernels.lif_kernels import qrun
from edgelearn.quant import quantize_network
from _fixed_nets import random_net, spikes

HAS_TFLM = importlib.util.find_spec("tflite_micro") is not None


@pytest.fixture(scope="module")
def qnet():
    return quantize_network(random_net(), spikes(1))[0]


def _compare(qnet, model, backend, batch):
    x = spikes(9, T=30, B=batch).astype(np.int64)
    ref = qrun(qnet, x, record=("spikes",))
    got = run_sequence(TfliteStepper(model, backend, arena=1 << 20 if backend == "tflm" else None), x)
    assert np.array_equal(got["output"], ref.output)
    assert np.array_equal(got["hidden.spikes"], ref.spikes["hidden"])
    assert ref.spikes["hidden"].mean() > 0.01          # spikes actually happen


def test_flatbuffer_layout(qnet):
    model = tflite_bytes(qnet)
    assert model[4:8] == b"TFL3"
    ins, outs = io_names(model)
    assert ins == ["input", "hidden.current_in", "hidden.membrane_in", "readout.current_in",
                   "readout.membrane_in"]
    assert outs[:2] == ["output", "hidden.spikes"]
    interp, name = make_interpreter(model)
    assert name in ("litert", "tflite-runtime")


@pytest.mark.parametrize("batch", [1, 4])
def test_litert_bit_exact(qnet, batch):
    _compare(qnet, tflite_bytes(qnet, batch=batch), "litert", batch)


@pytest.mark.skipif(not HAS_TFLM, reason="optional: tflite-micro not installed "
                                         "(pip install --pre tflite-micro)")
def test_tflm_bit_exact(qnet):
    _compare(qnet, tflite_bytes(qnet), "tflm", 1)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_TFLM, reason="optional: tflite-micro not installed")
def test_tflm_arena_probe(qnet):
    n = probe_tflm_arena(tflite_bytes(qnet))
    assert 1000 < n < 200_000


def _cli(*argv):
    p = argparse.ArgumentParser()
    cmd_export_tflite.register(p.add_subparsers())
    args = p.parse_args(["export-tflite", *map(str, argv)])
    return args.func(args)


def test_cli_export_and_check(qnet, tmp_path, capsys):
    save_quant_onnx(qnet, tmp_path / "q.onnx")
    assert _cli(tmp_path / "q.onnx", "-o", tmp_path / "q.tflite", "--check") == 0
    out = capsys.readouterr().out
    assert "check litert: 20 steps, bit-identical: True" in out
    assert (tmp_path / "q.tflite").read_bytes()[4:8] == b"TFL3"


def test_cli_refuses_float_model(tmp_path):
    save_onnx(random_net(), tmp_path / "f.onnx")
    with pytest.raises(EdgelearnError, match="is a float model"):
        _cli(tmp_path / "f.onnx", "-o", tmp_path / "f.tflite")
    assert not (tmp_path / "f.tflite").exists()


@pytest.mark.parametrize("case", ["ff_int8", "rec_spikes", "saturating"])
def test_tflite_reproduces_shared_vectors(case):
    from pathlib import Path
    from edgelearn.kernels.image import from_image
    vec = Path(__file__).parent / "vectors"
    qnet = from_image((vec / f"lif_{case}.bin").read_bytes())
    with np.load(vec / f"lif_{case}.npz", allow_pickle=False) as z:
        x, want = z["x"], z["output"]
    backends = ["litert"] + (["tflm"] if HAS_TFLM else [])
    for b in backends:
        batch = x.shape[1] if b == "litert" else 1
        model = tflite_bytes(qnet, batch=batch)
        st = TfliteStepper(model, b, arena=1 << 20 if b == "tflm" else None)
        for k in range(0, x.shape[1], batch):
            got = run_sequence(st, x[:, k:k + batch])
            assert np.array_equal(got["output"], want[:, k:k + batch]), (b, k)


@pytest.mark.parametrize("reset", ["zero", "zero_immediate"])
def test_litert_bit_exact_for_each_reset_mode(reset):
    net = random_net()
    net = net.replace_layer("hidden", reset=reset)
    q = quantize_network(net, spikes(1))[0]
    _compare(q, tflite_bytes(q, batch=2), "litert", 2)
