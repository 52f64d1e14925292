"""The C firmware's kernel and LPL rule replay the shared vectors bit for bit: the host build of
the vector harness (firmware/tests/test_vectors.c) reads the same .npz files and images."""

import json
import math
import subprocess
from pathlib import Path

import pytest

from edgelearn.kernels import cbuild
from edgelearn.kernels.lpl_codes import lpl_block
from edgelearn.rules import lpl_rate
from tests._hang import HANG_SECONDS

ROOT = Path(__file__).resolve().parents[1]
VEC = ROOT / "tests" / "vectors"


def lif_cases():
    m = json.loads((VEC / "fixed.json").read_text())
    return [e for e in m["vectors"] if e["kind"] == "lif_network"]


def lpl_cases():
    m = json.loads((VEC / "rules" / "manifest.json").read_text())
    return [e for e in m["vectors"] if e["rule"] == "lpl_rate"]


def codes_file(entry, tmp_path: Path) -> Path:
    conv = {k: (math.inf if v == "inf" else -math.inf if v == "-inf" else v)
            for k, v in entry["params"].items()}
    p = lpl_rate.Params(**conv)
    path = tmp_path / f"{entry['name']}.codes"
    path.write_bytes(lpl_block(p, entry["w_shift"], entry["n_out"]))
    return path


def harness_commands(tmp_path: Path) -> list[tuple[str, list[str]]]:
    """(label, arguments) of every shared-vector check the harness runs."""
    out = [("primitives", ["primitives", str(VEC / "fixed_primitives.npz")])]
    for e in lif_cases():
        out.append((e["name"], ["lif", str(VEC / e["image"]), str(VEC / e["file"])]))
    for e in lpl_cases():
        out.append((e["name"], ["lpl", str(VEC / e["file"]), str(codes_file(e, tmp_path)),
                                str(e["seed"])]))
    return out


def check_output(label: str, r: subprocess.CompletedProcess) -> None:
    assert r.returncode == 0, f"{label}: {r.stdout}{r.stderr}"
    lines = r.stdout.strip().splitlines()
    assert lines and all(line.startswith("ok ") for line in lines), r.stdout


@pytest.fixture(scope="module")
def host_harness():
    return cbuild.build("vectors")


def test_host_build_replays_every_vector(host_harness, tmp_path):
    cases = harness_commands(tmp_path)
    assert len(cases) == 1 + len(lif_cases()) + len(lpl_cases()) >= 10
    for label, args in cases:
        r = subprocess.run([str(host_harness), *args], capture_output=True, text=True,
                           timeout=HANG_SECONDS)
        check_output(label, r)
        if args[0] == "lpl":
            assert "ok lpl reference" in r.stdout and "ok lpl fast" in r.stdout
        if args[0] == "lif":
            assert "ok lif dense int64" in r.stdout


def test_harness_detects_a_wrong_vector(host_harness, tmp_path):
    """The check can fail: one flipped expected value is reported."""
    import numpy as np

    e = lif_cases()[0]
    with np.load(VEC / e["file"], allow_pickle=False) as z:
        arrays = {k: z[k].copy() for k in z.files}
    arrays["output"][3, 0, 0] += 1
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    r = subprocess.run([str(host_harness), "lif", str(VEC / e["image"]), str(bad)],
                       capture_output=True, text=True, timeout=HANG_SECONDS)
    assert r.returncode == 1 and "FAIL" in r.stdout and "output step 3" in r.stdout


QEMU = "qemu-system-arm"


def run_cm3(elf: Path, args: list[str], machine: str = "mps2-an385") -> subprocess.CompletedProcess:
    """The semihosted harness under QEMU: arguments and files through semihosting."""
    semi = ",".join(["enable=on", "target=native", "arg=el_vectors"] + [f"arg={a}" for a in args])
    return subprocess.run([QEMU, "-M", machine, "-nographic", "-monitor", "none", "-serial",
                           "null", "-semihosting-config", semi, "-kernel", str(elf)],
                          capture_output=True, text=True, timeout=HANG_SECONDS, cwd=ROOT)


def test_cortex_m3_build_replays_every_vector(tmp_path):
    """The same harness built with arm-none-eabi-gcc for Cortex-M3, run under QEMU mps2-an385:
    the integer kernel and the LPL rule are bit-exact on the M3 too."""
    elf = cbuild.build("vectors-cm3")
    for label, args in harness_commands(tmp_path):
        rel = [str(Path(a).relative_to(ROOT)) if a.startswith(str(ROOT)) else a for a in args]
        check_output(label, run_cm3(elf, rel))
