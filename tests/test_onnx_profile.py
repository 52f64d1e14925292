"""The edgelearn ONNX profile: export, import, verification, onnxruntime vs numpy agreement."""

import json

import numpy as np
import onnx
import pytest

from edgelearn.errors import ModelFileError, VerificationError
from edgelearn.io import OnnxRuntimeBackend, build_model, load_model, load_network, save_onnx
from edgelearn.io import onnx_meta as M
from edgelearn.model import Layer, Network
from edgelearn.runtime.reference import run

KINDS = ["lif", "rlif", "readout"]
RESETS = ["subtract", "zero", "zero_immediate"]


def make_net(kind: str = "lif", reset: str = "subtract", seed: int = 0, n_in: int = 12,
             per_neuron: bool = True) -> Network:
    """A small network whose last layer is of ``kind`` (a hidden LIF layer feeds it)."""
    rng = np.random.default_rng(seed)
    hid = 10
    first = Layer("hidden", rng.standard_normal((hid, n_in)) * 0.7, alpha=0.6, beta=0.85,
                  threshold=1.0, reset=reset, bias=rng.standard_normal(hid) * 0.1)
    n = 5
    const = (lambda lo, hi: rng.uniform(lo, hi, n)) if per_neuron else (lambda lo, hi: lo)
    w = rng.standard_normal((n, hid)) * 0.9
    if kind == "lif":
        last = Layer("last", w, alpha=const(0.2, 0.7), beta=const(0.7, 0.95),
                     threshold=const(0.5, 1.2), reset=reset)
    elif kind == "rlif":
        last = Layer("last", w, alpha=const(0.2, 0.7), beta=const(0.7, 0.95),
                     threshold=const(0.5, 1.2), reset=reset,
                     recurrent=rng.standard_normal((n, n)) * 0.5)
    else:
        last = Layer("last", w, alpha=const(0.2, 0.7), beta=const(0.7, 0.95), spiking=False)
    return Network((first, last), name=f"net_{kind}_{reset}", dt=1e-3, meta={"origin": "test"})


def spikes_in(T, B, n, seed=1, p=0.3):
    return (np.random.default_rng(seed).random((T, B, n)) < p).astype(np.float32)


def assert_same_network(a: Network, b: Network):
    assert a.name == b.name and a.dt == b.dt and a.meta == b.meta
    assert len(a.layers) == len(b.layers)
    for la, lb in zip(a.layers, b.layers):
        assert la.name == lb.name and la.reset == lb.reset and la.spiking == lb.spiking
        for f in ("weight", "alpha", "beta", "threshold", "bias", "recurrent"):
            va, vb = getattr(la, f), getattr(lb, f)
            if f == "threshold" and not la.spiking:
                continue
            assert (va is None) == (vb is None), f
            if va is not None:
                np.testing.assert_array_equal(va, vb)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("graph", ["step", "scan"])
