"""SpecAugment masks: inside valid frames, within width bounds, seeded, p=0 is identity."""

from __future__ import annotations

import pytest
import torch

from speechssl.augment import FrequencyMask, TimeMask
from speechssl.data.batch import lengths_to_padding_mask

PAD = 7.0  # sentinel in padding frames: masks must never write there


def features(lengths: list[int], channels: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ``(batch, frames, channels)`` features with ``PAD`` in padding frames."""
    lengths_t = torch.tensor(lengths)
    feats = torch.randn(len(lengths), max(lengths), channels, generator=torch.Generator().manual_seed(seed))
    return feats.masked_fill(lengths_to_padding_mask(lengths_t)[..., None], PAD), lengths_t


def runs(flags: list[bool]) -> list[tuple[int, int]]:
    """``(start, width)`` of each run of True."""
    spans, start = [], None
    for i, flag in enumerate([*flags, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            spans.append((start, i - start))
            start = None
    return spans


@pytest.mark.parametrize("seed", range(5))
def test_time_masks_within_valid_frames_and_width_bounds(seed: int) -> None:
    lengths = [120, 57, 9, 1, 0, 80]
    feats, lengths_t = features(lengths, seed=seed)
    mask = TimeMask(max_width=30, num_masks=2, max_fraction=0.2, fill="zero")
    out, out_lengths = mask(feats, lengths_t, torch.Generator().manual_seed(seed))
    assert torch.equal(out_lengths, lengths_t)
    changed = (out != feats).any(dim=2)  # (batch, frames)
    fully = (out == 0).all(dim=2)  # (batch, frames) masked frames cover every channel
    assert torch.equal(changed, fully & changed)
    for i, length in enumerate(lengths):
        assert not changed[i, length:].any()
        limit = min(30, int(0.2 * length))
        spans = runs(changed[i].tolist())
        assert sum(width for _, width in spans) <= 2 * limit
        assert all(width <= 2 * limit for _, width in spans)  # at most two overlapping masks merge


def test_time_mask_fills_with_the_mean_of_valid_frames() -> None:
    lengths = [50, 20, 35, 44, 12, 27]
    feats, lengths_t = features(lengths)
    out, _ = TimeMask(max_width=10, num_masks=1)(feats, lengths_t, torch.Generator().manual_seed(0))
    changed = (out != feats).any(dim=2)  # (batch, frames)
    assert changed.any(dim=1).sum() >= 4
    for i, length in enumerate(lengths):
        mean = float(feats[i, :length].mean())
        torch.testing.assert_close(out[i, changed[i]], torch.full_like(out[i, changed[i]], mean))


@pytest.mark.parametrize("seed", range(5))
def test_frequency_masks_are_bands_on_valid_frames_only(seed: int) -> None:
    lengths = [40, 13, 0, 25]
    feats, lengths_t = features(lengths, channels=16, seed=seed)
    out, _ = FrequencyMask(max_width=5, num_masks=2)(feats, lengths_t, torch.Generator().manual_seed(seed))
    for i, length in enumerate(lengths):
        assert torch.equal(out[i, length:], feats[i, length:])
        changed = out[i, :length] != feats[i, :length]  # (frames, channels)
        if length == 0:
            continue
        band = changed[0]
        assert torch.equal(changed, band.expand_as(changed))  # same channels on every valid frame
        spans = runs(band.tolist())
        assert sum(width for _, width in spans) <= 10


def test_masks_are_drawn_over_the_whole_admissible_range() -> None:
    feats, lengths = features([30] * 300, channels=8)
    out, _ = TimeMask(max_width=3, num_masks=1, fill="zero")(feats, lengths, torch.Generator().manual_seed(0))
    changed = (out != feats).any(dim=2)  # (batch, frames)
    widths = changed.sum(dim=1)
    assert set(widths.tolist()) == {0, 1, 2, 3}
    assert changed[:, 0].any() and changed[:, 29].any()


def test_probability_zero_and_no_masks_are_identity() -> None:
    feats, lengths = features([20, 10])
    for mask in (TimeMask(10, 2, p=0.0), TimeMask(10, 0), FrequencyMask(4, 2, p=0.0), FrequencyMask(0, 2)):
        assert torch.equal(mask(feats, lengths, torch.Generator().manual_seed(0))[0], feats)


def test_probability_selects_utterances() -> None:
    feats, lengths = features([30] * 300, channels=8)
    out, _ = FrequencyMask(8, 1, p=0.5)(feats, lengths, torch.Generator().manual_seed(0))
    masked = (out != feats).any(dim=(1, 2)).float().mean()
    assert 0.35 < float(masked) < 0.6  # p · P(width > 0) = 0.5 · 8/9


def test_seeded_determinism_and_gradient_flow() -> None:
    feats, lengths = features([30, 12])
    feats.requires_grad_(True)
    mask = TimeMask(8, 2)
    first, _ = mask(feats, lengths, torch.Generator().manual_seed(4))
    second, _ = mask(feats, lengths, torch.Generator().manual_seed(4))
    assert torch.equal(first, second)
    first.sum().backward()
    assert feats.grad is not None and torch.isfinite(feats.grad).all()


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: TimeMask(-1), "max_width: expected >= 0, found -1"),
        (lambda: TimeMask(5, num_masks=-2), "num_masks: expected >= 0, found -2"),
        (lambda: TimeMask(5, max_fraction=1.5), r"max_fraction: expected a fraction in \[0, 1\], found 1.5"),
        (lambda: FrequencyMask(5, fill="noise"), "fill: expected 'mean' or 'zero', found 'noise'"),
        (lambda: FrequencyMask(5, p=-0.1), r"p: expected a probability in \[0, 1\], found -0.1"),
    ],
)
def test_rejects_bad_parameters(build, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_rejects_waveform_shaped_input() -> None:
    with pytest.raises(
        ValueError, match=r"expected input \(batch, frames, channels\), found shape \(2, 100\)"
    ):
        TimeMask(5)(torch.zeros(2, 100), torch.tensor([100, 50]))
