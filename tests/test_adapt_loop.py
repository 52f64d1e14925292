"""The adaptation loop against a small deterministic in-test target (a nearest-mean classifier
whose int8 'weights' move toward taught samples)."""

import numpy as np
import pytest

from edgelearn.adapt.checkpoint import load_checkpoint, save_checkpoint
from edgelearn.adapt.guard import GuardParams
from edgelearn.adapt.loop import LoopConfig, label_mask, run_adaptation
from edgelearn.errors import DataError
from edgelearn.targets.base import SampleResult, Target, Telemetry


class MeanTarget(Target):
    name = "mean"
    capabilities = frozenset({"hep", "pull"})

    def __init__(self, n_classes, n_in, poison_after=None):
        self.w = np.zeros((n_classes, n_in), dtype=np.int8)
        self.head = np.zeros(n_classes, dtype=np.float32)
        self.last = None
        self.learn = False
        self.taught = 0
        self.poison_after = poison_after

    def infer(self, x):
        f = x.sum(axis=0).astype(np.float64)
        self.last = f
        scores = self.w.astype(np.float64) @ f + self.head
        return SampleResult(int(np.argmax(scores)), scores, f)

    def teach(self, label):
        if not self.learn:
            return
        self.taught += 1
        f = np.clip(self.last, 0, 20).astype(np.int64)
        self.w[label] = np.clip(self.w[label].astype(np.int64) + (f > 2), -128, 127)
        if self.poison_after is not None and self.taught >= self.poison_after:
            self.head[:] = np.nan

    def set_learning(self, lpl, hep):
        self.learn = hep

    def get_weights(self):
        return {"w": self.w.copy(), "head": self.head.copy()}

    def set_weights(self, weights):
        self.w[...] = weights["w"]
        self.head[...] = weights["head"]

    def telemetry(self):
        return Telemetry(hep_updates=self.taught)


def _stream(n=200, n_classes=3, n_in=12, T=5, seed=0):
    rng = np.random.default_rng(seed)
    ys = rng.integers(0, n_classes, n)
    protos = rng.random((n_classes, n_in)) < 0.3
    xs = (rng.random((n, T, n_in)) < 0.1 + 0.6 * protos[ys][:, None, :]).astype(np.uint8)
    return xs, ys


def test_label_mask_exact_fraction_and_seeded():
    m = label_mask(1000, 0.1, 3)
    assert m.sum() == 100 and np.array_equal(m, label_mask(1000, 0.1, 3))
    assert not np.array_equal(m, label_mask(1000, 0.1, 4))


def test_learning_beats_frozen():
    xs, ys = _stream()
    cfg = LoopConfig(lpl=False, hep=True, label_fraction=0.3, checkpoint=False)
    res = run_adaptation(MeanTarget(3, 12), xs, ys, cfg, progress=False)
    frozen = run_adaptation(MeanTarget(3, 12), xs, ys,
                            LoopConfig(lpl=False, hep=False, checkpoint=False), progress=False)
    assert res.accuracy > frozen.accuracy + 0.3
    assert res.labelled.sum() == 60


def test_guard_rolls_back_injected_divergence(tmp_path):
    xs, ys = _stream()
    cfg = LoopConfig(lpl=False, hep=True, label_fraction=0.3,
                     guard=GuardParams(check_every=20, held_in=0))
    target = MeanTarget(3, 12, poison_after=10)
    res = run_adaptation(target, xs, ys, cfg, workdir=tmp_path, progress=False)
    assert res.rollbacks and "non-finite" in res.rollbacks[0]["reason"]
    assert np.all(np.isfinite(target.head))
    arrays, doc = load_checkpoint(tmp_path / "checkpoint.npz")
    assert np.all(np.isfinite(arrays["w/head"]))


def test_resume_after_stop_matches_uninterrupted(tmp_path):
    xs, ys = _stream(seed=5)
    cfg = LoopConfig(lpl=False, hep=True, label_fraction=0.2, guard=GuardParams(check_every=25))
    full = run_adaptation(MeanTarget(3, 12), xs, ys, cfg, workdir=tmp_path / "a", progress=False)
    part = run_adaptation(MeanTarget(3, 12), xs, ys, cfg, workdir=tmp_path / "b",
                          progress=False, stop_after=110)
    assert len(part.hits) == 110
    # a fresh target (the device was power-cycled): the loop restores weights from sample 100
    rest = run_adaptation(MeanTarget(3, 12), xs, ys, cfg, workdir=tmp_path / "b", progress=False)
    assert rest.resumed_from == 100
    np.testing.assert_array_equal(rest.hits, full.hits)


def test_checkpoint_rejects_garbage(tmp_path):
    p = tmp_path / "c.npz"
    p.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(DataError, match="is damaged.*rerun with --fresh"):
        load_checkpoint(p)
    save_checkpoint(p, {"a": np.arange(3)}, {"k": 1})
    arrays, doc = load_checkpoint(p)
    assert doc == {"k": 1} and arrays["a"].tolist() == [0, 1, 2]


def test_empty_stream_refused():
    with pytest.raises(DataError, match="empty"):
        run_adaptation(MeanTarget(3, 12), np.zeros((0, 5, 12)), np.zeros(0), LoopConfig(),
                       progress=False)


def test_checkpoint_of_another_stream_is_not_resumed(tmp_path):
    xs, ys = _stream(seed=5)
    cfg = LoopConfig(lpl=False, hep=True, label_fraction=0.2, guard=GuardParams(check_every=25))
    run_adaptation(MeanTarget(3, 12), xs, ys, cfg, workdir=tmp_path, progress=False,
                   stop_after=60)
    xs2, ys2 = _stream(seed=6)
    res = run_adaptation(MeanTarget(3, 12), xs2, ys2, cfg, workdir=tmp_path, progress=False)
    assert res.resumed_from == 0


def test_damaged_checkpoint_record_is_refused(tmp_path):
    xs, ys = _stream(seed=5)
    cfg = LoopConfig(lpl=False, hep=True, label_fraction=0.2, guard=GuardParams(check_every=25))
    run_adaptation(MeanTarget(3, 12), xs, ys, cfg, workdir=tmp_path, progress=False,
                   stop_after=60)
    arrays, doc = load_checkpoint(tmp_path / "checkpoint.npz")
    doc["hits"] = doc["hits"][:3]
    save_checkpoint(tmp_path / "checkpoint.npz", arrays, doc)
    with pytest.raises(DataError, match="damaged"):
        run_adaptation(MeanTarget(3, 12), xs, ys, cfg, workdir=tmp_path, progress=False)
