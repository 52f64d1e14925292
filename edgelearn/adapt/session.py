"""What `edgelearn deploy`, `adapt` and `demo` share: make a target from a plan, run the
adaptation loop against a frozen baseline, and write the report folder."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgelearn.adapt.bundle import Bundle
from edgelearn.adapt.loop import LoopConfig, LoopResult, run_adaptation
from edgelearn.adapt.reference import lpl_reference_weights
from edgelearn.adapt.report import write_report
from edgelearn.atomic import make_folder
from edgelearn.device.engine import EngineConfig, HEPSettings
from edgelearn.errors import TargetError
from edgelearn.memory.planner import Plan
from edgelearn.rules import lpl_rate
from edgelearn.rules.lpl_presets import needs_reference
from edgelearn.targets.base import Target
from edgelearn.targets.spec import TargetSpec


def engine_config(bundle: Bundle, plan: Plan, seed: int = 1, hep: HEPSettings | None = None,
                  lpl=None) -> EngineConfig:
    """The engine settings a plan allows (LPL parameters: ``lpl``, else the plan's, else the
    engine's default)."""
    lpl = lpl if lpl is not None else plan.config.lpl
    extra = {} if lpl is None else {"lpl": lpl}
    return EngineConfig(readout=bundle.network.meta.get("readout", "max"),
                        lpl_layers=plan.config.lpl_layers,
                        hep=(hep or HEPSettings()) if plan.config.hep else None, seed=seed,
                        **extra)


def check_lpl_rule(spec: TargetSpec, rule: str, epoch: int = 1) -> None:
    """Refuse an ``--lpl-rule`` or ``--lpl-epoch`` the target would not run: a substrate's
    on-device learner has its own LPL (the float twin with its own parameters on the last
    hidden layer, docs/substrate.md), so there only the default name and epoch are accepted."""
    if spec.kind == "substrate" and rule != "lpl":
        raise TargetError(f"--lpl-rule {rule}: the substrate target runs its own LPL settings "
                          f"(docs/substrate.md), not the rule presets of the integer targets; "
                          f"leave --lpl-rule at its default, also with --lpl none")
    if spec.kind == "substrate" and epoch != 1:
        raise TargetError(f"--lpl-epoch {epoch}: the substrate target runs its own LPL settings "
                          f"(docs/substrate.md), every time step; leave --lpl-epoch at 1, also "
                          f"with --lpl none")


def make_target(spec: TargetSpec, bundle: Bundle, plan: Plan, seed: int = 1,
                progress: bool = True, hep: HEPSettings | None = None,
                lpl=None, upload: bool = True) -> Target:
    """Create the target of ``spec`` holding ``bundle`` as planned (upload included unless
    ``upload`` is False, for a board that already holds the model). ``target.plan`` is the
    plan it runs: for a board, ``plan`` made again from the link the board reports."""
    if spec.has_link:
        from edgelearn.adapt.bundle import replan_for_board
        from edgelearn.targets.board import BoardTarget
        target = BoardTarget.connect(spec, plan)
        try:
            info = target.client.info
            plan = replan_for_board(bundle, plan, info.window, info.max_payload, info.ram)
        except BaseException:
            target.close()
            raise
        target.deploy(bundle, engine_config(bundle, plan, seed, hep, lpl), progress=progress,
                      upload=upload)
    else:
        target = _local_target(spec, bundle, plan, seed, hep, lpl)
    target.plan = plan
    cfg = engine_config(bundle, plan, seed, hep, lpl)
    if cfg.lpl_layers and needs_reference(cfg.lpl) and spec.kind in ENGINE_TARGETS:
        try:
            start_from_reference(target, bundle, cfg)
        except BaseException:
            target.close()
            raise
    return target


ENGINE_TARGETS = ("host", "sim", "serial")


def start_from_reference(target: Target, bundle: Bundle, cfg: EngineConfig) -> None:
    """Upload the LPL starting state measured on the bundle's training (calibration) inputs
    (edgelearn.adapt.reference): homeostasis then pulls towards the training statistics."""
    w = target.get_weights()
    w.update(lpl_reference_weights(bundle.qnet, cfg, bundle.reference_inputs()))
    target.set_weights(w)


def _local_target(spec: TargetSpec, bundle: Bundle, plan: Plan, seed: int,
                  hep: HEPSettings | None, lpl) -> Target:
    cfg = engine_config(bundle, plan, seed, hep, lpl)
    if spec.kind == "host":
        from edgelearn.targets.host import HostTarget
        return HostTarget(bundle.qnet, plan.budget, bundle.head, cfg, align=plan.profile.word_bytes)
    if spec.kind == "tflite":
        from edgelearn.targets.tflite import TfliteTarget
        t = TfliteTarget(bundle.qnet, bundle.head, bundle.feature_layer, cfg.readout)
        plan.image_bytes = len(t.model)     # what is stored: the .tflite flatbuffer
        plan.remarks.append("TFLite: the model image is the .tflite flatbuffer; its "
                            "interpreter lays out its own tensor arena (edgelearn "
                            "export-tflite --arena measures TFLite Micro's), the buffers above "
                            "are edgelearn's engine's")
        return t
    if spec.kind == "substrate":
        return _substrate_target(spec, bundle, plan, seed, hep or HEPSettings())
    raise TargetError(f"unknown target kind {spec.kind!r}")


def _substrate_target(spec: TargetSpec, bundle: Bundle, plan: Plan, seed: int,
                      hep: HEPSettings) -> Target:
    """The bundle on a simulated analog chip. The bundle's head (with its feature
    normalisation) classifies the chip's features, as on the other targets, and hEP trains it
    with the engine's settings (step, amplitude, nudges, replay); without a head the readout
    classifies."""
    from edgelearn.targets.substrate import AdaptConfig, SubstrateTarget
    t = SubstrateTarget(spec.arg or "bss2", seed=seed)
    t.load(bundle.network)
    lpl = bool(plan.config.lpl_layers)
    if bundle.head is not None or lpl:
        t.attach_learner(AdaptConfig(lpl=lpl, hep=plan.config.hep, hep_lr=hep.lr,
                                     amplitude=hep.amplitude, nudges=hep.nudges,
                                     replay=hep.replay, replay_repeats=hep.repeats, seed=seed),
                         head=bundle.head)
    return t


def summarise(name: str, res: LoopResult) -> dict:
    return {"name": name, "accuracy": res.accuracy, "samples": int(res.hits.size),
            "labels": int(res.labelled.sum()), "rollbacks": res.rollbacks,
            "telemetry": res.telemetry, "resumed_from": res.resumed_from}


def adapt_and_report(target: Target, frozen: Target | None, x: np.ndarray, y: np.ndarray,
                     cfg: LoopConfig, report: Path | None, plan: Plan, extra: dict | None = None,
                     progress: bool = True, fresh: bool = False,
                     say: Callable[[str], None] | None = None,
                     segments: list[str] | None = None) -> dict:
    """Run the loop on ``target`` (and a frozen twin for comparison) and write the report
    folder (metrics.json, plots, checkpoint); with ``report`` None nothing is written and no
    checkpoint is kept: the metrics are only returned. ``fresh`` ignores (deletes) a
    checkpoint of an earlier run; ``say`` is told whether the run resumed; ``segments`` (one
    label per sample: which users) are shaded on accuracy.png.

    The deployed model's run is ``runs["adapted"]``; its ``name`` is "adapted", or
    "deployed" when nothing learns (TFLite, or a budget without room for learning)."""
    if report is not None:
        make_folder(report)
    t0 = time.time()
    learns = cfg.lpl or cfg.hep
    res = run_adaptation(target, x, y, cfg, workdir=report,
                         label="adapt" if learns else "deployed", progress=progress,
                         fresh=fresh, notify=say, settings=lpl_settings(plan))
    seconds = time.time() - t0
    name = "adapted" if learns else "deployed"
    runs = {"adapted": summarise(name, res)}
    curves = {f"{name} ({describe(cfg)})": res.hits}
    if frozen is not None:
        frozen_cfg = LoopConfig(lpl=False, hep=False, label_fraction=cfg.label_fraction,
                                seed=cfg.seed, checkpoint=False)
        fres = run_adaptation(frozen, x, y, frozen_cfg, label="frozen", progress=progress)
        runs["frozen"] = summarise("frozen", fres)
        curves["frozen"] = fres.hits
    tel = res.telemetry
    memory = {"budget": plan.budget, "planned_total": plan.total_bytes,
              "planned_by_category": plan.by_category(),
              "measured_high_water": tel.get("arena_high_water", 0),
              "learning_over_inference": plan.learning_bytes / max(plan.inference_bytes, 1)}
    metrics = {"runs": runs, "plan": plan.to_json(), "memory": memory,
               "loop": {**asdict(cfg), "guard": asdict(cfg.guard)},
               "seconds": seconds, **(extra or {})}
    metrics["files"] = [] if report is None else \
        write_report(report, metrics, curves, res.drift, memory, segments=segments)
    return metrics


@dataclass
class Deployment:
    """What :func:`deploy_and_adapt` returns.

    Attributes:
        metrics: the report's metrics (None when no stream was given: deployment only).
        saved: files of the adapted model pulled back into the report folder.
        weights: the target's :meth:`~edgelearn.targets.base.Target.get_weights` after the
            run, when asked for (``keep_weights``).
    """

    metrics: dict | None
    saved: list[str]
    weights: dict[str, np.ndarray] | None = None
    plan: Plan | None = None


def deploy_and_adapt(spec: TargetSpec, bundle: Bundle, plan: Plan,
                     stream: tuple[np.ndarray, np.ndarray] | None, *, seed: int,
                     labels: float, baseline: bool = True, report: Path | None = None,
                     upload: bool = True, progress: bool = True,
                     say: Callable[[str], None] = lambda text: None, extra: dict | None = None,
                     keep_weights: bool = False, fresh: bool = False,
                     segments: list[str] | None = None) -> Deployment:
    """Deploy ``bundle`` as ``plan`` says on target ``spec`` and, given a ``stream`` (x, y),
    run the adaptation loop on it against a frozen twin.

    This is `edgelearn deploy` (and `adapt`, `demo`) after argument parsing, and what every
    device of `edgelearn fleet` runs: one code path. ``seed`` is the deploy seed: the label
    mask uses ``seed``, the device (stochastic rounding, substrate instance) ``seed + 1``.
    With ``report`` the report folder is written (metrics, plots, checkpoint, adapted model);
    without, only the metrics are returned.
    """
    target = make_target(spec, bundle, plan, seed=seed + 1, progress=progress, upload=upload)
    plan = target.plan
    with target:
        say(plan.headline())
        say(f"{'deployed on' if upload else 'attached to'} {spec} ({target.name}); "
            f"learning: {plan.config.describe()}")
        if stream is None:
            saved = save_adapted(target, bundle, report) \
                if report is not None and spec.kind == "tflite" else []
            return Deployment(None, saved, plan=plan)
        x, y = stream
        frozen = None
        if baseline:
            # boards run the host's engine bit for bit, so their frozen twin runs on the host;
            # so does TFLite's (its integer graph equals the engine's, the row shows it)
            twin = spec if spec.kind in ("host", "substrate") else TargetSpec("host")
            frozen = make_target(twin, bundle, plan.without_learning(), seed=seed + 1,
                                 progress=False)
        cfg = LoopConfig(lpl=bool(plan.config.lpl_layers), hep=plan.config.hep,
                         label_fraction=labels, seed=seed)
        if not (cfg.lpl or cfg.hep) and spec.kind != "tflite":
            say("note: nothing to adapt within this budget; running inference only")
        try:
            metrics = adapt_and_report(target, frozen, x, y, cfg, report, plan, extra=extra,
                                       progress=progress, fresh=fresh, say=say,
                                       segments=segments)
        finally:
            if frozen is not None:
                frozen.close()
        saved: list[str] = []
        if report is not None:
            try:
                saved = save_adapted(target, bundle, report)
            except TargetError as exc:
                say(f"adapted model not pulled back: {exc}")
        weights = target.get_weights() if keep_weights else None
    return Deployment(metrics, saved, weights, plan)


def lpl_settings(plan: Plan) -> str:
    """The plan's LPL constants as part of a run's identity (checkpoint resume): '' for the
    default rule at every step (so such checkpoints keep their identity), else the Params."""
    lpl = plan.config.lpl
    if not plan.config.lpl_layers or lpl is None or lpl == lpl_rate.deploy_default():
        return ""
    return repr(lpl)


def describe(cfg: LoopConfig) -> str:
    parts = [p for p, on in (("LPL", cfg.lpl), ("hEP", cfg.hep)) if on]
    return " + ".join(parts) if parts else "inference only"


def save_adapted(target: Target, bundle: Bundle, report: Path) -> list[str]:
    """Pull the adapted model back from ``target`` into the report folder (ONNX profile); a
    TFLite target writes the .tflite file it runs (``deployed_model.tflite``)."""
    if target.name == "tflite":
        from edgelearn.atomic import atomic_write_bytes
        make_folder(report)
        atomic_write_bytes(report / "deployed_model.tflite", target.model)
        return ["deployed_model.tflite"]
    if hasattr(target, "network"):
        from edgelearn.io.onnx_quant import save_quant_onnx
        save_quant_onnx(target.network(), report / "adapted_model.onnx")
        files = ["adapted_model.onnx"]
        head = target.head() if hasattr(target, "head") else None
        if head is not None:
            head.save(report / "adapted_model.head.npz")
            files.append("adapted_model.head.npz")
        return files
    if target.name == "substrate":
        from edgelearn.io import save_onnx
        net = bundle.network
        for key, w in target.read_weights().items():
            layer, _, kind = key.partition(".")
            if kind in ("", "weight") and layer in [la.name for la in net.layers]:
                net = net.replace_layer(layer, weight=w)
        save_onnx(net, report / "adapted_model.onnx")
        return ["adapted_model.onnx"]
    raise TargetError(f"target '{target.name}' has no weights to pull back")
