"""The limits untrusted input is held to (L0), checked before the work or allocation they bound.

    limits() -> Limits               the limits in force
    use_limits(**changes)            context manager: other limits for a block (tests, embedding)

Defaults and their reasons:

    array_bytes        1 GiB     one array read from an .npy/.npz/HDF5 file (declared shape
                                 times item size), also bounded by what the file can hold
    compression_ratio  1032      a deflated member may declare at most this many bytes per
                                 stored byte (zlib's largest possible expansion) plus 64 KiB
    json_depth         64        nesting of a JSON document (metadata, checkpoints, images)
    fold_elements      2**24     one tensor made by constant folding in the ONNX recogniser
                                 (or as many as the graph's largest initializer, if more)
    fold_work          2**31     element operations of all constant folds of one graph
    loop_iterations    10**6     trip count of an ONNX Loop in an untrusted graph
    tensor_bytes       256 MiB   any statically known tensor of an untrusted ONNX graph (or
                                 twice the largest initializer, if more)
    runtime_bytes      256 MiB   onnxruntime's memory arena for untrusted graphs (all of them
                                 together; fixed when the first such graph is loaded)
    run_seconds        10        one onnxruntime call on an untrusted graph (a step, or the
                                 load-time verification probe)
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Iterator

from edgelearn.errors import ParameterError

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


@dataclass(frozen=True)
class Limits:
    """See the module docstring for the meaning and default of each field."""

    array_bytes: int = 1 * GiB
    compression_ratio: int = 1032
    json_depth: int = 64
    fold_elements: int = 1 << 24
    fold_work: int = 1 << 31
    loop_iterations: int = 10**6
    tensor_bytes: int = 256 * MiB
    runtime_bytes: int = 256 * MiB
    run_seconds: float = 10.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
                    or value != value or value == float("inf"):
                raise ParameterError(f"limit {f.name} must be a finite number > 0, got "
                                     f"{value!r}")


_current = Limits()


def limits() -> Limits:
    """The limits in force."""
    return _current


@contextlib.contextmanager
def use_limits(**changes) -> Iterator[Limits]:
    """Hold untrusted input to other limits inside the block, e.g.
    ``with use_limits(run_seconds=1): ...``."""
    global _current
    old = _current
    _current = dataclasses.replace(old, **changes)
    try:
        yield _current
    finally:
        _current = old
