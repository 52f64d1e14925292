import numpy as np
import pytest

from edgelearn.errors import MemoryBudgetError
from edgelearn.memory import Arena, get_profile, parse_bytes
from edgelearn.memory.planner import AdaptConfig, HeadShape, LayerShape, plan_deployment

LAYERS = (LayerShape("hidden", 64, 128, False, True, False),
          LayerShape("out", 128, 10, False, False, False))
HEAD = HeadShape((128, 16, 10))
FULL = AdaptConfig(lpl_layers=("hidden",), hep=True)
M4 = get_profile("cortex-m4-256k")


@pytest.mark.parametrize("text, n", [("262144", 262144), ("256KiB", 262144), ("256 kB", 256000),
                                     ("1.5MiB", 1572864), (4096, 4096)])
def test_parse_bytes(text, n):
    assert parse_bytes(text) == n


@pytest.mark.parametrize("text", ["lots", "-5", "12 parsecs", "0"])
def test_parse_bytes_rejects(text):
    with pytest.raises(MemoryBudgetError, match="size"):
        parse_bytes(text)


def test_unknown_profile_lists_known():
    with pytest.raises(MemoryBudgetError, match="known profiles: cortex-m4-256k"):
        get_profile("pdp11")


def test_arena_high_water_and_overflow_message():
    arena = Arena(100, align=4)
    a = arena.allocate("a", (3, 3), np.int8)       # 9 -> 12 bytes
    assert a.shape == (3, 3) and arena.used == 12
    arena.allocate("b", 20, np.int32)              # 80 bytes
    assert arena.high_water == 92
    with pytest.raises(MemoryBudgetError, match=r"buffer 'c' needs 12 B, 8 B free of 100 B "
                                                r"\(missing 4 B\)"):
        arena.allocate("c", 3, np.int32)
    arena.reset()
    assert arena.used == 0 and arena.high_water == 92


def test_generous_budget_keeps_everything():
    plan = plan_deployment(LAYERS, parse_bytes("256KiB"), M4, FULL, link=True, head=HEAD)
    assert plan.config == FULL and plan.dropped == []
    assert plan.total_bytes == sum(b.nbytes for b in plan.buffers) <= plan.budget
    assert all(b.nbytes % 4 == 0 for b in plan.buffers)


def test_ladder_drops_in_order_and_says_what():
    full = plan_deployment(LAYERS, parse_bytes("256KiB"), M4, FULL, link=True, head=HEAD)
    lpl = sum(b.nbytes for b in full.buffers
              if b.name.startswith("hidden.lpl") or b.name == "lpl.scratch")
    # just too small for LPL + hEP: the hEP head alone is kept
    plan = plan_deployment(LAYERS, full.total_bytes - 1, M4, FULL, link=True, head=HEAD)
    assert plan.config == AdaptConfig(hep=True)
    assert plan.dropped == ["LPL dropped (hEP head only)"]
    assert plan.total_bytes == full.total_bytes - lpl
    # too small for any learning: inference only, with every drop listed
    inf = plan.inference_bytes
    plan = plan_deployment(LAYERS, inf + 8, M4, FULL, link=True, head=HEAD)
    assert plan.config == AdaptConfig() and plan.learning_bytes == 0
    assert plan.dropped[-1] == "all learning dropped (inference only)"


def test_dropped_lists_only_what_the_chosen_rung_lacks():
    head = HeadShape(HEAD.sizes, replay=32)      # hEP learning larger than LPL's
    full = plan_deployment(LAYERS, parse_bytes("256KiB"), M4, FULL, head=head)
    hep = sum(b.nbytes for b in full.buffers if b.category == "learning"
              and b.name.startswith("head."))
    lpl = sum(b.nbytes for b in full.buffers if b.category == "learning") - hep
    assert hep > lpl                 # so the budget below fits LPL alone, not hEP alone
    plan = plan_deployment(LAYERS, full.total_bytes - hep, M4, FULL, head=head)
    assert plan.config == AdaptConfig(("hidden",))
    assert plan.dropped == ["hEP dropped (LPL only)"]


def test_hep_only_when_lpl_does_not_fit():
    plan = plan_deployment(LAYERS, parse_bytes("256KiB"), M4, AdaptConfig(("hidden",), hep=True),
                           head=HEAD)
    lpl = sum(b.nbytes for b in plan.buffers if b.name.startswith("hidden.lpl"))
    tight = plan.total_bytes - lpl
    plan = plan_deployment(LAYERS, tight, M4, AdaptConfig(("hidden",), hep=True), head=HEAD)
    assert plan.config.hep and not plan.config.lpl_layers
    assert "LPL dropped (hEP head only)" in plan.dropped


def test_refuses_when_inference_does_not_fit():
    with pytest.raises(MemoryBudgetError) as info:
        plan_deployment(LAYERS, 4096, M4, FULL, head=HEAD)
    msg = str(info.value)
    assert "inference alone needs" in msg and "budget is 4096 B" in msg
    assert "hidden.weight requested 8192 available" in msg and "\n" not in msg


def test_budget_above_profile_ram_refused():
    with pytest.raises(MemoryBudgetError, match="exceeds the RAM of profile 'cortex-m0plus-64k'"):
        plan_deployment(LAYERS, parse_bytes("128KiB"), get_profile("cortex-m0plus-64k"), FULL)


def test_link_buffers_follow_the_link_layer():
    from edgelearn.link import framing
    from edgelearn.memory.planner import LinkShape, link_buffers, max_wire_bytes

    for p in range(16, framing.MAX_PAYLOAD_LIMIT + 1):
        assert max_wire_bytes(p) == framing.max_wire_len(p), p
    bufs = {b.name: b.nbytes for b in link_buffers(LinkShape(3, 2000), 4)}
    wire = framing.max_wire_len(2000)
    assert bufs == {"link.rx": wire + 3 & ~3, "link.tx": wire + 3 & ~3,
                    "link.reply_cache": 3 * wire + 3 & ~3, "link.reorder": 3 * wire + 3 & ~3}


def test_link_shape_refuses_what_no_board_announces():
    from edgelearn.errors import ParameterError
    from edgelearn.memory.planner import LinkShape

    for window, payload in ((0, 1024), (65, 1024), (8, 15), (8, 4097)):
        with pytest.raises(ParameterError, match="link window must be 1..64"):
            LinkShape(window, payload)


def test_plan_notes_software_float_without_fpu():
    m0 = get_profile("cortex-m0plus-64k")
    plan = plan_deployment(LAYERS, parse_bytes("64KiB"), m0, AdaptConfig(hep=True), head=HEAD)
    assert plan.config.hep and "no FPU" in plan.table() and plan.to_json()["notes"]
    plan = plan_deployment(LAYERS, parse_bytes("64KiB"), M4, AdaptConfig(hep=True), head=HEAD)
    assert plan.notes == []
