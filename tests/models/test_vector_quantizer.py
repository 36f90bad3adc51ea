"""VectorQuantizer: nearest neighbours, the VQ-VAE loss terms, straight-through gradients, usage."""

from __future__ import annotations

import math

import pytest
import torch

from speechssl.models import VectorQuantizer


def _quantizer(codebook: list[list[float]], commitment_weight: float = 0.25) -> VectorQuantizer:
    """A quantizer with the given entries and no dead-code restarts."""
    quantizer = VectorQuantizer(len(codebook), len(codebook[0]), commitment_weight, dead_code_threshold=0.0)
    with torch.no_grad():
        quantizer.codebook.copy_(torch.tensor(codebook))
    return quantizer


def test_codes_are_nearest_neighbours_of_valid_frames():
    quantizer = VectorQuantizer(16, 4).eval()
    with torch.no_grad():
        quantizer.codebook.normal_()
    h = torch.randn(3, 6, 4)
    lengths = torch.tensor([6, 2, 4])
    output = quantizer(h, lengths)
    distances = torch.cdist(h.reshape(-1, 4), quantizer.codebook.detach())  # (batch * frames, K)
    expected = distances.argmin(dim=1).view(3, 6)  # (batch, frames)
    padding = torch.arange(6)[None, :] >= lengths[:, None]
    assert torch.equal(output.codes[~padding], expected[~padding])
    assert torch.all(output.codes[padding] == -1)
    torch.testing.assert_close(output.quantized[~padding], quantizer.codebook.detach()[expected[~padding]])
    assert torch.all(output.quantized[padding] == 0)


def test_loss_terms_on_a_hand_checkable_case():
    # codebook e_0 = (0, 0), e_1 = (4, 0); frames (1, 0) -> e_0 and (3, 2) -> e_1;
    # squared errors: 1 + 0 and 1 + 4, so MSE = (1 + 0 + 1 + 4) / 4 = 1.5; padded frame ignored.
    quantizer = _quantizer([[0.0, 0.0], [4.0, 0.0]], commitment_weight=0.5)
    h = torch.tensor([[[1.0, 0.0], [3.0, 2.0], [100.0, 100.0]]])
    output = quantizer(h, torch.tensor([2]))
    assert output.codes.tolist() == [[0, 1, -1]]
    assert output.codebook_loss.item() == pytest.approx(1.5)
    assert output.commitment_loss.item() == pytest.approx(1.5)
    assert output.loss.item() == pytest.approx(1.5 + 0.5 * 1.5)
    assert float(output.perplexity) == pytest.approx(2.0) and float(output.code_usage) == 1.0


def test_codebook_term_moves_the_codebook_and_commitment_term_the_input():
    quantizer = _quantizer([[0.0, 0.0], [4.0, 0.0]])
    h = torch.tensor([[[1.0, 0.0], [3.0, 2.0]]], requires_grad=True)
    output = quantizer(h, torch.tensor([2]))
    output.codebook_loss.backward(retain_graph=True)
    assert h.grad is None
    # d/de_0 of ((e_0 - (1, 0))² summed) / 4 = (e_0 - (1, 0)) / 2
    torch.testing.assert_close(quantizer.codebook.grad, torch.tensor([[-0.5, 0.0], [0.5, -1.0]]))
    quantizer.codebook.grad = None
    output.commitment_loss.backward()
    assert quantizer.codebook.grad is None
    torch.testing.assert_close(h.grad, torch.tensor([[[0.5, 0.0], [-0.5, 1.0]]]))


def test_straight_through_gradient_equals_the_identity_gradient():
    quantizer = VectorQuantizer(8, 3)
    h = torch.randn(2, 5, 3, requires_grad=True)
    lengths = torch.tensor([5, 3])
    upstream = torch.randn(2, 5, 3)
    (quantizer(h, lengths).quantized * upstream).sum().backward()
    padding = torch.arange(5)[None, :] >= lengths[:, None]
    expected = upstream.masked_fill(padding[:, :, None], 0.0)  # d(h * upstream)/dh on valid frames
    torch.testing.assert_close(h.grad, expected)
    assert quantizer.codebook.grad is None or torch.all(quantizer.codebook.grad == 0)


def test_usage_statistics_count_valid_frames_only():
    quantizer = _quantizer([[0.0], [10.0], [20.0], [30.0]])
    h = torch.tensor([[[0.0], [0.0], [10.0], [10.0]], [[20.0], [30.0], [30.0], [30.0]]])
    output = quantizer(h, torch.tensor([4, 1]))  # codes 0, 0, 1, 1 | 2 (padding: 3, 3, 3)
    p = torch.tensor([0.4, 0.4, 0.2])
    assert float(output.perplexity) == pytest.approx(math.exp(float(-(p * p.log()).sum())))
    assert float(output.code_usage) == pytest.approx(0.75)


def test_the_first_training_pass_initialises_the_codebook_from_valid_frames():
    quantizer = VectorQuantizer(6, 2)
    h = torch.randn(2, 5, 2)
    h[1, 3:] = 1e3  # padding is never picked
    output = quantizer(h, torch.tensor([5, 3]))
    frames = torch.cat([h[0], h[1, :3]])  # (8, 2) valid frames
    for entry in quantizer.codebook.detach():
        assert (frames == entry).all(dim=1).any()
    assert set(output.codes[output.codes >= 0].tolist()) <= set(range(6))
    # restarted entries get the mean usage 8/6 each, then 0.9 · usage + 0.1 · counts of the 8 frames
    assert quantizer.usage.sum().item() == pytest.approx(8.0)


def test_entries_unused_for_a_while_restart_on_frames_of_the_batch():
    quantizer = VectorQuantizer(2, 1, dead_code_threshold=0.5, usage_decay=0.5)
    quantizer(torch.tensor([[[0.0], [0.0]]]), torch.tensor([2]))  # both start at 0.0, usage 1 -> (1.5, 0.5)
    with torch.no_grad():
        quantizer.codebook.copy_(torch.tensor([[0.0], [100.0]]))
    quantizer(torch.tensor([[[0.0], [1.0]]]), torch.tensor([2]))  # entry 1 unused: usage 0.5 -> 0.25
    assert quantizer.codebook[1].item() == 100.0 and quantizer.usage[1].item() == pytest.approx(0.25)
    output = quantizer(torch.tensor([[[3.0], [3.0]]]), torch.tensor([2]))  # entry 1 restarts on 3.0
    assert quantizer.codebook[1].item() == 3.0 and output.codes.tolist() == [[1, 1]]
    quantizer.eval()(torch.tensor([[[50.0]]]), torch.tensor([1]))  # no restarts in eval mode
    assert quantizer.codebook.detach().flatten().tolist() == [0.0, 3.0]


def test_errors_say_expected_and_found():
    with pytest.raises(ValueError, match="codebook_size: expected >= 1, found 0"):
        VectorQuantizer(0, 4)
    with pytest.raises(ValueError, match="commitment_weight: expected >= 0, found -1"):
        VectorQuantizer(4, 4, commitment_weight=-1)
    with pytest.raises(ValueError, match=r"h: expected \(batch, frames, 4\), found \(2, 3\)"):
        VectorQuantizer(4, 4)(torch.zeros(2, 3), torch.tensor([3, 3]))
    with pytest.raises(ValueError, match="at least one valid frame"):
        VectorQuantizer(4, 4)(torch.zeros(2, 3, 4), torch.tensor([0, 0]))
