"""Downstream heads: shapes, padding never reaching outputs, attentive pooling, CTC outputs."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from speechssl.downstream.heads import (
    AttentiveStatisticsPooling,
    AttentiveStatisticsPoolingHead,
    CTCHead,
    LinearHead,
    MeanPoolingHead,
    MLPHead,
)
from speechssl.models import masked_mean_std
from speechssl.models.padding import reverse_padded

DIM = 6


def _padded(lengths: list[int], seed: int = 0, fill: float = 1e4) -> tuple[torch.Tensor, torch.Tensor]:
    """``(batch, frames, DIM)`` random frames whose padding holds ``fill``, and ``(batch,)`` lengths."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), max(lengths), DIM, generator=generator, dtype=torch.float64)
    lengths_tensor = torch.tensor(lengths)
    x[torch.arange(max(lengths))[None, :] >= lengths_tensor[:, None]] = fill
    return x, lengths_tensor


def _frame_heads() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    attentive = AttentiveStatisticsPoolingHead(DIM, hidden=8, classes=3, attention_dim=5)
    nn.init.normal_(attentive.pooling.score.weight)  # non-uniform attention
    return {
        "mean": MeanPoolingHead(DIM, hidden=8, classes=3),
        "attentive": attentive,
        "ctc": CTCHead(DIM, vocab_size=5, hidden=4, num_layers=2),
    }


def _outputs(head: nn.Module, x: torch.Tensor, lengths: torch.Tensor) -> list[torch.Tensor]:
    """Per-utterance outputs on valid frames only: ``(classes,)`` or ``(length, vocab)``."""
    if isinstance(head, CTCHead):
        log_probs, output_lengths = head(x, lengths)  # (frames, batch, vocab)
        return [log_probs[: int(n), i] for i, n in enumerate(output_lengths)]
    return list(head(x, lengths))


@settings(max_examples=15, deadline=None)
@given(lengths=st.lists(st.integers(min_value=1, max_value=9), min_size=2, max_size=4))
def test_padding_never_reaches_frame_head_outputs(lengths):
    x, lengths_tensor = _padded(lengths)
    for name, head in _frame_heads().items():
        head = head.double().eval()
        batched = _outputs(head, x, lengths_tensor)
        for i, n in enumerate(lengths):
            alone = _outputs(head, x[i : i + 1, :n], lengths_tensor[i : i + 1])[0]
            torch.testing.assert_close(batched[i], alone, msg=f"{name}: utterance {i}")


def test_padded_frames_receive_no_gradient():
    x, lengths = _padded([5, 2, 4], fill=float("nan"))
    padding = torch.arange(5)[None, :] >= lengths[:, None]  # (batch, frames)
    for name, head in _frame_heads().items():
        frames = x.clone().requires_grad_(True)
        outputs = _outputs(head.double().train(), frames, lengths)
        torch.cat([o.flatten() for o in outputs]).sum().backward()
        assert torch.all(torch.isfinite(torch.cat([o.flatten() for o in outputs]))), name
        assert torch.all(frames.grad[padding] == 0), name
        assert torch.any(frames.grad[~padding] != 0), name


def test_untrained_attention_is_uniform_and_equals_statistics_pooling():
    x, lengths = _padded([7, 3, 5])
    pooling = AttentiveStatisticsPooling(DIM, attention_dim=4).double()
    alpha = pooling.attention(x, lengths)  # (batch, frames)
    expected_alpha = (torch.arange(7)[None, :] < lengths[:, None]).double() / lengths[:, None]
    torch.testing.assert_close(alpha, expected_alpha)
    torch.testing.assert_close(pooling(x, lengths), masked_mean_std(x, lengths, eps=pooling.eps))


def test_trained_attention_weights_frames_unequally_but_only_valid_ones():
    x, lengths = _padded([7, 3, 5])
    pooling = AttentiveStatisticsPooling(DIM, attention_dim=4).double()
    with torch.no_grad():
        pooling.score.weight.normal_(generator=torch.Generator().manual_seed(1))
    alpha = pooling.attention(x, lengths)  # (batch, frames)
    torch.testing.assert_close(alpha.sum(dim=1), torch.ones(3, dtype=torch.float64))
    assert torch.all(alpha[torch.arange(7)[None, :] >= lengths[:, None]] == 0)
    stats = pooling(x, lengths)
    assert not torch.allclose(stats, masked_mean_std(x, lengths))
    valid = x[0, :7]
    mean = (alpha[0, :, None] * valid).sum(0)
    second_moment = (alpha[0, :, None] * valid * valid).sum(0)
    torch.testing.assert_close(stats[0, DIM:], torch.sqrt(second_moment - mean * mean + pooling.eps))


