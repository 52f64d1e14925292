"""NIR files written by snnTorch 1.0.0's own exporter (tools/make_nir_fixtures.py) import with
NIR's semantics: edgelearn's spikes equal snnTorch's import_from_nir spikes and a forward-Euler
NIR simulation, for LIF (Leaky) and CubaLIF (Synaptic) nets, exactly."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("nir", reason="NIR support is the optional 'nir' extra")

from edgelearn.cli import main  # noqa: E402
from edgelearn.io import load_network, load_nir  # noqa: E402
from edgelearn.runtime.reference import run  # noqa: E402

FIX = Path(__file__).resolve().parent / "fixtures"
TOOL = Path(__file__).resolve().parents[1] / "tools" / "make_nir_fixtures.py"
KINDS = ["lif", "cubalif"]
DT = 1e-4                      # snnTorch writes its time constants for this step


def _tool():
    spec = importlib.util.spec_from_file_location("make_nir_fixtures", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _fixture(kind):
    with np.load(FIX / f"snntorch_{kind}.npz", allow_pickle=False) as z:
        return z["x"], z["hidden"], z["output"]


def _edgelearn_spikes(net, x):
    rec = run(net, x.astype(np.float32), record=("spikes",))
    hidden = rec.spikes[net.layers[0].name]
    return hidden.astype(np.uint8), rec.output.astype(np.uint8)


@pytest.mark.parametrize("kind", KINDS)
def test_import_reproduces_snntorch_import_from_nir(kind):
    x, hidden, output = _fixture(kind)
    net = load_nir(FIX / f"snntorch_{kind}.nir", dt=DT)
    assert [la.reset for la in net.layers] == ["zero_immediate"] * 2
    h, o = _edgelearn_spikes(net, x)
    assert hidden.mean() > 0.02 and output.mean() > 0.02        # the nets do spike
    np.testing.assert_array_equal(h, hidden)
    np.testing.assert_array_equal(o, output)


@pytest.mark.parametrize("kind", KINDS)
def test_the_reset_mode_matters_on_these_files(kind):
    """edgelearn's other zero reset (input of the step after a spike discarded) does not
    reproduce them: the fixtures discriminate."""
    x, hidden, output = _fixture(kind)
    net = load_nir(FIX / f"snntorch_{kind}.nir", dt=DT)
    for la in net.layers:
        net = net.replace_layer(la.name, reset="zero")
    h, o = _edgelearn_spikes(net, x)
    assert (h != hidden).sum() + (o != output).sum() > 10


@pytest.mark.parametrize("kind", KINDS)
def test_import_equals_a_forward_euler_nir_simulation(kind):
    import nir
    x, _, _ = _fixture(kind)
    graph = nir.read(FIX / f"snntorch_{kind}.nir")
    ref_h, ref_o = _tool().nir_reference(graph, x)
    h, o = _edgelearn_spikes(load_nir(graph, dt=DT), x)
    np.testing.assert_array_equal(h, ref_h)
    np.testing.assert_array_equal(o, ref_o)


@pytest.mark.parametrize("kind", KINDS)
def test_fixture_spikes_are_snntorchs_own(kind):
    """With snnTorch installed (CI installs 1.0.0), its importer run now gives the stored
    spikes: the fixtures are what snnTorch computes, not what edgelearn does."""
    pytest.importorskip("snntorch", reason="snnTorch 1.0.0 is installed by .ci/run")
    pytest.importorskip("nirtorch")
    import nir
    x, hidden, output = _fixture(kind)
    h, o = _tool().snntorch_spikes(nir.read(FIX / f"snntorch_{kind}.nir"), x)
    np.testing.assert_array_equal(h, hidden)
    np.testing.assert_array_equal(o, output)


def test_convert_cli_keeps_the_semantics_through_onnx(tmp_path, capsys):
    out = tmp_path / "lif.onnx"
    assert main(["convert", str(FIX / "snntorch_lif.nir"), "-o", str(out), "--dt", "1e-4"]) == 0
    x, hidden, output = _fixture("lif")
    np.testing.assert_array_equal(_edgelearn_spikes(load_network(out), x)[1], output)
    back = tmp_path / "back.nir"
    assert main(["convert", str(out), "-o", str(back)]) == 0
    np.testing.assert_array_equal(_edgelearn_spikes(load_nir(back, dt=DT), x)[1], output)


def test_plan_and_deploy_take_nir_with_dt(tmp_path, capsys):
    """plan and deploy accept NIR (their help says so) and need --dt for it."""
    nir_file = str(FIX / "snntorch_lif.nir")
    rc = main(["plan", nir_file, "--budget", "16KiB"])
    err = capsys.readouterr().err
    assert rc == 2 and "give --dt SECONDS" in err, err
    assert main(["plan", nir_file, "--budget", "16KiB", "--dt", "1e-4"]) == 0
    assert "memory plan" in capsys.readouterr().out
    x, _, _ = _fixture("lif")
    calib = tmp_path / "calib.npz"
    with open(calib, "wb") as fh:
        np.savez(fh, x=np.swapaxes(x, 0, 1))
    rc = main(["deploy", nir_file, "--dt", "1e-4", "--budget", "16KiB", "--calib", str(calib),
               "--quiet"])
    assert rc == 0, capsys.readouterr().err


def test_list_devices(capsys):
    with pytest.raises(SystemExit) as e:
        main(["plan", "--list-devices"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "cortex-m0plus-64k" in out and "(default)" in out
