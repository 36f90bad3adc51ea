"""2-D maps: clusters stay clusters, figures are written, bad inputs are named."""

from __future__ import annotations

import numpy as np
import pytest

from speechssl.analysis.projection import plot_projection, project_2d
from speechssl.analysis.results import plot_layer_curves


@pytest.mark.parametrize("method", ["tsne", "umap"])
def test_maps_keep_separated_clusters_apart_and_plot_each_factor(method, tmp_path):
    if method == "umap":
        pytest.importorskip("umap", reason="UMAP maps need speechssl[umap]")
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 40)
    codes = rng.normal(size=(120, 16)) + 8 * np.eye(16)[labels]
    points = project_2d(codes, method=method, seed=0)
    assert points.shape == (120, 2)
    centres = np.stack([points[labels == k].mean(axis=0) for k in range(3)])
    spread = max(points[labels == k].std(axis=0).max() for k in range(3))
    assert min(np.linalg.norm(centres[i] - centres[j]) for i in range(3) for j in range(i)) > 2 * spread
    path = plot_projection(
        points, {"speaker": labels, "word": rng.integers(0, 12, 120)}, tmp_path / "map.png"
    )
    assert path.stat().st_size > 0


def test_layer_curves_figure(tmp_path):
    curves = {"speaker": {"bt": {0: [0.5, 0.6], 1: [0.7, 0.8]}, "random": {0: [0.4], 1: [0.45]}}}
    assert plot_layer_curves(curves, tmp_path / "curves.png").stat().st_size > 0
    with pytest.raises(ValueError, match="expected seeds for every layer"):
        plot_layer_curves({"speaker": {"bt": {0: []}}}, tmp_path / "bad.png")


def test_bad_inputs_say_expected_and_found(tmp_path):
    with pytest.raises(ValueError, match=r"method: expected 'tsne' or 'umap', found 'pca'"):
        project_2d(np.zeros((10, 3)), method="pca")
    with pytest.raises(ValueError, match=r"codes: expected \(samples >= 5, dim\)"):
        project_2d(np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"factors\['word'\]: expected 4 values, found 3"):
        plot_projection(np.zeros((4, 2)), {"word": [1, 2, 3]}, tmp_path / "x.png")
