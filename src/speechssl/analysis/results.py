"""Figures of probing results: per-layer probing curves.

* :func:`plot_layer_curves`: accuracy of a probe on each single layer, per task.

The evaluation report's figures (seed box plots, learned layer weights) are drawn by
:mod:`speechssl.downstream.figures`. Figures are built on :class:`matplotlib.figure.Figure`
(no pyplot state), so they are safe in headless and multi-threaded runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def plot_layer_curves(
    accuracies: Mapping[str, Mapping[str, Mapping[int, Sequence[float]]]], path: str | Path
) -> Path:
    """Per-layer probing curves: one panel per task, mean test accuracy over seeds against
    the layer, one line per upstream, with the seeds' min–max range shaded.

    Args:
        accuracies: ``{task: {upstream: {layer: (seeds,) accuracies}}}`` (e.g. from
            ``speechssl probe --layer all --seeds N``).
        path: output PNG; parent folders are created.

    Raises:
        ValueError: no task, or a curve without layers or seeds.
    """
    if not accuracies:
        raise ValueError("expected the per-layer accuracies of at least one task, found none")
    for task, upstreams in accuracies.items():
        for upstream, layers in upstreams.items():
            if not layers or any(len(values) == 0 for values in layers.values()):
                raise ValueError(
                    f"task {task!r}, upstream {upstream!r}: expected seeds for every layer, found {dict(layers)}"
                )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = min(len(accuracies), 3)
    rows = math.ceil(len(accuracies) / columns)
    figure = Figure(figsize=(4.2 * columns, 3.2 * rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns)).flatten()
    for ax, (task, upstreams) in zip(axes, accuracies.items(), strict=False):
        for upstream, layers in upstreams.items():
            order = sorted(layers)
            values = [np.asarray(layers[layer], dtype=np.float64) for layer in order]
            ax.plot(order, [v.mean() for v in values], marker="o", label=upstream)
            ax.fill_between(order, [v.min() for v in values], [v.max() for v in values], alpha=0.2)
        ax.set_title(task)
        ax.set_xlabel("layer")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes[len(accuracies) :]:
        ax.set_visible(False)
    figure.savefig(path, dpi=100)
    return path


__all__ = ["plot_layer_curves"]
