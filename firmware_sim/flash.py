"""Flash with two model slots (A/B), persisted to a file (device side of the upload protocol).

Layout of ``size`` bytes: two equal regions; each region is a 64-byte slot header followed by
the slot's data area (``slot_size = size // 2 - 64`` bytes). Slot header (little-endian):

    magic b"ELSL" | generation u32 | length u32 | crc u32 | header_crc u32 | 44 bytes 0xFF

``header_crc`` is CRC-32 (zlib) of the 16 bytes before it. A slot is *valid* when its magic and
header CRC match and CRC-32 of its ``length`` data bytes equals ``crc``; the *active* slot is
the newest valid slot, generations compared as serial numbers (RFC 1982: A is newer than B
when (A - B) mod 2^32 lies in 1..2^31-1), so generation 0xFFFFFFFF is followed by 0. Erased
flash reads 0xFF. The device boots the newest valid slot whose image runs (``valid_slots``
lists them newest first) and falls back to the older one.

An upload writes the slot that is not running (``begin`` erases it, ``write`` appends) and
``commit`` writes its header with generation = newest valid + 1 (mod 2^32) and the announced
CRC. The header write is the single commit point: until it happens the previous slot stays
active, so a reset at any moment of an upload leaves the previous model intact.

Persistence: the whole flash is written to ``path`` (atomically, temp file + rename) at every
commit (a failed write leaves the slot uncommitted; the folder must be writable when the
simulator starts); data written between ``begin`` and ``commit`` lives only in the process, exactly like
an interrupted upload whose slot a device would treat as erased. A restarted simulator with the
same file boots the last committed model.
"""

from __future__ import annotations

import os
import struct
import tempfile
import zlib
from dataclasses import dataclass

from edgelearn.atomic import atomic_write_bytes
from edgelearn.errors import EdgelearnError

SLOT_HEADER_BYTES = 64
MAGIC = b"ELSL"
_HDR = struct.Struct("<4sIIII")


@dataclass(frozen=True)
class SlotInfo:
    slot: int
    generation: int
    length: int
    crc: int


class FlashError(EdgelearnError):
    """Raised to the device logic, which turns it into an error frame (and by the simulator's
    start, which turns it into one error line)."""


def _check_writable(path: str) -> None:
    """Refuse a flash file the simulator could not persist to (tried, not guessed: a file is
    created and removed in its folder, an existing file is opened for update)."""
    folder = os.path.dirname(os.path.abspath(path)) or "."
    try:
        if os.path.isdir(path):
            raise IsADirectoryError(path)
        if os.path.exists(path):
            with open(path, "r+b"):
                pass
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".flash-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise FlashError(f"flash file {path} cannot be written: "
                         f"{exc.strerror or type(exc).__name__}") from None


def _erased(size: int) -> bytearray:
    """``size`` bytes of 0xFF (erased flash), filled in place: no second copy of the flash."""
    try:
        mem = bytearray(size)
    except MemoryError:
        raise FlashError(f"flash of {size} B does not fit in this host's memory") from None
    chunk = b"\xff" * (1 << 20)
    view = memoryview(mem)
    for start in range(0, size, len(chunk)):
        part = view[start:start + len(chunk)]
        part[:] = chunk[:len(part)]
    view.release()
    return mem


def newer(a: int, b: int) -> bool:
    """Whether generation ``a`` is newer than ``b`` (serial-number arithmetic mod 2^32)."""
    return 1 <= (a - b) % (1 << 32) < (1 << 31)


