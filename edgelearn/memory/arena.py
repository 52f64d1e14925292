"""A fixed-size arena: one block of bytes handed out as typed numpy arrays, with a high-water mark.

Allocation is a bump pointer aligned to ``align`` bytes (the device word). Every allocation is
recorded by name so an overflow error can say which buffer did not fit and by how much:
``arena: buffer 'hidden.weight' needs 8192 B, 4000 B free of 65536 B (missing 4192 B)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgelearn.errors import MemoryBudgetError


def aligned(nbytes: int, align: int) -> int:
    """``nbytes`` rounded up to a multiple of ``align``."""
    return (nbytes + align - 1) // align * align


@dataclass(frozen=True)
class Allocation:
    name: str
    offset: int
    nbytes: int


class Arena:
    """Bump allocator over a bytearray of ``size`` bytes; ``high_water`` is the peak use."""

    def __init__(self, size: int, align: int = 4, name: str = "arena") -> None:
        if size <= 0 or align <= 0 or align & (align - 1):
            raise MemoryBudgetError(f"{name}: size {size} must be > 0 and alignment {align} a "
                                    f"power of two")
        self.size = int(size)
        self.align = int(align)
        self.name = name
        try:
            self._buf = bytearray(self.size)
        except MemoryError:
            raise MemoryBudgetError(f"{name}: {self.size} B do not fit in this host's "
                                    f"memory") from None
        self._top = 0
        self.high_water = 0
        self.allocations: list[Allocation] = []

    @property
    def used(self) -> int:
        return self._top

    @property
    def free(self) -> int:
        return self.size - self._top

    def allocate(self, name: str, shape: tuple[int, ...] | int, dtype) -> np.ndarray:
        """A zeroed array of ``shape`` and ``dtype`` living inside the arena."""
        dtype = np.dtype(dtype)
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        nbytes = count * dtype.itemsize
        need = aligned(nbytes, self.align)
        if need > self.free:
            raise MemoryBudgetError(
                f"{self.name}: buffer '{name}' needs {need} B, {self.free} B free of "
                f"{self.size} B (missing {need - self.free} B)")
        off = self._top
        self._top += need
        self.high_water = max(self.high_water, self._top)
        self.allocations.append(Allocation(name, off, need))
        view = np.frombuffer(self._buf, dtype=dtype, count=count, offset=off).reshape(shape)
        view[...] = 0
        return view

    def store(self, name: str, values: np.ndarray, dtype=None) -> np.ndarray:
        """Allocate a buffer and copy ``values`` into it (cast to ``dtype`` if given)."""
        values = np.asarray(values)
        out = self.allocate(name, values.shape, dtype or values.dtype)
        out[...] = values
        return out

    def reset(self) -> None:
        """Free everything (the high-water mark is kept)."""
        self._top = 0
        self.allocations.clear()

    def report(self) -> dict[str, int]:
        """Bytes per allocation name."""
        out: dict[str, int] = {}
        for a in self.allocations:
            out[a.name] = out.get(a.name, 0) + a.nbytes
        return out
