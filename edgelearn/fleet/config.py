"""What a fleet is: the model, the target, the population and the deploy settings (L3).

A :class:`FleetConfig` plus a device index is everything a worker needs (with the model files,
:class:`ModelFiles`); it is stored as ``fleet.json`` in the report folder and a resumed run must
describe the same fleet (:meth:`FleetConfig.identity`).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from edgelearn.adapt.bundle import side_file
from edgelearn.adapt.session import check_lpl_rule
from edgelearn.adapt.streams import split_source
from edgelearn.errors import DataError, TargetError
from edgelearn.fleet.population import parse_population
from edgelearn.memory import parse_bytes
from edgelearn.rules import lpl_presets, lpl_rate
from edgelearn.substrate.presets import get_preset
from edgelearn.targets.spec import parse_target

SIDE_FILES = (".head.npz", ".calib.npz")
DEVICES_MAX = 10_000_000
#: FleetConfig fields added after fleets were first recorded, with their defaults: left out of
#: the identity when at the default, so such a fleet's report folder is still recognised
OPTIONS_ADDED_LATER = {"lpl_rule": "lpl", "dt": None, "lpl_epoch": 1}


@dataclass(frozen=True)
class FleetConfig:
    """One fleet. The deploy fields mean what the `edgelearn deploy` options of the same name
    mean; ``limit`` is the samples per device, ``seed`` the fleet seed.

    Attributes:
        model: model file path as given. target: host | sim | substrate[:PRESET].
        streams: the population SPEC (edgelearn.fleet.population). budget, device, lpl,
        lpl_rule, lpl_epoch, no_hep: the plan (as for `edgelearn plan`). dt: time step in seconds of a
        NIR model file (None for ONNX). labels: label
        fraction. limit: samples per device. devices: N. seed: fleet seed.
        mismatch: (lo, hi) factor range of the substrate mismatch, or None.
        federated: hold out this fraction of the users and run a federated round (0 = off).
        held_out_devices: devices of the held-out users (federated only).
        keep_updates: keep every device's adapted head (updates/PHASE-NNNNNN.npz).
    """

    model: str
    target: str
    streams: str
    budget: str
    device: str | None = None
    lpl: str = "all"
    no_hep: bool = False
    labels: float = 0.1
    limit: int = 100
    devices: int = 100
    seed: int = 0
    mismatch: tuple[float, float] | None = None
    federated: float = 0.0
    held_out_devices: int = 0
    keep_updates: bool = False
    lpl_rule: str = "lpl"
    dt: float | None = None
    lpl_epoch: int = 1

    def __post_init__(self) -> None:
        spec = parse_target(self.target)
        if spec.kind not in ("host", "sim", "substrate"):
            raise TargetError(f"a fleet runs on host, sim or substrate[:PRESET], not "
                              f"{self.target!r}")
        if spec.kind == "substrate" and not spec.arg:
            object.__setattr__(self, "target", "substrate:bss2")
        if "@" in spec.arg:
            raise TargetError(f"fleet target {self.target!r}: give the mismatch range with "
                              f"--mismatch LO..HI, not in the target")
        parse_population(self.streams)
        parse_bytes(self.budget)
        if self.lpl_rule not in lpl_presets.NAMES:
            raise DataError(f"unknown LPL rule {self.lpl_rule!r}; use one of "
                            f"{', '.join(lpl_presets.NAMES)}")
        if type(self.lpl_epoch) is not int or self.lpl_epoch not in lpl_rate.EPOCHS:
            raise DataError(f"--lpl-epoch must be a power of two in 1..64, got "
                            f"{self.lpl_epoch!r}")
        check_lpl_rule(spec, self.lpl_rule, self.lpl_epoch)
        if self.dt is not None and not (math.isfinite(self.dt) and self.dt > 0):
            raise DataError(f"--dt must be a finite number of seconds > 0, got {self.dt}")
        if not 0.0 <= self.labels <= 1.0:
            raise DataError(f"label fraction must lie in [0, 1], got {self.labels}")
        if not 1 <= self.devices <= DEVICES_MAX:
            raise DataError(f"--devices must lie in [1, {DEVICES_MAX}], got {self.devices}")
        if self.limit < 1:
            raise DataError(f"samples per device (--limit) must be >= 1, got {self.limit}")
        if self.mismatch is not None:
            lo, hi = (float(v) for v in self.mismatch)
            if spec.kind != "substrate":
                raise TargetError("--mismatch needs a substrate target")
            if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo <= hi):
                raise DataError(f"mismatch range must be 0 <= LO <= HI, got {lo}..{hi}")
            get_preset(f"{spec.arg or 'bss2'}@mismatch={hi!r}")   # the largest must be valid
            object.__setattr__(self, "mismatch", (lo, hi))
        if not 0.0 <= self.federated < 1.0:
            raise DataError(f"held-out user fraction must lie in [0, 1), got {self.federated}")
        if self.federated and (self.held_out_devices < 1 or self.no_hep):
            raise DataError("a federated round needs hEP (no --no-hep) and >= 1 held-out "
                            "device")

    @property
    def stream_source(self) -> str:
        return split_source(self.streams)[0]

    def to_json(self) -> dict:
        d = asdict(self)
        d["mismatch"] = None if self.mismatch is None else list(self.mismatch)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "FleetConfig":
        names = {f.name for f in fields(cls)}
        if not isinstance(d, dict) or not set(d) <= names or "model" not in d:
            raise DataError("fleet.json does not describe a fleet (unknown or missing keys)")
        d = dict(d)
        if d.get("mismatch") is not None:
            d["mismatch"] = tuple(d["mismatch"])
        return cls(**d)

    def identity(self, files: "ModelFiles") -> str:
        """What must not change for results to be comparable: everything but ``devices``
        (a fleet may grow) and ``keep_updates``, plus the model files' digest."""
        d = self.to_json()
        d.pop("devices")
        d.pop("keep_updates")
        for key, default in OPTIONS_ADDED_LATER.items():
            if d[key] == default:       # fleets recorded before these options keep their identity
                d.pop(key)
        d["files"] = files.digest
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ModelFiles:
    """The bytes a worker needs to load the model (the model, its side files and a stream
    file), so that workers on other machines need nothing but edgelearn."""

    files: tuple[tuple[str, bytes], ...]

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for name, data in self.files:
            h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
        return h.hexdigest()

    @classmethod
    def read(cls, cfg: FleetConfig) -> "ModelFiles":
        model = Path(cfg.model)
        if not model.exists():
            raise DataError(f"model file {model} does not exist")
        found = [("model/" + model.name, model.read_bytes())]
        for suffix in SIDE_FILES:
            side = side_file(model, suffix)
            if side.exists():
                found.append(("model/" + side.name, side.read_bytes()))
        source = cfg.stream_source
        if source.endswith(".npz"):
            if not Path(source).exists():
                raise DataError(f"stream file {source} does not exist")
            found.append(("stream/" + Path(source).name, Path(source).read_bytes()))
        return cls(tuple(found))

    def materialise(self, folder: Path) -> tuple[Path, Path | None]:
        """Write the files under ``folder``; returns (model path, stream file path or None)."""
        model = stream = None
        for name, data in self.files:
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            if name.startswith("model/") and model is None:
                model = path
            if name.startswith("stream/"):
                stream = path
        return model, stream
