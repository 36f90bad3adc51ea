"""SpecAugment masks: inside valid frames, within width bounds, seeded, p=0 is identity; time warping
moves a step by hand, keeps a ramp monotone and never touches padding."""

from __future__ import annotations

import pytest
import torch

from speechssl.augment import FrequencyMask, TimeMask, TimeWarp
from speechssl.augment.spectral import warp_utterance
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


def test_time_warp_moves_a_step_from_the_centre_to_its_new_position() -> None:
    # 10 frames: 1 before frame 4, 2 from it on. Warping centre 4 to 6 stretches the four 1s
    # over six frames and squeezes the six 2s into four; bicubic interpolation of a constant
    # is that constant, so the step lands exactly at frame 6 (and at 2 when moved there).
    step = torch.tensor([1.0] * 4 + [2.0] * 6)[:, None].repeat(1, 3)  # (frames, channels)
    assert torch.allclose(warp_utterance(step, 4, 6)[:, 0], torch.tensor([1.0] * 6 + [2.0] * 4))
    assert torch.allclose(warp_utterance(step, 4, 2)[:, 0], torch.tensor([1.0] * 2 + [2.0] * 8))
    ramp = torch.arange(10.0)[:, None] * torch.tensor([1.0, -2.0])  # (frames, 2): channels not mixed
    assert torch.equal(warp_utterance(ramp, 4, 4), ramp), "a point left in place is the identity"
    warped = warp_utterance(ramp, 4, 7)
    assert torch.allclose(warped[:, 1], -2 * warped[:, 0])
    with pytest.raises(ValueError, match=r"centre/warped: expected frames in \[1, 10\), found 0/3"):
        warp_utterance(ramp, 0, 3)


def test_time_warp_draws_every_admissible_point() -> None:
    # s3prl's draws for T = 14, W = 3: centre c ~ U{3..10}, new position w ~ U{c-2..c+3}
    warp = TimeWarp(window=3)
    centres, warped = warp.warp_points(torch.full((4000,), 14), torch.Generator().manual_seed(0))
    assert set(centres.tolist()) == set(range(3, 11))
    assert set((warped - centres).tolist()) == set(range(-2, 4))
    short, _ = warp.warp_points(torch.tensor([6, 0]), torch.Generator().manual_seed(0))
    assert short.tolist() == [0, 0], "T <= 2W: left unchanged"


@pytest.mark.parametrize("seed", range(3))
def test_time_warp_keeps_a_ramp_monotone_within_each_utterance_and_padding_untouched(seed: int) -> None:
    lengths = torch.tensor([40, 23, 10, 11])
    ramp = torch.arange(40.0)[None, :, None].repeat(4, 1, 5)  # (batch, frames, channels)
    ramp = ramp.masked_fill(lengths_to_padding_mask(lengths)[..., None], PAD)
    warp = TimeWarp(window=5)
    out, out_lengths = warp(ramp, lengths, torch.Generator().manual_seed(seed))
    assert torch.equal(out_lengths, lengths)
    for i, length in enumerate(lengths.tolist()):
        valid = out[i, :length, 0]
        assert (valid.diff() >= 0).all(), valid
        assert valid.min() > -0.5 and valid.max() < length - 0.5, "values of its own frames only"
        assert (out[i, length:] == PAD).all(), "padding untouched"
    assert torch.equal(out[2], ramp[2]), "10 frames <= 2W: unchanged"
    assert not torch.equal(out[0], ramp[0])
    assert torch.equal(TimeWarp(window=0)(ramp, lengths)[0], ramp), "window 0 is the identity"
    again, _ = warp(ramp, lengths, torch.Generator().manual_seed(seed))
    assert torch.equal(out, again)
    feats = ramp.clone().requires_grad_(True)
    warp(feats, lengths, torch.Generator().manual_seed(seed))[0].sum().backward()
    assert feats.grad is not None and torch.isfinite(feats.grad).all()
    with pytest.raises(ValueError, match="window: expected an integer >= 0, found -1"):
        TimeWarp(window=-1)
