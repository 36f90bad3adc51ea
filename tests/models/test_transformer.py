"""Transformer context network: attention reference, padding invariance, causality, LayerDrop."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from speechssl.models import (
    ConvPositionalEmbedding,
    MultiHeadSelfAttention,
    TransformerEncoder,
    TransformerLayer,
)


def make_context(causal: bool = False, layers: int = 3, layer_drop: float = 0.0, kernel: int = 16):
    positional = ConvPositionalEmbedding(32, kernel_size=kernel, groups=4, causal=causal)
    blocks = [TransformerLayer(32, 4, 64, dropout=0.0, attention_dropout=0.0) for _ in range(layers)]
    return TransformerEncoder(positional, blocks, dropout=0.0, layer_drop=layer_drop).eval()


def test_attention_matches_torch_multihead_attention():
    """Same weights, same key padding: equal to nn.MultiheadAttention (atol 1e-5, float32)."""
    ours = MultiHeadSelfAttention(32, 4).eval()
    reference = nn.MultiheadAttention(32, 4, batch_first=True).eval()
    with torch.no_grad():
        reference.in_proj_weight.copy_(ours.qkv.weight)
        reference.in_proj_bias.copy_(ours.qkv.bias)
        reference.out_proj.weight.copy_(ours.out.weight)
        reference.out_proj.bias.copy_(ours.out.bias)
    x = torch.randn(2, 10, 32)
    padding = torch.arange(10)[None, :] >= torch.tensor([10, 6])[:, None]  # (batch, frames)
    expected, _ = reference(x, x, x, key_padding_mask=padding, need_weights=False)
    ours_out = ours(x, (~padding)[:, None, None, :])
    torch.testing.assert_close(ours_out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kernel", [16, 15])
def test_positional_embedding_keeps_the_frame_count(causal, kernel):
    positional = ConvPositionalEmbedding(32, kernel_size=kernel, groups=4, causal=causal)
    assert positional(torch.randn(2, 7, 32), torch.tensor([7, 3])).shape == (2, 7, 32)
    assert parametrize.is_parametrized(positional.conv, "weight")  # weight norm


@pytest.mark.parametrize("causal", [False, True])
def test_padded_sequence_gives_same_valid_outputs_as_alone(causal):
    context = make_context(causal)
    lengths = torch.tensor([20, 13, 5])
    x = torch.randn(3, 20, 32)
    x[1, 13:] = 50.0  # garbage in the padding must not leak
    with torch.no_grad():
        batched = context(x, lengths)
        for i, n in enumerate(lengths.tolist()):
            alone = context(x[i : i + 1, :n], torch.tensor([n]))
            for layer, (b, a) in enumerate(zip(batched, alone, strict=True)):
                torch.testing.assert_close(b[i, :n], a[0], rtol=1e-4, atol=1e-5, msg=f"hidden state {layer}")
                assert torch.all(b[i, n:] == 0)


@pytest.mark.parametrize("causal", [True, False])
def test_causal_flag_prevents_future_leakage(causal):
    context = make_context(causal, kernel=8)
    x = torch.randn(1, 30, 32)
    perturbed = x.clone()
    perturbed[:, 12:] += torch.randn(1, 18, 32)
    lengths = torch.tensor([30])
    with torch.no_grad():
        before, after = context(x, lengths), context(perturbed, lengths)
    for b, a in zip(before, after, strict=True):
        past_unchanged = torch.allclose(b[:, :12], a[:, :12], rtol=0, atol=1e-6)
        assert past_unchanged == causal
        assert not torch.allclose(b[:, 12:], a[:, 12:])


def test_hidden_states_count_and_final_layer_norm():
    context = make_context(layers=3)
    hidden = context(torch.randn(2, 9, 32), torch.tensor([9, 9]))
    assert len(hidden) == 4
    assert all(h.shape == (2, 9, 32) for h in hidden)
    # Only the last state went through the final LayerNorm (unit weight, zero bias at init).
    torch.testing.assert_close(hidden[-1].mean(-1), torch.zeros(2, 9), atol=1e-5, rtol=0)
    assert not torch.allclose(hidden[-2].mean(-1), torch.zeros(2, 9), atol=1e-3)


def test_layer_drop_only_in_training():
    context = make_context(layers=4, layer_drop=0.99)
    x, lengths = torch.randn(1, 6, 32), torch.tensor([6])
    context.train()
    hidden = context(x, lengths)
    # With p = 0.99 every layer is (almost surely, p^4 > 0.96) skipped: states repeat the input.
    for h in hidden[1:-1]:
        torch.testing.assert_close(h, hidden[0])
    context.eval()
    hidden = context(x, lengths)
    for previous, current in pairwise(hidden[:-1]):
        assert not torch.allclose(previous, current)


def test_linear_init_is_truncated_normal_002():
    weight = TransformerLayer(256, 4, 1024).ffn.fc1.weight
    assert weight.abs().max() <= 0.04
    assert 0.015 < weight.std() < 0.02


def test_errors_name_the_option():
    with pytest.raises(ValueError, match="heads: expected a divisor of dim=32, found 5"):
        MultiHeadSelfAttention(32, 5)
    with pytest.raises(ValueError, match="groups: expected a divisor of dim=32, found 5"):
        ConvPositionalEmbedding(32, groups=5)
    with pytest.raises(ValueError, match="layer_drop"):
        make_context(layer_drop=1.0)
    with pytest.raises(ValueError, match=r"layers\[0\].dim: expected 32"):
        TransformerEncoder(ConvPositionalEmbedding(32, 16, 4), [TransformerLayer(16, 4, 32)])
    with pytest.raises(ValueError, match=r"x: expected \(batch, frames, 32\)"):
        make_context()(torch.randn(2, 5, 16), torch.tensor([5, 5]))
    with pytest.raises(ValueError, match="lengths"):
        make_context()(torch.randn(2, 5, 32), torch.tensor([5]))
