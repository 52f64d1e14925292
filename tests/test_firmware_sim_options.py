"""The simulator's command line (``python -m firmware_sim`` / ``edgelearn firmware-sim``): every
bad option, unopenable port and impossible board is one stderr line ``PROG: error: ...`` and
exit code 2 (edgelearn.boundary.run_command), and ``--check`` does everything but serve."""

import resource
import socket
import subprocess
import sys

import pytest

from firmware_sim.cli import main
from tests._hang import HANG_SECONDS

# every case carries --check: were a bad value accepted, the case would return 0, not serve
BAD = [
    (["--port", "socket-server://127.0.0.1:99999"], "PORT in 0..65535"),
    (["--port", "socket-server://127.0.0.1"], "PORT in 0..65535"),
    (["--port", "socket-server://127.0.0.1:-1"], "PORT in 0..65535"),
    (["--port", "socket-server://127.0.0.1:٣"], "PORT in 0..65535"),
    (["--port", "socket-server://192.0.2.1:0"], "cannot listen on 192.0.2.1:0"),
    (["--port", ""], "expected socket-server://HOST:PORT"),
    (["--port", "/no/such/tty"], "cannot open '/no/such/tty'"),
    (["--port", "socket-server://127.0.0.1:0", "--impl", "c", "--flash", "100"], "too small"),
    (["--port", "/dev/ttyUSB9", "--impl", "c"], "--impl c serves --pty or --port"),
    (["--pty", "--ram", "9" * 400], "argument --ram"),
    (["--pty", "--ram", "5GiB"], "at most 4294967295 B"),
    (["--pty", "--ram", "0"], "argument --ram"),
    (["--pty", "--ram", "1"], "device RAM"),
    (["--pty", "--flash", "100"], "too small for two slots"),
    (["--pty", "--flash", "nan"], "argument --flash"),
    (["--pty", "--baud", "-5"], "argument --baud"),
    (["--pty", "--baud", "1e30"], "argument --baud"),
    (["--pty", "--baud", "4294967296"], "argument --baud"),
    (["--pty", "--window", "0"], "argument --window"),
    (["--pty", "--window", "65"], "argument --window"),
    (["--pty", "--max-payload", "64"], "argument --max-payload"),
    (["--pty", "--seed", "-1"], "argument --seed"),
    (["--pty", "--protocol-version", "256"], "argument --protocol-version"),
    (["--pty", "--reset-after-bytes", "-1"], "argument --reset-after-bytes"),
    (["--pty", "--profile", "pdp11"], "unknown device profile 'pdp11'"),
    (["--pty", "--impl", "rust"], "argument --impl"),
    (["--pty", "--frobnicate"], "unrecognized arguments"),
    ([], "one of the arguments --pty --port is required"),
]


@pytest.mark.parametrize("argv,needle", BAD, ids=[" ".join(a)[:60] for a, _ in BAD])
def test_bad_option_is_one_line_and_exit_2(argv, needle, capsys):
    assert main([*argv, "--check"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("firmware_sim: error: "), lines
    assert needle in lines[0], lines


def test_port_in_use_and_unwritable_flash_file(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["--port", f"socket-server://127.0.0.1:{port}", "--check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot listen on 127.0.0.1:{port}" in err[0], err
    flash_file = tmp_path / "no" / "such" / "b.flash"
    assert main(["--pty", "--flash-file", str(flash_file), "--check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot be written" in err[0], err


@pytest.mark.parametrize("entry,prog", [(["-m", "firmware_sim"], "firmware_sim"),
                                        (["-m", "edgelearn", "firmware-sim"],
                                         "edgelearn firmware-sim")])
def test_port_out_of_range_from_both_commands(entry, prog):
    """The issue's case: it used to end in an OverflowError traceback from bind()."""
    r = subprocess.run([sys.executable, *entry, "--port", "socket-server://127.0.0.1:99999"],
                       capture_output=True, text=True, timeout=HANG_SECONDS)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith(f"{prog}: error: argument --port: ") and "0..65535" in lines[0]


def _address_space(limit: int):
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@pytest.mark.parametrize("option", ["--ram", "--flash"])
def test_board_larger_than_the_host_memory_is_one_line(option):
    r = subprocess.run([sys.executable, "-m", "firmware_sim", "--pty", option, "4294967295",
                        "--check"], capture_output=True, text=True, timeout=HANG_SECONDS,
                       preexec_fn=_address_space(1536 << 20))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert "4294967295 B do" in lines[0] and "fit in this host's memory" in lines[0], lines


def test_check_builds_the_board_and_opens_the_port_without_serving(tmp_path, capsys):
    assert main(["--pty", "--profile", "linux", "--check"]) == 0
    out = capsys.readouterr().out
    assert "options ok (linux-board, RAM 16777216 B" in out and "port /dev/pts/" in out, out
    assert main(["--port", "socket-server://127.0.0.1:0", "--ram", "64KiB", "--flash-file",
                 str(tmp_path / "b.flash"), "--check"]) == 0
    out = capsys.readouterr().out
    assert "RAM 65536 B" in out and "port socket://127.0.0.1:" in out, out
    assert main(["--pty", "--impl", "c", "--check"]) == 0
    assert "options ok (" in capsys.readouterr().out
