"""Who each device of a fleet is: its seed, its user, its drift and its chip (L3).

The fleet's stream SPEC extends the STREAM grammar of :mod:`edgelearn.adapt.streams`:

    SPEC    := SOURCE [ "@" ITEM { "," ITEM } ]
    ITEM    := user=voice | user=accent | user=all     how users are formed (default all)
             | drift=CHOICE { "/" CHOICE }              one drift per device, drawn uniformly
             | OPTION                                   any STREAM option, the same for all
    CHOICE  := none | KIND [ ":" LO [ ".." HI ] ]       severity uniform in [LO, HI]
                                                        (default range per KIND: DRIFT_RANGES)

Device ``i`` of a fleet with seed ``S`` is a pure function of (S, i): with
``g = numpy.random.default_rng([S, 0, i])`` five numbers are drawn, always, in this order:

    a = g.integers(0, 2**31)   the deploy seed (edgelearn deploy --seed): stream order, label
                               mask; the device seed (stochastic rounding, substrate instance)
                               is a + 1
    b = g.integers(0, 2**31)   user = users[b mod len(users)]
    c = g.integers(0, 2**31)   drift = choices[c mod len(choices)]
    d = g.random()             severity = round(LO + (HI - LO) d, 3)
    e = g.random()             mismatch factor = round(M_LO + (M_HI - M_LO) e, 3)
                               (substrate targets with a mismatch range only)

``users`` are sorted (Python string order) names of the users with at least one sample after
the SPEC's fixed options: voice names for user=voice, accents (voice name up to the first '+')
for user=accent. In a federated fleet, devices 0..N-1 draw from the participating users and
devices N.. (held out) from the held-out users (:func:`split_users`).

Every device is written back as a plain ``edgelearn deploy`` STREAM and TARGET, e.g. stream
``new_user@voice=en-gb+whisper,gain=0.312`` on ``substrate:bss2@mismatch=1.204``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgelearn.adapt.streams import (DRIFTS, USER_KEYS, accent_of, load_dataset, parse_options,
                                     parse_severity, split_source, user_filter, voice_names)
from edgelearn.errors import DataError, ParameterError

USER_MODES = ("all", "voice", "accent")
DRIFT_RANGES = {"gain": (0.0, 1.0), "shift": (0.0, 1.0), "dead": (0.0, 0.25),
                "noise": (0.0, 0.05), "warp": (0.0, 0.25), "tilt": (0.0, 20.0),
                "bank": (0.0, 2.0)}
SEED_LIMIT = 2 ** 31


@dataclass(frozen=True)
class DriftChoice:
    """One CHOICE of ``drift=``: a kind ("none" or a STREAM drift) and its severity range."""

    kind: str
    lo: float = 0.0
    hi: float = 0.0


@dataclass(frozen=True)
class Population:
    """A parsed fleet SPEC: the source, fixed STREAM options, user mode and drift choices."""

    spec: str
    source: str
    fixed: tuple[tuple[str, str], ...]
    user_mode: str
    drifts: tuple[DriftChoice, ...]


def parse_choice(spec: str, text: str) -> DriftChoice:
    kind, _, rng = text.partition(":")
    if kind == "none" and not rng:
        return DriftChoice("none")
    if kind not in DRIFTS:
        raise DataError(f"stream spec {spec!r}: unknown drift {kind!r}; use none or one of "
                        f"{', '.join(DRIFTS)}")
    if not rng:
        return DriftChoice(kind, *DRIFT_RANGES[kind])
    lo_text, dots, hi_text = rng.partition("..")
    lo = parse_severity(spec, lo_text)
    hi = parse_severity(spec, hi_text) if dots else lo
    if hi < lo:
        raise DataError(f"stream spec {spec!r}: drift range {rng!r} has HI < LO")
    try:
        for severity in (lo, hi):
            DRIFTS[kind](severity=severity)
    except ParameterError as exc:
        raise DataError(f"stream spec {spec!r}: {exc}") from None
    return DriftChoice(kind, lo, hi)


def parse_population(spec: str) -> Population:
    """Parse a fleet SPEC (see the module docstring)."""
    source, opts = split_source(spec)
    fixed, mode, drifts = [], "all", (DriftChoice("none"),)
    for key, value in parse_options(spec, opts):
        if key == "user":
            if value not in USER_MODES:
                raise DataError(f"stream spec {spec!r}: user={value!r}; use user=voice, "
                                f"user=accent or user=all")
            mode = value
        elif key == "drift":
            drifts = tuple(parse_choice(spec, c) for c in value.split("/"))
        elif key in USER_KEYS or key in DRIFTS:
            fixed.append((key, value))
        else:
            raise DataError(f"stream spec {spec!r}: unknown item {key!r}; use user=, drift=, "
                            f"voice=, accent= or a drift {'=, '.join(DRIFTS)}=")
    return Population(spec, source, tuple(fixed), mode, drifts)


def list_users(pop: Population, ds=None) -> list[str]:
    """Sorted users of the population (empty for user=all); ``ds`` defaults to the source."""
    if pop.user_mode == "all":
        return []
    ds = load_dataset(pop.source) if ds is None else ds
    users = tuple((k, v) for k, v in pop.fixed if k in USER_KEYS)
    ds = user_filter(ds, users, pop.spec)
    names = voice_names(ds)
    if names is None:
        raise DataError(f"stream spec {pop.spec!r}: data set '{ds.name}' records no voices, "
                        f"so user={pop.user_mode} has no users")
    keys = names if pop.user_mode == "voice" else [accent_of(n) for n in names]
    return sorted(set(str(k) for k in keys))


def split_users(users: list[str], seed: int, held_out: float) -> tuple[list[str], list[str]]:
    """(participating, held out) users of a federated fleet: ``round(held_out * len(users))``
    users, chosen by ``numpy.random.default_rng([seed, 1, 0]).permutation(len(users))`` (the
    first ones of the permutation are held out), each list kept in sorted order."""
    if not users:
        return [], []
    k = int(round(held_out * len(users)))
    if not 0 < k < len(users):
        raise DataError(f"holding out {held_out} of {len(users)} users leaves one side empty")
    perm = np.random.default_rng([int(seed), 1, 0]).permutation(len(users))
    out = set(perm[:k].tolist())
    return ([u for j, u in enumerate(users) if j not in out],
            [u for j, u in enumerate(users) if j in out])


@dataclass(frozen=True)
class Device:
    """One device of a fleet, as ``edgelearn deploy`` arguments plus what was drawn."""

    index: int
    seed: int
    stream: str
    target: str
    user: str
    drift: str
    severity: float
    mismatch: float | None


def derive_device(pop: Population, users: list[str], target: str, seed: int, i: int,
                  mismatch: tuple[float, float] | None = None) -> Device:
    """Device ``i`` of the fleet with seed ``seed`` (module docstring)."""
    g = np.random.default_rng([int(seed), 0, int(i)])
    a = int(g.integers(0, SEED_LIMIT))
    b = int(g.integers(0, SEED_LIMIT))
    c = int(g.integers(0, SEED_LIMIT))
    d = float(g.random())
    e = float(g.random())
    opts = [f"{k}={v}" for k, v in pop.fixed]
    user = ""
    if pop.user_mode != "all":
        user = users[b % len(users)]
        opts.append(f"{pop.user_mode}={user}")
    choice = pop.drifts[c % len(pop.drifts)]
    severity = 0.0
    if choice.kind != "none":
        severity = round(choice.lo + (choice.hi - choice.lo) * d, 3)
        opts.append(f"{choice.kind}={severity!r}")
    stream = pop.source + ("@" + ",".join(opts) if opts else "")
    factor = None
    if mismatch is not None:
        factor = round(mismatch[0] + (mismatch[1] - mismatch[0]) * e, 3)
        target = f"{target}@mismatch={factor!r}"
    return Device(int(i), a, stream, target, user, choice.kind, severity, factor)
