"""The one place where errors become what a user sees (L0).

    run_command(prog, work) -> exit code

Runs ``work()`` (which parses arguments and does the command). An EdgelearnError (bad input,
a limit, an impossible request) prints one line ``PROG: error: MESSAGE`` on stderr (the
message's first line, cut at 1000 characters) and gives exit code 2; Python warnings raised
on the way (e.g. numpy's RuntimeWarning) are dropped then, so the error line is the only
line; after a success they are shown as usual. Ctrl-C gives 130,
a closed output pipe 0. Other exceptions are bugs and keep their traceback.

:class:`OneLineArgumentParser` turns argparse usage errors into OptionError, so they take the
same path (one line, exit 2) instead of printing the usage block.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Callable

from edgelearn.errors import EdgelearnError, OptionError


class OneLineArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors raise OptionError (prog attached as ``.prog``)."""

    def error(self, message: str):
        exc = OptionError(f"{message} (see {self.prog} --help)")
        exc.prog = self.prog
        raise exc


MAX_LINE = 1000


def error_line(exc: EdgelearnError) -> str:
    """The first line of an error's message (its type name if it has none), at most MAX_LINE
    characters (a message may quote untrusted text of any length)."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= MAX_LINE else line[:MAX_LINE - 3] + "..."


def run_command(prog: str | Callable[[], str], work: Callable[[], int | None]) -> int:
    """Run ``work`` and map its outcome to an exit code (see the module docstring).
    ``prog`` names the command in messages (a callable is asked when an error happens, so
    the name can become more precise once the arguments are parsed)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        try:
            code = int(work() or 0)
        except EdgelearnError as exc:
            where = getattr(exc, "prog", None) or (prog() if callable(prog) else prog)
            print(f"{where}: error: {error_line(exc)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"{prog() if callable(prog) else prog}: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:
            return 0
    for w in caught:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return code
