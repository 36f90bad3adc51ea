"""Scaling the gradient that flows back through a tensor, leaving its value unchanged.

wav2vec 2.0 scales the gradient reaching its CNN feature encoder by 0.1 (Baevski et al.
2020, §4.2: "the feature encoder ... gradients scaled down by a factor of 10"), which
stabilises training of the waveform encoder under the contrastive loss.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd import Function


class GradMultiply(Function):
    """Identity in the forward pass; multiplies the incoming gradient by ``scale`` in the backward pass."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.scale, None


def grad_multiply(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` unchanged, with the gradient flowing back through it multiplied by ``scale``.

    ``scale == 1`` returns ``x`` itself; ``scale == 0`` stops the gradient like ``detach``.
    """
    if scale == 1.0:
        return x
    return GradMultiply.apply(x, scale)


__all__ = ["GradMultiply", "grad_multiply"]
