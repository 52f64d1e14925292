"""Every command in the README's code blocks runs as written (placeholders filled in) and
every `--help` shows examples that name files which exist: the README and the help stay true.

Placeholders: MODEL is models/speech_digits.onnx; outputs (MODEL.q.onnx, MODEL.bin, TRAIN.npz,
...) go to a temporary folder; a board port (/dev/ttyACM0) is a simulated board with a flash
file, so `deploy` then `adapt` meet the same board; adaptation runs get --limit 20 and a report
folder in the temporary folder. Commands that cannot run here say why in SKIP.
"""

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgelearn.cli import build_parser
from tests._hang import HANG_SECONDS

ROOT = Path(__file__).resolve().parents[1]
SKIP = {
    "pip install": "installs the package (the test runs inside that install)",
    "firmware-sim --pty": "serves a board until stopped (tests/test_link_cli.py starts one)",
    "edgelearn fleet": "1000 devices take minutes (tests/test_fleet*.py run fleets)",
    "|": "a synopsis of several commands, not one command",
}


def readme_commands() -> list[str]:
    """The `edgelearn ...` and `python tools/...` lines of the README's fenced code blocks
    (continuation lines joined, comments removed)."""
    text = (ROOT / "README.md").read_text()
    out = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line.startswith(("edgelearn ", "python tools/", "pip install")):
                out.append(line)
    return out


def runnable(cmd: str, tmp: Path) -> list[str]:
    """The command with its placeholders filled in, as an argv for this interpreter."""
    board = f"sim?flash_file={tmp / 'board.flash'}"
    subs = [("MODEL.q.onnx", tmp / "sd.q.onnx"), ("MODEL.bin", tmp / "sd.bin"),
            ("MODEL.tflite", tmp / "sd.tflite"), ("MODEL.nir", tmp / "sd.nir"),
            ("MODEL.onnx", "models/speech_digits.onnx"), ("MODEL", "models/speech_digits.onnx"),
            ("TRAIN.npz", tmp / "train.npz"), ("TEST.npz", tmp / "test.npz"),
            ("snn.nir", tmp / "snn.nir"), ("snn.onnx", tmp / "snn.onnx"),
            ("X.npy", tmp / "x.npy"), ("Y.npz", tmp / "y.npz"), ("/dev/ttyACM0", board)]
    argv = shlex.split(cmd)
    for i, a in enumerate(argv):
        for key, value in subs:
            if key in a:
                a = a.replace(key, str(value))
        argv[i] = a
    if argv[0] == "edgelearn":
        if "--adapt" in argv and argv[1] in ("deploy", "adapt"):
            argv += ["--limit", "20", "--report", str(tmp / f"report{len(list(tmp.iterdir()))}")]
        if argv[1] == "deploy" and "--report" not in argv:
            argv += ["--report", str(tmp / "report-noadapt")]
        return [sys.executable, "-m", "edgelearn", *argv[1:]]
    return [sys.executable, *argv[1:]]


@pytest.mark.slow
def test_every_readme_command_runs(tmp_path):
    # inputs the README assumes a user has
    np.save(tmp_path / "x.npy", (np.random.default_rng(0).random((100, 64)) < 0.2)
            .astype(np.float32))
    assert subprocess.run([sys.executable, "-m", "edgelearn", "convert",
                           "models/randman_small.onnx", "-o", str(tmp_path / "snn.nir")],
                          cwd=ROOT, capture_output=True).returncode == 0
    ran = 0
    for cmd in readme_commands():
        why = next((w for k, w in SKIP.items() if k in cmd), None)
        if why:
            continue
        argv = runnable(cmd, tmp_path)
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=HANG_SECONDS)
        assert proc.returncode == 0, f"README command failed: {cmd}\n{proc.stderr[-1500:]}"
        ran += 1
    assert ran >= 15


def _parsers():
    def walk(p, name):
        yield name, p
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for k, sp in a.choices.items():
                    yield from walk(sp, f"{name} {k}")
    yield from walk(build_parser(), "edgelearn")


def _help_texts():
    for name, p in _parsers():
        yield name, p.format_help()
    for tool in (["-m", "firmware_sim"], ["tools/quantize.py"], ["tools/train_in_loop.py"],
                 ["tools/train.py"], ["tools/train_head.py"]):
        proc = subprocess.run([sys.executable, *tool, "--help"], cwd=ROOT, capture_output=True,
                              text=True, timeout=HANG_SECONDS)
        assert proc.returncode == 0, proc.stderr
        yield " ".join(tool), proc.stdout


def test_every_help_has_examples_naming_files_that_exist():
    for name, text in _help_texts():
        if name == "edgelearn firmware-sim":
            continue          # it hands --help to python -m firmware_sim (checked below)
        assert "examples:" in text or "example" in text.lower(), f"{name} --help has no examples"
        for path in re.findall(r"(?<![\w/])((?:models|tests|tools|bench)/[\w./-]+)", text):
            assert (ROOT / path.rstrip(".")).exists(), f"{name} --help names {path}"


def test_info_and_run_read_quantized_models_and_device_images(tmp_path, capsys):
    from edgelearn.cli import main
    from edgelearn.kernels.lif_fixed import quantize_input
    from edgelearn.kernels.lif_kernels import qrun
    from edgelearn.adapt.bundle import load_bundle

    q, image = tmp_path / "m.q.onnx", tmp_path / "m.bin"
    proc = subprocess.run([sys.executable, "tools/quantize.py", "models/randman_small.onnx",
                           "--calib", "models/randman_small.calib.npz", "-o", str(q),
                           "--image", str(image)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert main(["info", str(image)]) == 0
    assert "quantized network 'randman_small'" in capsys.readouterr().out
    x = (np.random.default_rng(1).random((50, 2, 32)) < 0.2).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    qnet = load_bundle(q).qnet
    want = qrun(qnet, quantize_input(qnet, x)).output
    for model, backend in ((q, "numpy"), (image, "numpy"), (image, "c")):
        assert main(["run", str(model), "--input", str(tmp_path / "x.npy"), "-o",
                     str(tmp_path / "y.npz"), "--backend", backend]) == 0
        with np.load(tmp_path / "y.npz") as z:
            np.testing.assert_array_equal(z["output"], want)