class Flash:
    """Two A/B slots in ``size`` bytes of simulated flash, optionally persisted to ``path``."""

    def __init__(self, size: int, path: str | os.PathLike | None = None) -> None:
        if size < 2 * (SLOT_HEADER_BYTES + 1024):
            raise FlashError(f"flash of {size} B is too small for two slots (need >= "
                             f"{2 * (SLOT_HEADER_BYTES + 1024)} B)")
        self.size = int(size)
        self.path = None if path is None else os.fspath(path)
        self.region = self.size // 2
        self.slot_size = self.region - SLOT_HEADER_BYTES
        self.mem = _erased(self.size)
        self.loaded_from_file = False
        if self.path:
            _check_writable(self.path)
        if self.path and os.path.exists(self.path):
            with open(self.path, "rb") as fh:
                data = fh.read(self.size + 1)      # a longer file is refused, never read whole
            if len(data) == self.size:
                self.mem[:] = data
                self.loaded_from_file = True
            else:
                held = f"more than {self.size}" if len(data) > self.size else str(len(data))
                raise FlashError(f"flash file {self.path} holds {held} B, this device "
                                 f"has {self.size} B of flash")
        self._active: SlotInfo | None | bool = False   # False: not computed yet
        self._writing: int | None = None
        self._wpos = 0
        self._wlen = 0

    # -- slots ---------------------------------------------------------------------------------
    def _base(self, slot: int) -> int:
        return slot * self.region

    def slot_info(self, slot: int) -> SlotInfo | None:
        """The slot's header if the slot is valid (header and data CRC check), else None."""
        base = self._base(slot)
        magic, gen, length, crc, hcrc = _HDR.unpack_from(self.mem, base)
        if magic != MAGIC or zlib.crc32(self.mem[base:base + 16]) & 0xFFFFFFFF != hcrc:
            return None
        if length > self.slot_size:
            return None
        data_at = base + SLOT_HEADER_BYTES
        if zlib.crc32(self.mem[data_at:data_at + length]) & 0xFFFFFFFF != crc:
            return None
        return SlotInfo(slot, gen, length, crc)

    def valid_slots(self) -> list[SlotInfo]:
        """The valid slots, newest first (serial-number order; equal generations: slot 0)."""
        infos = [i for i in (self.slot_info(0), self.slot_info(1)) if i is not None]
        if len(infos) == 2 and newer(infos[1].generation, infos[0].generation):
            infos.reverse()
        return infos

    def active(self) -> SlotInfo | None:
        """The newest valid slot, or None (cached until the next commit)."""
        if self._active is False:
            infos = self.valid_slots()
            self._active = infos[0] if infos else None
        return self._active

    def inactive_slot(self, running: int | None = None) -> int:
        """The slot an upload may erase: the one not ``running`` (default: not the newest)."""
        if running is not None:
            return 1 - running
        act = self.active()
        return 0 if act is None else 1 - act.slot

    def image(self, slot: int, length: int | None = None) -> bytes:
        base = self._base(slot) + SLOT_HEADER_BYTES
        if length is None:
            info = self.slot_info(slot)
            length = 0 if info is None else info.length
        return bytes(self.mem[base:base + length])

    def read(self, slot: int, offset: int, length: int) -> bytes:
        base = self._base(slot) + SLOT_HEADER_BYTES
        return bytes(self.mem[base + offset:base + offset + length])

    # -- upload --------------------------------------------------------------------------------
    def begin(self, length: int, running: int | None = None) -> int:
        """Erase the slot that is not ``running`` (header and data) and prepare to receive
        ``length`` bytes."""
        if length > self.slot_size:
            raise FlashError(f"image of {length} B does not fit a {self.slot_size} B slot")
        slot = self.inactive_slot(running)
        base = self._base(slot)
        self.mem[base:base + self.region] = b"\xff" * self.region
        self._writing, self._wpos, self._wlen = slot, 0, int(length)
        return slot

    @property
    def writing(self) -> int | None:
        return self._writing

    @property
    def written(self) -> int:
        return self._wpos

    def write(self, data: bytes) -> int:
        """Append to the slot being uploaded; returns the bytes received so far."""
        if self._writing is None:
            raise FlashError("no upload in progress (UPLOAD_BEGIN first)")
        if self._wpos + len(data) > self._wlen:
            raise FlashError(f"upload overruns its announced length: {self._wpos} + "
                             f"{len(data)} > {self._wlen} B")
        at = self._base(self._writing) + SLOT_HEADER_BYTES + self._wpos
        self.mem[at:at + len(data)] = data
        self._wpos += len(data)
        return self._wpos

    def staged(self) -> bytes:
        """The bytes written so far into the slot being uploaded."""
        if self._writing is None:
            return b""
        return self.read(self._writing, 0, self._wpos)

    def commit(self, crc: int) -> SlotInfo:
        """Write the header of the uploaded slot (the atomic commit point) and persist."""
        if self._writing is None:
            raise FlashError("no upload in progress (UPLOAD_BEGIN first)")
        if self._wpos != self._wlen:
            raise FlashError(f"upload incomplete: {self._wpos} of {self._wlen} B received")
        slot = self._writing
        act = self.active()
        gen = 1 if act is None else (act.generation + 1) & 0xFFFFFFFF
        head = struct.pack("<4sIII", MAGIC, gen, self._wlen, crc)
        hdr = head + struct.pack("<I", zlib.crc32(head) & 0xFFFFFFFF)
        base = self._base(slot)
        before = bytes(self.mem[base:base + len(hdr)])
        self.mem[base:base + len(hdr)] = hdr
        try:
            self.persist()
        except OSError:
            self.mem[base:base + len(hdr)] = before     # not committed
            raise
        self._writing = None
        self._active = False
        info = self.slot_info(slot)
        if info is None:
            raise FlashError(f"slot {slot} does not verify after commit")
        return info

    def abort(self) -> None:
        """Forget an unfinished upload (its slot stays erased / invalid)."""
        self._writing = None

    def persist(self) -> None:
        if self.path:
            atomic_write_bytes(self.path, bytes(self.mem))
