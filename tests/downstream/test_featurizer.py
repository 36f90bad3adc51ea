"""SUPERB's weighted layer sum and the fixed-layer selection."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from speechssl.downstream.featurizer import FixedLayer, WeightedLayerSum


def test_weighted_sum_starts_uniform_and_weights_sum_to_one():
    featurizer = WeightedLayerSum(num_layers=4)
    hidden = torch.randn(3, 5, 4, 6)  # (batch, frames, layers, dim)
    torch.testing.assert_close(featurizer(hidden), hidden.mean(dim=-2))
    assert featurizer.layer_weights() == pytest.approx([0.25] * 4)

    with torch.no_grad():
        featurizer.logits.copy_(torch.tensor([2.0, -1.0, 0.5, 0.0]))
    weights = featurizer.layer_weights()
    assert isinstance(weights, list) and sum(weights) == pytest.approx(1.0)
    assert all(w > 0 for w in weights) and max(weights) == weights[0]
    expected = sum(w * hidden[..., layer, :] for layer, w in enumerate(weights))
    torch.testing.assert_close(featurizer(hidden), expected)


def test_gradients_reach_the_layer_logits():
    featurizer = WeightedLayerSum(num_layers=3)
    hidden = torch.randn(8, 3, 5)  # (batch, layers, dim)
    hidden[:, 1] += 10.0  # the loss below prefers the other layers
    featurizer(hidden).pow(2).sum().backward()
    grad = featurizer.logits.grad
    assert grad is not None and torch.all(torch.isfinite(grad))
    assert grad[1] > 0 and grad[0] < 0 and grad[2] < 0


def test_layer_norm_normalises_each_layer_before_weighting():
    featurizer = WeightedLayerSum(num_layers=2, layer_norm=True)
    hidden = torch.stack([torch.randn(4, 7) * 100 + 5, torch.randn(4, 7)], dim=1)  # (batch, layers, dim)
    expected = F.layer_norm(hidden, (7,)).mean(dim=1)
    torch.testing.assert_close(featurizer(hidden), expected)
    assert WeightedLayerSum(2)(hidden).abs().max() > 10 * expected.abs().max()


def test_fixed_layer_picks_the_layer():
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).view(2, 4, 3)  # (batch, layers, dim)
    torch.testing.assert_close(FixedLayer(2)(hidden), hidden[:, 2, :])
    torch.testing.assert_close(FixedLayer(-1)(hidden), hidden[:, 3, :])
    with pytest.raises(ValueError, match=r"expected an integer in \[-4, 4\), found 4"):
        FixedLayer(4)(hidden)


def test_shape_errors_say_expected_and_found():
    with pytest.raises(ValueError, match=r"expected 3 layers .* found shape \(2, 4, 5\)"):
        WeightedLayerSum(3)(torch.zeros(2, 4, 5))
    with pytest.raises(ValueError, match=r"expected \(\.\.\., layers, dim\), found shape \(5,\)"):
        FixedLayer(0)(torch.zeros(5))
    with pytest.raises(ValueError, match="num_layers: expected an integer >= 1, found 0"):
        WeightedLayerSum(0)
