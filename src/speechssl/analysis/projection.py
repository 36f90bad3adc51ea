"""Two-dimensional maps of a representation, coloured by each known factor.

t-SNE (van der Maaten & Hinton 2008, scikit-learn's implementation) or UMAP (McInnes et al.
2018, the optional ``umap-learn`` package) of ``(samples, dim)`` codes; one panel per factor
(speaker, gender, word, ...), so that one sees at a glance which factors organise the space.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from sklearn.manifold import TSNE
from sklearn.preprocessing import StandardScaler


def project_2d(codes: np.ndarray, method: Literal["tsne", "umap"] = "tsne", seed: int = 0) -> np.ndarray:
    """``(samples, 2)`` map of standardised ``codes (samples, dim)``.

    Raises:
        ValueError: an unknown method, or fewer than 5 samples.
        ImportError: ``method="umap"`` without ``umap-learn`` installed.
    """
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2 or codes.shape[0] < 5:
        raise ValueError(f"codes: expected (samples >= 5, dim), found shape {codes.shape}")
    scaled = StandardScaler().fit_transform(codes)
    if method == "tsne":
        perplexity = min(30.0, (codes.shape[0] - 1) / 3)
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
            scaled
        )
    if method == "umap":
        try:
            import umap
        except ImportError as error:
            raise ImportError(
                "method='umap' needs the umap-learn package: pip install speechssl[umap]"
            ) from error
        return umap.UMAP(n_components=2, random_state=seed).fit_transform(scaled)
    raise ValueError(f"method: expected 'tsne' or 'umap', found {method!r}")


def plot_projection(
    points: np.ndarray, factors: Mapping[str, np.ndarray], path: str | Path, title: str = ""
) -> Path:
    """Scatter ``points (samples, 2)`` once per factor, coloured by that factor's values.

    Factors with at most 10 values get a legend; more values share a cyclic colour map.
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points: expected (samples, 2), found shape {points.shape}")
    if not factors:
        raise ValueError("factors: expected at least one factor to colour by, found none")
    for name, values in factors.items():
        if len(values) != len(points):
            raise ValueError(f"factors[{name!r}]: expected {len(points)} values, found {len(values)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = min(len(factors), 3)
    rows = math.ceil(len(factors) / columns)
    figure = Figure(figsize=(4.2 * columns, 4.0 * rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns)).flatten()
    for ax, (name, values) in zip(axes, factors.items(), strict=False):
        values = np.asarray(values).astype(str)
        levels = sorted(set(values))
        for index, level in enumerate(levels):
            chosen = values == level
            colour = colormaps["tab10"](index) if len(levels) <= 10 else colormaps["hsv"](index / len(levels))
            ax.scatter(points[chosen, 0], points[chosen, 1], s=6, color=colour, label=level)
        ax.set_title(f"{title} coloured by {name}".strip())
        ax.set_xticks([])
        ax.set_yticks([])
        if len(levels) <= 10:
            ax.legend(fontsize="x-small", markerscale=2)
    for ax in axes[len(factors) :]:
        ax.set_visible(False)
    figure.savefig(path, dpi=100)
    return path


__all__ = ["plot_projection", "project_2d"]
