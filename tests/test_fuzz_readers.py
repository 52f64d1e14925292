"""Fuzzing the readers of untrusted files through the command line (issue 14, host side).

Each surface takes valid seed files, mutates them (tests/_fuzz_inputs.py: byte-level and
structure-level) and runs the command that reads them in a capped worker process
(tests/_fuzz_harness.py). Property: exit 0, or exit 2 with one stderr line; never a traceback,
a hang (the case is killed after 90 s) or a peak RSS above 512 MiB. The default run tries a
bounded number of inputs per surface (derandomized: the same inputs on every machine); the
``-m slow`` run tries ten times as many, freshly random.
"""

from __future__ import annotations

import itertools
import shutil

import pytest
from hypothesis import strategies as st

import _fuzz_inputs as fz
import hostile_files as hf
from _fuzz_harness import Files, Worker, check, fuzz_tests, small_stream

ROOT = hf.ROOT
MODEL = ROOT / "models" / "randman_small.onnx"
CALIB = ROOT / "models" / "randman_small.calib.npz"
FIXTURES = ROOT / "tests" / "fixtures"

_counter = itertools.count()


@pytest.fixture(scope="module")
def worker():
    with Worker(timeout=90) as w:
        yield w


@pytest.fixture(scope="module")
def files(tmp_path_factory, worker):
    """Seed files by surface (bytes), and the folder cases are written to."""
    folder = tmp_path_factory.mktemp("fuzz_seeds")
    out = Files(folder=folder)
    out["onnx"] = [MODEL.read_bytes(), (FIXTURES / "snntorch_synaptic_leaky.onnx").read_bytes(),
                   (FIXTURES / "snntorch_leaky_zero.onnx").read_bytes(),
                   hf.loop_model(trips=3).SerializeToString()]
    out["quantized"] = hf.make_quantized_onnx(folder).read_bytes()
    out["nir"] = hf.make_nir(folder).read_bytes()
    out["dataset"] = small_stream(folder).read_bytes()
    out["calib"] = CALIB.read_bytes()
    out["npy"] = (folder / "x.npy").read_bytes()
    out["head"] = (ROOT / "models" / "randman_small.head.npz").read_bytes()
    from edgelearn.io.onnx_quant import load_qnetwork
    from edgelearn.kernels.image import to_image
    out["image"] = to_image(load_qnetwork(folder / "quantized.onnx"))
    report = folder / "report"
    res = worker.run(["deploy", MODEL, "--budget", "256KiB", "--adapt", folder / "stream.npz",
                      "--no-baseline", "--quiet", "--report", report], cwd=folder)
    assert res.code == 0, res.stderr
    out["checkpoint"] = (report / "checkpoint.npz").read_bytes()
    flash = folder / "seed.flash"
    res = worker.run(["board", "--port", f"sim?flash_file={flash}", "upload",
                      folder / "quantized.onnx"], cwd=folder)
    assert res.code == 0, res.stderr
    out["flash"] = flash.read_bytes()
    return out


def _write(files, data: bytes, suffix: str):
    path = files["folder"] / f"case{next(_counter)}{suffix}"
    path.write_bytes(data)
    return path


# -- one case per surface -------------------------------------------------------------------

def onnx_case(worker, files, data):
    check(worker.run(["info", _write(files, data, ".onnx")], cwd=files["folder"]),
          "edgelearn info", "onnx: edgelearn info")


def quantized_case(worker, files, data):
    path = _write(files, data, ".onnx")
    check(worker.run(["info", path], cwd=files["folder"]), "edgelearn info",
          "quantized onnx: edgelearn info")


def nir_case(worker, files, data_and_dt):
    data, dt = data_and_dt
    check(worker.run(["info", _write(files, data, ".nir"), "--dt", repr(dt)],
                     cwd=files["folder"]), "edgelearn info", "nir: edgelearn info --dt")


def dataset_case(worker, files, data):
    check(worker.run(["data", "info", _write(files, data, ".npz")], cwd=files["folder"]),
          "edgelearn data", "npz data set: edgelearn data info")


def calib_case(worker, files, data):
    path = _write(files, data, ".npz")
    check(worker.run([MODEL, "--calib", path, "-o", files["folder"] / "q.onnx"],
                     entry="quantize", cwd=files["folder"]), "quantize",
          "npz calibration: tools/quantize.py --calib")


def npy_case(worker, files, data):
    check(worker.run(["run", MODEL, "--input", _write(files, data, ".npy"), "-o",
                      files["folder"] / "y.npz"], cwd=files["folder"]),
          "edgelearn run", "npy input: edgelearn run --input")


def head_case(worker, files, data):
    folder = files["folder"] / f"head{next(_counter)}"
    folder.mkdir()
    shutil.copy(MODEL, folder / "m.onnx")
    (folder / "m.head.npz").write_bytes(data)
    check(worker.run(["plan", folder / "m.onnx", "--budget", "256KiB"], cwd=folder),
          "edgelearn plan", "npz hEP head: edgelearn plan")


def checkpoint_case(worker, files, data):
    report = files["folder"] / f"report{next(_counter)}"
    report.mkdir()
    (report / "checkpoint.npz").write_bytes(data)
    check(worker.run(["deploy", MODEL, "--budget", "256KiB", "--adapt",
                      files["folder"] / "stream.npz", "--no-baseline", "--quiet", "--report",
                      report], cwd=files["folder"]),
          "edgelearn deploy", "npz checkpoint: edgelearn deploy --adapt (resume)")


def image_case(worker, files, data):
    check(worker.run(["export-tflite", _write(files, data, ".bin"), "-o",
                      files["folder"] / "m.tflite"], cwd=files["folder"]),
          "edgelearn export-tflite", "device image: edgelearn export-tflite")


def flash_case(worker, files, data):
    path = _write(files, data, ".flash")
    check(worker.run(["board", "--port", f"sim?flash_file={path}", "info"],
                     cwd=files["folder"]), "edgelearn board",
          "flash file: edgelearn board --port sim?flash_file=F info")


# -- the default (bounded) run and the long run ---------------------------------------------

SURFACES = [  # name, one case, its inputs, inputs in the default run (the long run: 10x)
    ("onnx", onnx_case, lambda f: st.sampled_from(f["onnx"]).flatmap(fz.onnx_file), 40),
    ("quantized_onnx", quantized_case, lambda f: fz.onnx_file(f["quantized"]), 25),
    ("nir", nir_case, lambda f: st.tuples(fz.nir_file(f["nir"]),
                                         st.sampled_from([1e-3, 1e-4, 1e-300, 0.5])), 25),
    ("npz_dataset", dataset_case, lambda f: fz.npz_file(f["dataset"]), 30),
    ("npz_calibration", calib_case, lambda f: fz.npz_file(f["calib"]), 15),
    ("npy_input", npy_case, lambda f: fz.npy_file(f["npy"]), 25),
    ("npz_head", head_case, lambda f: fz.npz_file(f["head"]), 20),
    ("npz_checkpoint", checkpoint_case, lambda f: fz.npz_file(f["checkpoint"]), 6),
    ("device_image", image_case, lambda f: fz.byte_mutation(f["image"]), 25),
    ("flash_file", flash_case, lambda f: fz.flash_mutation(f["flash"]), 6),
]
for _name, _case, _inputs, _n in SURFACES:   # test_fuzz_<name> and test_fuzz_<name>_long
    globals()[f"test_fuzz_{_name}"], globals()[f"test_fuzz_{_name}_long"] = \
        fuzz_tests(_case, _inputs, _n)
