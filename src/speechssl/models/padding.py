"""Length arithmetic and padding masks for ``(batch, frames, ...)`` sequences."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from speechssl.data.batch import lengths_to_padding_mask


def conv_output_lengths(
    lengths: torch.Tensor, kernel_size: int, stride: int, padding: int = 0
) -> torch.Tensor:
    """Valid output frames of a 1-D convolution: ``floor((L + padding - kernel) / stride) + 1``.

    ``padding`` is the total padding (both sides). Lengths that would be negative are
    clamped to zero.
    """
    return torch.clamp(torch.div(lengths + padding - kernel_size, stride, rounding_mode="floor") + 1, min=0)


def receptive_field(kernels: Sequence[int], strides: Sequence[int]) -> int:
    """Input samples seen by one output frame of stacked unpadded convolutions:
    ``1 + sum_i (kernel_i - 1) * prod_{j < i} stride_j`` (400 for the wav2vec 2.0 CNN)."""
    field = 1
    for i, kernel in enumerate(kernels):
        field += (kernel - 1) * math.prod(strides[:i])
    return field


def zero_padding_frames(x: torch.Tensor, lengths: torch.Tensor | None, time_dim: int = 1) -> torch.Tensor:
    """``x`` with every frame at or after ``lengths`` along ``time_dim`` set to zero.

    Args:
        x: ``(batch, ...)`` tensor with frames along ``time_dim``.
        lengths: ``(batch,)`` valid frames per row; None when no row is padded (``x`` is returned).
    """
    if lengths is None:
        return x
    valid = ~lengths_to_padding_mask(lengths, x.shape[time_dim])  # (batch, frames)
    shape = [x.shape[0]] + [1] * (x.dim() - 1)
    shape[time_dim] = x.shape[time_dim]
    return x * valid.view(shape).to(x.dtype)  # valid: (batch, 1.., frames, 1..)


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Reverse the valid frames of each utterance of ``x (batch, frames, dim)``; padded frames
    stay where they are. Applying it twice gives ``x`` back.

    Args:
        x: ``(batch, frames, dim)``.
        lengths: ``(batch,)`` valid frames per utterance; None when none is padded (a plain flip).
    """
    if lengths is None:
        return x.flip(1)
    positions = torch.arange(x.shape[1], device=x.device)[None, :]  # (1, frames)
    source = lengths[:, None] - 1 - positions  # (batch, frames): the frame each position reads
    source = torch.where(source >= 0, source, positions)  # padded positions read themselves
    return x.gather(1, source[:, :, None].expand_as(x))
