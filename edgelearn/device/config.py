"""What the device engine runs with, as the device receives it: integers and binary64 values
only, no float the device must turn into a fixed-point constant.

:class:`DeviceConfig` is the decoded sample-mode configuration blob of docs/protocol.md (and
what a streaming LEARN request sets up): the readout, the PRNG seed, one LPL block per adapted
layer (``edgelearn.rules.lpl_codes.Codes``) and the hEP settings with the nudge table (nodes
t_j and readout weights w_j of the real-hEP estimator, computed by the host).
:func:`compile_config` makes it from the host-side :class:`~edgelearn.device.engine.EngineConfig`
and the integer network, so the host engine and a board run from identical numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgelearn.errors import ParameterError
from edgelearn.model import feature_layer_index
from edgelearn.rules import lpl_rate
from edgelearn.rules.hep import schemes
from edgelearn.rules.lpl_codes import Codes, check_codes

READOUTS = ("max", "mean")
MAX_LPL_LAYERS = 16
MAX_NUDGES = 16
MAX_REPLAY = 1024
MAX_REPEATS = 256


@dataclass(frozen=True)
class HEPCodes:
    """On-device hEP as the device runs it.

    lr: SGD step; amplitude: b; nodes, weights: the nudge table (nudge b t_j, readout weight
    w_j); replay: ring entries (0: none); repeats: updates per label (1 + replays).
    """

    lr: float
    amplitude: float
    nodes: tuple[float, ...]
    weights: tuple[float, ...]
    replay: int
    repeats: int

    def __post_init__(self) -> None:
        for name in ("lr", "amplitude"):
            v = getattr(self, name)
            if not (isinstance(v, float) and math.isfinite(v) and v > 0):
                raise ParameterError(f"hEP {name} must be a finite float > 0, got {v!r}")
        if not 1 <= len(self.nodes) <= MAX_NUDGES or len(self.weights) != len(self.nodes):
            raise ParameterError(f"hEP nudge table must have 1..{MAX_NUDGES} nodes and as many "
                                 f"weights, got {len(self.nodes)} and {len(self.weights)}")
        for t, w in zip(self.nodes, self.weights):
            if not (math.isfinite(t) and -1.0 <= t <= 1.0 and math.isfinite(w)):
                raise ParameterError(f"hEP nudge node {t!r} must lie in [-1, 1] and its weight "
                                     f"{w!r} be finite")
        if not 0 <= self.replay <= MAX_REPLAY or not 1 <= self.repeats <= MAX_REPEATS:
            raise ParameterError(f"hEP replay must be 0..{MAX_REPLAY} and repeats "
                                 f"1..{MAX_REPEATS}, got {self.replay}, {self.repeats}")
        if self.repeats > 1 and self.replay == 0:
            raise ParameterError("hEP repeats > 1 needs a replay buffer (replay >= 1)")


@dataclass(frozen=True)
class DeviceConfig:
    """readout: 'max' or 'mean'; seed: PRNG key; track_features: rate r of the head's feature
    statistics (0: fixed); lpl: (layer index, Codes) per adapted layer, indices increasing;
    hep: HEPCodes or None."""

    readout: str = "max"
    seed: int = 1
    track_features: float = 0.0
    lpl: tuple[tuple[int, Codes], ...] = ()
    hep: HEPCodes | None = None

    def __post_init__(self) -> None:
        if self.readout not in READOUTS:
            raise ParameterError(f"readout must be one of {READOUTS}, got {self.readout!r}")
        if not (isinstance(self.seed, int) and 0 <= self.seed <= 0xFFFFFFFF):
            raise ParameterError(f"seed must be an integer in 0..2^32-1, got {self.seed!r}")
        if not (math.isfinite(self.track_features) and 0.0 <= self.track_features < 1.0):
            raise ParameterError(f"track_features must lie in [0, 1), got "
                                 f"{self.track_features}")
        object.__setattr__(self, "lpl", tuple(self.lpl))
        if len(self.lpl) > MAX_LPL_LAYERS:
            raise ParameterError(f"at most {MAX_LPL_LAYERS} LPL layers, got {len(self.lpl)}")
        idx = [k for k, _ in self.lpl]
        if idx != sorted(set(idx)):
            raise ParameterError(f"LPL layer indices must be increasing and distinct, got {idx}")
        for _, c in self.lpl:
            check_codes(c)

    @property
    def lpl_layers(self) -> tuple[int, ...]:
        return tuple(k for k, _ in self.lpl)


def compile_config(config, qnet) -> DeviceConfig:
    """The DeviceConfig of a host ``EngineConfig`` for integer network ``qnet``: LPL layer
    names become indices and the LPL parameters become each layer's integer codes; the hEP
    nudge budget becomes the real-hEP nudge table (``schemes.hep_scheme``)."""
    names = [la.name for la in qnet.layers]
    lpl = []
    for name in config.lpl_layers:
        if name not in names or not qnet.layer(name).spiking:
            raise ParameterError(f"LPL layer '{name}' is not a spiking layer of model "
                                 f"'{qnet.name}' (layers {names})")
        lpl.append((names.index(name), lpl_rate.layer_codes(config.lpl, qnet.layer(name))))
    hep = None
    if config.hep is not None:
        s = config.hep
        sc = schemes.hep_scheme(s.nudges)
        hep = HEPCodes(float(s.lr), float(s.amplitude), tuple(float(t) for t in sc.nodes),
                       tuple(float(w) for w in sc.weights), int(s.replay), int(s.repeats))
    feature_layer_index(qnet.layers)       # the model must have a feature layer
    return DeviceConfig(config.readout, int(config.seed) & 0xFFFFFFFF,
                        float(config.track_features), tuple(sorted(lpl)), hep)
