"""The fleet's report folder as a store of finished devices (L3).

    DIR/fleet.json        the FleetConfig and its identity (written once, atomically)
    DIR/devices.jsonl     one JSON object per finished device and phase, one line each
    DIR/updates/PHASE-NNNNNN.npz   a device's adapted head (federated round / --keep-updates)

A line is appended with one ``write`` on a file opened with O_APPEND and fsynced before the
next device is recorded, after the device's update file (if any) was written atomically: a
line in devices.jsonl means the device is finished and everything it produced is on disk.
A kill can leave at most a torn last line (no newline, or not JSON); :meth:`Store.open`
cuts it off, so that device runs again; every complete line is kept and never rerun.
When a device has several lines (a failed device retried), the last one counts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from edgelearn.atomic import atomic_write_bytes, atomic_write_text
from edgelearn.boundary import parse_json
from edgelearn.errors import DataError, EdgelearnError
from edgelearn.fleet.config import FleetConfig, ModelFiles

RESULTS = "devices.jsonl"
CONFIG = "fleet.json"
UPDATES = "updates"


def update_name(phase: str, index: int) -> str:
    return f"{UPDATES}/{phase}-{index:06d}.npz"


class Store:
    """Finished devices of one fleet; open with :meth:`open`."""

    def __init__(self, folder: Path, records: dict[tuple[str, int], dict]) -> None:
        self.folder = folder
        self.records = records

    @classmethod
    def open(cls, folder: str | os.PathLike, cfg: FleetConfig, files: ModelFiles,
             fresh: bool = False) -> "Store":
        """Open (or start) the store of ``cfg`` in ``folder``; a folder holding another fleet
        is refused. ``fresh`` forgets the devices finished so far."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        ident = cfg.identity(files)
        conf = folder / CONFIG
        if conf.exists() and not fresh:
            try:
                other = parse_json(conf.read_bytes(), str(conf))["identity"]
            except (OSError, EdgelearnError, KeyError, TypeError) as exc:
                raise DataError(f"{conf} is damaged ({exc}); use another --report or "
                                f"--fresh") from None
            if other != ident:
                raise DataError(f"report folder {folder} holds another fleet (identity "
                                f"{other}, this one {ident}): use another --report, or --fresh "
                                f"to start over")
        atomic_write_text(conf, json.dumps({"identity": ident, "config": cfg.to_json()},
                                           indent=2))
        path = folder / RESULTS
        if fresh and path.exists():
            path.unlink()
        return cls(folder, read_records(path, repair=True))

    def append(self, record: dict, update: bytes | None = None) -> None:
        """Record one finished device (its update file first, then the line)."""
        if update is not None:
            name = update_name(record["phase"], record["device"])
            (self.folder / UPDATES).mkdir(exist_ok=True)
            atomic_write_bytes(self.folder / name, update)
            record = dict(record, update=name)
        line = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
        fd = os.open(self.folder / RESULTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.records[(record["phase"], record["device"])] = record

    def finished(self, phase: str, retry_failed: bool = False) -> set[int]:
        return {i for (p, i), r in self.records.items()
                if p == phase and not (retry_failed and r.get("status") != "ok")}

    def phase(self, phase: str, n: int | None = None) -> list[dict]:
        """Records of ``phase`` (devices < n if given), by device index."""
        return [r for (p, i), r in sorted(self.records.items())
                if p == phase and (n is None or i < n)]


def read_records(path: Path, repair: bool = False) -> dict[tuple[str, int], dict]:
    """The complete lines of ``path`` by (phase, device); with ``repair`` a torn tail is cut
    off the file. A damaged line before the tail is an error (the file is not ours)."""
    if not path.exists():
        return {}
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    records: dict[tuple[str, int], dict] = {}
    for n, line in enumerate(data[:end].splitlines(), 1):
        try:
            rec = parse_json(line, f"{path} line {n}")
            key = (str(rec["phase"]), int(rec["device"]))
        except (EdgelearnError, ValueError, KeyError, TypeError):
            raise DataError(f"{path} line {n} is not a device record; the file is "
                            f"damaged") from None
        records[key] = rec
    if end < len(data) and repair:
        with open(path, "r+b") as fh:
            fh.truncate(end)
            fh.flush()
            os.fsync(fh.fileno())
    return records
