"""Parameters of a substrate (noisy analog weight array + mismatched neurons), L1, numpy only.

A :class:`Preset` bundles one frozen dataclass per noise hook. The hooks are applied in this
order (see :mod:`edgelearn.substrate.device`):

1. mapping/quantize   w -> device conductances (g+, g-) in uS on ``2^bits - 1`` levels
2. programming noise  on every write of a device whose target changed (learning writes too)
3. stuck-at faults    a fixed fraction of devices is stuck at 0 (off) or at g_max (on), forced
                      after the programming noise on every write
4. drift              G(t) = G_prog ((t + t0) / t0)^(-nu), t = time since that device's write
5. read noise         on the weights at each read of the array (one draw per ``run``)
6. mismatch           per-synapse gain and offset on the weights read, per-neuron threshold,
                      tau_syn, tau_mem spread (drawn once per device instance, frozen)
7. temporal noise     on the synaptic input and the membrane at every step, plus the noise of
                      the membrane readout (what an ADC would report)

Units: conductances in microsiemens (uS), times in seconds, weights and neuron states in the
network's own units (threshold units). Relative spreads are dimensionless standard deviations.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from edgelearn.errors import SubstrateError

SIGN_MODES = ("differential", "sign_bit")
PROG_KINDS = ("none", "gaussian", "pcm")
DRIFT_KINDS = ("none", "pcm")
READ_KINDS = ("none", "gaussian", "pcm")

# aihwkit PCMLikeNoiseModel constants (Nandakumar et al. 2019 fit), see ANCHORS.md.
PCM_PROG_COEFFS = (0.26348, 1.9650, -1.1731)     # uS at g_max = 25 uS, polynomial in g/g_max
PCM_G_MAX_REF_US = 25.0
PCM_T0_S = 20.0
PCM_T_READ_S = 250e-9


def _check(owner: str, what: str, value: float, lo: float | None = None,
           hi: float | None = None, lo_open: bool = False) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise SubstrateError(f"{owner}: {what} must be a finite number, got {value!r}")
    if lo is not None and (value <= lo if lo_open else value < lo):
        rel = ">" if lo_open else ">="
        raise SubstrateError(f"{owner}: {what} must be {rel} {lo}, got {value}")
    if hi is not None and value > hi:
        raise SubstrateError(f"{owner}: {what} must be <= {hi}, got {value}")


def _choice(owner: str, what: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise SubstrateError(f"{owner}: {what} must be one of {options}, got {value!r}")


@dataclass(frozen=True)
class Mapping:
    """Deterministic weight <-> conductance mapping.

    Attributes:
        bits: magnitude resolution of one device, ``2^bits - 1`` nonzero levels (6 on
            BrainScaleS-2); None = continuous (analog, e.g. PCM). 1..16.
        sign: ``"differential"``: w = (g+ - g-) / g_max * w_max, both devices physical (both pay
            programming noise and drift); ``"sign_bit"``: one magnitude device and a digital sign
            (the unused device is exactly 0).
        g_max_us: conductance of the largest magnitude, uS (> 0).
        headroom: w_max = headroom * max|w| of a layer when it is first loaded (>= 1). Later
            writes beyond +-w_max are clipped and counted.
    """

    bits: int | None = None
    sign: str = "differential"
    g_max_us: float = 25.0
    headroom: float = 1.0

    def __post_init__(self) -> None:
        o = "substrate mapping"
        if self.bits is not None:
            if isinstance(self.bits, bool) or not isinstance(self.bits, int) \
                    or not 1 <= self.bits <= 16:
                raise SubstrateError(f"{o}: bits must be an integer in 1..16 or None "
                                     f"(continuous), got {self.bits!r}")
        _choice(o, "sign", self.sign, SIGN_MODES)
        _check(o, "g_max_us", self.g_max_us, 0.0, lo_open=True)
        _check(o, "headroom", self.headroom, 1.0)

    @property
    def levels(self) -> int | None:
        """Number of nonzero magnitude levels, or None for continuous."""
        return None if self.bits is None else (1 << self.bits) - 1


@dataclass(frozen=True)
class Mismatch:
    """Fixed-pattern mismatch, drawn once per device instance (Gaussian, dimensionless).

    Attributes:
        gain_sigma: per-synapse multiplicative gain spread, w_eff = (1 + gain_sigma z) w.
        offset_sigma: per-synapse additive offset, in units of the layer's w_max.
        threshold_sigma: per-neuron relative threshold spread, theta (1 + s z).
        tau_syn_sigma: per-neuron relative spread of tau_syn (alpha = exp(-1/tau_syn)).
        tau_mem_sigma: per-neuron relative spread of tau_mem (beta = exp(-1/tau_mem)).
    """

    gain_sigma: float = 0.0
    offset_sigma: float = 0.0
    threshold_sigma: float = 0.0
    tau_syn_sigma: float = 0.0
    tau_mem_sigma: float = 0.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check("substrate mismatch", f.name, getattr(self, f.name), 0.0, 2.0)


@dataclass(frozen=True)
class Programming:
    """Noise of one write of a device.

    Attributes:
        kind: ``"none"``; ``"gaussian"``: g_prog = g_target + sigma_rel g_max z;
            ``"pcm"``: aihwkit's fit sigma(g) = sum_i c_i (g/g_max)^i uS, scaled by
            g_max / g_max_ref_us (PCMLikeNoiseModel).
        sigma_rel: standard deviation relative to g_max (gaussian only).
        coeffs_us: polynomial coefficients c_0, c_1, ... in uS (pcm only).
        g_max_ref_us: g_max at which ``coeffs_us`` were fitted, uS.
        scale: multiplier of the noise (aihwkit ``prog_noise_scale``), >= 0.
    """

    kind: str = "none"
    sigma_rel: float = 0.0
    coeffs_us: tuple[float, ...] = PCM_PROG_COEFFS
    g_max_ref_us: float = PCM_G_MAX_REF_US
    scale: float = 1.0

    def __post_init__(self) -> None:
        o = "substrate programming noise"
        _choice(o, "kind", self.kind, PROG_KINDS)
        _check(o, "sigma_rel", self.sigma_rel, 0.0, 1.0)
        _check(o, "scale", self.scale, 0.0)
        _check(o, "g_max_ref_us", self.g_max_ref_us, 0.0, lo_open=True)
        object.__setattr__(self, "coeffs_us", tuple(float(c) for c in self.coeffs_us))
        if not self.coeffs_us:
            raise SubstrateError(f"{o}: coeffs_us must not be empty")
        for c in self.coeffs_us:
            _check(o, "coeffs_us entry", c)


@dataclass(frozen=True)
class Drift:
    """Conductance drift G(t) = G_prog ((t + t0) / t0)^(-nu), t since the device's last write.

    Attributes:
        kind: ``"none"`` or ``"pcm"`` (nu ~ |N(mu_nu(g), sigma_nu(g))| per device and write,
            aihwkit's fit, see :mod:`edgelearn.substrate.pcm`).
        t0_s: first reading time of the drift fit, s (> 0).
        scale: multiplier of nu (aihwkit ``drift_scale``), >= 0.
        compensation: global drift compensation per layer: the read weights are rescaled by
            sum|w| at programming / sum|w| now (what aihwkit's GlobalDriftCompensation
            estimates from a reference read).
    """

    kind: str = "none"
    t0_s: float = PCM_T0_S
    scale: float = 1.0
    compensation: bool = False

    def __post_init__(self) -> None:
        o = "substrate drift"
        _choice(o, "kind", self.kind, DRIFT_KINDS)
        _check(o, "t0_s", self.t0_s, 0.0, lo_open=True)
        _check(o, "scale", self.scale, 0.0)


@dataclass(frozen=True)
class ReadNoise:
    """Noise seen at run time.

    Attributes:
        kind: weight read noise at each read of the array (one draw per run): ``"none"``;
            ``"gaussian"``: g + sigma_rel g_max z; ``"pcm"``: aihwkit's accumulated 1/f noise
            g + |g| Q(g) sqrt(ln((t + t0 + t_read) / (2 t_read))) z,
            Q = min(0.2, 0.0088 / max(1e-3, (g/g_max)^0.65)).
        sigma_rel: gaussian weight read noise relative to g_max.
        t_read_s: read pulse duration of the 1/f fit, s (pcm).
        scale: multiplier (aihwkit ``read_noise_scale``), >= 0.
        input_sigma: temporal noise added to the synaptic current every step (threshold units).
        membrane_sigma: temporal noise added to the membrane every step (threshold units).
        readout_sigma: noise of the membrane readout (ADC), threshold units; only what is
            observed is affected, not the dynamics.
    """

    kind: str = "none"
    sigma_rel: float = 0.0
    t_read_s: float = PCM_T_READ_S
    scale: float = 1.0
    input_sigma: float = 0.0
    membrane_sigma: float = 0.0
    readout_sigma: float = 0.0

    def __post_init__(self) -> None:
        o = "substrate read noise"
        _choice(o, "kind", self.kind, READ_KINDS)
        _check(o, "sigma_rel", self.sigma_rel, 0.0, 1.0)
        _check(o, "t_read_s", self.t_read_s, 0.0, lo_open=True)
        for what in ("scale", "input_sigma", "membrane_sigma", "readout_sigma"):
            _check(o, what, getattr(self, what), 0.0)


@dataclass(frozen=True)
class Faults:
    """Stuck-at faults, drawn once per device instance.

    Attributes:
        stuck_off: fraction of devices stuck at g = 0, in [0, 1].
        stuck_on: fraction of devices stuck at g = g_max, in [0, 1]; stuck_off + stuck_on <= 1.
    """

    stuck_off: float = 0.0
    stuck_on: float = 0.0

    def __post_init__(self) -> None:
        o = "substrate faults"
        _check(o, "stuck_off", self.stuck_off, 0.0, 1.0)
        _check(o, "stuck_on", self.stuck_on, 0.0, 1.0)
        if self.stuck_off + self.stuck_on > 1.0:
            raise SubstrateError(f"{o}: stuck_off + stuck_on must be <= 1, got "
                                 f"{self.stuck_off} + {self.stuck_on}")


_PARTS = {"mapping": Mapping, "mismatch": Mismatch, "programming": Programming,
          "drift": Drift, "read": ReadNoise, "faults": Faults}


@dataclass(frozen=True)
class Preset:
    """A complete substrate description: one parameter object per hook."""

    name: str = "custom"
    mapping: Mapping = dataclasses.field(default_factory=Mapping)
    mismatch: Mismatch = dataclasses.field(default_factory=Mismatch)
    programming: Programming = dataclasses.field(default_factory=Programming)
    drift: Drift = dataclasses.field(default_factory=Drift)
    read: ReadNoise = dataclasses.field(default_factory=ReadNoise)
    faults: Faults = dataclasses.field(default_factory=Faults)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise SubstrateError(f"substrate preset name must be a non-empty string, "
                                 f"got {self.name!r}")
        for key, cls in _PARTS.items():
            if not isinstance(getattr(self, key), cls):
                raise SubstrateError(f"substrate preset '{self.name}': {key} must be a "
                                     f"{cls.__name__}, got {type(getattr(self, key)).__name__}")

    def to_dict(self) -> dict:
        """Plain JSON-able dict (tuples become lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Preset":
        """Inverse of :meth:`to_dict`; unknown keys are refused."""
        if not isinstance(d, dict):
            raise SubstrateError(f"substrate preset must be a dict, got {type(d).__name__}")
        unknown = set(d) - set(_PARTS) - {"name"}
        if unknown:
            raise SubstrateError(f"substrate preset has unknown keys {sorted(unknown)}")
        parts = {}
        for key, part in _PARTS.items():
            sub = d.get(key, {})
            if not isinstance(sub, dict):
                raise SubstrateError(f"substrate preset: {key} must be a dict")
            names = {f.name for f in dataclasses.fields(part)}
            bad = set(sub) - names
            if bad:
                raise SubstrateError(f"substrate preset: {key} has unknown keys {sorted(bad)}")
            try:
                parts[key] = part(**sub)
            except TypeError as exc:
                raise SubstrateError(f"substrate preset: {key}: {exc}") from None
        return cls(name=d.get("name", "custom"), **parts)

    def replace(self, **changes) -> "Preset":
        """A copy with whole parts or the name changed, e.g. ``replace(drift=Drift())``."""
        return dataclasses.replace(self, **changes)
