"""The adaptation loop: prequential evaluation with LPL on every sample and hEP on labels.

For each sample i of the stream, in order:

1. predict: ``target.infer(x_i)`` (LPL, if on, adapts the hidden layers during the sample; it
   never sees the label);
2. score the prediction against y_i (prequential: predict first, then learn);
3. with probability ``label_fraction`` (a fixed, seeded mask) the label arrives and the target
   makes one hEP update from the sample's features;
4. every ``guard.check_every`` samples: run the divergence guard; on a trip, roll the target back
   to the last good checkpoint, otherwise write a new checkpoint atomically.

A killed run resumes from the last checkpoint: the weights are put back on the target and the
loop continues at the next sample, with the metrics recorded so far.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgelearn.adapt.checkpoint import damaged, load_checkpoint, save_checkpoint
from edgelearn.adapt.guard import GuardParams, check
from edgelearn.errors import DataError, EdgelearnError, ParameterError
from edgelearn.progress import Progress
from edgelearn.targets.base import Target

CHECKPOINT = "checkpoint.npz"


@dataclass(frozen=True)
class LoopConfig:
    """Settings of one adaptation run.

    Attributes:
        lpl: run LPL on every sample.
        hep: make an hEP update when a label arrives.
        label_fraction: fraction of samples whose label arrives (0..1).
        seed: seed of the label mask.
        guard: divergence-guard thresholds.
        checkpoint: write checkpoints and resume from them.
    """

    lpl: bool = True
    hep: bool = True
    label_fraction: float = 0.1
    seed: int = 0
    guard: GuardParams = field(default_factory=GuardParams)
    checkpoint: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_fraction <= 1.0:
            raise ParameterError(f"label fraction must lie in [0, 1], got {self.label_fraction}")

    def fingerprint(self, n: int) -> str:
        d = asdict(self)
        d["n"] = n
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _fingerprint(cfg: LoopConfig, xs: np.ndarray, ys: np.ndarray,
                 w0: dict[str, np.ndarray], settings: str = "") -> str:
    """Identity of a run: loop settings, the stream, the target's starting weights and the
    learning ``settings`` its weights do not show (so a checkpoint of another model, head,
    stream, seed, LPL rule or learning epoch is never resumed)."""
    h = hashlib.sha256(cfg.fingerprint(len(xs)).encode())
    if settings:
        h.update(settings.encode())
    h.update(np.ascontiguousarray(ys).tobytes())
    h.update(np.ascontiguousarray(xs[:: max(1, len(xs) // 16)]).tobytes())
    for k in sorted(w0):
        h.update(k.encode())
        h.update(np.ascontiguousarray(w0[k]).tobytes())
    return h.hexdigest()[:16]


def _check_doc(path: Path, doc: dict, n: int) -> None:
    """Refuse a damaged checkpoint record with one line naming what is wrong."""
    need = ("next", "hits", "rollbacks", "drift", "reference_accuracy", "held_in")
    missing = [k for k in need if k not in doc]
    if missing:
        raise damaged(path, f"missing {', '.join(missing)}")
    nxt, hits = doc["next"], doc["hits"]
    if not isinstance(nxt, int) or not isinstance(hits, list) or not 0 <= nxt <= n \
            or len(hits) != nxt:
        raise damaged(path, f"position {nxt!r} with {len(hits) if isinstance(hits, list) else '?'}"
                            f" results for a stream of {n}")
    held = doc["held_in"]
    if not isinstance(held, list) or any(not isinstance(i, int) or not 0 <= i < nxt
                                         for i in held):
        raise damaged(path, "held-in indices out of range")
    drift = doc["drift"]
    if not isinstance(doc["rollbacks"], list) or not isinstance(drift, dict) or any(
            not isinstance(v, list) or any(not isinstance(p, list) or len(p) != 2 for p in v)
            for v in drift.values()):
        raise damaged(path, "rollback or drift records are malformed")
    ref = doc["reference_accuracy"]
    if ref is not None and (isinstance(ref, bool) or not isinstance(ref, (int, float))):
        raise damaged(path, f"reference accuracy {ref!r} is not a number")


def label_mask(n: int, fraction: float, seed: int) -> np.ndarray:
    """Which samples come with a label: exactly round(fraction * n) of them, seeded."""
    k = int(round(fraction * n))
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(seed).permutation(n)[:k]] = True
    return mask


@dataclass
class LoopResult:
    hits: np.ndarray
    labelled: np.ndarray
    rollbacks: list[dict]
    drift: dict[str, list[tuple[int, float]]]
    telemetry: dict
    resumed_from: int = 0

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.hits)) if self.hits.size else 0.0


def _drift(w0: dict[str, np.ndarray], w: dict[str, np.ndarray]) -> dict[str, float]:
    """Relative change of every weight array (keys starting with 'state.' are learning state,
    not weights, and are skipped)."""
    out = {}
    for k, a in w0.items():
        if k.startswith("state."):
            continue
        a = a.astype(np.float64)
        b = w[k].astype(np.float64)
        norm = float(np.linalg.norm(a))
        out[k] = float(np.linalg.norm(b - a) / norm) if norm else float(np.linalg.norm(b))
    return out


def _held_in_accuracy(target: Target, xs: list[np.ndarray], ys: list[int], cfg: LoopConfig
                      ) -> float | None:
    if not xs:
        return None
    target.set_learning(False, False)
    hits = [target.infer(x).prediction == y for x, y in zip(xs, ys)]
    target.set_learning(cfg.lpl, cfg.hep)
    return float(np.mean(hits))


COUNTERS = ("steps", "spikes", "lpl_updates", "hep_updates")


def _telemetry(target: Target, before: dict) -> dict:
    """The target's telemetry plus the counts of the run's earlier part (a resumed run)."""
    tel = asdict(target.telemetry())
    for k in COUNTERS:
        tel[k] = int(tel.get(k, 0)) + int(before.get(k, 0))
    tel["arena_high_water"] = max(int(tel.get("arena_high_water", 0)),
                                  int(before.get("arena_high_water", 0)))
    return tel


def run_adaptation(target: Target, xs: np.ndarray, ys: np.ndarray, cfg: LoopConfig,
                   workdir: str | Path | None = None, label: str = "adapt",
                   progress: bool = True, stop_after: int | None = None,
                   fresh: bool = False, notify=None, settings: str = "") -> LoopResult:
    """Run the loop over the stream ``xs`` [N, T, n_in], ``ys`` [N] on ``target``.

    ``workdir`` holds the checkpoint (resume happens automatically when a checkpoint of the
    same configuration exists; ``fresh`` deletes it first). ``notify(line)`` is told whether
    the run resumed ("resumed from sample N of M ...") or starts fresh. After a resume the
    telemetry counts the whole run (the counts at the checkpoint are carried over).
    ``stop_after`` ends the run early after that many samples (used to simulate a kill).
    ``settings``: what the target runs that its starting weights do not show (e.g. the LPL
    constants of another rule or learning epoch, same state shapes); part of the run's identity.
    """
    xs = np.asarray(xs)
    ys = np.asarray(ys)
    n = len(xs)
    if n == 0:
        raise DataError("the adaptation stream is empty")
    if ys.shape != (n,):
        raise DataError(f"stream has {n} samples but {ys.shape} labels")
    mask = label_mask(n, cfg.label_fraction if cfg.hep else 0.0, cfg.seed)
    ckpt_path = Path(workdir) / CHECKPOINT if (workdir and cfg.checkpoint) else None
    if fresh and ckpt_path is not None and ckpt_path.exists():
        ckpt_path.unlink()
    say = notify or (lambda line: None)
    before: dict = {}

    target.set_learning(cfg.lpl, cfg.hep)
    w0 = target.get_weights()
    fp = _fingerprint(cfg, xs, ys, w0, settings)
    hits = np.zeros(n, dtype=bool)
    start = 0
    rollbacks: list[dict] = []
    drift: dict[str, list[tuple[int, float]]] = {k: [(0, 0.0)] for k in w0
                                                  if not k.startswith("state.")}
    held_x: list[np.ndarray] = []
    held_y: list[int] = []
    held_idx: list[int] = []
    ref_acc: float | None = None
    if ckpt_path is not None and ckpt_path.exists():
        arrays, doc = load_checkpoint(ckpt_path)
        if doc.get("fingerprint") == fp:
            _check_doc(ckpt_path, doc, n)
            start = int(doc["next"])
            hits[:start] = np.asarray(doc["hits"], dtype=bool)
            rollbacks = doc["rollbacks"]
            drift = {k: [tuple(p) for p in v] for k, v in doc["drift"].items()}
            ref_acc = doc["reference_accuracy"]
            w0 = {k[3:]: v for k, v in arrays.items() if k.startswith("w0/")}
            try:
                target.set_weights({k[2:]: v for k, v in arrays.items() if k.startswith("w/")})
            except EdgelearnError as exc:
                raise damaged(ckpt_path, f"does not fit this target: {exc}") from None
            held_idx = doc["held_in"]
            held_x = [xs[i] for i in held_idx]
            held_y = [int(ys[i]) for i in held_idx]
            before = {k: v for k, v in (doc.get("telemetry") or {}).items()
                      if k in COUNTERS + ("arena_high_water",) and isinstance(v, int)}
            done_already = " (the run had finished; nothing is left to do)" if start == n \
                else ""
            say(f"resumed from sample {start} of {n} with the checkpoint {ckpt_path}"
                f"{done_already}; --fresh starts over")
        else:
            say(f"starting fresh: the checkpoint {ckpt_path} is of another run (model, "
                f"stream or settings) and will be replaced")
    elif ckpt_path is not None:
        say(f"starting fresh (checkpoints go to {ckpt_path})")
    last_good = target.get_weights()
    bar = Progress(n, label, unit="samples", enabled=progress, initial=start)
    end = n if stop_after is None else min(n, start + stop_after)
    for i in range(start, end):
        res = target.infer(xs[i])
        hits[i] = res.prediction == int(ys[i])
        if mask[i]:
            target.teach(int(ys[i]))
            if len(held_x) < cfg.guard.held_in:
                held_x.append(xs[i])
                held_y.append(int(ys[i]))
                held_idx.append(i)
        done = i + 1
        if done % cfg.guard.check_every == 0 or done == n:
            w = target.get_weights()
            int8 = [v for v in w.values() if v.dtype == np.int8]
            floats = [v for v in w.values() if v.dtype.kind == "f"]
            acc = _held_in_accuracy(target, held_x, held_y, cfg) \
                if (cfg.lpl or cfg.hep) and len(held_x) >= cfg.guard.held_in else None
            reason = check(cfg.guard, int8, floats, acc, ref_acc)
            if reason:
                target.set_weights(last_good)
                rollbacks.append({"sample": done, "reason": reason})
                w = last_good
            else:
                last_good = w
                if acc is not None:
                    ref_acc = acc
            for k, v in _drift(w0, w).items():
                drift[k].append((done, v))
            if ckpt_path is not None:
                arrays = {f"w/{k}": v for k, v in last_good.items()}
                arrays.update({f"w0/{k}": v for k, v in w0.items()})
                save_checkpoint(ckpt_path, arrays, {
                    "fingerprint": fp, "next": done, "hits": hits[:done].tolist(),
                    "rollbacks": rollbacks, "drift": drift, "reference_accuracy": ref_acc,
                    "held_in": held_idx, "telemetry": {
                        k: v for k, v in _telemetry(target, before).items()
                        if k in COUNTERS + ("arena_high_water",)}})
        bar.update(1, postfix=f"acc {100 * hits[:done].mean():.1f} %")
    bar.close()
    tel = _telemetry(target, before)
    return LoopResult(hits[:end], mask[:end], rollbacks, drift, tel, resumed_from=start)
