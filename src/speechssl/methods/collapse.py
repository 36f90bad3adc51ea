"""Watching joint-embedding training for collapse.

Two views pulled together can be satisfied by a constant embedding (complete collapse) or
by embeddings confined to a few directions (dimensional collapse, Jing et al. 2022,
"Understanding Dimensional Collapse in Contrastive Self-Supervised Learning"). Two cheap
statistics of a batch of embeddings reveal both:

* the standard deviation of the L2-normalised embeddings per dimension, averaged
  (Chen & He 2021, "Exploring Simple Siamese Representation Learning", §4.1): about
  ``1 / sqrt(dim)`` for well-spread embeddings, 0 when they collapse to a point;
* the effective rank (Roy & Vetterli 2007, "The effective rank: a measure of effective
  dimensionality", eq. 3): ``exp(H(p))`` with ``p`` the singular values of the centred
  embeddings normalised to sum to one; between 1 and ``min(batch, dim)``.

:class:`CollapseMonitor` computes both for a method to log, and warns (through
:mod:`logging`) when either falls below a fraction of its healthy value.
"""

from __future__ import annotations

import logging
import math

import torch

LOGGER = logging.getLogger(__name__)


def normalized_embedding_std(z: torch.Tensor) -> torch.Tensor:
    """Mean over dimensions of the batch standard deviation of ``z / ||z||``; ``z`` is ``(batch, dim)``."""
    if z.dim() != 2 or z.shape[0] < 2:
        raise ValueError(f"z: expected (batch >= 2, dim), found shape {tuple(z.shape)}")
    unit = torch.nn.functional.normalize(z.detach().float(), dim=1)  # (batch, dim)
    return unit.std(dim=0).mean()


def effective_rank(z: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Roy & Vetterli's effective rank ``exp(-Σ p_i log p_i)`` of the centred ``z (batch, dim)``,
    ``p_i = σ_i / Σ σ_j`` over its singular values ``σ``."""
    if z.dim() != 2 or z.shape[0] < 2:
        raise ValueError(f"z: expected (batch >= 2, dim), found shape {tuple(z.shape)}")
    centred = z.detach().float() - z.detach().float().mean(dim=0, keepdim=True)  # (batch, dim)
    singular = torch.linalg.svdvals(centred)  # (min(batch, dim),)
    total = singular.sum()
    p = singular / total.clamp(min=eps)
    rank = torch.exp(-(p * torch.log(p.clamp(min=eps))).sum())
    return torch.where(total <= eps, torch.ones_like(rank), rank)  # a constant batch: rank 1


class CollapseMonitor:
    """Collapse statistics of each batch of embeddings, with a warning when they fall.

    Collapse is declared when the normalised standard deviation falls below
    ``std_fraction / sqrt(dim)`` or the effective rank below ``rank_fraction`` of its
    largest possible value ``min(batch, dim)``. The warning is logged at most once every
    ``warn_every`` calls while collapse lasts.

    Args:
        std_fraction: fraction of the healthy ``1 / sqrt(dim)`` below which the std alarms.
        rank_fraction: fraction of ``min(batch, dim)`` below which the effective rank alarms.
        warn_every: calls between repeated warnings.
    """

    def __init__(self, std_fraction: float = 0.1, rank_fraction: float = 0.05, warn_every: int = 100) -> None:
        if not (0 < std_fraction <= 1 and 0 < rank_fraction <= 1):
            raise ValueError(
                f"std_fraction/rank_fraction: expected fractions in (0, 1], found {std_fraction}/{rank_fraction}"
            )
        if warn_every < 1:
            raise ValueError(f"warn_every: expected an integer >= 1, found {warn_every}")
        self.std_fraction = std_fraction
        self.rank_fraction = rank_fraction
        self.warn_every = warn_every
        self.calls_since_warning: int | None = None

    def statistics(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Statistics of ``z (batch, dim)``: ``embedding_std``, ``effective_rank`` and ``collapsed``
        (1.0 or 0.0), detached tensors for logging; nothing is read back to the host."""
        batch, dim = z.shape
        std = normalized_embedding_std(z)
        rank = effective_rank(z)
        collapsed = (std < self.std_fraction / math.sqrt(dim)) | (rank < self.rank_fraction * min(batch, dim))
        return {"embedding_std": std, "effective_rank": rank, "collapsed": collapsed.float()}

    def warn_if_collapsed(
        self, statistics: dict[str, torch.Tensor], shape: tuple[int, int], calls: int = 1
    ) -> None:
        """Read ``statistics["collapsed"]`` (a host read) and log the rate-limited warning.

        Args:
            statistics: the output of :meth:`statistics`.
            shape: ``(batch, dim)`` of the embeddings they describe.
            calls: batches since the previous check (what ``warn_every`` counts).
        """
        if not float(statistics["collapsed"]):
            self.calls_since_warning = None
            return
        if self.calls_since_warning is None or self.calls_since_warning >= self.warn_every:
            batch, dim = shape
            LOGGER.warning(
                "representation collapse: normalised embedding std %.4f (healthy ~%.4f), effective rank "
                "%.2f of at most %d",
                float(statistics["embedding_std"]),
                1 / math.sqrt(dim),
                float(statistics["effective_rank"]),
                min(batch, dim),
            )
            self.calls_since_warning = 0
        self.calls_since_warning += calls

    def __call__(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """:meth:`statistics` of ``z (batch, dim)``, then :meth:`warn_if_collapsed`."""
        statistics = self.statistics(z)
        self.warn_if_collapsed(statistics, z.shape)
        return statistics


__all__ = ["CollapseMonitor", "effective_rank", "normalized_embedding_std"]
