"""Waveform-domain augmentations on padded batches ``(waveforms (batch, samples), lengths (batch,))``.

Each transform draws its parameters independently per utterance, applies to each
utterance with probability ``p``, computes statistics over valid samples only and
leaves padding at zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from speechssl.augment.base import (
    bernoulli,
    check_batch,
    check_probability,
    check_range,
    crop_offsets,
    rand,
    randn,
    uniform,
)
from speechssl.data.audio import DEFAULT_SAMPLE_RATE, load_audio
from speechssl.data.batch import lengths_to_padding_mask
from speechssl.data.corpora.common import AUDIO_SUFFIXES, list_audio


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
    sample_rate: int = DEFAULT_SAMPLE_RATE

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
        samples = waveforms.shape[1]
        lengths = lengths.to(waveforms.device)
        width = min(self.num_samples, samples)
        new_lengths = lengths.clamp(max=self.num_samples)
        offsets = crop_offsets(lengths, self.num_samples, generator)  # (batch,)
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
        return add_at_snr(waveforms, lengths, noise, snr, apply), lengths


def add_at_snr(
    waveforms: torch.Tensor,
    lengths: torch.Tensor,
    noise: torch.Tensor,
    snr_db: torch.Tensor,
    apply: torch.Tensor,
) -> torch.Tensor:
    """``waveforms + scale * noise`` with ``scale`` set so that the SNR over each utterance's
    valid samples is ``snr_db``; no noise in padding, none where ``apply`` is False, and
    silent utterances (or silent noise) left unchanged.

    Args:
        waveforms: ``(batch, samples)`` zero-padded signals.
        lengths: ``(batch,)`` valid samples.
        noise: ``(batch, samples)`` noise of any scale.
        snr_db: ``(batch,)`` target signal-to-noise ratios in dB.
        apply: ``(batch,)`` bool, which utterances get noise.
    """
    valid = ~lengths_to_padding_mask(lengths, waveforms.shape[1])  # (batch, samples)
    noise = noise.float() * valid
    signal_power = (waveforms.float() * valid).pow(2).sum(dim=1)  # (batch,)
    noise_power = noise.pow(2).sum(dim=1).clamp(min=torch.finfo(noise.dtype).tiny)  # (batch,)
    scale = torch.sqrt(signal_power / (noise_power * 10.0 ** (snr_db / 10.0))) * apply  # (batch,)
    return waveforms + (scale[:, None] * noise).to(waveforms.dtype)  # (batch, 1) * (batch, samples)


@dataclass(frozen=True)
class MixUtterances:
    """Add another utterance of the batch to each utterance at a low SNR (a competing talker).

    Partners are a random cyclic shift of a random permutation, so no utterance is mixed
    with itself (batches of one are left unchanged). The partner is tiled or cut to the
    utterance's valid length, and scaled to an SNR from ``U[snr_db]`` over valid samples.

    Attributes:
        snr_db: ``(low, high)`` SNR range in dB (the utterance stays dominant above 0 dB).
        p: probability of mixing each utterance.
    """

    snr_db: tuple[float, float] = (10.0, 20.0)
    p: float = 1.0

    def __post_init__(self) -> None:
        check_range(self.snr_db, "snr_db")
        check_probability(self.p)

    def __call__(
        self, waveforms: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``waveforms (batch, samples)``, ``lengths (batch,)`` -> mixed waveforms, same lengths."""
        check_batch(waveforms, lengths, "(batch, samples)")
        batch, samples = waveforms.shape
        if self.p == 0.0 or batch < 2:
            return waveforms, lengths
        device = waveforms.device
        lengths = lengths.to(device)
        apply = bernoulli(self.p, batch, generator, device)
        snr = uniform(*self.snr_db, batch, generator, device)
        order = rand((batch,), generator, device).argsort()  # (batch,) a random permutation
        partner = torch.empty_like(order)
        partner[order] = order.roll(1)  # each utterance's partner: the previous one in the permutation
        positions = torch.arange(samples, device=device)[None, :]  # (1, samples)
        index = positions % lengths[partner][:, None].clamp(min=1)  # (batch, samples) tiles the partner
        noise = waveforms[partner].gather(1, index)  # (batch, samples)
        return add_at_snr(waveforms, lengths, noise, snr, apply), lengths


class AddBackgroundNoise:
    """Add noise recordings from a folder (e.g. MUSAN noise) at an SNR drawn from ``U[snr_db]``.

    Every audio file under ``folder`` is decoded once, at construction, to mono at
    ``sample_rate`` and kept in memory. Each utterance gets a random recording from a
    random offset, tiled when shorter than the utterance.

    Args:
        folder: folder holding the noise recordings (searched recursively).
        snr_db: ``(low, high)`` SNR range in dB.
        p: probability of adding noise to each utterance.
        sample_rate: rate the recordings are resampled to (the waveforms' rate).

    Raises:
        FileNotFoundError: ``folder`` does not exist or holds no audio files.
    """

    def __init__(
        self,
        folder: str | Path,
        snr_db: tuple[float, float] = (5.0, 20.0),
        p: float = 1.0,
        sample_rate: int = DEFAULT_SAMPLE_RATE,
    ) -> None:
        check_range(snr_db, "snr_db")
        check_probability(p)
        folder = Path(folder)
        files = list_audio(folder) if folder.is_dir() else []
        if not files:
            raise FileNotFoundError(
                f"noise folder: no audio files ({', '.join(AUDIO_SUFFIXES)}) under {folder}"
            )
        self.folder = folder
        self.snr_db = tuple(snr_db)
        self.p = p
        self.recordings = [torch.from_numpy(load_audio(path, sample_rate)) for path in files]

    def __repr__(self) -> str:
        return f"AddBackgroundNoise(folder={str(self.folder)!r}, snr_db={self.snr_db}, p={self.p}, recordings={len(self.recordings)})"

    def __call__(
        self, waveforms: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``waveforms (batch, samples)``, ``lengths (batch,)`` -> noisy waveforms, same lengths."""
        check_batch(waveforms, lengths, "(batch, samples)")
        if self.p == 0.0:
            return waveforms, lengths
        batch, samples = waveforms.shape
        device = waveforms.device
        lengths = lengths.to(device)
        apply = bernoulli(self.p, batch, generator, device)
        snr = uniform(*self.snr_db, batch, generator, device)
        picks = (
            (rand((batch,), generator, device) * len(self.recordings))
            .long()
            .clamp(max=len(self.recordings) - 1)
        )
        starts = rand((batch,), generator, device)
        noise = torch.zeros(batch, samples, device=device)
        positions = torch.arange(samples)
        for row, (pick, start) in enumerate(zip(picks.tolist(), starts.tolist(), strict=True)):
            recording = self.recordings[pick]
            offset = int(start * len(recording))
            noise[row] = recording[(offset + positions) % len(recording)].to(device)  # tiled from the offset
        return add_at_snr(waveforms, lengths, noise, snr, apply), lengths


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


__all__ = ["AddBackgroundNoise", "AddNoise", "Gain", "MixUtterances", "RandomCrop", "add_at_snr"]
