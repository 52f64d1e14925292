"""``edgelearn board`` and ``edgelearn firmware-sim`` end to end against a simulated board."""

import json
import subprocess
import sys

import onnx

from edgelearn.cli import main
from edgelearn.io.onnx_quant import load_qnetwork
from edgelearn.kernels.image import from_image, to_image
from tests._inprocess_board import test_image
from tests._hang import HANG_SECONDS


def test_board_upload_info_pull_reset(tmp_path, capsys):
    model = tmp_path / "m.bin"
    model.write_bytes(test_image(seed=70))
    port = f"sim?flash_file={tmp_path / 'b.flash'}&profile=cortex-m0plus-64k"
    assert main(["board", "--port", port, "upload", str(model)]) == 0
    assert "verify readback ok" in capsys.readouterr().out
    assert main(["board", "--port", port, "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["profile"] == "cortex-m0plus-64k" and info["ram"] == 64 * 1024
    assert info["active_len"] == model.stat().st_size and info["telemetry_cycles_per_step"] > 0
    out = tmp_path / "pulled.bin"
    assert main(["board", "--port", port, "pull", "-o", str(out)]) == 0
    assert from_image(out.read_bytes()).name == "linktest"
    as_onnx = tmp_path / "pulled.onnx"     # a .onnx name gets an ONNX file, not image bytes
    assert main(["board", "--port", port, "pull", "-o", str(as_onnx)]) == 0
    assert "(quantized ONNX)" in capsys.readouterr().out
    assert to_image(load_qnetwork(as_onnx)) == out.read_bytes()
    assert onnx.load(str(as_onnx)).graph.node
    assert main(["board", "--port", port, "reset", "--reboot"]) == 0


def test_board_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "junk.bin"
    bad.write_bytes(b"not an image" * 10)
    assert main(["board", "--port", "sim", "upload", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not an edgelearn device image" in err[0]
    assert main(["board", "--port", "loop://", "--timeout", "0.02", "--retries", "1",
                 "info"]) == 2
    assert "loop-back, not a device" in capsys.readouterr().err


def test_firmware_sim_command_forwards_to_the_simulator():
    out = subprocess.run([sys.executable, "-m", "edgelearn", "firmware-sim", "--help"],
                         capture_output=True, text=True, timeout=HANG_SECONDS)
    assert out.returncode == 0 and "--flash-file" in out.stdout and "--pty" in out.stdout


def test_board_upload_accepts_quantized_and_float_onnx(tmp_path, capsys):
    from edgelearn.io.onnx_quant import save_quant_onnx
    from edgelearn.kernels.image import to_image
    from tests._inprocess_board import test_qnetwork
    qnet = test_qnetwork(seed=71)
    path = tmp_path / "q.onnx"
    save_quant_onnx(qnet, path)
    port = f"sim?flash_file={tmp_path / 'b.flash'}"
    assert main(["board", "--port", port, "upload", str(path), "--verify", "crc"]) == 0
    assert main(["board", "--port", port, "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["active_len"] == len(to_image(qnet))
    model = __import__("pathlib").Path(__file__).resolve().parent.parent / "models" / \
        "randman_small.onnx"
    assert main(["board", "--port", port, "upload", str(model)]) == 0
    assert "verify readback ok" in capsys.readouterr().out
