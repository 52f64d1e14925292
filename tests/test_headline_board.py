"""The headline deployment (models/speech_digits.onnx, the new-user stream, LPL + hEP with
replay) on the host engine and on a simulated board over the link: bit-identical predictions,
scores, learned weights and learning state, and plan == measured arena use on both."""

import numpy as np
import pytest

from edgelearn.adapt.bundle import load_bundle, plan_bundle, requested_config
from edgelearn.adapt.session import make_target
from edgelearn.adapt.streams import load_stream
from edgelearn.memory import get_profile, parse_bytes
from edgelearn.memory.layout import LinkShape
from edgelearn.targets.spec import parse_target


def test_speech_model_on_host_and_board_agree_bit_for_bit_with_plan_equal_measured():
    bundle = load_bundle("models/speech_digits.onnx")
    x, y, _ = load_stream("new_user", bundle.qnet.n_in, seed=0, limit=14)
    profile = get_profile("cortex-m4-256k")
    req = requested_config(bundle, "all", True)
    assert req.lpl_layers and req.hep
    targets = {}
    for kind, link in (("host", None), ("sim", LinkShape())):
        plan = plan_bundle(bundle, parse_bytes("256KiB"), profile, req, link)
        assert plan.config.lpl_layers and plan.config.hep, plan.dropped
        targets[kind] = make_target(parse_target(kind), bundle, plan, seed=5, progress=False)
    host, board = targets["host"], targets["sim"]
    try:
        for t in (host, board):
            t.set_learning(True, True)
        for i in range(len(x)):
            a, b = host.infer(x[i]), board.infer(x[i])
            assert a.prediction == b.prediction and a.spikes == b.spikes
            np.testing.assert_array_equal(np.asarray(a.scores, np.float32),
                                          np.asarray(b.scores, np.float32))
            if i % 2 == 0:                                   # half the labels
                host.teach(int(y[i]))
                board.teach(int(y[i]))
        wh, wb = host.get_weights(), board.get_weights()
        assert set(wh) == set(wb)
        for k in wh:
            np.testing.assert_array_equal(wh[k], wb[k], err_msg=k)
        th, tb = host.telemetry(), board.telemetry()
        assert th.lpl_updates == tb.lpl_updates > 0 and th.hep_updates == tb.hep_updates > 0
        assert th.arena_high_water == host.plan.total_bytes
        assert tb.arena_high_water == board.plan.total_bytes
        assert board.plan.total_bytes - host.plan.total_bytes == \
            sum(b.nbytes for b in board.plan.buffers if b.category == "link")
        # a clean line: no frame arrived damaged. Timer retransmissions are not asserted: they
        # fire whenever the board process is descheduled longer than the timeout (seen at load
        # average 5), and the device answers them from its reply cache, so results are equal.
        assert board.client.stats.bad_frames == 0
    finally:
        board.close()


@pytest.mark.parametrize("epoch", [1, 8])
def test_c_board_arena_high_water_equals_the_plan(epoch):
    """The C firmware's host build (sim?impl=c) running the headline deployment with LPL and
    hEP uses exactly the planned arena: every buffer, the step's working memory
    (kernel.scratch, lpl.scratch) included, is in edgelearn.memory.layout; with a learning
    epoch of 8 too (the epoch sums in the LPL state, the epoch means in lpl.scratch)."""
    bundle = load_bundle("models/speech_digits.onnx")
    x, y, _ = load_stream("new_user", bundle.qnet.n_in, seed=0, limit=6)
    req = requested_config(bundle, "all", True, epoch=epoch)
    plan = plan_bundle(bundle, parse_bytes("256KiB"), get_profile("cortex-m4-256k"), req,
                       LinkShape())
    names = [b.name for b in plan.buffers]
    assert plan.config.lpl_layers and plan.config.hep
    assert names[-2:] == ["kernel.scratch", "lpl.scratch"]
    board = make_target(parse_target("serial:sim?impl=c&ram=262144"), bundle, plan, seed=5,
                        progress=False)
    try:
        board.set_learning(True, True)
        for i in range(len(x)):
            board.infer(x[i])
            board.teach(int(y[i]))
        tel = board.telemetry()
        assert tel.lpl_updates > 0 and tel.hep_updates > 0
        assert tel.arena_high_water == plan.total_bytes
    finally:
        board.close()
