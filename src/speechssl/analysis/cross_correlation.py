"""Cross-correlation analysis of two views' embeddings (Zbontar et al. 2021, fig. 1 and eq. 2;
Brima et al. 2023 for speech).

A trained Barlow Twins model drives the cross-correlation matrix ``C`` of the two
views' projections towards the identity: a bright diagonal (invariance) on a flat
off-diagonal (redundancy reduction). These helpers compute ``C`` with the same
function the loss uses, summarise it, and plot matrices side by side, e.g. before and
after training.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from matplotlib.figure import Figure

from speechssl.data import AudioDataset, DurationBatchSampler, Manifest, build_dataloader
from speechssl.methods.barlow_twins import BarlowTwins, cross_correlation, off_diagonal


def cross_correlation_matrix(
    z_a: torch.Tensor, z_b: torch.Tensor, eps: float = 1e-5, gather_distributed: bool = False
) -> torch.Tensor:
    """Cross-correlation matrix of two views' embeddings, detached, as the loss computes it.

    Args:
        z_a: ``(batch, dim)`` embeddings of the first view.
        z_b: ``(batch, dim)`` embeddings of the second view.
        eps: variance stabiliser of the standardisation.
        gather_distributed: reduce over ranks (every rank must call this); off by
            default because analysis usually runs on the main process only.

    Returns:
        ``(dim, dim)`` matrix ``C`` (see :func:`speechssl.methods.barlow_twins.cross_correlation`).
    """
    with torch.no_grad():
        return cross_correlation(z_a, z_b, eps=eps, gather_distributed=gather_distributed)


@torch.no_grad()
def view_cross_correlation(method: BarlowTwins, manifest: Manifest, seed: int = 0) -> torch.Tensor:
    """``(dim, dim)`` cross-correlation of two augmented views' projections over ``manifest``.

    The method runs in eval mode (running batch-norm statistics, no dropout) with a fixed
    augmentation seed, so matrices before and after training are computed on identical views.
    """
    was_training = method.training
    method.eval()
    generator = torch.Generator().manual_seed(seed)
    dataset = AudioDataset(manifest, crop_seconds=method.config.view.crop_seconds, seed=seed)
    sampler = DurationBatchSampler(dataset.effective_durations(), max_batch_seconds=64.0, shuffle=False)
    views_a, views_b = [], []
    for batch in build_dataloader(dataset, sampler, num_workers=0):
        z_a, z_b = method.project_views(batch.waveforms, batch.lengths, generator)
        views_a.append(z_a)
        views_b.append(z_b)
    method.train(was_training)
    return cross_correlation_matrix(torch.cat(views_a), torch.cat(views_b))


def diagonal_stats(c: torch.Tensor) -> dict[str, float]:
    """Summary of a ``(dim, dim)`` cross-correlation matrix.

    Returns:
        ``on_diagonal_mean`` and ``on_diagonal_min`` of ``C_ii``;
        ``off_diagonal_abs_mean``, ``off_diagonal_abs_max`` and ``off_diagonal_rms`` of
        ``C_ij, i≠j``; and the unweighted loss terms ``invariance = Σ_i (1 − C_ii)²`` and
        ``redundancy = Σ_{i≠j} C_ij²``.

    Raises:
        ValueError: if ``c`` is not a square matrix of at least 2 × 2.
    """
    if c.dim() != 2 or c.shape[0] != c.shape[1] or c.shape[0] < 2:
        raise ValueError(f"expected a square (dim, dim) matrix with dim >= 2, found shape {tuple(c.shape)}")
    c = c.detach().double()
    diagonal = torch.diagonal(c)
    off = off_diagonal(c)
    return {
        "on_diagonal_mean": float(diagonal.mean()),
        "on_diagonal_min": float(diagonal.min()),
        "off_diagonal_abs_mean": float(off.abs().mean()),
        "off_diagonal_abs_max": float(off.abs().max()),
        "off_diagonal_rms": float(off.pow(2).mean().sqrt()),
        "invariance": float((1.0 - diagonal).pow(2).sum()),
        "redundancy": float(off.pow(2).sum()),
    }


def plot_cross_correlation(
    matrices: Mapping[str, torch.Tensor], path: str | Path, max_dims: int | None = None
) -> Path:
    """Save side-by-side heatmaps of cross-correlation matrices as a PNG.

    All panels share the colour scale −1…1 (diverging colormap, white at 0) and one
    colour bar; each panel is titled with its key, e.g. ``"before training"``.

    Args:
        matrices: title → ``(dim, dim)`` matrix, plotted left to right in order.
        path: output file (``.png``); parent directories are created.
        max_dims: plot only the leading ``max_dims × max_dims`` block of each matrix
            (readable panels for wide projectors); ``None`` plots everything.

    Returns:
        the path written.

    Raises:
        ValueError: if ``matrices`` is empty, a matrix is not square, or ``max_dims < 1``.
    """
    if not matrices:
        raise ValueError("expected at least one matrix to plot, found none")
    if max_dims is not None and max_dims < 1:
        raise ValueError(f"max_dims: expected >= 1 or None, found {max_dims}")
    for title, c in matrices.items():
        if c.dim() != 2 or c.shape[0] != c.shape[1]:
            raise ValueError(f"{title!r}: expected a square (dim, dim) matrix, found shape {tuple(c.shape)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(4.0 * len(matrices) + 1.0, 4.0), layout="constrained")
    axes = figure.subplots(1, len(matrices), squeeze=False)[0]
    image = None
    for ax, (title, c) in zip(axes, matrices.items(), strict=True):
        block = c.detach().float().cpu()[:max_dims, :max_dims].numpy()
        image = ax.imshow(block, cmap="RdBu_r", vmin=-1.0, vmax=1.0, interpolation="nearest")
        ax.set_title(title)
        ax.set_xlabel("view b dimension j")
        ax.set_ylabel("view a dimension i")
    figure.colorbar(image, ax=list(axes), label=r"$C_{ij}$")
    figure.savefig(path, dpi=100)
    return path


__all__ = ["cross_correlation_matrix", "diagonal_stats", "plot_cross_correlation"]