def test_onnxruntime_agrees_with_numpy(kind, reset, batch, graph):
    net = make_net(kind, reset)
    x = spikes_in(40, batch, net.n_in) * 1.5
    ref = run(net, x)
    rec = OnnxRuntimeBackend(net, graph).run(x)
    assert rec.output.shape == (40, batch, net.n_out)
    assert set(rec.spikes) == set(ref.spikes)
    for name in ref.spikes:
        assert ref.spikes[name].sum() > 0, "probe should make layer spike"
        np.testing.assert_array_equal(rec.spikes[name], ref.spikes[name])
    np.testing.assert_allclose(rec.output, ref.output, atol=1e-5)
    for got, want in zip(rec.final_state, ref.final_state):
        np.testing.assert_allclose(got.membrane, want.membrane, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("graph", ["step", "scan"])
def test_round_trip(tmp_path, kind, reset, graph):
    net = make_net(kind, reset, per_neuron=(reset == "subtract"))
    path = tmp_path / f"m_{graph}.onnx"
    save_onnx(net, path, graph=graph)
    back = load_network(path)
    assert_same_network(net, back)
    meta = M.read_metadata(onnx.load(str(path)))
    assert meta[M.KEY_GRAPH] == graph and meta[M.KEY_VERSION] == "1"
    assert load_model(path).name == net.name


def test_files_are_valid_onnx(tmp_path):
    for graph in ("step", "scan"):
        model = build_model(make_net("rlif"), graph)
        onnx.checker.check_model(model, full_check=True)
        names_in = [i.name for i in model.graph.input]
        assert "hidden.current_in" in names_in and "last.membrane_in" in names_in
        names_out = [o.name for o in model.graph.output]
        assert "hidden.spikes" in names_out and "output" in names_out


def _tamper(tmp_path, mutate, graph="step", kind="lif"):
    model = build_model(make_net(kind), graph)
    mutate(model)
    path = tmp_path / "bad.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_verification_names_layer_step_and_deviation(tmp_path):
    def poison(model):  # graph beta differs from metadata beta only by the metadata edit
        meta = M.read_metadata(model)
        layers = json.loads(meta[M.KEY_LAYERS])
        layers[1]["beta"] = 0.5
        M.write_metadata(model, {M.KEY_LAYERS: json.dumps(layers)})
        for init in model.graph.initializer:
            if init.name == "last.beta":
                init.CopyFrom(onnx.numpy_helper.from_array(np.full(5, 0.5, np.float32),
                                                           "last.beta"))
        # now change the graph's behaviour without touching the metadata: use alpha for beta
        for node in model.graph.node:
            if node.name == "last/decay_membrane":
                node.input[0] = "last.alpha"

    path = _tamper(tmp_path, poison)
    with pytest.raises(VerificationError, match=r"layer 'last' step 0 .*membrane.*deviation"):
        load_network(path)
    assert isinstance(load_network(path, verify=False), Network)


def test_verification_catches_scan_graph_change(tmp_path):
    def poison(model):
        scan = next(n for n in model.graph.node if n.op_type == "Scan")
        body = scan.attribute[0].g
        for node in body.node:
            if node.name == "body/hidden/fire":  # threshold > U instead of U > threshold
                node.input[0], node.input[1] = node.input[1], node.input[0]

    path = _tamper(tmp_path, poison, graph="scan")
    with pytest.raises(VerificationError, match="layer 'hidden' step 0"):
        load_network(path)


def test_quantized_key_is_tolerated(tmp_path):
    def add_key(model):
        M.write_metadata(model, {M.KEY_QUANTIZED: json.dumps({"scheme": "future"})})

    assert isinstance(load_network(_tamper(tmp_path, add_key)), Network)


def test_newer_profile_version_refused(tmp_path):
    path = _tamper(tmp_path, lambda m: M.write_metadata(m, {M.KEY_VERSION: "99"}))
    with pytest.raises(ModelFileError, match="version 99 is not supported"):
        load_network(path)


def test_corrupt_metadata_json(tmp_path):
    path = _tamper(tmp_path, lambda m: M.write_metadata(m, {M.KEY_LAYERS: "[{broken"}))
    with pytest.raises(ModelFileError, match="'edgelearn.layers' is not valid JSON"):
        load_network(path)


def test_metadata_constant_must_match_graph(tmp_path):
    def edit(m):
        layers = json.loads(M.read_metadata(m)[M.KEY_LAYERS])
        layers[0]["alpha"] = 0.25
        M.write_metadata(m, {M.KEY_LAYERS: json.dumps(layers)})

    with pytest.raises(ModelFileError, match="layer 'hidden' alpha in the graph differs"):
        load_network(_tamper(tmp_path, edit))


@pytest.mark.parametrize("fields", [("reset",), ("threshold",), ("reset", "threshold")])
def test_readout_reset_and_threshold_may_be_null_or_absent(tmp_path, fields):
    # docs/onnx-profile.md section 4: a readout does not use them
    for drop in (False, True):
        def edit(m):
            layers = json.loads(M.read_metadata(m)[M.KEY_LAYERS])
            for f in fields:
                if drop:
                    del layers[1][f]
                else:
                    layers[1][f] = None
            M.write_metadata(m, {M.KEY_LAYERS: json.dumps(layers)})

        net = load_network(_tamper(tmp_path, edit, kind="readout"))
        assert not net.layers[1].spiking
        assert net.layers[1].reset == "subtract"


def test_spiking_layer_threshold_may_not_be_null(tmp_path):
    def edit(m):
        layers = json.loads(M.read_metadata(m)[M.KEY_LAYERS])
        layers[0]["threshold"] = None
        M.write_metadata(m, {M.KEY_LAYERS: json.dumps(layers)})

    with pytest.raises(ModelFileError, match="metadata threshold must be a number or a list"):
        load_network(_tamper(tmp_path, edit))


@pytest.mark.parametrize("graph", ["step", "scan"])
def test_backend_continues_from_state(graph):
    net = make_net("rlif", "zero")
    x = spikes_in(30, 4, net.n_in) * 1.5
    be = OnnxRuntimeBackend(net, graph)
    first = be.run(x[:12])
    second = be.run(x[12:], state=first.final_state)
    whole = run(net, x)
    np.testing.assert_array_equal(np.concatenate([first.output, second.output]), whole.output)


def test_byte_corruption_never_escapes_as_a_crash(tmp_path):
    """Seeded random byte flips: every outcome is a loaded model or an EdgelearnError."""
    from edgelearn.errors import EdgelearnError

    save_onnx(make_net("rlif", "zero"), tmp_path / "a.onnx", graph="scan")
    src = (tmp_path / "a.onnx").read_bytes()
    rng = np.random.default_rng(7)
    refused = 0
    for _ in range(150):
        data = bytearray(src)
        for j in rng.integers(0, len(data), rng.integers(1, 4)):
            data[j] = rng.integers(0, 256)
        path = tmp_path / "f.onnx"
        path.write_bytes(bytes(data))
        try:
            load_model(path)
        except EdgelearnError as exc:
            refused += 1
            assert "\n" not in str(exc)
    assert refused > 50
