"""Projection heads put on top of an encoder during pretraining."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn


class ProjectorMLP(nn.Module):
    """The Barlow Twins / VICReg projector: ``[Linear -> BatchNorm1d -> ReLU] x hidden -> Linear``.

    Zbontar et al. 2021, §2 ("Implementation details": three linear layers of 8192 units,
    the first two followed by batch normalisation and ReLU); Bardes et al. 2022 use the
    same head. Hidden Linear layers have no bias when batch normalisation follows them.

    Args:
        in_dim: input dimension.
        hidden_dims: width of each hidden layer (may be empty: a single Linear).
        out_dim: output (embedding) dimension.
        batch_norm: BatchNorm1d after each hidden Linear.
        last_bias: whether the final Linear has a bias.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dims: Sequence[int],
        out_dim: int,
        batch_norm: bool = True,
        last_bias: bool = False,
    ) -> None:
        super().__init__()
        dims = [in_dim, *hidden_dims, out_dim]
        if min(dims) < 1:
            raise ValueError(f"in_dim/hidden_dims/out_dim: expected positive sizes, found {dims}")
        self.in_dim = in_dim
        self.out_dim = out_dim
        layers: list[nn.Module] = []
        for width_in, width_out in pairwise(dims[:-1]):
            layers.append(nn.Linear(width_in, width_out, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(width_out))
            layers.append(nn.ReLU(inplace=True))
        layers.append(nn.Linear(dims[-2], out_dim, bias=last_bias))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (batch, in_dim)`` -> ``(batch, out_dim)``."""
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"x: expected (batch, {self.in_dim}), found shape {tuple(x.shape)}")
        return self.layers(x)
