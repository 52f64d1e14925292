"""What `edgelearn deploy`, `adapt` and `demo` share: make a target from a plan, run the
adaptation loop against a frozen baseline, and write the report folder."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from edgelearn.adapt.bundle import Bundle
from edgelearn.adapt.loop import LoopConfig, LoopResult, run_adaptation
from edgelearn.adapt.report import write_report
from edgelearn.device.engine import EngineConfig, HEPSettings
from edgelearn.errors import TargetError
from edgelearn.memory.planner import Plan
from edgelearn.targets.base import Target
from edgelearn.targets.spec import TargetSpec


def engine_config(bundle: Bundle, plan: Plan, seed: int = 1, hep: HEPSettings | None = None,
                  lpl=None) -> EngineConfig:
    """The engine settings a plan allows (LPL parameters default to the engine's)."""
    extra = {} if lpl is None else {"lpl": lpl}
    return EngineConfig(readout=bundle.network.meta.get("readout", "max"),
                        lpl_layers=plan.config.lpl_layers,
                        hep=(hep or HEPSettings()) if plan.config.hep else None, seed=seed,
                        **extra)


def make_target(spec: TargetSpec, bundle: Bundle, plan: Plan, seed: int = 1,
                progress: bool = True, hep: HEPSettings | None = None,
                calibration_x: np.ndarray | None = None, lpl=None, upload: bool = True) -> Target:
    """Create the target of ``spec`` holding ``bundle`` as planned (upload included unless
    ``upload`` is False, for a board that already holds the model)."""
    cfg = engine_config(bundle, plan, seed, hep, lpl)
    if spec.kind == "host":
        from edgelearn.targets.host import HostTarget
        return HostTarget(bundle.qnet, plan.budget, bundle.head, cfg, align=plan.profile.word_bytes)
    if spec.kind in ("sim", "serial"):
        from edgelearn.targets.board import BoardTarget
        return BoardTarget.open(spec, bundle, plan, cfg, progress=progress, upload=upload)
    if spec.kind == "tflite":
        from edgelearn.targets.tflite import TfliteTarget
        return TfliteTarget(bundle.qnet, bundle.head, bundle.feature_layer, cfg.readout)
    if spec.kind == "substrate":
        from edgelearn.targets.substrate import AdaptConfig, SubstrateTarget
        t = SubstrateTarget(spec.arg or "bss2", seed=seed)
        t.load(bundle.network)
        if plan.config.lpl_layers or plan.config.hep:
            t.attach_learner(AdaptConfig(lpl=bool(plan.config.lpl_layers), hep=plan.config.hep,
                                         seed=seed), calibration_x=calibration_x)
        return t
    raise TargetError(f"unknown target kind {spec.kind!r}")


def summarise(name: str, res: LoopResult) -> dict:
    return {"name": name, "accuracy": res.accuracy, "samples": int(res.hits.size),
            "labels": int(res.labelled.sum()), "rollbacks": res.rollbacks,
            "telemetry": res.telemetry, "resumed_from": res.resumed_from}


def adapt_and_report(target: Target, frozen: Target | None, x: np.ndarray, y: np.ndarray,
                     cfg: LoopConfig, report: Path, plan: Plan, extra: dict | None = None,
                     progress: bool = True) -> dict:
    """Run the loop on ``target`` (and a frozen twin for comparison) and write the report."""
    report.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    res = run_adaptation(target, x, y, cfg, workdir=report, label="adapt", progress=progress)
    seconds = time.time() - t0
    runs = {"adapted": summarise("adapted", res)}
    curves = {f"adapted ({describe(cfg)})": res.hits}
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
    files = write_report(report, metrics, curves, res.drift, memory)
    metrics["files"] = files
    return metrics


def describe(cfg: LoopConfig) -> str:
    parts = [p for p, on in (("LPL", cfg.lpl), ("hEP", cfg.hep)) if on]
    return " + ".join(parts) if parts else "frozen"


def save_adapted(target: Target, bundle: Bundle, report: Path) -> list[str]:
    """Pull the adapted model back from ``target`` into the report folder (ONNX profile)."""
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
