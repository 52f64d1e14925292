"""Issue 14, host side: every crafted input that once crashed, hung or exhausted edgelearn now
ends in one stderr line and exit code 2 (or in success), within the time and memory caps of
tests/_fuzz_harness.py (512 MiB peak RSS per case). The files come from tests/hostile_files.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import hostile_files as hf
from _fuzz_harness import Worker, check

ROOT = hf.ROOT
MODEL = ROOT / "models" / "randman_small.onnx"
CALIB = ROOT / "models" / "randman_small.calib.npz"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    made = {make.__name__.removeprefix("make_"): make(folder) for make in hf.FILES}
    np.save(folder / "x_one.npy", np.ones((2, 1, 4), np.float32))
    np.save(folder / "x_2p28.npy", np.full((1, 1, 4), 2.0**28, np.float32))
    made["folder"] = folder
    return made


@pytest.fixture(scope="module")
def worker():
    with Worker(timeout=90) as w:
        yield w


def fails(worker, argv, needle, cwd, entry="edgelearn", limits=None):
    """The case exits 2 with one line containing ``needle``."""
    res = worker.run(argv, entry=entry, cwd=cwd, limits=limits)
    prog = "quantize" if entry == "quantize" else f"edgelearn {argv[0]}"
    check(res, prog, allow_ok=False)
    assert needle in res.lines[0], res.lines[0]
    return res


# -- item 3: hangs and memory blow-ups from tiny files ------------------------------------------

def _commands(f, folder):
    return {"info": ["info", f],
            "plan": ["plan", f, "--budget", "64KiB"],
            "convert": ["convert", f, "-o", folder / "out.onnx"],
            "run": ["run", f, "--input", folder / "x_one.npy", "-o", folder / "y.npz"],
            "deploy": ["deploy", f, "--budget", "256KiB", "--quiet"]}


@pytest.mark.parametrize("command", ["info", "plan", "convert", "run", "deploy"])
def test_loop_of_1e12_iterations_is_refused(files, worker, command):
    argv = _commands(files["loop_onnx"], files["folder"])[command]
    fails(worker, argv, "runs 1000000000000 iterations, limit 1000000", files["folder"])
    assert not (files["folder"] / "out.onnx").exists()


@pytest.mark.parametrize("name", ["constant_of_shape_onnx", "expand_onnx"])
@pytest.mark.parametrize("command", ["info", "run"])
def test_constant_gigabyte_tensor_is_refused_before_allocation(files, worker, name, command):
    argv = _commands(files[name], files["folder"])[command]
    res = fails(worker, argv, "would take 1073741824 bytes, limit 268435456", files["folder"])
    assert res.peak_rss < 400 << 20


def test_loop_with_input_dependent_trip_count_is_stopped_in_time(files, worker):
    res = fails(worker, ["run", files["dynamic_loop_onnx"], "--input",
                         files["folder"] / "x_one.npy", "-o", files["folder"] / "y.npz"],
                "an onnxruntime run took longer than 2 s", files["folder"],
                limits={"run_seconds": 2})
    assert res.seconds < 30


def test_input_dependent_gigabyte_tensor_hits_the_runtime_arena(files, worker):
    fails(worker, ["run", files["runtime_blowup_onnx"], "--input", files["folder"] / "x_2p28.npy",
                   "-o", files["folder"] / "y.npz"], "needs more than the 268435456 bytes",
          files["folder"])


def test_npz_declaring_64_gigabytes(files, worker):
    folder = files["folder"]
    fails(worker, ["deploy", MODEL, "--budget", "256KiB", "--adapt", files["huge_npz"],
                   "--quiet", "--report", folder / "r_huge"],
          "declares shape (1000000, 1000, 64) of uint8 (64000000000 bytes)", folder)
    fails(worker, [MODEL, "--calib", files["huge_npz"], "-o", folder / "q.onnx"],
          "(64000000000 bytes) but holds at most", folder, entry="quantize")
    fails(worker, ["run", MODEL, "--input", files["huge_npy"], "-o", folder / "y.npz"],
          "(4398046511104 bytes) but holds at most 64 bytes", folder)


def test_nir_dataset_declaring_2_gigabytes(files, worker):
    fails(worker, ["info", files["nir_huge_dataset"], "--dt", "1e-3"],
          "declares 2147483648 bytes but stores 0", files["folder"])


# -- item 4: tracebacks --------------------------------------------------------------------

@pytest.mark.parametrize("name, needle", [
    ("quantized_weights_list", "'weights' must be a JSON object"),
    ("quantized_deep_json", "metadata key 'edgelearn.quantized' is nested 5000 deep, limit 64"),
    ("quantized_deep_image_meta", "device image metadata is nested 5000 deep, limit 64"),
    ("quantized_renamed_io", "graph input 'input' is missing"),
    ("quantized_nan_dt", "dt must be > 0 seconds, got nan"),
])
def test_hostile_quantized_onnx(files, worker, name, needle):
    fails(worker, ["info", files[name]], needle, files["folder"])


@pytest.mark.parametrize("name, needle", [
    ("quantized_weights_list", "'weights' must be a JSON object"),
    ("quantized_deep_image_meta", "nested 5000 deep"),
])
def test_hostile_quantized_onnx_never_reaches_a_board(files, worker, name, needle):
    fails(worker, ["board", "--port", "loop://", "upload", files[name]], needle, files["folder"])


def test_hostile_option_values(files, worker):
    folder = files["folder"]
    fails(worker, ["deploy", MODEL, "--budget", "256KiB", "--seed", "-1"],
          "argument --seed: must be an integer in [0, 2147483647], got -1", folder)
    fails(worker, ["plan", MODEL, "--budget", "9" * 400],
          "is above the largest supported 1125899906842624 bytes", folder)
    fails(worker, ["board", "--port", "loop://", "--timeout", "-1", "info"],
          "argument --timeout: must be a finite number in (0.0, 3600.0], got -1", folder)
    fails(worker, ["board", "--port", "loop://", "--timeout", "nan", "info"],
          "argument --timeout", folder)
    fails(worker, ["info", MODEL, "--dt", "inf"], "argument --dt", folder)


def test_report_folder_that_cannot_be_used(files, worker):
    folder = files["folder"]
    afile = folder / "a_file"
    afile.write_text("x")
    base = ["deploy", MODEL, "--budget", "256KiB", "--adapt", files["nan_voice_stream"],
            "--quiet", "--report"]
    fails(worker, base + [afile], f"cannot use '{afile}' as a folder: it is a file", folder)
    fails(worker, base + [afile / "sub"], f"'{afile}' is a file", folder)
    fails(worker, base + ["/proc/edgelearn-test/report"], "cannot write into folder '/proc'",
          folder)
    assert afile.read_text() == "x"


def test_stream_with_nan_voices_runs(files, worker):
    res = worker.run(["deploy", MODEL, "--budget", "256KiB", "--adapt", files["nan_voice_stream"],
                      "--quiet", "--no-baseline", "--report", files["folder"] / "r_nan"],
                     cwd=files["folder"])
    check(res, "edgelearn deploy")
    assert res.code == 0 and "adapted" in res.stdout


def test_calibration_values_of_3e38(files, worker):
    fails(worker, ["deploy", MODEL, "--budget", "256KiB", "--calib", files["calib_3e38"],
                   "--quiet"], "to NaN or Inf at float32 (inputs up to 3e+38)", files["folder"])


@pytest.mark.parametrize("name, needle", [
    ("missing", "does not exist"),
    ("object_npy", "holds Python objects (pickled data), which edgelearn never loads"),
    ("pickle_file", "is not a .npy array"),
    ("calib_npz", "holds several arrays (.npz); give one .npy array"),
    ("huge_npy", "but holds at most 64 bytes"),
])
def test_board_upload_calibration_files(files, worker, name, needle):
    calib = files.get(name, files["folder"] / "missing.npy")
    fails(worker, ["board", "--port", "loop://", "upload", MODEL, "--calib", calib], needle,
          files["folder"])


def test_pull_to_an_unwritable_path(files, worker, tmp_path):
    flash = tmp_path / "b.flash"
    port = f"sim?flash_file={flash}"
    up = worker.run(["board", "--port", port, "upload", MODEL, "--calib", _calib_npy(tmp_path)],
                    cwd=tmp_path)
    check(up, "edgelearn board")
    assert up.code == 0, up.stderr
    fails(worker, ["board", "--port", port, "pull", "-o", "/proc/edgelearn-test.bin"],
          "cannot write '/proc/edgelearn-test.bin'", tmp_path)


def _calib_npy(folder):
    path = folder / "calib.npy"
    np.save(path, (np.random.default_rng(0).random((20, 4, 32)) < 0.2).astype(np.float32))
    return path


def test_a_simulator_that_does_not_start_is_one_line(files, worker):
    fails(worker, ["board", "--port", "sim?flash=100", "info"],
          "firmware_sim did not start (", files["folder"])


def test_quantize_tool(files, worker):
    folder = files["folder"]
    fails(worker, [MODEL, "--calib", files["broken_zip"], "-o", folder / "q.onnx"],
          "is not a readable npz archive", folder, entry="quantize")
    fails(worker, [files["profile_nan_weight"], "--calib", CALIB, "-o", folder / "q.onnx"],
          "layer 'hidden0' weight contains NaN or Inf", folder, entry="quantize")
    fails(worker, [MODEL, "--calib", CALIB, "-o", folder / "q.onnx", "--headroom", "nan"],
          "argument --headroom", folder, entry="quantize")
    assert not (folder / "q.onnx").exists()


# -- item 5: smaller -------------------------------------------------------------------------

def test_damaged_checkpoint_says_how_to_start_over(files, worker):
    fails(worker, ["deploy", MODEL, "--budget", "256KiB", "--adapt", files["nan_voice_stream"],
                   "--quiet", "--report", files["damaged_checkpoint"]],
          "is damaged (the archive is not a readable npz archive: File is not a zip file); "
          "delete it or rerun with --fresh to start over", files["folder"])


def test_nir_complex_weights_and_underflowing_dt(files, worker):
    fails(worker, ["info", files["nir_complex"], "--dt", "1e-3"],
          "weight must be real numbers, got dtype complex128", files["folder"])
    fails(worker, ["convert", files["nir"], "--dt", "1e-300", "-o", files["folder"] / "n.onnx"],
          "with dt = 1e-300 s 32 nonzero weights underflow float32", files["folder"])
    assert not (files["folder"] / "n.onnx").exists()


def test_profile_with_nan_dt(files, worker):
    for cmd in (["info"], ["plan", "--budget", "64KiB"]):
        fails(worker, [cmd[0], files["profile_nan_dt"], *cmd[1:]], "is not valid JSON",
              files["folder"])
