"""Random band-pass filtering and equalisation of padded waveform batches.

Both are zero-phase filters applied in the frequency domain: each utterance gets its own
magnitude response ``H(f)`` (drawn per utterance, so the whole batch is filtered in one
``rfft``/``irfft``), the FFT is zero-padded by ``GUARD`` samples so that the filter's
short, smooth impulse response does not wrap around, and padding is zeroed afterwards.
They imitate the channel differences between microphones and telephone lines that a
speech representation should be invariant to.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from speechssl.augment.base import bernoulli, check_batch, check_probability, check_range, uniform
from speechssl.data.audio import DEFAULT_SAMPLE_RATE
from speechssl.data.batch import lengths_to_padding_mask

GUARD = 2048


def apply_response(
    waveforms: torch.Tensor, lengths: torch.Tensor, response: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Filter ``waveforms (batch, samples)`` by ``response(frequencies (bins,)) -> (batch, bins)``
    magnitudes (frequencies in cycles per sample, 0 to 0.5); padding stays zero."""
    samples = waveforms.shape[1]
    size = samples + GUARD
    spectrum = torch.fft.rfft(waveforms.float(), n=size, dim=1)  # (batch, bins)
    frequencies = torch.fft.rfftfreq(size, device=waveforms.device)  # (bins,)
    filtered = torch.fft.irfft(spectrum * response(frequencies), n=size, dim=1)[
        :, :samples
    ]  # (batch, samples)
    return filtered.masked_fill(lengths_to_padding_mask(lengths, samples), 0.0).to(waveforms.dtype)


@dataclass(frozen=True)
class BandPass:
    """Keep a random frequency band of each utterance.

    The response is ``sigmoid((ln f - ln f_low) / w) * sigmoid((ln f_high - ln f) / w)``
    with ``w = slope_octaves * ln 2``: flat inside ``[f_low, f_high]`` and rolling off
    smoothly (in log frequency) outside it.

    Attributes:
        low_hz: ``(low, high)`` range of the lower cut-off.
        high_hz: ``(low, high)`` range of the upper cut-off.
        slope_octaves: width of the roll-off, in octaves.
        sample_rate: samples per second.
        p: probability of filtering each utterance.
    """

    low_hz: tuple[float, float] = (50.0, 300.0)
    high_hz: tuple[float, float] = (3400.0, 7500.0)
    slope_octaves: float = 0.1
    sample_rate: int = DEFAULT_SAMPLE_RATE
    p: float = 1.0

    def __post_init__(self) -> None:
        check_range(self.low_hz, "low_hz")
        check_range(self.high_hz, "high_hz")
        check_probability(self.p)
        if not (
            self.low_hz[0] > 0
            and self.low_hz[1] < self.high_hz[0]
            and self.high_hz[1] <= self.sample_rate / 2
        ):
            raise ValueError(
                f"low_hz/high_hz: expected 0 < low_hz < high_hz <= sample_rate / 2 = {self.sample_rate / 2}, "
                f"found {self.low_hz} and {self.high_hz}"
            )
        if not self.slope_octaves > 0:
            raise ValueError(f"slope_octaves: expected > 0, found {self.slope_octaves}")

    def __call__(
        self, waveforms: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``waveforms (batch, samples)``, ``lengths (batch,)`` -> filtered waveforms, same lengths."""
        check_batch(waveforms, lengths, "(batch, samples)")
        if self.p == 0.0:
            return waveforms, lengths
        batch, device = waveforms.shape[0], waveforms.device
        lengths = lengths.to(device)
        apply = bernoulli(self.p, batch, generator, device)[:, None]  # (batch, 1)
        low = uniform(*self.low_hz, batch, generator, device)[:, None] / self.sample_rate  # (batch, 1)
        high = uniform(*self.high_hz, batch, generator, device)[:, None] / self.sample_rate  # (batch, 1)
        width = self.slope_octaves * math.log(2.0)

        def response(frequencies: torch.Tensor) -> torch.Tensor:
            log_f = frequencies.clamp(min=1e-6).log()[None, :]  # (1, bins)
            band = torch.sigmoid((log_f - low.log()) / width) * torch.sigmoid((high.log() - log_f) / width)
            return torch.where(apply, band, torch.ones_like(band))  # (batch, bins)

        return apply_response(waveforms, lengths, response), lengths


@dataclass(frozen=True)
class Equalizer:
    """A random graphic equaliser: gains drawn per band, interpolated in log frequency.

    ``bands`` centre frequencies are spaced logarithmically between ``min_hz`` and
    ``max_hz``; each gets a gain from ``U[gain_db]``; the response between centres is the
    linear interpolation of the gains (in dB) over log frequency, constant beyond the ends.

    Attributes:
        bands: number of bands.
        gain_db: ``(low, high)`` range of each band's gain in dB.
        min_hz: lowest band centre.
        max_hz: highest band centre.
        sample_rate: samples per second.
        p: probability of equalising each utterance.
    """

    bands: int = 8
    gain_db: tuple[float, float] = (-6.0, 6.0)
    min_hz: float = 100.0
    max_hz: float = 7000.0
    sample_rate: int = DEFAULT_SAMPLE_RATE
    p: float = 1.0

    def __post_init__(self) -> None:
        check_range(self.gain_db, "gain_db")
        check_probability(self.p)
        if self.bands < 2:
            raise ValueError(f"bands: expected an integer >= 2, found {self.bands}")
        if not 0 < self.min_hz < self.max_hz <= self.sample_rate / 2:
            raise ValueError(
                f"min_hz/max_hz: expected 0 < min_hz < max_hz <= {self.sample_rate / 2}, "
                f"found {self.min_hz}/{self.max_hz}"
            )

    def __call__(
        self, waveforms: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``waveforms (batch, samples)``, ``lengths (batch,)`` -> equalised waveforms, same lengths."""
        check_batch(waveforms, lengths, "(batch, samples)")
        if self.p == 0.0:
            return waveforms, lengths
        batch, device = waveforms.shape[0], waveforms.device
        lengths = lengths.to(device)
        apply = bernoulli(self.p, batch, generator, device)[:, None]  # (batch, 1)
        gains = torch.stack(
            [uniform(*self.gain_db, batch, generator, device) for _ in range(self.bands)], dim=1
        )  # (batch, bands)
        gains = gains * apply  # 0 dB where not applied
        centres = torch.linspace(
            math.log(self.min_hz / self.sample_rate),
            math.log(self.max_hz / self.sample_rate),
            self.bands,
            device=device,
        )  # (bands,) log frequency

        def response(frequencies: torch.Tensor) -> torch.Tensor:
            log_f = frequencies.clamp(min=1e-6).log().clamp(min=centres[0], max=centres[-1])  # (bins,)
            position = (log_f - centres[0]) / (centres[1] - centres[0])  # (bins,) in band units
            left = position.floor().long().clamp(max=self.bands - 2)  # (bins,)
            weight = position - left  # (bins,)
            decibels = (1 - weight) * gains[:, left] + weight * gains[:, left + 1]  # (batch, bins)
            return torch.pow(10.0, decibels / 20.0)

        return apply_response(waveforms, lengths, response), lengths


__all__ = ["BandPass", "Equalizer", "apply_response"]
