"""A dependency-free progress line for long work (L0).

On a terminal it redraws one line; otherwise (CI logs, pipes) it prints a line at most every
``interval`` seconds and at the end, so logs stay short but show that work goes on.
"""

from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, TextIO, TypeVar

T = TypeVar("T")


class Progress:
    """Progress of ``total`` units of work; call :meth:`update` as units complete.

    ``initial`` units were done before (a resumed run): they count as done, and the rate and
    ETA are measured on the units done since this object was made."""

    def __init__(self, total: int, label: str = "", stream: TextIO | None = None,
                 interval: float = 2.0, unit: str = "it", enabled: bool = True,
                 initial: int = 0) -> None:
        self.total = max(int(total), 0)
        self.label = label
        self.stream = sys.stderr if stream is None else stream
        self.interval = interval
        self.unit = unit
        self.enabled = enabled
        self.done = self.initial = max(int(initial), 0)
        self.postfix = ""
        self._start = time.monotonic()
        self._last = -1e9
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, n: int = 1, postfix: str | None = None) -> None:
        self.done += n
        if postfix is not None:
            self.postfix = postfix
        now = time.monotonic()
        if self.done >= self.total or now - self._last >= (0.1 if self._tty else self.interval):
            self._last = now
            self._draw(final=self.done >= self.total)

    def _draw(self, final: bool) -> None:
        if not self.enabled:
            return
        elapsed = time.monotonic() - self._start
        frac = self.done / self.total if self.total else 1.0
        width = 24
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        rate = (self.done - self.initial) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        text = (f"{self.label} [{bar}] {self.done}/{self.total} {self.unit} "
                f"{elapsed:.1f}s eta {eta:.1f}s {self.postfix}").rstrip()
        if self._tty:
            self.stream.write("\r" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.done < self.total:
            self._draw(final=True)


def progress(items: Iterable[T], total: int | None = None, label: str = "",
             **kwargs) -> Iterator[T]:
    """Iterate over ``items`` showing a :class:`Progress` line."""
    if total is None:
        total = len(items)  # type: ignore[arg-type]
    bar = Progress(total, label, **kwargs)
    for item in items:
        yield item
        bar.update()
    bar.close()
