"""The adaptation report: metrics JSON and PNG plots, written atomically into a folder.

Plots (matplotlib, Agg backend; skipped with a note in the JSON when matplotlib is missing):

* ``accuracy.png``: prequential accuracy over samples (running mean over ``window`` samples)
  for every run in the report (e.g. frozen, LPL only, hEP only, LPL + hEP);
* ``weight_drift.png``: relative weight change ||W_t - W_0|| / ||W_0|| per adapted tensor;
* ``memory.png``: planned bytes per category against the measured arena high-water mark.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgelearn.atomic import atomic_save_png, atomic_write_text


def running_mean(hits: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` entries at each position (shorter at the start)."""
    hits = np.asarray(hits, dtype=np.float64)
    if hits.size == 0:
        return hits
    c = np.cumsum(np.r_[0.0, hits])
    idx = np.arange(1, hits.size + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def _line_plot(plt, lines: dict, ylabel: str, title: str, path: Path) -> None:
    """One PNG of named (x, y) lines against the sample index."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, (x, y) in lines.items():
        ax.plot(x, y, label=name)
    ax.set_xlabel("sample")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    atomic_save_png(fig, path, bbox_inches="tight")
    plt.close(fig)


def write_report(folder: str | Path, metrics: dict, curves: dict[str, np.ndarray],
                 drift: dict[str, list[tuple[int, float]]], memory: dict | None,
                 window: int = 50) -> list[str]:
    """Write metrics.json and the plots; return the list of files written (relative names)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plotting is an extra
        metrics = dict(metrics, plots="matplotlib not installed: pip install 'edgelearn[plot]'")
        plt = None
    if plt is not None:
        if curves:
            lines = {f"{name} ({100 * float(np.mean(h)):.1f} %)":
                     (np.arange(1, len(h) + 1), 100 * running_mean(h, window))
                     for name, h in curves.items()}
            _line_plot(plt, lines, f"prequential accuracy, last {window} samples (%)",
                       "adaptation on the stream", folder / "accuracy.png")
            written.append("accuracy.png")
        if drift:
            lines = {name: tuple(zip(*pts)) for name, pts in drift.items() if pts}
            _line_plot(plt, lines, "||W - W0|| / ||W0||", "weight drift",
                       folder / "weight_drift.png")
            written.append("weight_drift.png")
        if memory:
            cats = list(memory["planned_by_category"].keys())
            vals = [memory["planned_by_category"][c] for c in cats]
            fig, ax = plt.subplots(figsize=(7, 4))
            bottom = 0
            for c, v in zip(cats, vals):
                ax.bar(["plan"], [v], bottom=bottom, label=c)
                bottom += v
            ax.bar(["measured high-water"], [memory["measured_high_water"]], color="gray")
            ax.axhline(memory["budget"], color="red", ls="--", label="budget")
            ax.set_ylabel("bytes")
            ax.set_title("device RAM")
            ax.legend()
            atomic_save_png(fig, folder / "memory.png", bbox_inches="tight")
            plt.close(fig)
            written.append("memory.png")
    atomic_write_text(folder / "metrics.json", json.dumps(metrics, indent=2, default=float))
    written.append("metrics.json")
    return written
