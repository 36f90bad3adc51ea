"""span_mask: fraction, span structure, padding, determinism and errors."""

from __future__ import annotations

import math

import pytest
import torch

from speechssl.models.masking import (
    check_span_start_options,
    masked_slots,
    span_mask,
    span_start_capacity,
    span_start_mask,
)


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
    second = span_mask(lengths, 200, 0.65, 10, 2, torch.Generator().manual_seed(0), span_count="sampled")
    assert torch.equal(first, second)


def reference_masked_fraction(length: int, p: float, m: int, min_masks: int) -> float:
    """E[masked fraction] of fairseq's ``compute_mask_indices`` rule, computed exactly.

    ``N = max(min_masks, int(p·L + U))`` starts, uniform without replacement over the
    ``A = L − M + 1`` positions; frame ``t`` stays unmasked iff none of the ``c_t`` starts
    covering it is drawn: ``P = C(A − c_t, N) / C(A, N)``.
    """
    starts = length - m + 1
    low = math.floor(p * length)
    fraction = 0.0
    for drawn, weight in ((low, 1 - (p * length - low)), (low + 1, p * length - low)):
        count = max(min_masks, drawn)
        covered = 0.0
        for t in range(length):
            c = min(t, starts - 1) - max(0, t - m + 1) + 1
            covered += 1 - math.comb(starts - c, count) / math.comb(starts, count)
        fraction += weight * covered / length
    return fraction


def test_span_starts_are_drawn_as_int_of_p_l_plus_uniform_like_the_reference():
    generator = torch.Generator().manual_seed(0)
    # M = 1: each start masks one frame, so the mask counts the starts: int(6.5 + U) is 6 or 7, evenly
    counts = span_start_mask(torch.full((4000,), 100), 100, 0.065, 1, 2, generator).sum(dim=1)
    assert set(counts.tolist()) == {6, 7}
    assert (counts == 7).float().mean().item() == pytest.approx(0.5, abs=0.03)
    # M = 10 at L = 100: 0.499 masked on average (rounding p·L would give 0.472)
    reference = reference_masked_fraction(100, 0.065, 10, 2)
    assert reference == pytest.approx(0.499, abs=1e-3)
    mask = span_start_mask(torch.full((4000,), 100), 100, 0.065, 10, 2, generator)
    assert mask.float().mean().item() == pytest.approx(reference, abs=0.005)
    # min_masks still applies: p·L + U < 1 at L = 10
    assert (span_start_mask(torch.full((50,), 10), 10, 0.065, 1, 2, generator).sum(dim=1) == 2).all()


def test_round_count_is_the_named_alternative():
    lengths = torch.full((200,), 100)
    mask = span_mask(lengths, 100, 0.65, 1, 2, torch.Generator().manual_seed(0), span_count="round")
    assert (mask.sum(dim=1) == round(65.0)).all()
    with pytest.raises(ValueError, match="span_count: expected 'round' or 'sampled', found 'floor'"):
        span_mask(lengths, 100, 0.65, 1, span_count="floor")


@pytest.mark.parametrize(
    "frames, mask_prob, mask_length, min_masks",
    [(50, 0.065, 10, 2), (7, 0.065, 10, 2), (300, 0.08, 10, 2), (40, 0.5, 2, 0)],
)
def test_span_start_capacity_bounds_every_utterance(frames, mask_prob, mask_length, min_masks):
    capacity = span_start_capacity(frames, mask_prob, mask_length, min_masks)
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, frames + 1, (2000,), generator=generator)
    lengths[0] = frames
    mask = span_start_mask(lengths, frames, mask_prob, mask_length, min_masks, generator)
    assert mask.sum(dim=1).max() <= capacity <= frames
    assert capacity <= math.ceil(mask_prob * mask_length * frames) + (min_masks + 1) * mask_length


def test_masked_slots_hold_the_selected_frames_in_order():
    mask = torch.tensor([[False, True, True, False, True], [False, False, False, False, False], [True] * 5])
    values = torch.arange(15.0).view(3, 5, 1).expand(3, 5, 2)  # (batch, frames, 2)
    slots = masked_slots(mask, 5)
    assert slots.counts.tolist() == [3, 0, 5]
    assert slots.valid.tolist() == [[True] * 3 + [False] * 2, [False] * 5, [True] * 5]
    gathered = slots.gather(values)  # (batch, slots, 2)
    assert gathered.shape == (3, 5, 2)
    assert torch.equal(gathered[slots.valid], values[mask])  # the same frames as the selection, in order
    assert torch.equal(slots.gather(values[..., 0])[slots.valid], values[..., 0][mask])
    assert masked_slots(mask, 3).indices.shape == (3, 3)
    with pytest.raises(ValueError, match="slots: expected 0 to 5"):
        masked_slots(mask, 6)
