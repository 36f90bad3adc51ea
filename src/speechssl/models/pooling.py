"""Utterance-level pooling of frame sequences, ignoring padded frames."""

from __future__ import annotations

import torch

from speechssl.data.batch import lengths_to_padding_mask


def _check(x: torch.Tensor, lengths: torch.Tensor) -> None:
    if x.dim() != 3:
        raise ValueError(f"x: expected (batch, frames, dim), found shape {tuple(x.shape)}")
    if lengths.shape != (x.shape[0],):
        raise ValueError(f"lengths: expected shape ({x.shape[0]},), found {tuple(lengths.shape)}")


def masked_mean(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over the valid frames of each utterance.

    Args:
        x: ``(batch, frames, dim)``; frames at or after ``lengths`` are ignored.
        lengths: ``(batch,)`` valid frames per utterance (a zero length gives a zero vector).

    Returns:
        ``(batch, dim)``.
    """
    _check(x, lengths)
    valid = (~lengths_to_padding_mask(lengths, x.shape[1]))[:, :, None].to(x.dtype)  # (batch, frames, 1)
    count = lengths.clamp(min=1).to(x.dtype)[:, None]  # (batch, 1)
    return (x * valid).sum(dim=1) / count


def masked_mean_std(x: torch.Tensor, lengths: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Statistics pooling: mean and standard deviation over valid frames, concatenated.

    The x-vector pooling layer (Snyder et al. 2018, §2.2); the standard deviation is
    ``sqrt(E[(x - mean)^2] + eps)`` over the valid frames (``eps`` keeps its gradient finite).

    Args:
        x: ``(batch, frames, dim)``; frames at or after ``lengths`` are ignored.
        lengths: ``(batch,)`` valid frames per utterance.

    Returns:
        ``(batch, 2 * dim)``: ``[mean, std]``.
    """
    mean = masked_mean(x, lengths)  # (batch, dim)
    variance = masked_mean((x - mean[:, None, :]).pow(2), lengths)  # (batch, dim)
    return torch.cat([mean, torch.sqrt(variance + eps)], dim=-1)
