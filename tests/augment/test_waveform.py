"""Waveform augmentations: padding-aware, exact SNR, seeded, p=0 is identity."""

from __future__ import annotations

import math

import pytest
import torch

from speechssl.augment import AddNoise, Gain, RandomCrop
from speechssl.data.batch import lengths_to_padding_mask


def padded_batch(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ``(batch, max(lengths))`` waveforms, zero after each length."""
    lengths_t = torch.tensor(lengths)
    waveforms = torch.randn(len(lengths), max(lengths), generator=torch.Generator().manual_seed(seed))
    return waveforms.masked_fill(lengths_to_padding_mask(lengths_t), 0.0), lengths_t


def padding_is_zero(waveforms: torch.Tensor, lengths: torch.Tensor) -> bool:
    return bool((waveforms[lengths_to_padding_mask(lengths, waveforms.shape[1])] == 0).all())


def snr_db(clean: torch.Tensor, noisy: torch.Tensor, length: int) -> float:
    noise = noisy[:length] - clean[:length]
    return 10 * math.log10(float(clean[:length].pow(2).sum() / noise.pow(2).sum()))


class TestRandomCrop:
    def test_crops_a_contiguous_window_of_valid_samples(self) -> None:
        lengths = torch.tensor([16000, 12000, 3000, 8000])
        # Each valid sample holds its 1-based position, so a crop reveals its offset.
        positions = torch.arange(1, 16001, dtype=torch.float32).expand(4, -1)
        waveforms = positions.masked_fill(lengths_to_padding_mask(lengths), 0.0)
        cropped, new_lengths = RandomCrop(0.5, 16000)(waveforms, lengths, torch.Generator().manual_seed(0))
        assert cropped.shape == (4, 8000)
        assert new_lengths.tolist() == [8000, 8000, 3000, 8000]
        assert padding_is_zero(cropped, new_lengths)
        offsets = []
        for row, length, new_length in zip(cropped, lengths.tolist(), new_lengths.tolist(), strict=True):
            offset = int(row[0]) - 1
            torch.testing.assert_close(row[:new_length], torch.arange(offset + 1, offset + new_length + 1.0))
            assert offset >= 0 and offset + new_length <= length
            offsets.append(offset)
        assert offsets[2] == 0 and offsets[3] == 0  # shorter than or equal to the crop: kept whole
        assert offsets[0] != offsets[1]  # independent per utterance

    def test_offsets_cover_the_admissible_range(self) -> None:
        lengths = torch.full((400,), 110)
        positions = torch.arange(1, 111, dtype=torch.float32).expand(400, -1)
        cropped, _ = RandomCrop(100 / 16000, 16000)(positions, lengths, torch.Generator().manual_seed(1))
        assert set((cropped[:, 0] - 1).long().tolist()) == set(range(11))

    def test_seeded_and_uses_global_rng_without_generator(self) -> None:
        waveforms, lengths = padded_batch([16000, 9000, 12000])
        crop = RandomCrop(0.25)
        first = crop(waveforms, lengths, torch.Generator().manual_seed(3))
        again = crop(waveforms, lengths, torch.Generator().manual_seed(3))
        torch.testing.assert_close(first, again)
        torch.manual_seed(5)
        global_first = crop(waveforms, lengths)
        torch.manual_seed(5)
        torch.testing.assert_close(crop(waveforms, lengths), global_first)

    def test_rejects_empty_crop_and_bad_shapes(self) -> None:
        with pytest.raises(ValueError, match=r"at least one sample, found 0\.0 s"):
            RandomCrop(0.0)
        with pytest.raises(ValueError, match=r"expected input \(batch, samples\), found shape \(3,\)"):
            RandomCrop(1.0)(torch.zeros(3), torch.tensor([3]))
        with pytest.raises(ValueError, match=r"expected lengths \(batch,\) = \(2,\), found shape \(3,\)"):
            RandomCrop(1.0)(torch.zeros(2, 5), torch.tensor([5, 5, 5]))


class TestAddNoise:
    @pytest.mark.parametrize("color", ["white", "pink"])
    def test_exact_snr_over_valid_samples_and_clean_padding(self, color: str) -> None:
        waveforms, lengths = padded_batch([16000, 4000, 9000])
        waveforms[1] *= 0.01  # a quiet utterance gets proportionally quiet noise
        noisy, out_lengths = AddNoise((10.0, 10.0), color)(
            waveforms, lengths, torch.Generator().manual_seed(0)
        )
        assert torch.equal(out_lengths, lengths)
        assert padding_is_zero(noisy, lengths)
        for i, length in enumerate(lengths.tolist()):
            assert snr_db(waveforms[i], noisy[i], length) == pytest.approx(10.0, abs=1e-3)

    def test_snr_drawn_within_range(self) -> None:
        waveforms, lengths = padded_batch([8000] * 16)
        noisy, _ = AddNoise((5.0, 20.0))(waveforms, lengths, torch.Generator().manual_seed(1))
        snrs = [snr_db(waveforms[i], noisy[i], 8000) for i in range(16)]
        assert all(5.0 - 1e-3 <= s <= 20.0 + 1e-3 for s in snrs)
        assert max(snrs) - min(snrs) > 3.0

    def test_pink_noise_has_one_over_f_spectrum(self) -> None:
        clean = torch.zeros(1, 2**15)
        clean[0, 0] = 1.0  # tiny non-silent signal; the noise dominates
        noisy, _ = AddNoise((0.0, 0.0), "pink")(
            clean, torch.tensor([2**15]), torch.Generator().manual_seed(0)
        )
        power = torch.fft.rfft(noisy[0] - clean[0]).abs().pow(2)[1:].double()
        freqs = torch.arange(1, power.shape[0] + 1, dtype=torch.float64)
        slope = torch.linalg.lstsq(
            torch.stack([freqs.log(), torch.ones_like(freqs)], dim=1), power.log()[:, None]
        ).solution[0, 0]
        assert -1.15 < float(slope) < -0.85

    def test_probability_zero_is_identity_and_silence_stays_silent(self) -> None:
        waveforms, lengths = padded_batch([4000, 3000])
        assert AddNoise(p=0.0)(waveforms, lengths)[0] is waveforms
        silent = torch.zeros(2, 100)
        noisy, _ = AddNoise()(silent, torch.tensor([100, 50]), torch.Generator().manual_seed(0))
        assert torch.equal(noisy, silent)

    def test_probability_selects_utterances(self) -> None:
        waveforms, lengths = padded_batch([2000] * 200)
        noisy, _ = AddNoise(p=0.3)(waveforms, lengths, torch.Generator().manual_seed(0))
        changed = (noisy != waveforms).any(dim=1).float().mean()
        assert 0.2 < float(changed) < 0.4

    def test_seeded_determinism(self) -> None:
        waveforms, lengths = padded_batch([4000, 3000])
        noise = AddNoise((0.0, 30.0), "pink")
        first, _ = noise(waveforms, lengths, torch.Generator().manual_seed(7))
        second, _ = noise(waveforms, lengths, torch.Generator().manual_seed(7))
        other, _ = noise(waveforms, lengths, torch.Generator().manual_seed(8))
        assert torch.equal(first, second)
        assert not torch.equal(first, other)

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            (
                {"snr_db": (20.0, 5.0)},
                r"snr_db: expected \(low, high\) with low <= high, found \(20.0, 5.0\)",
            ),
            ({"color": "blue"}, "color: expected 'white' or 'pink', found 'blue'"),
            ({"p": 1.5}, r"p: expected a probability in \[0, 1\], found 1.5"),
        ],
    )
    def test_rejects_bad_parameters(self, kwargs: dict, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            AddNoise(**kwargs)


class TestGain:
    def test_constant_gain_within_range_per_utterance(self) -> None:
        waveforms, lengths = padded_batch([3000, 2000, 1000, 2500] * 8)
        scaled, out_lengths = Gain((-6.0, 6.0))(waveforms, lengths, torch.Generator().manual_seed(0))
        assert torch.equal(out_lengths, lengths)
        assert padding_is_zero(scaled, lengths)
        ratio = scaled[:, 0] / waveforms[:, 0]  # (batch,)
        torch.testing.assert_close(scaled, waveforms * ratio[:, None])
        assert bool((ratio >= 10 ** (-6 / 20) - 1e-6).all() and (ratio <= 10 ** (6 / 20) + 1e-6).all())
        assert float(ratio.max() - ratio.min()) > 0.5

    def test_fixed_gain_and_probability_zero(self) -> None:
        waveforms, lengths = padded_batch([300, 200])
        scaled, _ = Gain((6.0, 6.0))(waveforms, lengths)
        torch.testing.assert_close(scaled, waveforms * 10 ** (6 / 20))
        assert Gain(p=0.0)(waveforms, lengths)[0] is waveforms

    def test_seeded_determinism_and_error(self) -> None:
        waveforms, lengths = padded_batch([300, 200])
        first, _ = Gain()(waveforms, lengths, torch.Generator().manual_seed(2))
        second, _ = Gain()(waveforms, lengths, torch.Generator().manual_seed(2))
        assert torch.equal(first, second)
        with pytest.raises(
            ValueError, match=r"db: expected \(low, high\) with low <= high, found \(3.0, -3.0\)"
        ):
            Gain((3.0, -3.0))
