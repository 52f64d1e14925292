"""The process that runs hostile cases for tests/_fuzz_harness.py (one JSON request per line on
stdin, one JSON result per line on the original stdout).

Request:  {"entry": "edgelearn" | "quantize", "argv": [...], "cwd": DIR, "limits": {...}}
Result:   {"code": exit code, "stderr": what the case wrote on fd 2 (its first and last
           4000 characters if longer),
           "stdout": last 2000 chars of fd 1, "seconds": wall time,
           "peak_rss": the process's peak resident set during the case, bytes}

The case runs in this process (the command-line entry point called with ``argv``); its fd 1
and fd 2 go to temporary files, so C-level output (onnxruntime's log) is captured too. The peak
RSS is reset before each case (/proc/self/clear_refs, "5") and read from VmHWM after it. The
address space is capped (RLIMIT_AS, FUZZ_AS_LIMIT bytes, default 2 GiB) so that a blow-up
fails fast instead of swapping the machine.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _peak_rss() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _entries():
    from edgelearn.cli import main as cli_main

    spec = importlib.util.spec_from_file_location("quantize_tool", ROOT / "tools" / "quantize.py")
    quantize = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quantize)
    return {"edgelearn": cli_main, "quantize": quantize.main}


def _limits(changes: dict):
    if not changes:
        return contextlib.nullcontext()
    from edgelearn.boundary import use_limits
    return use_limits(**changes)


def run_case(entries: dict, req: dict) -> dict:
    entry = entries[req.get("entry", "edgelearn")]
    os.chdir(req.get("cwd") or tempfile.gettempdir())
    _reset_peak()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        t0 = time.monotonic()
        try:
            with _limits(req.get("limits", {})):
                code = entry(list(req["argv"]))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:     # noqa: BLE001 - an escaping exception is what we look for
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        seconds = time.monotonic() - t0
        err.seek(0)
        out.seek(0)
        stderr = err.read().decode("utf-8", "replace")
        stdout = out.read().decode("utf-8", "replace")
    if len(stderr) > 8000:                     # keep both ends of a long stderr
        stderr = stderr[:4000] + "\n[...]\n" + stderr[-4000:]
    return {"code": int(code or 0), "stderr": stderr, "stdout": stdout[-2000:],
            "seconds": seconds, "peak_rss": _peak_rss()}


def main() -> int:
    cap = int(os.environ.get("FUZZ_AS_LIMIT", 2 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    channel = os.fdopen(os.dup(1), "w")
    entries = _entries()
    channel.write(json.dumps({"ready": True}) + "\n")
    channel.flush()
    for line in sys.stdin:
        result = run_case(entries, json.loads(line))
        channel.write(json.dumps(result) + "\n")
        channel.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
