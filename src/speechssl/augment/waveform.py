"""Waveform-domain augmentations on padded batches ``(waveforms (batch, samples), lengths (batch,))``.

Each transform draws its parameters independently per utterance, applies to each
utterance with probability ``p``, computes statistics over valid samples only and
leaves padding at zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from speechssl.augment.base import (
    bernoulli,
    check_batch,
    check_probability,
    check_range,
    rand,
    randn,
    uniform,
)
from speechssl.data.batch import lengths_to_padding_mask


@dataclass(frozen=True)
class RandomCrop:
    """Crop each utterance to at most ``seconds``, at an independent random offset.

    Utterances shorter than the crop are kept whole; the new length is
    ``min(length, crop)`` and the output is ``(batch, min(crop, samples))``. The crop is
    a length bound, so it always applies (no ``p``).

    Attributes:
        seconds: crop duration.
        sample_rate: samples per second of the waveforms.
    """

    seconds: float
    sample_rate: int = 16000

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate: expected > 0, found {self.sample_rate}")
        if self.num_samples < 1:
            raise ValueError(
                f"seconds: expected a crop of at least one sample, found {self.seconds} s "
                f"at {self.sample_rate} Hz"
            )

    @property
    def num_samples(self) -> int:
        return round(self.seconds * self.sample_rate)

    def __call__(
        self, waveforms: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Args:
            waveforms: ``(batch, samples)``, zero-padded.
            lengths: ``(batch,)`` valid samples per utterance.
            generator: source of the crop offsets.

        Returns:
            ``(batch, min(crop, samples))`` cropped waveforms and their ``(batch,)`` lengths.
        """
        check_batch(waveforms, lengths, "(batch, samples)")
        batch, samples = waveforms.shape
        lengths = lengths.to(waveforms.device)
        width = min(self.num_samples, samples)
        new_lengths = lengths.clamp(max=self.num_samples)
        slack = lengths - new_lengths  # (batch,) admissible offsets are 0..slack
        offsets = (rand((batch,), generator, waveforms.device) * (slack + 1)).long()
        offsets = torch.minimum(offsets, slack)
        positions = torch.arange(width, device=waveforms.device)
        index = (offsets[:, None] + positions[None, :]).clamp(max=samples - 1)  # (batch, width)
        cropped = waveforms.gather(1, index)  # (batch, width)
        cropped = cropped.masked_fill(lengths_to_padding_mask(new_lengths, width), 0.0)
        return cropped, new_lengths


@dataclass(frozen=True)
class AddNoise:
    """Add white or pink Gaussian noise at a per-utterance SNR drawn from ``U[snr_db]``.

    The SNR is exact over each utterance's valid samples: the noise is scaled so that
    ``10 log10(Σ signal² / Σ noise²) = snr``, sums over valid samples only, and no
    noise is written into padding. Silent utterances are left unchanged. Pink noise has
    a ``1/f`` power spectrum (white noise shaped by ``1/sqrt(f)`` in the rfft domain).

    Attributes:
        snr_db: ``(low, high)`` signal-to-noise ratio range in dB.
        color: ``"white"`` or ``"pink"``.
        p: probability of adding noise to each utterance.
    """

    snr_db: tuple[float, float] = (5.0, 20.0)
    color: Literal["white", "pink"] = "white"
    p: float = 1.0

    def __post_init__(self) -> None:
        check_range(self.snr_db, "snr_db")
        check_probability(self.p)
        if self.color not in ("white", "pink"):
            raise ValueError(f"color: expected 'white' or 'pink', found {self.color!r}")

    def __call__(
        self, waveforms: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Args:
            waveforms: ``(batch, samples)``, zero-padded.
            lengths: ``(batch,)`` valid samples per utterance.
            generator: source of the SNRs, the coin flips and the noise.

        Returns:
            noisy ``(batch, samples)`` waveforms and the unchanged lengths.
        """
        check_batch(waveforms, lengths, "(batch, samples)")
        if self.p == 0.0:
            return waveforms, lengths
        batch, samples = waveforms.shape
        device = waveforms.device
        lengths = lengths.to(device)
        apply = bernoulli(self.p, batch, generator, device)
        snr = uniform(*self.snr_db, batch, generator, device)
        noise = randn((batch, samples), generator, device)
        if self.color == "pink":
            noise = _pink(noise)
        valid = ~lengths_to_padding_mask(lengths, samples)  # (batch, samples)
        noise = noise * valid
        signal_power = (waveforms.float() * valid).pow(2).sum(dim=1)  # (batch,)
        noise_power = noise.pow(2).sum(dim=1).clamp(min=torch.finfo(noise.dtype).tiny)  # (batch,)
        scale = torch.sqrt(signal_power / (noise_power * 10.0 ** (snr / 10.0))) * apply  # (batch,)
        noisy = waveforms + (scale[:, None] * noise).to(waveforms.dtype)  # (batch, 1) * (batch, samples)
        return noisy, lengths


def _pink(white: torch.Tensor) -> torch.Tensor:
    """Shape ``(batch, samples)`` white noise to a ``1/f`` power spectrum (zero mean)."""
    samples = white.shape[1]
    spectrum = torch.fft.rfft(white, dim=1)  # (batch, samples // 2 + 1)
    bins = torch.arange(spectrum.shape[1], device=white.device, dtype=white.dtype)
    amplitude = torch.where(bins > 0, bins.clamp(min=1.0).rsqrt(), torch.zeros_like(bins))
    return torch.fft.irfft(spectrum * amplitude, n=samples, dim=1)  # (batch, samples)


@dataclass(frozen=True)
class Gain:
    """Multiply each utterance by a gain drawn from ``U[db]`` decibels (amplitude ``10^(g/20)``).

    Attributes:
        db: ``(low, high)`` gain range in dB.
        p: probability of changing each utterance's gain.
    """

    db: tuple[float, float] = (-6.0, 6.0)
    p: float = 1.0

    def __post_init__(self) -> None:
        check_range(self.db, "db")
        check_probability(self.p)

    def __call__(
        self, waveforms: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Args:
            waveforms: ``(batch, samples)``, zero-padded (padding stays zero).
            lengths: ``(batch,)`` valid samples per utterance.
            generator: source of the gains and the coin flips.

        Returns:
            scaled ``(batch, samples)`` waveforms and the unchanged lengths.
        """
        check_batch(waveforms, lengths, "(batch, samples)")
        if self.p == 0.0:
            return waveforms, lengths
        batch = waveforms.shape[0]
        apply = bernoulli(self.p, batch, generator, waveforms.device)
        gain_db = uniform(*self.db, batch, generator, waveforms.device) * apply  # 0 dB where not applied
        factor = torch.pow(10.0, gain_db / 20.0).to(waveforms.dtype)  # (batch,)
        return waveforms * factor[:, None], lengths  # (batch, 1) * (batch, samples)


__all__ = ["AddNoise", "Gain", "RandomCrop"]
