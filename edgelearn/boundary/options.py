"""Checked values for command-line options (L0): argparse ``type=`` callables that accept only
what the option means, so a bad value is a one-line usage error before any work starts.

    integer(lo, hi)       an int in [lo, hi] (either bound may be None)
    power_of_two(lo, hi)  an int in [lo, hi] that is a power of two
    real(lo, hi, ...)     a finite float in [lo, hi] (or open at either end)
    SEED                  integer(0, 2**31 - 1): seeds of streams, label masks, devices
    COUNT                 integer(1, None)
    FRACTION              real(0, 1)
    POSITIVE              real(0, None, lo_open=True), e.g. seconds, time steps
"""

from __future__ import annotations

import argparse
import math


def _describe(lo, hi, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {hi}"
    return "any value"


def integer(lo: int | None = None, hi: int | None = None):
    """argparse type: a decimal integer within [lo, hi]."""
    def parse(text: str) -> int:
        t = text.strip()
        digits = t[1:] if t[:1] in "+-" else t
        if not digits.isdigit() or len(digits) > 30 or not digits.isascii():
            raise argparse.ArgumentTypeError(f"expected an integer, got {text[:40]!r}")
        value = int(t)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be an integer {_describe(lo, hi, False, False)}"
                                             f", got {value}")
        return value
    parse.__name__ = "integer"
    return parse


def power_of_two(lo: int, hi: int):
    """argparse type: a power of two within [lo, hi] (lo >= 1)."""
    base = integer(None, None)

    def parse(text: str) -> int:
        value = base(text)
        if not lo <= value <= hi or value & (value - 1):
            raise argparse.ArgumentTypeError(f"must be a power of two in [{lo}, {hi}], got "
                                             f"{value}")
        return value
    parse.__name__ = "power of two"
    return parse


def real(lo: float | None = None, hi: float | None = None, lo_open: bool = False,
         hi_open: bool = False):
    """argparse type: a finite number within the bounds (``*_open`` excludes the bound)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text[:40]!r}") from None
        bad = not math.isfinite(value)
        bad |= lo is not None and (value < lo or (lo_open and value == lo))
        bad |= hi is not None and (value > hi or (hi_open and value == hi))
        if bad:
            raise argparse.ArgumentTypeError(f"must be a finite number "
                                             f"{_describe(lo, hi, lo_open, hi_open)}, got "
                                             f"{text[:40]}")
        return value
    parse.__name__ = "number"
    return parse


SEED = integer(0, 2**31 - 1)
COUNT = integer(1, None)
FRACTION = real(0.0, 1.0)
POSITIVE = real(0.0, None, lo_open=True)
