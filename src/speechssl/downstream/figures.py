"""Figures of the evaluation report: per-seed box plots and learned layer weights.

* :func:`plot_boxplots`: one panel per task, one box per upstream with every seed drawn
  as a jittered point on top (the figure type of Brima et al. 2023's Barlow Twins
  speech evaluation), so the spread over seeds is visible and not only its quartiles;
  the task's chance level is a dashed line.
* :func:`plot_layer_weights`: the softmax weights of SUPERB's weighted-sum featurizer
  (Yang et al., "SUPERB", Interspeech 2021: ``h = Σ_l softmax(w)_l · h_l``) as an
  upstream × layer heatmap, showing which upstream layers a task draws on; one row per
  upstream keeps it readable for 20 upstreams.

Figures are built on :class:`matplotlib.figure.Figure` (no pyplot state), so they are
safe in headless and multi-threaded runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

JITTER_HALF_WIDTH = 0.12
JITTER_SEED = 0
WEIGHT_SUM_TOLERANCE = 1e-3
BOXES_PER_ROW = 24  # task panels share a row while their boxes total at most this many
ANNOTATED_LAYERS = 16  # heatmap cells carry their weight as text up to this many layers


def plot_boxplots(
    values: Mapping[str, Mapping[str, Sequence[float]]],
    path: str | Path,
    metric_names: Mapping[str, str] | None = None,
    chance: Mapping[str, float] | None = None,
) -> Path:
    """Box plot per task of each upstream's per-seed results, seeds overlaid as points, and
    the chance level as a dashed line.

    Task panels sit side by side while a row holds at most 24 boxes, then wrap into rows
    (one task per row from 13 upstreams on), so the figure stays readable.

    Boxes show the quartiles and whiskers at 1.5 IQR (Tukey); outliers are not drawn
    separately because every seed is already a point. The horizontal jitter is drawn
    from a fixed-seed generator, so the same results give the same figure.

    Args:
        values: ``{task: {upstream: (seeds,) values}}``, e.g. from
            :func:`speechssl.downstream.statistics.group_by_seed` (take ``.values()``).
        path: output PNG; parent folders are created.
        metric_names: y-axis label per task, e.g. ``{"asr": "WER"}``; defaults to "value".
        chance: the chance level per task (tasks without one get no line).

    Returns:
        the path written.

    Raises:
        ValueError: no task, a task without upstreams, or an upstream without finite values.
    """
    if not values:
        raise ValueError("expected at least one task to plot, found none")
    for task, upstreams in values.items():
        if not upstreams:
            raise ValueError(f"task {task!r}: expected at least one upstream, found none")
        for upstream, seeds in upstreams.items():
            if len(seeds) == 0 or not all(math.isfinite(v) for v in seeds):
                raise ValueError(
                    f"task {task!r}, upstream {upstream!r}: expected >= 1 finite value, found {list(seeds)}"
                )
    metric_names = metric_names or {}
    chance = chance or {}
    unknown = sorted(set(chance) - set(values))
    if unknown:
        raise ValueError(f"chance: expected levels of plotted tasks {sorted(values)}, found {unknown}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    widest = max(len(upstreams) for upstreams in values.values())
    columns = max(1, min(len(values), BOXES_PER_ROW // widest))  # many upstreams: one task per row
    rows = -(-len(values) // columns)
    figure = Figure(figsize=(columns * (0.9 * widest + 1.6), 3.6 * rows), layout="constrained")
    generator = np.random.default_rng(JITTER_SEED)
    axes = figure.subplots(rows, columns, squeeze=False).flatten()  # (rows, columns) -> (rows * columns,)
    for ax in axes[len(values) :]:
        ax.set_visible(False)
    for ax, (task, upstreams) in zip(axes, values.items(), strict=False):
        names = list(upstreams)
        ax.boxplot([list(upstreams[name]) for name in names], tick_labels=names, showfliers=False, widths=0.5)
        for position, name in enumerate(names, start=1):
            seeds = np.asarray(upstreams[name], dtype=np.float64)
            jitter = generator.uniform(-JITTER_HALF_WIDTH, JITTER_HALF_WIDTH, size=len(seeds))
            ax.scatter(position + jitter, seeds, s=14, alpha=0.75, zorder=3)
        if task in chance:
            ax.axhline(
                chance[task], color="0.4", linestyle="--", linewidth=1, label=f"chance {chance[task]:.3f}"
            )
            ax.legend(loc="best", fontsize="small")
        ax.set_title(task)
        ax.set_ylabel(metric_names.get(task, "value"))
        ax.tick_params(axis="x", labelrotation=30)
        ax.grid(axis="y", alpha=0.3)
    figure.savefig(path, dpi=100)
    return path


def plot_layer_weights(weights: Mapping[str, Sequence[float]], path: str | Path, title: str = "") -> Path:
    """Heatmap of the learned softmax layer weights: one row per upstream, one column per layer.

    Upstreams with fewer layers than the deepest leave their extra cells blank; with up to
    16 layers each cell also prints its weight.

    Args:
        weights: ``{upstream: (layers,) weights}``, each non-negative and summing to 1
            (the featurizer's ``softmax(w)``, layer 0 being the upstream's first hidden
            state); upstreams may have different layer counts.
        path: output PNG; parent folders are created.
        title: the task, shown in the figure's title.

    Returns:
        the path written.

    Raises:
        ValueError: no upstream, or weights that are empty, negative, non-finite or do
            not sum to 1 (apply the softmax to raw featurizer parameters first).
    """
    if not weights:
        raise ValueError("expected the layer weights of at least one upstream, found none")
    for upstream, layer_weights in weights.items():
        array = np.asarray(layer_weights, dtype=np.float64)
        if array.ndim != 1 or len(array) == 0 or not np.all(np.isfinite(array)) or np.any(array < 0):
            raise ValueError(
                f"upstream {upstream!r}: expected a non-empty (layers,) vector of non-negative weights, "
                f"found {array.tolist()}"
            )
        if abs(array.sum() - 1.0) > WEIGHT_SUM_TOLERANCE:
            raise ValueError(
                f"upstream {upstream!r}: expected softmax weights summing to 1, found sum {array.sum():.6g}"
            )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(weights)
    most_layers = max(len(layer_weights) for layer_weights in weights.values())
    grid = np.full((len(names), most_layers), np.nan)  # (upstreams, layers), blank past an upstream's depth
    for index, name in enumerate(names):
        grid[index, : len(weights[name])] = weights[name]
    longest_name = max(len(name) for name in names)
    figure = Figure(
        figsize=(0.5 * most_layers + 0.08 * longest_name + 2.5, 0.32 * len(names) + 1.6), layout="constrained"
    )
    ax = figure.subplots()
    image = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap="viridis", vmin=0.0)
    if most_layers <= ANNOTATED_LAYERS:
        for (row, layer), value in np.ndenumerate(grid):
            if np.isfinite(value):
                ax.text(layer, row, f"{value:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if value > 0.6 * np.nanmax(grid) else "white")  # fmt: skip
    ax.set_xticks(np.arange(most_layers))
    ax.set_yticks(np.arange(len(names)), labels=names)
    ax.set_xlabel("layer")
    ax.set_title(f"learned layer weights{f', {title}' if title else ''} (weighted-sum featurizer)")
    figure.colorbar(image, ax=ax, label="softmax weight")
    figure.savefig(path, dpi=100)
    return path


__all__ = ["plot_boxplots", "plot_layer_weights"]
