"""Masked pooling and the projector MLP."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from speechssl.models import ProjectorMLP, masked_mean, masked_mean_std


@settings(max_examples=30, deadline=None)
@given(lengths=st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=5))
def test_pooling_ignores_padding(lengths):
    frames = max(lengths)
    x = torch.randn(len(lengths), frames, 3, dtype=torch.float64)
    lengths_tensor = torch.tensor(lengths)
    garbage = x.clone()
    garbage[torch.arange(frames)[None, :] >= lengths_tensor[:, None]] = 1e6
    mean = masked_mean(garbage, lengths_tensor)
    stats = masked_mean_std(garbage, lengths_tensor, eps=0.0)
    assert mean.shape == (len(lengths), 3) and stats.shape == (len(lengths), 6)
    for i, n in enumerate(lengths):
        valid = x[i, :n]
        torch.testing.assert_close(mean[i], valid.mean(0))
        torch.testing.assert_close(stats[i, :3], valid.mean(0))
        torch.testing.assert_close(stats[i, 3:], valid.std(0, unbiased=False))


def test_pooling_errors():
    with pytest.raises(ValueError, match=r"x: expected \(batch, frames, dim\)"):
        masked_mean(torch.zeros(2, 5), torch.tensor([5, 5]))
    with pytest.raises(ValueError, match=r"lengths: expected shape \(2,\)"):
        masked_mean_std(torch.zeros(2, 5, 3), torch.tensor([5]))


def test_std_pooling_gradient_is_finite_for_constant_frames():
    x = torch.ones(1, 4, 3, requires_grad=True)
    masked_mean_std(x, torch.tensor([4])).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_projector_layout_follows_barlow_twins():
    projector = ProjectorMLP(32, [64, 64], 16)
    kinds = [type(m) for m in projector.layers]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    linears = [m for m in projector.layers if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(32, 64), (64, 64), (64, 16)]
    assert all(m.bias is None for m in linears)  # hidden: BN follows; last: last_bias=False
    assert projector(torch.randn(5, 32)).shape == (5, 16)


def test_projector_options():
    projector = ProjectorMLP(8, [16], 4, batch_norm=False, last_bias=True)
    assert [type(m) for m in projector.layers] == [nn.Linear, nn.ReLU, nn.Linear]
    assert projector.layers[0].bias is not None and projector.layers[-1].bias is not None
    single = ProjectorMLP(8, [], 4)
    assert [type(m) for m in single.layers] == [nn.Linear]


def test_projector_errors():
    with pytest.raises(ValueError, match=r"x: expected \(batch, 8\)"):
        ProjectorMLP(8, [16], 4)(torch.randn(2, 3, 8))
    with pytest.raises(ValueError, match="positive sizes"):
        ProjectorMLP(8, [0], 4)
