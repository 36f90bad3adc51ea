"""Plots of a run's ``metrics.jsonl``: the loss and its terms over training."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure


def plot_training_curves(
    records: Sequence[dict[str, Any]], path: str | Path, metrics: Sequence[str] = ("loss",)
) -> Path:
    """One panel per metric against the optimizer step, saved as a PNG.

    Args:
        records: ``metrics.jsonl`` records (see :func:`speechssl.train.logging.read_metrics`),
            each with ``step`` and the named metrics.
        path: output file; parent folders are created.
        metrics: record keys to plot, e.g. ``("loss", "invariance", "redundancy")``.

    Raises:
        ValueError: no records, or a metric absent from every record.
    """
    if not records:
        raise ValueError("expected at least one metrics record to plot, found none")
    missing = [m for m in metrics if not any(m in r for r in records)]
    if missing:
        raise ValueError(f"metrics {missing} are in no record (available: {sorted(records[-1])})")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(4.0 * len(metrics), 3.2), layout="constrained")
    for ax, name in zip(figure.subplots(1, len(metrics), squeeze=False)[0], metrics, strict=True):
        points = [(r["step"], r[name]) for r in records if isinstance(r.get(name), (int, float))]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=".")
        ax.set_xlabel("optimizer step")
        ax.set_title(name)
        ax.set_yscale("log" if all(p[1] > 0 for p in points) else "linear")
        ax.grid(alpha=0.3)
    figure.savefig(path, dpi=100)
    return path