def test_ctc_head_log_probs_and_output_lengths():
    x, lengths = _padded([6, 2, 4])
    head = CTCHead(DIM, vocab_size=5, hidden=4).double()
    log_probs, output_lengths = head(x, lengths)
    assert log_probs.shape == (6, 3, 5)  # (frames, batch, vocab)
    assert output_lengths.dtype == torch.long and output_lengths.tolist() == [6, 2, 4]
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(6, 3, dtype=torch.float64))
    targets = torch.tensor([[1, 2, 3], [4, 0, 0], [2, 2, 0]])
    loss = nn.CTCLoss(blank=0)(log_probs, targets, output_lengths, torch.tensor([3, 1, 2]))
    loss.backward()
    assert torch.isfinite(loss) and head.output.weight.grad is not None


def test_utterance_heads_shapes_and_dropout():
    x = torch.randn(4, 10)  # (batch, in_dim)
    assert LinearHead(10, 3)(x).shape == (4, 3)
    mlp = MLPHead(10, hidden=16, classes=3, dropout=0.5)
    assert mlp(x).shape == (4, 3)
    mlp.eval()
    torch.testing.assert_close(mlp(x), mlp(x))
    mlp.train()
    assert not torch.equal(mlp(x), mlp(x))


def test_head_errors_say_expected_and_found():
    with pytest.raises(ValueError, match=r"x: expected \(batch, 10\), found shape \(4, 9\)"):
        LinearHead(10, 3)(torch.zeros(4, 9))
    with pytest.raises(ValueError, match=r"dropout: expected a probability in \[0, 1\), found 1.0"):
        MLPHead(10, 16, 3, dropout=1.0)
    head = MeanPoolingHead(DIM, hidden=8, classes=3)
    with pytest.raises(ValueError, match=r"x: expected \(batch, frames, 6\), found shape \(2, 5\)"):
        head(torch.zeros(2, 5), torch.tensor([5, 5]))
    with pytest.raises(ValueError, match=r"lengths: expected values in \[1, 5\] .* found min 0 and max 5"):
        head(torch.zeros(2, 5, DIM), torch.tensor([0, 5]))
    with pytest.raises(ValueError, match=r"lengths: expected shape \(2,\), found \(1,\)"):
        CTCHead(DIM, 5)(torch.zeros(2, 5, DIM), torch.tensor([5]))


def test_reverse_padded_reverses_valid_frames_only_and_is_an_involution():
    x = torch.arange(2 * 4, dtype=torch.float32).reshape(2, 4, 1)  # (batch, frames, dim)
    lengths = torch.tensor([4, 2])
    reversed_x = reverse_padded(x, lengths)
    assert reversed_x[..., 0].tolist() == [[3, 2, 1, 0], [5, 4, 6, 7]]
    torch.testing.assert_close(reverse_padded(reversed_x, lengths), x)


def test_ctc_head_backward_direction_reads_the_future():
    """Changing the last valid frame changes the first output (the backward LSTM), and
    changing the first frame changes the last output (the forward LSTM)."""
    torch.manual_seed(0)
    head = CTCHead(DIM, vocab_size=5, hidden=4, num_layers=1).double().eval()
    x, lengths = _padded([6, 4])
    changed = x.clone()
    changed[1, 3] += 1.0  # last valid frame of utterance 1
    log_probs, _ = head(x, lengths)
    changed_log_probs, _ = head(changed, lengths)
    assert not torch.allclose(log_probs[0, 1], changed_log_probs[0, 1])
    torch.testing.assert_close(log_probs[:, 0], changed_log_probs[:, 0])
    changed = x.clone()
    changed[1, 0] += 1.0
    assert not torch.allclose(head(changed, lengths)[0][3, 1], log_probs[3, 1])
