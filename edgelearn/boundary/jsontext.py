"""Parse untrusted JSON text (L0): nesting depth checked before parsing, standard JSON only.

    parse_json(text, what, error=ModelFileError) -> object

The nesting depth (arrays and objects, outside strings) is measured on the text first and must
not exceed ``limits().json_depth`` (DepthLimitError), so the parser never recurses deeper than
that. ``NaN``, ``Infinity`` and ``-Infinity``, which Python's json accepts but JSON does not,
are refused, as is text that is not valid JSON (``error``, one line naming ``what``).
"""

from __future__ import annotations

import json
import re

import numpy as np

from edgelearn.boundary.limits import limits
from edgelearn.errors import DepthLimitError, EdgelearnError, ModelFileError

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_OPEN = np.frombuffer(b"[{", np.uint8)
_CLOSE = np.frombuffer(b"]}", np.uint8)


def json_depth(text: str) -> int:
    """Deepest nesting of arrays/objects in ``text`` (strings are skipped; unbalanced text is
    measured as written and left to the parser to refuse)."""
    bare = np.frombuffer(_STRING.sub("", text).encode("utf-8", "replace"), np.uint8)
    step = np.isin(bare, _OPEN).astype(np.int64) - np.isin(bare, _CLOSE)
    return int(np.max(np.cumsum(step), initial=0))


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_json(text: str | bytes, what: str,
               error: type[EdgelearnError] = ModelFileError):
    """The value of the JSON ``text``; ``what`` names it in messages."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error(f"{what} is not UTF-8 text (byte {exc.start})") from None
    depth = json_depth(text)
    cap = limits().json_depth
    if depth > cap:
        raise DepthLimitError(f"{what} is nested {depth} deep, limit {cap}")
    try:
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        line = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise error(f"{what} is not valid JSON: {line[:160]}") from None
