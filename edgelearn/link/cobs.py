"""Consistent Overhead Byte Stuffing (COBS), pure bytes in / bytes out (L3, no I/O).

COBS (Cheshire & Baker 1999) rewrites a byte string so that it contains no 0x00 byte; 0x00 can
then delimit frames on the wire. The output is a sequence of blocks ``code, data[code-1]``:

    code in 1..254: ``code-1`` non-zero data bytes follow, then an (implicit) 0x00
    code = 255:     254 non-zero data bytes follow, and no implicit 0x00

The implicit 0x00 after the last block is dropped. Overhead: one byte per started 254 bytes of
input (at least one), so ``len(encode(b)) <= len(b) + len(b) // 254 + 1``.

Both functions work on whole slices (``bytes.split`` / ``bytes.join``) so the per-byte work runs
in C; a 1 KiB frame costs a handful of Python operations.
"""

from __future__ import annotations

from edgelearn.errors import LinkError


class CobsError(LinkError):
    """A COBS block is malformed (a 0x00 inside, or a code that runs past the end)."""


def max_encoded_len(n: int) -> int:
    """Upper bound of ``len(encode(b))`` for ``len(b) == n``."""
    return n + n // 254 + 1


def encode(data: bytes) -> bytes:
    """COBS-encode ``data``; the result contains no 0x00 byte (the delimiter is not added)."""
    out = bytearray()
    for segment in bytes(data).split(b"\0"):
        # each zero-separated segment becomes blocks of at most 254 data bytes
        while len(segment) >= 254:
            out.append(255)
            out += segment[:254]
            segment = segment[254:]
        out.append(len(segment) + 1)
        out += segment
    return bytes(out)


def decode(block: bytes) -> bytes:
    """Inverse of :func:`encode`; raises :class:`CobsError` on malformed input."""
    block = bytes(block)
    n = len(block)
    if n == 0:
        raise CobsError("COBS block is empty")
    if b"\0" in block:
        raise CobsError(f"COBS block contains a 0x00 byte at offset {block.index(0)}")
    out = bytearray()
    i = 0
    while i < n:
        code = block[i]
        end = i + code
        if end > n:
            raise CobsError(f"COBS code {code} at offset {i} runs past the end ({n} bytes)")
        out += block[i + 1:end]
        i = end
        if code != 255 and i < n:
            out.append(0)
    return bytes(out)
