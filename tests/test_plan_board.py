"""The memory plan of a board target is made from what the board reports in its HELLO reply
(window, max_payload, RAM), so plan == measured arena high-water on every board setting."""

import json

import pytest

from edgelearn.cli import main

MODEL = "models/randman_small.onnx"


def _deploy(target, budget, tmp_path, capsys, limit=6):
    report = tmp_path / "rep"
    rc = main(["deploy", MODEL, "--target", target, "--budget", budget, "--adapt",
               _stream(tmp_path), "--limit", str(limit),
               "--labels", "0.5", "--report", str(report), "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    return json.loads((report / "metrics.json").read_text()), captured.out


def _stream(tmp_path):
    from edgelearn.data import save_npz
    from edgelearn.data.randman import randman_splits
    p = tmp_path / "stream.npz"
    if not p.exists():
        _, te = randman_splits(n_classes=10, n_units=32, n_steps=50, dim_manifold=2,
                               alpha=2.0, samples_per_class=10, seed=0)
        save_npz(te, p)
    return str(p)


@pytest.mark.parametrize("query", ["", "?window=2&max_payload=256", "?window=5&max_payload=600"])
def test_serial_board_plan_equals_measured(query, tmp_path, capsys):
    m, _ = _deploy(f"serial:sim{query}", "64KiB", tmp_path, capsys)
    assert m["memory"]["measured_high_water"] == m["memory"]["planned_total"]
    assert m["runs"]["adapted"]["telemetry"]["hep_updates"] > 0


def test_tight_board_ram_is_planned_not_refused(tmp_path, capsys):
    """A board with default link settings whose RAM is the budget: the plan must leave room
    for the board's own link buffers (it used to assume a window of 2 and the board then
    refused the head with NO_MEMORY)."""
    m, _ = _deploy("serial:sim?ram=28000", "28000", tmp_path, capsys)
    assert m["memory"]["measured_high_water"] == m["memory"]["planned_total"] <= 28000


def test_budget_above_board_ram_is_one_line_error(tmp_path, capsys):
    rc = main(["deploy", MODEL, "--target", "serial:sim?ram=32KiB", "--budget", "64KiB",
               "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "exceeds the RAM the board reports (32768 B)" in err, err


def test_plan_without_board_says_which_link_it_assumes(capsys):
    assert main(["plan", MODEL, "--budget", "64KiB", "--target", "sim"]) == 0
    out = capsys.readouterr().out
    assert "link: window 8, max payload 1024 B" in out, out


def test_plan_asks_a_serial_board_for_its_link(capsys):
    assert main(["plan", MODEL, "--budget", "64KiB", "--target",
                 "serial:sim?window=3&max_payload=300"]) == 0
    out = capsys.readouterr().out
    assert "link: window 3, max payload 300 B (reported by the board)" in out, out


@pytest.mark.parametrize("impl", ["python", "c"])
def test_board_flash_holds_the_planned_image(impl, tmp_path, capsys):
    """Flash against the plan: after a deploy the board's own HELLO reports an active slot
    of exactly the plan's model image bytes (per slot), on the Python board and on the C
    firmware (host build), the flash kept in a file across the two connections."""
    from edgelearn.link.client import Client
    url = f"sim?impl={impl}&flash_file={tmp_path / 'flash.bin'}"
    m, _ = _deploy(f"serial:{url}", "64KiB", tmp_path, capsys)
    planned = m["plan"]["image_bytes"]
    with Client(url) as client:
        info = client.info
    assert info.active_slot in (0, 1)
    assert info.active_len == planned > 0
    assert 2 * planned <= info.flash
