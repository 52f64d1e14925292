"""Streams of samples for on-device adaptation: new speakers and sensor changes (L2).

A stream draws samples from a Dataset (new speakers: pass e.g. the "new_user" split, optionally
ordered speaker by speaker with ``group_key="voice"``) and passes each through a list of
transforms, in order. Sample i of a stream is a pure function of (dataset, transforms, seed, i):
iterating twice gives the same bytes. Each transform has a ``severity`` (0 = no change):

    GainDrift(s)     per-channel gain g_c(n) = exp(s * B_c(n / (N-1))), B_c a standard Brownian
                     motion over the stream (slow, multiplicative); counts are scaled with
                     stochastic rounding: x' = floor(g x) + Bernoulli(g x - floor(g x))
    ChannelShift(s)  channels move by k = round(s * C / 8) (or ``k`` itself), for samples from
                     ``start`` (fraction of the stream) on: x'[:, c] = x[:, c - k]; ``wrap`` rolls
                     (default), otherwise the vacated channels are silent
    DeadChannels(s)  a fraction s of the channels (chosen once per stream) output nothing
    NoiseSpikes(s)   extra Poisson spikes, s expected spikes per (bin, channel)
                     (with 10 ms bins s = 0.05 is 5 Hz of background firing per channel)
    TimeWarp(s)      each sample's time axis is stretched by a factor w, log-uniform in
                     [1/(1+s), 1+s]: a spike in bin t moves to bin floor((t + 1/2) w) (dropped
                     past the end; counts add, saturating at 255); float data is interpolated
    SpectralTilt(s)  the front end's frequency response tilts, reached gradually: channel c
                     (ascending centre frequency, C channels) of sample i of N is scaled by
                     g_c(i) = 10^(s r(i) (1/2 - c/(C-1)) / 20), r(i) = min(1, i / (ramp (N-1)))
                     (r = 1 when ramp = 0 or N = 1; c/(C-1) = 0 when C = 1), s <= 200 dB:
                     at full strength the lowest channel gains s/2 dB, the highest loses
                     s/2 dB, the middle keeps its level; counts are scaled with stochastic
                     rounding as for GainDrift
    BankShift(s)     the filter bank's centre frequencies move down by u(i) = s r(i) channels
                     (r as for SpectralTilt), so the input's content moves up the channels:
                     x'[:, c] = (1 - f) x[:, c - k] + f x[:, c - k - 1], k = floor(u),
                     f = u - k, channels outside [0, C) read 0; counts with stochastic rounding

Counts stay uint8 (saturating at 255); float32 data stays float32 (no rounding, no clipping).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgelearn.boundary import limits
from edgelearn.data.dataset import Dataset
from edgelearn.errors import DataError, ParameterError, SizeLimitError


def _check_severity(name: str, severity: float, upper: float | None = None) -> None:
    if not np.isfinite(severity) or severity < 0 or (upper is not None and severity > upper):
        rng = f"[0, {upper}]" if upper is not None else ">= 0"
        raise ParameterError(f"{name} severity must be {rng}, got {severity}")


#: the largest SpectralTilt severity (dB): gains within 10^(+-5), so scaled values stay finite
MAX_TILT_DB = 200.0
#: GainDrift's largest severity (std of the log gain at the stream's end): a Brownian path's
#: extreme rarely passes 6 std, so gains stay within about e^(+-60) and finite in float64
MAX_GAIN_DRIFT = 10.0


def _check_ramp(name: str, ramp: float) -> None:
    if not 0 <= ramp <= 1:
        raise ParameterError(f"{name} ramp must lie in [0, 1], got {ramp}")


def _to_dtype(x: np.ndarray, like: np.dtype) -> np.ndarray:
    if like == np.uint8:
        return np.clip(x, 0, 255).astype(np.uint8)
    return x.astype(np.float32)


def _round_like(v: np.ndarray, like: np.dtype, rng: np.random.Generator) -> np.ndarray:
    """Float values v as the data's dtype: counts (uint8) by stochastic rounding,
    floor(v) + Bernoulli(v - floor(v)); float data as float32."""
    if like != np.uint8:
        return v.astype(np.float32)
    lo = np.floor(v)
    return _to_dtype(lo + (rng.random(v.shape) < (v - lo)), like)


def _scale(x: np.ndarray, gain: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _round_like(x.astype(np.float64) * gain, x.dtype, rng)


class Transform(ABC):
    """Base of the stream transforms: a frozen dataclass with ``severity``.

    ``plan(shape, n_samples, rng)`` draws whatever is fixed for the whole stream;
    ``apply(x, i, n_samples, plan, rng)`` transforms sample i ([T, C]).
    """

    severity: float

    def plan(self, shape: tuple[int, int], n_samples: int, rng: np.random.Generator) -> Any:
        return None

    @abstractmethod
    def apply(self, x: np.ndarray, i: int, n_samples: int, plan: Any,
              rng: np.random.Generator) -> np.ndarray:
        """The transformed sample i ([T, C], same dtype)."""


@dataclass(frozen=True)
class GainDrift(Transform):
    """Slow multiplicative per-channel gain drift; severity = std of log-gain at the stream end,
    0 <= severity <= 10 (:data:`MAX_GAIN_DRIFT`: exp(severity * walk) overflowed past it)."""

    severity: float = 0.5

    def __post_init__(self) -> None:
        _check_severity("GainDrift", self.severity, MAX_GAIN_DRIFT)

    def plan(self, shape, n_samples, rng):
        steps = rng.standard_normal((max(n_samples - 1, 0), shape[1]))
        steps *= np.sqrt(1.0 / max(n_samples - 1, 1))
        walk = np.concatenate([np.zeros((1, shape[1])), np.cumsum(steps, axis=0)])
        return np.exp(self.severity * walk)                     # [n_samples, C]

    def apply(self, x, i, n_samples, plan, rng):
        return _scale(x, plan[i][None, :], rng)


@dataclass(frozen=True)
class ChannelShift(Transform):
    """Channels move by k = round(severity * C / 8) (or ``k``) from fraction ``start`` on."""

    severity: float = 0.5
    k: int | None = None
    wrap: bool = True
    start: float = 0.0

    def __post_init__(self) -> None:
        _check_severity("ChannelShift", self.severity)
        if not 0 <= self.start <= 1:
            raise ParameterError(f"ChannelShift start must lie in [0, 1], got {self.start}")

    def shift(self, n_channels: int) -> int:
        """The channel offset k for ``n_channels`` channels."""
        return int(self.k) if self.k is not None else int(round(self.severity * n_channels / 8))

    def plan(self, shape, n_samples, rng):
        return self.shift(shape[1])

    def apply(self, x, i, n_samples, plan, rng):
        k = plan
        if k == 0 or i < self.start * n_samples:
            return x
        out = np.roll(x, k, axis=1)
        if not self.wrap:
            if abs(k) >= x.shape[1]:
                out[:] = 0
            elif k > 0:
                out[:, :k] = 0
            else:
                out[:, k:] = 0
        return out


@dataclass(frozen=True)
class DeadChannels(Transform):
    """A fraction ``severity`` of the channels, drawn once per stream, go silent."""

    severity: float = 0.1
    start: float = 0.0

    def __post_init__(self) -> None:
        _check_severity("DeadChannels", self.severity, upper=1.0)
        if not 0 <= self.start <= 1:
            raise ParameterError(f"DeadChannels start must lie in [0, 1], got {self.start}")

    def plan(self, shape, n_samples, rng):
        n_dead = int(round(self.severity * shape[1]))
        return np.sort(rng.permutation(shape[1])[:n_dead])

    def apply(self, x, i, n_samples, plan, rng):
        if plan.size == 0 or i < self.start * n_samples:
            return x
        out = x.copy()
        out[:, plan] = 0
        return out


@dataclass(frozen=True)
class NoiseSpikes(Transform):
    """Extra Poisson spikes: ``severity`` expected spikes per (bin, channel), 0..255 (a count
    bin saturates at 255; numpy's Poisson sampler refuses rates near 1e19)."""

    severity: float = 0.02

    def __post_init__(self) -> None:
        _check_severity("NoiseSpikes", self.severity, 255.0)

    def apply(self, x, i, n_samples, plan, rng):
        if self.severity == 0:
            return x
        extra = rng.poisson(self.severity, size=x.shape)
        return _to_dtype(x.astype(np.float64) + extra, x.dtype)


@dataclass(frozen=True)
class TimeWarp(Transform):
    """Stretch each sample's time axis by w, log-uniform in [1/(1+severity), 1+severity]."""

    severity: float = 0.2

    def __post_init__(self) -> None:
        _check_severity("TimeWarp", self.severity)

    def apply(self, x, i, n_samples, plan, rng):
        if self.severity == 0:
            return x
        w = float(np.exp(rng.uniform(-1.0, 1.0) * np.log1p(self.severity)))
        return warp_time(x, w)


@dataclass(frozen=True)
class SpectralTilt(Transform):
    """A smooth tilt of the per-channel gains across frequency, reached over the stream.

    Sample i of N, channel c of C (channels in ascending centre frequency):

        g_c(i) = 10^(severity * r(i) * (1/2 - c/(C-1)) / 20)
        r(i)   = min(1, i / (ramp * (N-1)))          (1 when ramp = 0 or N = 1)

    so at full strength (r = 1) the lowest channel gains severity/2 dB, the highest loses
    severity/2 dB and the middle of the band keeps its level: a microphone or analog filter
    bank whose high-frequency response sinks (a membrane that ages or gets covered, a capsule
    swapped for another model: ``ramp=0``). The gain acts on the encoded spike rates, counts
    scaled with stochastic rounding (as GainDrift): it models a change of the spike front end's
    per-channel sensitivity (through the speech encoder's log compression an acoustic level
    change of the same dB moves the counts less). ``severity`` is the gain ratio, in dB,
    between the first and last channel, 0 <= severity <= 200 (:data:`MAX_TILT_DB`: gains
    within 10^(+-5), so scaled values stay finite). With one channel (C = 1) c/(C-1) is read
    as 0: the channel gains severity/2 dB.
    """

    severity: float = 12.0
    ramp: float = 1.0

    def __post_init__(self) -> None:
        _check_severity("SpectralTilt", self.severity, MAX_TILT_DB)
        _check_ramp("SpectralTilt", self.ramp)

    def plan(self, shape, n_samples, rng):
        c = np.arange(shape[1], dtype=np.float64)
        return 0.5 - c / max(shape[1] - 1, 1)                   # [C], +1/2 .. -1/2

    def apply(self, x, i, n_samples, plan, rng):
        if self.severity == 0:
            return x
        gain = 10.0 ** (self.severity * ramp_strength(i, n_samples, self.ramp) * plan / 20.0)
        return _scale(x, gain[None, :], rng)


def ramp_strength(i: int, n_samples: int, ramp: float) -> float:
    """r(i) = min(1, i / (ramp (N-1))): the share of a gradual change reached at sample ``i`` of
    N = ``n_samples`` when it is complete at fraction ``ramp`` of the stream (1 when ramp = 0 or
    N = 1)."""
    if ramp == 0 or n_samples <= 1:
        return 1.0
    return min(1.0, i / (ramp * (n_samples - 1)))


@dataclass(frozen=True)
class BankShift(Transform):
    """The filter bank's centre frequencies move, gradually: a fractional channel shift.

    Sample i of N, channel c of C: u = severity * r(i) channels (r = :func:`ramp_strength`),
    k = floor(u), f = u - k, and

        x'[:, c] = (1 - f) x[:, c - k] + f x[:, c - k - 1]       (x[:, c'] = 0 outside [0, C))

    Every centre frequency is lowered by u channels (on log-spaced channels a factor
    (f_max / f_min)^(-u / (C-1)), e.g. 1.072^-u on the speech bank: 64 channels, 100 Hz - 8 kHz),
    so a sound appears u channels higher up; the lowest channels receive nothing. Between
    whole channels the response is interpolated linearly from the two neighbours (the bank's
    filters overlap; a first-order model of a filter bank whose tuning drifts, e.g. an analog
    cochlea with temperature). Counts are rounded stochastically (unbiased); float data stays
    float. Compare :class:`ChannelShift`: a whole-channel move, at once, by default wrapping.
    """

    severity: float = 2.0
    ramp: float = 1.0

    def __post_init__(self) -> None:
        _check_severity("BankShift", self.severity)
        _check_ramp("BankShift", self.ramp)

    def apply(self, x, i, n_samples, plan, rng):
        u = self.severity * ramp_strength(i, n_samples, self.ramp)
        if u == 0:
            return x
        k = int(np.floor(u))
        f = u - k
        v = x.astype(np.float64)
        return _round_like((1.0 - f) * _move_up(v, k) + f * _move_up(v, k + 1), x.dtype, rng)


def _move_up(x: np.ndarray, k: int) -> np.ndarray:
    """x[:, c - k] at channel c, 0 where c - k < 0 (k >= 0)."""
    out = np.zeros_like(x)
    if k < x.shape[1]:
        out[:, k:] = x[:, :x.shape[1] - k]
    return out


def warp_time(x: np.ndarray, w: float) -> np.ndarray:
    """x [T, C] with its time axis stretched by w (> 1 slower, < 1 faster)."""
    t_len = x.shape[0]
    if x.dtype == np.uint8:
        new_t = np.floor((np.arange(t_len) + 0.5) * w).astype(np.int64)
        out = np.zeros(x.shape, dtype=np.int64)
        keep = new_t < t_len
        np.add.at(out, new_t[keep], x[keep].astype(np.int64))
        return np.minimum(out, 255).astype(np.uint8)
    src = (np.arange(t_len) + 0.5) / w - 0.5
    out = np.empty_like(x)
    for c in range(x.shape[1]):
        out[:, c] = np.interp(src, np.arange(t_len), x[:, c], left=0.0, right=0.0)
    return out.astype(np.float32)


def _as_dataset(ds: Any) -> Dataset:
    if isinstance(ds, Dataset):
        return ds
    if isinstance(ds, tuple) and len(ds) in (2, 3):
        x, y = np.asarray(ds[0]), np.asarray(ds[1])
        n_classes = ds[2] if len(ds) == 3 else (int(y.max()) + 1 if y.size else 1)
        return Dataset(x, y, n_classes, "stream input")
    raise DataError(f"a stream needs a Dataset or an (x, y[, n_classes]) tuple, got "
                    f"{type(ds).__name__}")


class Stream:
    """A deterministic, re-iterable sequence of (x [T, C], y) pairs; see :func:`make_stream`."""

    def __init__(self, ds: Dataset, transforms: Sequence[Transform], indices: np.ndarray,
                 seed: int) -> None:
        self.dataset = ds
        self.transforms = tuple(transforms)
        self.indices = indices
        self.seed = int(seed)
        n = len(indices)
        shape = (ds.n_steps, ds.n_channels)
        self._plans = [t.plan(shape, n, np.random.default_rng([self.seed, 1, j]))
                       for j, t in enumerate(self.transforms)]

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def n_classes(self) -> int:
        return self.dataset.n_classes

    def sample(self, i: int) -> tuple[np.ndarray, int]:
        """Sample i of the stream (the same every time)."""
        n = len(self)
        if not 0 <= i < n:
            raise DataError(f"stream has {n} samples, asked for sample {i}")
        j = int(self.indices[i])
        x = np.array(self.dataset.x[j])
        for k, (t, plan) in enumerate(zip(self.transforms, self._plans)):
            x = t.apply(x, i, n, plan, np.random.default_rng([self.seed, 2, i, k]))
        return x, int(self.dataset.y[j])

    def __iter__(self) -> Iterator[tuple[np.ndarray, int]]:
        for i in range(len(self)):
            yield self.sample(i)

    def as_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All samples: x [N, T, C] (dtype of the data set) and y int64 [N]."""
        xs = np.empty((len(self), self.dataset.n_steps, self.dataset.n_channels),
                      dtype=self.dataset.x.dtype)
        ys = np.empty(len(self), dtype=np.int64)
        for i in range(len(self)):
            xs[i], ys[i] = self.sample(i)
        return xs, ys

    def as_dataset(self, name: str | None = None) -> Dataset:
        """The stream as a Dataset (per-sample meta of the source reordered with it)."""
        xs, ys = self.as_arrays()
        n_src = len(self.dataset)
        meta = {k: (v[self.indices] if isinstance(v, np.ndarray) and v.ndim >= 1
                    and v.shape[0] == n_src else v) for k, v in self.dataset.meta.items()}
        meta["stream_transforms"] = [repr(t) for t in self.transforms]
        meta["stream_seed"] = self.seed
        return Dataset(xs, ys, self.dataset.n_classes, name or f"{self.dataset.name}/stream",
                       meta)


def make_stream(ds: Dataset, transforms: Sequence[Transform] = (), n_samples: int | None = None,
                seed: int = 0, group_key: str | None = None) -> Stream:
    """A stream of ``n_samples`` samples of ``ds`` (default: each sample once), transformed.

    Samples are drawn in a seeded random order (reshuffled on every pass if n_samples > len(ds)).
    With ``group_key`` (a per-sample array in ``ds.meta``, e.g. "voice" for new speakers) the
    stream visits one group after another, in seeded order, each group's samples shuffled.
    """
    ds = _as_dataset(ds)
    transforms = list(transforms or [])
    for k, t in enumerate(transforms):
        if not isinstance(t, Transform):
            raise DataError(f"stream transform {k} is a {type(t).__name__}, not one of "
                            f"GainDrift, ChannelShift, DeadChannels, NoiseSpikes, TimeWarp, "
                            f"SpectralTilt, BankShift")
    n = len(ds) if n_samples is None else n_samples
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise DataError(f"stream of '{ds.name}' would be empty: n_samples={n_samples}")
    nbytes = int(n) * int(np.prod(ds.x.shape[1:])) * ds.x.dtype.itemsize
    if nbytes > limits().array_bytes:
        raise SizeLimitError(f"a stream of {n} samples of '{ds.name}' would take {nbytes} bytes, "
                             f"limit {limits().array_bytes} (limit array_bytes)")
    rng = np.random.default_rng([int(seed), 0])
    if group_key is not None:
        groups = ds.meta.get(group_key)
        if not (isinstance(groups, np.ndarray) and groups.shape == (len(ds),)):
            raise DataError(f"dataset '{ds.name}' has no per-sample meta['{group_key}'] to "
                            f"group the stream by")
        # group by position in np.unique (NaN values form one group; '==' would match none)
        labels, which = np.unique(groups, return_inverse=True)
        order = []
        for g in rng.permutation(len(labels)):
            members = np.flatnonzero(which.ravel() == g)
            order.append(members[rng.permutation(members.size)])
        base = np.concatenate(order)
        reps = -(-int(n) // base.size)
        indices = np.tile(base, reps)[: int(n)]
    else:
        passes = [rng.permutation(len(ds)) for _ in range(-(-int(n) // len(ds)))]
        indices = np.concatenate(passes)[: int(n)]
    return Stream(ds, transforms, indices.astype(np.int64), seed)


def holdout(ds: Dataset, fraction: float = 0.5, seed: int = 0,
            group_key: str | None = None) -> tuple[Dataset, Dataset]:
    """Split ``ds`` into (adapt, evaluate): ``fraction`` of each class goes to evaluate.

    With ``group_key`` (e.g. "voice") the split is made within each (group, class) cell, so the
    same speakers appear on both sides (adapt to a user, then measure on that user's other
    utterances); cells with one sample go to adapt. Deterministic given ``seed``.
    """
    if not 0 < fraction < 1:
        raise DataError(f"holdout fraction must lie in (0, 1), got {fraction}")
    groups = np.zeros(len(ds), dtype=np.int64)
    if group_key is not None:
        g = ds.meta.get(group_key)
        if not (isinstance(g, np.ndarray) and g.shape[:1] == (len(ds),)):
            raise DataError(f"dataset '{ds.name}' has no per-sample meta['{group_key}']")
        groups = np.unique(g, return_inverse=True)[1].ravel()
    rng = np.random.default_rng([int(seed), 3])
    evaluate = np.zeros(len(ds), dtype=bool)
    cells = groups * ds.n_classes + ds.y
    for cell in np.unique(cells):
        idx = np.flatnonzero(cells == cell)
        k = int(np.floor(fraction * idx.size + rng.random()))   # unbiased rounding
        k = min(k, idx.size - 1)
        if k > 0:
            evaluate[rng.permutation(idx)[:k]] = True
    if not evaluate.any() or evaluate.all():
        raise DataError(f"holdout of '{ds.name}' with fraction {fraction} leaves one side empty")
    return (ds.subset(~evaluate, f"{ds.name}/adapt"), ds.subset(evaluate, f"{ds.name}/eval"))
