"""WavLM's gated relative position bias: buckets, the shared table, the per-layer gate."""

from __future__ import annotations

import torch

from speechssl.models.relative_position import (
    RelativePositionBias,
    RelativePositionGate,
    relative_position_buckets,
)


def test_buckets_are_exact_near_zero_logarithmic_far_and_split_by_sign():
    offsets = torch.tensor([-25, -5, -3, -1, 0, 1, 3, 4, 6, 10, 19, 20, 100])
    # 16 buckets: 8 per sign, 4 exact, then log-spaced up to a distance of 20
    expected = [7, 4, 3, 1, 0, 9, 11, 12, 13, 14, 15, 15, 15]
    assert relative_position_buckets(offsets, num_buckets=16, max_distance=20).tolist() == expected


def test_the_bias_depends_on_the_offset_only():
    bias = RelativePositionBias(heads=2, num_buckets=16, max_distance=20)(frames=6)
    assert bias.shape == (2, 6, 6)
    torch.testing.assert_close(bias[:, 1:, 1:], bias[:, :-1, :-1])
    assert not torch.equal(bias[:, 0, 1], bias[:, 1, 0])


def test_the_gate_scales_each_query_row_between_one_and_the_gate_constant():
    gate = RelativePositionGate(dim=8, heads=2)
    with torch.no_grad():
        gate.linear.weight.zero_()
        gate.linear.bias.fill_(100.0)  # sigmoid -> 1: a (b c - 1) + 2 = c + 1
        gate.scale.fill_(3.0)
    bias = torch.randn(2, 5, 5)
    gated = gate(torch.randn(4, 5, 8), bias)
    assert gated.shape == (4, 2, 5, 5)
    torch.testing.assert_close(gated, 4.0 * bias.expand(4, -1, -1, -1))
