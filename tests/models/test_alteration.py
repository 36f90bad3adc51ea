"""Mockingjay/TERA alterations: selection statistics, the 80/10/10 split, padding, masks, errors."""

from __future__ import annotations

import pytest
import torch

from speechssl.augment import FrequencyMask
from speechssl.models.alteration import ChannelAlteration, MagnitudeAlteration, TimeAlteration


def padded_features(
    lengths: list[int], channels: int = 8, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ``(batch, frames, channels)`` features, zero past each length (no two frames equal)."""
    generator = torch.Generator().manual_seed(seed)
    frames = max(lengths)
    features = torch.randn(len(lengths), frames, channels, generator=generator)
    valid = torch.arange(frames)[None, :] < torch.tensor(lengths)[:, None]
    return features * valid[..., None], torch.tensor(lengths)


def classify(
    original: torch.Tensor, altered: torch.Tensor, selected: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Selected frames split into zeroed, kept and replaced, read off the features."""
    zeroed = selected & (altered == 0).all(-1)
    kept = selected & (altered == original).all(-1)
    return {"zeroed": zeroed, "kept": kept, "replaced": selected & ~zeroed & ~kept}


def test_time_alteration_selects_about_15_percent_and_splits_80_10_10():
    lengths = [400, 333, 250, 97]
    features, frame_lengths = padded_features(lengths)
    alteration = TimeAlteration()
    generator = torch.Generator().manual_seed(0)
    counts = {"selected": 0, "zeroed": 0, "kept": 0, "replaced": 0}
    valid_total = 0
    for _ in range(200):
        altered, mask = alteration(features, frame_lengths, generator, unit=4)
        selected = mask.all(-1)  # (batch, frames): the time mask covers every channel of a frame
        assert torch.equal(mask, selected[..., None].expand_as(mask))
        for row, length in enumerate(lengths):
            assert not selected[row, length:].any()
            assert torch.equal(altered[row, length:], features[row, length:])  # padding never written
        assert torch.equal(altered[~selected], features[~selected])  # unselected frames untouched
        parts = classify(features, altered, selected)
        counts["selected"] += int(selected.sum())
        for name, part in parts.items():
            counts[name] += int(part.sum())
        valid_total += sum(lengths)
    fraction = counts["selected"] / valid_total
    assert 0.12 < fraction <= 0.16, fraction  # 15% of units, minus overlaps between spans
    assert counts["zeroed"] / counts["selected"] == pytest.approx(0.8, abs=0.03)
    assert counts["replaced"] / counts["selected"] == pytest.approx(0.1, abs=0.03)
    assert counts["kept"] / counts["selected"] == pytest.approx(0.1, abs=0.03)


def test_time_alteration_works_in_whole_units_and_replaces_from_the_same_utterance():
    lengths = [61, 40]  # 61 frames = 15 whole units of 4 and a partial one
    features, frame_lengths = padded_features(lengths, channels=5, seed=1)
    alteration = TimeAlteration(mask_prob=0.3, span=2, zero_prob=0.0, random_prob=1.0)
    altered, mask = alteration(features, frame_lengths, torch.Generator().manual_seed(2), unit=4)
    selected = mask[..., 0]
    for row, length in enumerate(lengths):
        units = selected[row, : (length // 4) * 4].view(-1, 4)  # (units, 4) whole units
        assert (units.all(-1) | ~units.any(-1)).all()  # a unit is selected whole or not at all
        assert selected[row, :length].sum() > 0
        for frame in selected[row].nonzero().flatten().tolist():
            source = (features[row, :length] == altered[row, frame]).all(-1).nonzero().flatten()
            assert len(source) == 1  # a frame of the same utterance ...
            source_frame = int(source[0])
            assert source_frame // 4 != frame // 4  # ... from another unit ...
            # ... at the same place in it (the partial last unit repeats its last valid frame)
            assert source_frame % 4 == frame % 4 or source_frame == length - 1


def test_time_alteration_is_deterministic_per_generator_and_handles_empty_selection():
    features, lengths = padded_features([50, 20])
    first = TimeAlteration()(features, lengths, torch.Generator().manual_seed(5), unit=4)
    again = TimeAlteration()(features, lengths, torch.Generator().manual_seed(5), unit=4)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    altered, mask = TimeAlteration(mask_prob=0.0)(features, lengths, torch.Generator(), unit=4)
    assert torch.equal(altered, features) and not mask.any()


def test_channel_alteration_zeroes_one_band_on_valid_frames_only():
    features, lengths = padded_features([30, 12], channels=40, seed=3)
    generator = torch.Generator().manual_seed(0)
    widths = []
    for _ in range(50):
        altered, band = ChannelAlteration(max_fraction=0.2)(features, lengths, generator)
        for row, length in enumerate(lengths.tolist()):
            channels = band[row, 0]
            assert torch.equal(
                band[row, :length], channels.expand(length, -1)
            )  # the same band on every frame
            assert not band[row, length:].any()
            indices = channels.nonzero().flatten()
            if len(indices):
                assert indices.tolist() == list(range(int(indices[0]), int(indices[-1]) + 1))  # consecutive
            widths.append(len(indices))
        assert (altered[band] == 0).all() and torch.equal(altered[~band], features[~band])
    assert max(widths) <= 8 and min(widths) == 0 and max(widths) >= 6  # U{0..floor(0.2 * 40)}


def test_frequency_mask_masked_positions_are_where_it_writes():
    features, lengths = padded_features([30, 12], channels=20, seed=4)
    mask = FrequencyMask(6, 2, fill="zero")
    band = mask.masked_positions(features, lengths, torch.Generator().manual_seed(1))
    masked, _ = mask(features, lengths, torch.Generator().manual_seed(1))
    assert band.any() and (masked[band] == 0).all() and torch.equal(masked[~band], features[~band])
    assert not FrequencyMask(6, 2, p=0.0).masked_positions(features, lengths).any()


def test_magnitude_alteration_noises_whole_utterances_with_probability_p():
    features, lengths = padded_features([30, 12, 25, 8], channels=6, seed=5)
    alteration = MagnitudeAlteration(p=0.3, std=0.2)
    generator = torch.Generator().manual_seed(0)
    noisy_utterances, draws, noise = 0, 0, []
    for _ in range(200):
        altered, mask = alteration(features, lengths, generator)
        for row, length in enumerate(lengths.tolist()):
            assert not mask[row, length:].any() and torch.equal(altered[row, length:], features[row, length:])
            if mask[row, 0, 0]:
                assert mask[row, :length].all()
                noise.append(altered[row, :length] - features[row, :length])
                noisy_utterances += 1
            else:
                assert torch.equal(altered[row], features[row])
            draws += 1
    assert noisy_utterances / draws == pytest.approx(0.3, abs=0.05)
    assert float(torch.cat([n.flatten() for n in noise]).std()) == pytest.approx(0.2, rel=0.05)
    untouched, mask = MagnitudeAlteration(p=0.0)(features, lengths)
    assert untouched is features and not mask.any()


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: TimeAlteration(mask_prob=1.5), "mask_prob: expected a probability in"),
        (
            lambda: TimeAlteration(zero_prob=0.8, random_prob=0.3),
            r"zero_prob \+ random_prob: expected at most 1",
        ),
        (lambda: TimeAlteration(span=0), "span: expected at least 1 unit, found 0"),
        (lambda: ChannelAlteration(max_fraction=2.0), "max_fraction: expected a probability in"),
        (lambda: MagnitudeAlteration(std=-1.0), "std: expected >= 0, found -1.0"),
    ],
)
def test_option_errors_name_the_option(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_call_errors():
    features, lengths = padded_features([10])
    with pytest.raises(ValueError, match="unit: expected at least 1 frame, found 0"):
        TimeAlteration()(features, lengths, unit=0)
    with pytest.raises(ValueError, match=r"expected input \(batch, frames, channels\)"):
        ChannelAlteration()(features[0], lengths)
