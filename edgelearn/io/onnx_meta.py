"""The edgelearn ONNX profile: metadata keys, tensor names and small graph checks (L2).

A profile file carries, in ``ModelProto.metadata_props`` (all values are strings):

    edgelearn.profile_version   "1"                      (integer; newer files are refused)
    edgelearn.graph             "step" | "scan"
    edgelearn.network           JSON {"name", "dt", "n_in", "n_out", "meta"}
    edgelearn.layers            JSON list, one object per layer, input side first:
        {"name", "kind" (lif|rlif|readout), "n_in", "n_out", "reset", "spiking",
         "alpha", "beta", "threshold"   (a number, or a list of n_out numbers),
         "tensors": {"weight", "bias", "recurrent", "alpha", "beta", "threshold"}  (initializer
                                                                        names, null if absent)}
    edgelearn.quantized         optional, reserved for the quantized variant (issue 4,
                                edgelearn/io/onnx_quant.py); parsed as JSON and passed through.

Graph tensor names (``<p>`` is a layer name, always an identifier so '.' cannot clash):

    input  "input"                [B, n_in]        (scan graph: [T, B, n_in])
    state  "<p>.current_in", "<p>.membrane_in"   [B, n]
           -> "<p>.current_out", "<p>.membrane_out"  [B, n]
    output "output"               [B, n_out]       (scan graph: [T, B, n_out])
           "<p>.spikes"           [B, n] for every spiking layer (scan graph: [T, B, n])
"""

from __future__ import annotations

import math

import numpy as np

from edgelearn.boundary import parse_json as parse_json_text
from edgelearn.errors import ModelFileError

PROFILE_VERSION = 1
KEY_VERSION = "edgelearn.profile_version"
KEY_GRAPH = "edgelearn.graph"
KEY_NETWORK = "edgelearn.network"
KEY_LAYERS = "edgelearn.layers"
KEY_QUANTIZED = "edgelearn.quantized"
GRAPH_KINDS = ("step", "scan")

INPUT = "input"
OUTPUT = "output"
STATE_KINDS = ("current", "membrane")
OPSET = 17
IR_VERSION = 8


def state_in(layer: str, kind: str) -> str:
    """Name of a state input, e.g. ``hidden.membrane_in``."""
    return f"{layer}.{kind}_in"


def state_out(layer: str, kind: str) -> str:
    """Name of a state output, e.g. ``hidden.membrane_out``."""
    return f"{layer}.{kind}_out"


def spikes_name(layer: str) -> str:
    return f"{layer}.spikes"


def read_metadata(model) -> dict[str, str]:
    """metadata_props of an onnx ModelProto as a plain dict (later duplicates win)."""
    return {p.key: p.value for p in model.metadata_props}


def write_metadata(model, items: dict[str, str]) -> None:
    """Set (replace) metadata_props entries on an onnx ModelProto in place."""
    keep = [(p.key, p.value) for p in model.metadata_props if p.key not in items]
    del model.metadata_props[:]
    for key, value in keep + [(str(k), str(v)) for k, v in items.items()]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def is_profile(meta: dict[str, str]) -> bool:
    """True if the metadata claims the edgelearn profile (any version)."""
    return KEY_VERSION in meta


def constant_to_json(values: np.ndarray):
    """A per-neuron constant as JSON: one number if all equal, else a list (exact float32)."""
    arr = np.asarray(values, dtype=np.float32).ravel()
    if arr.size and np.all(arr == arr[0]):
        return float(arr[0])
    return [float(v) for v in arr]


def constant_from_json(layer: str, what: str, value, n: int) -> np.ndarray:
    """Inverse of :func:`constant_to_json` with validation."""
    if isinstance(value, bool) or not isinstance(value, (int, float, list)):
        raise ModelFileError(f"layer '{layer}': metadata {what} must be a number or a list, "
                             f"got {type(value).__name__}")
    if isinstance(value, list):
        if len(value) != n:
            raise ModelFileError(f"layer '{layer}': metadata {what} has {len(value)} entries, "
                                 f"expected {n}")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise ModelFileError(f"layer '{layer}': metadata {what} holds non-numbers")
        arr = np.asarray(value, dtype=np.float32)
    else:
        arr = np.full(n, value, dtype=np.float32)
    if not np.all(np.isfinite(arr)):
        raise ModelFileError(f"layer '{layer}': metadata {what} contains NaN or Inf")
    return arr


def parse_json(meta: dict[str, str], key: str, kind: type):
    """Parse one JSON metadata value and check its top-level type."""
    if key not in meta:
        raise ModelFileError(f"metadata key '{key}' is missing")
    value = parse_json_text(meta[key], f"metadata key '{key}'", error=ModelFileError)
    if not isinstance(value, kind):
        raise ModelFileError(f"metadata key '{key}' must be a JSON {kind.__name__}, "
                             f"got {type(value).__name__}")
    return value


def parse_version(meta: dict[str, str]) -> int:
    raw = meta.get(KEY_VERSION, "").strip()
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6):
        raise ModelFileError(f"metadata {KEY_VERSION} must be a small integer, got "
                             f"{raw[:40]!r}")
    version = int(raw)
    if version < 1 or version > PROFILE_VERSION:
        raise ModelFileError(f"edgelearn profile version {version} is not supported "
                             f"(this edgelearn reads versions 1..{PROFILE_VERSION})")
    return version


def parse_quantized(meta: dict[str, str]) -> dict | None:
    """The reserved ``edgelearn.quantized`` entry as a dict, or None when absent."""
    if KEY_QUANTIZED not in meta:
        return None
    return parse_json(meta, KEY_QUANTIZED, dict)


def value_info_shape(vi) -> list:
    """Shape of a graph input/output: ints for fixed dims, strings (or None) for symbolic."""
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return []
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in t.shape.dim]


def check_io(graph, expected_inputs: dict[str, list], expected_outputs: dict[str, list]) -> None:
    """Check that the graph's inputs/outputs are exactly the expected names with float32
    tensors whose fixed dimensions match (``None`` in an expected shape = any size).

    Raises ModelFileError naming the missing, extra or mis-shaped tensor.
    """
    init_names = {t.name for t in graph.initializer}
    for what, items, expected in (("input", [i for i in graph.input if i.name not in init_names],
                                   expected_inputs),
                                  ("output", list(graph.output), expected_outputs)):
        names = [i.name for i in items]
        missing = [n for n in expected if n not in names]
        extra = [n for n in names if n not in expected]
        if missing:
            raise ModelFileError(f"graph {what} '{missing[0]}' is missing "
                                 f"({len(missing)} missing in all)")
        if extra:
            raise ModelFileError(f"unexpected graph {what} '{extra[0]}' "
                                 f"({len(extra)} unexpected in all)")
        for vi in items:
            elem = vi.type.tensor_type.elem_type
            if elem != 1:  # onnx.TensorProto.FLOAT
                raise ModelFileError(f"graph {what} '{vi.name}' must be float32, got "
                                     f"element type {elem}")
            shape = value_info_shape(vi)
            want = expected[vi.name]
            if len(shape) != len(want):
                raise ModelFileError(f"graph {what} '{vi.name}' has rank {len(shape)}, "
                                     f"expected {len(want)}")
            for axis, (got, exp) in enumerate(zip(shape, want)):
                if exp is not None and isinstance(got, int) and got != exp:
                    raise ModelFileError(f"graph {what} '{vi.name}' dimension {axis} is {got}, "
                                         f"expected {exp}")


def tensor_size(tensor) -> int:
    """Number of elements an initializer declares, without materialising it."""
    return int(math.prod(int(d) for d in tensor.dims))
