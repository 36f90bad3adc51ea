"""span_mask: fraction, span structure, padding, determinism and errors."""

from __future__ import annotations

import pytest
import torch

from speechssl.models.masking import check_span_start_options, span_mask, span_start_mask


def test_mask_covers_about_the_fraction_and_never_padding():
    lengths = torch.tensor([400, 250, 100])
    mask = span_mask(lengths, 400, mask_prob=0.15, span=7, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (3, 400) and mask.dtype == torch.bool
    for row, length in enumerate(lengths.tolist()):
        assert not mask[row, length:].any()
        fraction = mask[row, :length].float().mean().item()
        # round(0.15 * L / 7) spans of 7 frames, fewer frames where spans overlap
        assert 0.5 * 0.15 < fraction <= round(0.15 * length / 7) * 7 / length + 1e-9


def test_masked_frames_come_in_spans_of_at_least_span_frames():
    mask = span_mask(torch.tensor([1000]), 1000, 0.2, 10, generator=torch.Generator().manual_seed(1))[0]
    edges = torch.diff(torch.cat([torch.tensor([False]), mask, torch.tensor([False])]).int())
    runs = (edges == -1).nonzero().flatten() - (edges == 1).nonzero().flatten()
    assert runs.min().item() >= 10  # overlapping spans merge into longer runs, never shorter ones


def test_min_spans_short_utterances_and_determinism():
    lengths = torch.tensor([5, 30, 0])
    first = span_mask(lengths, 30, 0.0, 10, min_spans=2, generator=torch.Generator().manual_seed(3))
    again = span_mask(lengths, 30, 0.0, 10, min_spans=2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first, again)
    assert first[0, :5].all() and not first[0, 5:].any()  # shorter than a span: masked whole
    assert first[1].sum().item() >= 10 and not first[2].any()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mask_prob": 1.5, "span": 3}, "mask_prob: expected a fraction in \\[0, 1\\], found 1.5"),
        ({"mask_prob": 0.1, "span": 0}, "span: expected at least 1 frame, found 0"),
        ({"mask_prob": 0.1, "span": 3, "min_spans": -1}, "min_spans: expected >= 0, found -1"),
    ],
)
def test_bad_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        span_mask(torch.tensor([10]), 10, **options)


def test_span_start_options_are_checked_by_name():

    check_span_start_options(0.065, 10, 2)
    with pytest.raises(ValueError, match=r"mask_prob: expected 0 < mask_prob \* mask_length <= 1"):
        check_span_start_options(0.2, 10, 2)
    with pytest.raises(ValueError, match="min_masks: expected an integer >= 0, found -1"):
        check_span_start_options(0.05, 10, -1)


def test_span_start_mask_is_span_mask_with_wav2vec2s_probability():

    lengths = torch.tensor([200, 120])
    first = span_start_mask(lengths, 200, 0.065, 10, 2, torch.Generator().manual_seed(0))
    second = span_mask(lengths, 200, 0.65, 10, 2, torch.Generator().manual_seed(0))
    assert torch.equal(first, second)
