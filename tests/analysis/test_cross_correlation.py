"""Cross-correlation analysis: one implementation of C, its summary, and the heatmap PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import pytest
import torch

from speechssl.analysis.cross_correlation import (
    cross_correlation_matrix,
    diagonal_stats,
    plot_cross_correlation,
)
from speechssl.methods.barlow_twins import BarlowTwinsLoss


def embeddings(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    z_a = torch.randn(32, 6, generator=generator, requires_grad=True)
    z_b = z_a.detach() + 0.5 * torch.randn(32, 6, generator=generator)
    return z_a, z_b


def test_matrix_is_the_loss_matrix_detached() -> None:
    z_a, z_b = embeddings()
    c = cross_correlation_matrix(z_a, z_b)
    assert c.shape == (6, 6) and not c.requires_grad
    torch.testing.assert_close(c, BarlowTwinsLoss()(z_a, z_b).cross_correlation.detach())
    torch.testing.assert_close(
        torch.diagonal(cross_correlation_matrix(z_b, z_b)), torch.ones(6), atol=1e-4, rtol=0
    )


def test_diagonal_stats_on_known_matrices() -> None:
    stats = diagonal_stats(torch.eye(4))
    assert stats["on_diagonal_mean"] == 1.0 and stats["on_diagonal_min"] == 1.0
    assert stats["off_diagonal_abs_mean"] == 0.0 and stats["off_diagonal_abs_max"] == 0.0
    assert stats["invariance"] == 0.0 and stats["redundancy"] == 0.0
    c = torch.tensor([[0.5, -0.2], [0.4, 1.0]])
    stats = diagonal_stats(c)
    assert stats["on_diagonal_mean"] == pytest.approx(0.75)
    assert stats["on_diagonal_min"] == pytest.approx(0.5)
    assert stats["off_diagonal_abs_mean"] == pytest.approx(0.3)
    assert stats["off_diagonal_abs_max"] == pytest.approx(0.4)
    assert stats["off_diagonal_rms"] == pytest.approx((0.1) ** 0.5)
    assert stats["invariance"] == pytest.approx(0.25)
    assert stats["redundancy"] == pytest.approx(0.2)
    loss = BarlowTwinsLoss(lambda_=0.01)(*embeddings(1))
    stats = diagonal_stats(loss.cross_correlation)
    assert stats["invariance"] + 0.01 * stats["redundancy"] == pytest.approx(
        float(loss.loss.detach()), rel=1e-5
    )
    with pytest.raises(ValueError, match=r"square \(dim, dim\) matrix with dim >= 2, found shape \(2, 3\)"):
        diagonal_stats(torch.zeros(2, 3))


def test_plot_writes_side_by_side_png(tmp_path: Path) -> None:
    z_a, z_b = embeddings()
    matrices = {
        "before training": cross_correlation_matrix(z_a, torch.randn(32, 6)),
        "after training": cross_correlation_matrix(z_a, z_b),
    }
    path = plot_cross_correlation(matrices, tmp_path / "plots" / "cross_correlation.png")
    assert path == tmp_path / "plots" / "cross_correlation.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    single_path = plot_cross_correlation(
        {"after training": matrices["after training"]}, tmp_path / "single.png"
    )
    single = matplotlib.image.imread(single_path)
    assert image.shape[1] > 1.5 * single.shape[1]  # two panels side by side
    plot_cross_correlation({"block": torch.eye(300)}, tmp_path / "block.png", max_dims=50)
    assert (tmp_path / "block.png").stat().st_size > 0


def test_plot_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected at least one matrix to plot, found none"):
        plot_cross_correlation({}, tmp_path / "x.png")
    with pytest.raises(
        ValueError, match=r"'bad': expected a square \(dim, dim\) matrix, found shape \(3, 2\)"
    ):
        plot_cross_correlation({"bad": torch.zeros(3, 2)}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="max_dims: expected >= 1 or None, found 0"):
        plot_cross_correlation({"ok": torch.eye(3)}, tmp_path / "x.png", max_dims=0)
    assert not (tmp_path / "x.png").exists()
