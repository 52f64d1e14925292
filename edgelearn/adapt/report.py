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


def spans(labels: list[str]) -> list[tuple[int, int, str]]:
    """Runs of equal labels as (first sample, last sample + 1, label), samples from 1."""
    out: list[tuple[int, int, str]] = []
    for i, lab in enumerate(labels, start=1):
        if out and out[-1][2] == lab and out[-1][1] == i:
            out[-1] = (out[-1][0], i + 1, lab)
        else:
            out.append((i, i + 1, lab))
    return out


def _line_plot(plt, lines: dict, ylabel: str, title: str, path: Path,
               segments: list[str] | None = None) -> None:
    """One PNG of named (x, y) lines against the sample index; ``segments`` (one label per
    sample) shades the stream's parts."""
    fig, ax = plt.subplots(figsize=(7, 4))
    if segments:
        kinds = list(dict.fromkeys(segments))
        colors = {k: f"C{(i + 3) % 10}" for i, k in enumerate(kinds)}
        seen: set[str] = set()
        for a, b, lab in spans(segments):
            ax.axvspan(a - 0.5, b - 0.5, color=colors[lab], alpha=0.12, lw=0,
                       label=None if lab in seen else f"stream: {lab}")
            seen.add(lab)
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
                 window: int = 50, segments: list[str] | None = None) -> list[str]:
    """Write metrics.json and the plots; return the list of files written (relative names).
    ``segments``: one label per stream sample (which users), shaded on accuracy.png."""
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
            loop = metrics.get("loop", {})
            frac = loop.get("label_fraction")
            title = (f"prequential accuracy on the stream '{metrics.get('stream', '')}'"
                     + (f", {100 * frac:g} % of samples labelled" if frac is not None else ""))
            _line_plot(plt, lines, f"accuracy over the last {window} samples (%)", title,
                       folder / "accuracy.png", segments)
            written.append("accuracy.png")
        if drift:
            lines = {name: tuple(zip(*pts)) for name, pts in drift.items() if pts}
            _line_plot(plt, lines, "||W - W0|| / ||W0||", "weight drift",
                       folder / "weight_drift.png")
            written.append("weight_drift.png")
        if memory:
            kib = 1 / 1024
            cats = list(memory["planned_by_category"].keys())
            vals = [memory["planned_by_category"][c] * kib for c in cats]
            fig, ax = plt.subplots(figsize=(7, 4))
            hw = memory["measured_high_water"]
            same = hw == memory["planned_total"]
            bars = ["plan", "measured high-water"]
            for k, (c, v) in enumerate(zip(cats, vals)):
                bottom = sum(vals[:k])
                ax.bar(bars[:1 + same], [v] * (1 + same), bottom=bottom, color=f"C{k}",
                       label=c)
            if not same:
                ax.bar(bars[1:], [hw * kib], color="gray",
                       label="measured (no per-buffer split)" if hw else "no device arena")
            ax.axhline(memory["budget"] * kib, color="red", ls="--", label="budget")
            ax.set_ylabel("KiB")
            ax.set_title("device RAM: the plan and the arena's measured high-water mark"
                         + (" (equal; the arena allocates the plan's buffers)" if same else ""))
            ax.legend()
            atomic_save_png(fig, folder / "memory.png", bbox_inches="tight")
            plt.close(fig)
            written.append("memory.png")
    atomic_write_text(folder / "metrics.json", json.dumps(metrics, indent=2, default=float))
    written.append("metrics.json")
    return written
