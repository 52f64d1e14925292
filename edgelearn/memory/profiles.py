"""Device profiles and byte-size parsing.

A profile states what a target offers: RAM and flash in bytes, the native word size, whether it
has a floating-point unit, and whether constant data can be executed/read in place from flash.
The figures are those of typical boards of each class, not of one vendor's part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgelearn.errors import MemoryBudgetError, ParameterError

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
          "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3}


MAX_SIZE = 1 << 50   # 1 PiB: larger sizes are typing errors, not devices


def parse_bytes(text: str | int) -> int:
    """Parse a size such as ``262144``, ``256KiB``, ``256 kB``, ``1.5MiB`` into bytes
    (1 .. 2**50; MemoryBudgetError otherwise)."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        m = re.fullmatch(r"\s*([0-9]+)(?:\.([0-9]+))?\s*([A-Za-z]*)\s*", str(text))
        if not m or m.group(3).lower() not in _UNITS:
            raise MemoryBudgetError(f"cannot read size {str(text)[:40]!r}: use bytes or a unit "
                                    f"such as KiB, MiB, kB, MB (e.g. 256KiB)")
        whole, frac = m.group(1).lstrip("0") or "0", (m.group(2) or "")[:12]
        unit = _UNITS[m.group(3).lower()]
        # exact integer arithmetic (no float: 400 digits must not become inf)
        value = MAX_SIZE + 1 if len(whole) > 20 else (int(whole + frac) * unit) // 10 ** len(frac)
    if value <= 0:
        raise MemoryBudgetError(f"size must be > 0 bytes, got {str(text)[:40]!r}")
    if value > MAX_SIZE:
        raise MemoryBudgetError(f"size {str(text)[:40]!r} is above the largest supported "
                                f"{MAX_SIZE} bytes (1 PiB)")
    return value


def format_bytes(n: int) -> str:
    """Human-readable size: 1536 -> '1.5 KiB'."""
    if n < 1024:
        return f"{n} B"
    if n < 1024**2:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024**2:.2f} MiB"


@dataclass(frozen=True)
class DeviceProfile:
    """What a device class offers.

    Attributes:
        name: profile id used on the command line.
        ram: bytes of RAM available to edgelearn (the arena's upper bound).
        flash: bytes of flash for model slots (two slots for A/B upload).
        word_bytes: native word size in bytes (alignment of the arena).
        fpu: True if float32 arithmetic is in hardware (hEP runs in float only with an FPU
            or on a host; without one, hEP is charged but flagged as emulated).
        description: one line for listings.
    """

    name: str
    ram: int
    flash: int
    word_bytes: int
    fpu: bool
    description: str

    def __post_init__(self) -> None:
        if self.ram <= 0 or self.flash < 0 or self.word_bytes not in (1, 2, 4, 8):
            raise ParameterError(f"profile '{self.name}': ram {self.ram}, flash {self.flash}, "
                                 f"word {self.word_bytes} are not a valid device")


PROFILES: dict[str, DeviceProfile] = {p.name: p for p in (
    DeviceProfile("cortex-m4-256k", 256 * 1024, 1024 * 1024, 4, True,
                  "Cortex-M4F class MCU: 256 KiB SRAM, 1 MiB flash, FPU"),
    DeviceProfile("cortex-m0plus-64k", 64 * 1024, 256 * 1024, 4, False,
                  "Cortex-M0+ class MCU: 64 KiB SRAM, 256 KiB flash, no FPU"),
    DeviceProfile("cortex-m7-1m", 1024 * 1024, 2 * 1024 * 1024, 4, True,
                  "Cortex-M7 class MCU: 1 MiB SRAM, 2 MiB flash, FPU"),
    DeviceProfile("linux-board", 512 * 1024**2, 4 * 1024**3, 8, True,
                  "Linux single-board computer: 512 MiB usable RAM"),
)}

DEFAULT_PROFILE = "cortex-m4-256k"


def get_profile(name: str) -> DeviceProfile:
    """Look up a profile by name; the error lists the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise MemoryBudgetError(f"unknown device profile {name!r}; known profiles: "
                                f"{', '.join(PROFILES)}") from None
