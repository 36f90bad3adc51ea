"""WavLM's gated relative position bias (Chen et al. 2022, §II-B).

Every attention logit between query frame ``i`` and key frame ``j`` gets a learned bias per
head that depends on the offset ``j - i`` through logarithmic buckets (the T5 bucketing,
Raffel et al. 2020, §2.1): offsets below ``num_buckets / 4`` in magnitude have a bucket each,
larger ones share buckets spaced logarithmically up to ``max_distance``, and the sign of the
offset selects one half of the buckets. The bias table (:class:`RelativePositionBias`) is
computed once per forward, before the first layer, and shared by every layer; each layer
scales it with its own gate (:class:`RelativePositionGate`), computed from the layer's
attention input, so that the bias adapts to the content of the query frame.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def relative_position_buckets(offsets: torch.Tensor, num_buckets: int, max_distance: int) -> torch.Tensor:
    """Bucket index in ``[0, num_buckets)`` of each key-minus-query offset (int64, any shape).

    Half of the buckets hold the positive offsets, half the others; within a half, the
    first ``num_buckets // 4`` buckets are exact offsets and the rest grow logarithmically
    until ``max_distance`` (farther offsets share the last bucket).
    """
    half = num_buckets // 2
    buckets = (offsets > 0).long() * half
    distance = offsets.abs()
    exact = half // 2
    # log-spaced bucket of a distance >= exact: exact + (half - exact) * log(d / exact) / log(max / exact)
    logarithmic = (
        exact
        + (
            torch.log(distance.float().clamp(min=1) / exact) / math.log(max_distance / exact) * (half - exact)
        ).long()
    )
    logarithmic = logarithmic.clamp(max=half - 1)
    return buckets + torch.where(distance < exact, distance, logarithmic)


class RelativePositionBias(nn.Module):
    """The ``(heads, frames, frames)`` bias table: one learned value per (bucket, head).

    Args:
        heads: attention heads.
        num_buckets: buckets of the offsets (320 in WavLM).
        max_distance: offset from which every farther one shares the last bucket (800 in WavLM).
    """

    def __init__(self, heads: int, num_buckets: int = 320, max_distance: int = 800) -> None:
        super().__init__()
        if num_buckets < 4 or num_buckets % 4:
            raise ValueError(f"num_buckets: expected a positive multiple of 4, found {num_buckets}")
        if max_distance <= num_buckets // 4:
            raise ValueError(f"max_distance: expected more than num_buckets / 4, found {max_distance}")
        self.heads = heads
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.embedding = nn.Embedding(num_buckets, heads)

    def forward(self, frames: int) -> torch.Tensor:
        """The bias ``(heads, frames, frames)``: entry ``[h, i, j]`` for query ``i`` and key ``j``."""
        positions = torch.arange(frames, device=self.embedding.weight.device)
        offsets = positions[None, :] - positions[:, None]  # (query, key): key - query
        buckets = relative_position_buckets(offsets, self.num_buckets, self.max_distance)
        return self.embedding(buckets).permute(2, 0, 1)  # (heads, frames, frames)


class RelativePositionGate(nn.Module):
    """One layer's gate on the shared bias, from its attention input (WavLM's ``gru_rel_pos``).

    For each head, the query frame's slice ``x_h`` of ``head_dim`` values is projected to two
    groups of 4 values, each summed and passed through a sigmoid (``a``, ``b``); the bias of
    that query's row is scaled by ``a (b c_h - 1) + 2``, with a learned ``c_h`` per head.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"heads: expected a divisor of dim={dim}, found {heads}")
        self.heads = heads
        self.linear = nn.Linear(dim // heads, 8)
        self.scale = nn.Parameter(torch.ones(1, heads, 1, 1))

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Gate ``bias (heads, frames, frames)`` by ``x (batch, frames, dim)``: ``(batch, heads, frames, frames)``."""
        batch, frames, dim = x.shape
        per_head = x.view(batch, frames, self.heads, dim // self.heads).transpose(1, 2)
        # (batch, heads, frames, head_dim) -> (batch, heads, frames, 2, 4), summed over the 4
        projected = self.linear(per_head).view(batch, self.heads, frames, 2, 4).sum(-1)
        gate_a, gate_b = torch.sigmoid(projected).chunk(2, dim=-1)  # each (batch, heads, frames, 1)
        gate = gate_a * (gate_b * self.scale - 1.0) + 2.0
        return gate * bias[None]  # (batch, heads, frames, frames)
