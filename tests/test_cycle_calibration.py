"""The cycle-cost model (firmware_sim/cycles.py, docs/protocol.md section 14) against the C
firmware's instruction counts on emulated Cortex-M3 / M4F cores (tests/icount/cortex_m.json,
measured by tools/measure_icount.py under QEMU -icount shift=0)."""

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

from firmware_sim.cycles import COSTS, run_cycles, worst_case_cycles

ROOT = Path(__file__).resolve().parents[1]
STORED = ROOT / "tests" / "icount" / "cortex_m.json"
BOUND = 0.10            # every run's mean instructions per step, model vs measured


def _tool():
    spec = importlib.util.spec_from_file_location("measure_icount",
                                                  ROOT / "tools" / "measure_icount.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def model_per_step(core: str, run: dict) -> float:
    """What the simulator's TELEMETRY prices for the steps of one measured run."""
    act = np.asarray(run["activity"], dtype=np.int64)
    learning = [run.get("lpl_epoch", 1) if k == run["lpl_layer"] else 0
                for k in range(len(run["shapes"]))]
    return run_cycles(COSTS[core], [tuple(s) for s in run["shapes"]], act, learning) / len(act)


def check_within_bound(data: dict) -> list[float]:
    errors = []
    for d in data["cores"].values():
        for run in d["runs"]:
            measured = float(np.mean(run["instructions"]))
            err = model_per_step(d["core"], run) / measured - 1.0
            assert abs(err) <= BOUND, (d["core"], run["workload"], run["mode"], err)
            errors.append(err)
    return errors


def test_model_matches_the_stored_counts_within_the_bound():
    data = json.loads(STORED.read_text())
    assert set(data["cores"]) == {"cm3", "cm4f"}
    for d in data["cores"].values():
        modes = {(r["workload"], r["mode"]) for r in d["runs"]}
        assert len(modes) == len(d["runs"]) == 24    # 8 workloads x inference / + LPL / epoch 8
        assert sum(r.get("lpl_epoch", 1) == 8 for r in d["runs"]) == 8
        assert all(len(r["instructions"]) == data["steps"] for r in d["runs"])
    errors = check_within_bound(data)
    assert max(abs(e) for e in errors) > 0.01              # a real fit, not a copy of the data


def test_the_tables_carry_the_stored_fit():
    """cycles.py's measured rows are the fit the tool stored (3 significant digits), c_mac is
    c_value (event-driven only), and the C firmware's table (el_cycles.c) is the same."""
    data = json.loads(STORED.read_text())
    for d in data["cores"].values():
        cost = COSTS[d["core"]]
        assert {k: getattr(cost, k) for k in d["fit"]} == d["fit"]
        assert cost.c_mac == cost.c_value
        assert d["fit"] == _tool().rounded(_tool().fit(d["runs"]))
    text = (ROOT / "firmware" / "src" / "el_cycles.c").read_text()
    rows = re.findall(r'\{"([a-z0-9+-]+)",([^}]*)\}', text)
    assert len(rows) == len(COSTS)
    for core, values in rows:
        c = COSTS[core]
        want = [c.c_mac, c.c_event, c.c_value, c.c_scan, c.c_neuron, c.c_lpl, c.c_lpl_neuron,
                c.c_lpl_input, c.c_lpl_acc, c.c_step, c.clock_hz]
        assert [float(v) for v in values.split(",")] == want, core


def test_protocol_doc_cost_table_is_the_model():
    """docs/protocol.md section 14's table is what a stranger prices a board with: it must be
    the table firmware_sim and the C firmware use, column for column."""
    doc = (ROOT / "docs" / "protocol.md").read_text()
    sec = doc[doc.index("## 14."):]
    header = re.search(r"^\| core \|(.*)\|$", sec, re.M).group(1)
    cols = [h.strip() for h in header.split("|")]
    rows = re.findall(r"^\| ([a-z0-9+-]+)(?: \(measured\))? \|(.*)\|$", sec, re.M)
    rows = [(core, vals) for core, vals in rows if core in COSTS]
    assert sorted(core for core, _ in rows) == sorted(COSTS)
    for core, vals in rows:
        got = [float(v) for v in vals.split("|")]
        assert got == [getattr(COSTS[core], name) for name in cols], core


def test_model_terms_follow_the_activity():
    """The valued-input and LPL terms enter where the docs say."""
    c = COSTS["cortex-m3"]
    act = np.array([[[5, 0, 0], [2, 3, 0]], [[5, 0, 1], [2, 3, 0]]])
    base = run_cycles(c, [(64, 128), (128, 10)], act[:1], [False, False])
    valued = run_cycles(c, [(64, 128), (128, 10)], act[1:], [False, False])
    assert valued - base == pytest.approx(5 * 128 * (c.c_value - c.c_event))
    lpl = run_cycles(c, [(64, 128), (128, 10)], act[:1], [True, False])
    assert lpl - base == pytest.approx(128 * c.c_lpl_neuron + 64 * c.c_lpl_input)
    # a learning epoch of 8: an eighth of the rule, and the sums every step
    epoch = run_cycles(c, [(64, 128), (128, 10)], act[:1], [8, 0])
    assert epoch - base == pytest.approx((128 * c.c_lpl_neuron + 64 * c.c_lpl_input) / 8
                                         + (64 + 128) * c.c_lpl_acc)
    # HELLO's worst case: every input active with values, every recurrent spike
    assert worst_case_cycles(c, [(64, 128, True), (128, 10, False)]) == round(
        c.c_step + 64 * 128 * c.c_value + 128 * c.c_neuron + 128 * 128 * c.c_event
        + 128 * 10 * c.c_value + 10 * c.c_neuron)


@pytest.mark.slow
def test_model_matches_fresh_qemu_counts():
    """Re-measured under QEMU now: the model within the bound, and with the compiler the stored
    counts came from, the same counts to the instruction (-icount is deterministic)."""
    tool = _tool()
    fresh = tool.measure(["cm3", "cm4f"], 300, progress=lambda s: None)
    check_within_bound(fresh)
    stored = json.loads(STORED.read_text())
    if fresh["compiler"] == stored["compiler"]:
        for c in ("cm3", "cm4f"):
            for new, old in zip(fresh["cores"][c]["runs"], stored["cores"][c]["runs"]):
                assert new["instructions"] == old["instructions"], (c, old["workload"])
                assert new["activity"] == old["activity"], (c, old["workload"])
