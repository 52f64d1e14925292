"""Parse a ``--target`` string: host | sim | serial:URL | substrate[:PRESET] | tflite."""

from __future__ import annotations

from dataclasses import dataclass

from edgelearn.errors import TargetError

KINDS = ("host", "sim", "serial", "substrate", "tflite")


@dataclass(frozen=True)
class TargetSpec:
    """A parsed target: its kind and the argument after the colon (URL or preset), if any."""

    kind: str
    arg: str = ""

    @property
    def has_link(self) -> bool:
        """True for targets reached over a serial link (their plan includes frame buffers)."""
        return self.kind in ("sim", "serial")

    def __str__(self) -> str:
        return f"{self.kind}:{self.arg}" if self.arg else self.kind


def parse_target(text: str) -> TargetSpec:
    """``"serial:/dev/ttyACM0"`` -> TargetSpec("serial", "/dev/ttyACM0"); errors list the kinds."""
    kind, _, arg = str(text).partition(":")
    if kind not in KINDS:
        raise TargetError(f"unknown target {text!r}; use one of host, sim, serial:URL, "
                          f"substrate[:PRESET], tflite")
    if kind == "serial" and not arg:
        raise TargetError("target 'serial' needs a port URL, e.g. serial:/dev/ttyACM0 or "
                          "serial:socket://127.0.0.1:7777")
    if kind in ("host", "sim", "tflite") and arg:
        raise TargetError(f"target '{kind}' takes no argument, got {text!r}")
    return TargetSpec(kind, arg)
