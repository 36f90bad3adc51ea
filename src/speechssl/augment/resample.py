"""Speed, tempo and pitch perturbation of padded waveform batches.

* :class:`SpeedPerturb` resamples (Ko et al. 2015, "Audio Augmentation for Speech
  Recognition"): tempo and pitch change together, the duration by ``1 / factor``.
* :class:`TempoPerturb` stretches time with a phase vocoder (Flanagan & Golden 1966;
  Laroche & Dolson 1999): the duration changes by ``1 / rate``, the pitch does not.
* :class:`PitchShift` stretches by the pitch ratio, then resamples back: the pitch moves
  by the drawn number of semitones, the duration does not.

Resampling is julius's windowed-sinc ``resample_frac`` (Défossez), which needs a rational
ratio, so each factor is rounded to the nearest fraction with a denominator of at most
``MAX_DENOMINATOR`` (a pitch error below 0.1 semitone). Factors are drawn per utterance
from a small set; utterances sharing a factor are processed as one sub-batch. Lengths are
returned with the waveforms, and padding stays zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import julius
import torch

from speechssl.augment.base import bernoulli, check_batch, check_probability, rand
from speechssl.data.batch import lengths_to_padding_mask

MAX_DENOMINATOR = 20
N_FFT = 512
HOP = 128


def rational(factor: float) -> Fraction:
    """``factor`` as the nearest fraction with a denominator of at most ``MAX_DENOMINATOR``."""
    return Fraction(factor).limit_denominator(MAX_DENOMINATOR)


def _check_choices(choices: tuple[float, ...], name: str) -> None:
    if not choices or any(not (c > 0 and math.isfinite(c)) for c in choices):
        raise ValueError(f"{name}: expected a non-empty tuple of finite values > 0, found {tuple(choices)}")


def _draw(
    choices: tuple[float, ...], p: float, batch: int, generator: torch.Generator | None, device: torch.device
) -> list[float]:
    """One choice per utterance (``1.0``, i.e. unchanged, where the coin flip fails)."""
    apply = bernoulli(p, batch, generator, device).tolist()
    picks = (rand((batch,), generator, device) * len(choices)).long().clamp(max=len(choices) - 1).tolist()
    return [choices[i] if a else 1.0 for a, i in zip(apply, picks, strict=True)]


def _regroup(
    waveforms: torch.Tensor, lengths: torch.Tensor, factors: list[float], change
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``change(sub_batch, sub_lengths, factor) -> (out, out_lengths)`` to each group of
    utterances sharing a factor (factor ``1.0`` passes through) and re-pad the results."""
    outputs: list[torch.Tensor | None] = [None] * len(factors)
    out_lengths = lengths.clone()
    for factor in sorted(set(factors)):
        rows = [i for i, f in enumerate(factors) if f == factor]
        index = torch.tensor(rows, device=waveforms.device)
        sub_lengths = lengths[index]
        sub = waveforms[index, : int(sub_lengths.max())]  # (group, samples)
        changed, changed_lengths = (sub, sub_lengths) if factor == 1.0 else change(sub, sub_lengths, factor)
        for position, row in enumerate(rows):
            outputs[row] = changed[position, : int(changed_lengths[position])]
            out_lengths[row] = changed_lengths[position]
    padded = torch.nn.utils.rnn.pad_sequence(outputs, batch_first=True)  # (batch, new samples)
    return padded, out_lengths


def resample(
    waveforms: torch.Tensor, lengths: torch.Tensor, ratio: Fraction
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample ``waveforms (batch, samples)`` so that every duration is multiplied by ``ratio``.

    Returns ``(batch, ceil(samples * ratio))`` and lengths ``round(lengths * ratio)`` (at least 1),
    zero after each new length.
    """
    resampled = julius.resample_frac(
        waveforms, ratio.denominator, ratio.numerator
    )  # (batch, samples * ratio)
    new_lengths = torch.round(lengths.double() * float(ratio)).long().clamp(min=1, max=resampled.shape[1])
    return resampled.masked_fill(lengths_to_padding_mask(new_lengths, resampled.shape[1]), 0.0), new_lengths


def time_stretch(
    waveforms: torch.Tensor, lengths: torch.Tensor, rate: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Phase-vocoder time stretch of ``waveforms (batch, samples)`` by ``rate`` (> 1: faster).

    The STFT (Hann window, ``N_FFT``, hop ``HOP``) is read at fractional frame positions
    ``t * rate``; magnitudes are interpolated linearly between neighbouring frames and each
    bin's phase advances by the measured phase increment (Laroche & Dolson 1999, eq. 6),
    then the inverse STFT gives ``round(lengths / rate)`` samples.
    """
    window = torch.hann_window(N_FFT, device=waveforms.device)
    spectrum = torch.stft(waveforms, N_FFT, HOP, window=window, return_complex=True)  # (batch, bins, frames)
    frames = spectrum.shape[-1]
    steps = torch.arange(0, frames - 1, rate, device=waveforms.device, dtype=torch.float64)  # (steps,)
    low = steps.floor().long()  # (steps,)
    weight = (steps - low).to(waveforms.dtype)  # (steps,)
    current, following = spectrum[..., low], spectrum[..., low + 1]  # (batch, bins, steps)
    magnitude = (1 - weight) * current.abs() + weight * following.abs()  # (batch, bins, steps)
    expected = torch.linspace(0, math.pi * HOP, spectrum.shape[1], device=waveforms.device)[
        :, None
    ]  # (bins, 1)
    increment = following.angle() - current.angle() - expected  # (batch, bins, steps)
    increment = increment - 2 * math.pi * torch.round(increment / (2 * math.pi))  # wrapped to [-pi, pi]
    phase = torch.cumsum(increment + expected, dim=-1)  # (batch, bins, steps)
    phase = torch.cat([spectrum[..., :1].angle(), phase[..., :-1] + spectrum[..., :1].angle()], dim=-1)
    stretched = torch.polar(magnitude, phase)  # (batch, bins, steps)
    new_lengths = torch.round(lengths.double() / rate).long().clamp(min=1)
    output = torch.istft(
        stretched, N_FFT, HOP, window=window, length=int(new_lengths.max())
    )  # (batch, samples')
    return output.masked_fill(lengths_to_padding_mask(new_lengths, output.shape[1]), 0.0), new_lengths


@dataclass(frozen=True)
class SpeedPerturb:
    """Play each utterance ``factor`` times faster by resampling (tempo and pitch both change).

    Attributes:
        factors: speeds to draw from, uniformly (Ko et al. 2015 use 0.9, 1.0, 1.1).
        p: probability of perturbing each utterance.
    """

    factors: tuple[float, ...] = (0.9, 1.1)
    p: float = 1.0

    def __post_init__(self) -> None:
        _check_choices(self.factors, "factors")
        check_probability(self.p)

    def __call__(
        self, waveforms: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``waveforms (batch, samples)``, ``lengths (batch,)`` -> perturbed waveforms and new lengths."""
        check_batch(waveforms, lengths, "(batch, samples)")
        lengths = lengths.to(waveforms.device)
        factors = _draw(self.factors, self.p, waveforms.shape[0], generator, waveforms.device)
        return _regroup(waveforms, lengths, factors, lambda x, n, f: resample(x, n, 1 / rational(f)))


@dataclass(frozen=True)
class TempoPerturb:
    """Change each utterance's tempo by ``rate`` with a phase vocoder, keeping its pitch.

    Attributes:
        rates: tempo ratios to draw from, uniformly (> 1 is faster and shorter).
        p: probability of perturbing each utterance.
    """

    rates: tuple[float, ...] = (0.9, 1.1)
    p: float = 1.0

    def __post_init__(self) -> None:
        _check_choices(self.rates, "rates")
        check_probability(self.p)

    def __call__(
        self, waveforms: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``waveforms (batch, samples)``, ``lengths (batch,)`` -> stretched waveforms and new lengths."""
        check_batch(waveforms, lengths, "(batch, samples)")
        lengths = lengths.to(waveforms.device)
        rates = _draw(self.rates, self.p, waveforms.shape[0], generator, waveforms.device)
        return _regroup(waveforms, lengths, rates, time_stretch)


@dataclass(frozen=True)
class PitchShift:
    """Shift each utterance's pitch by a number of semitones, keeping its duration.

    The utterance is time-stretched by the pitch ratio ``r = 2^(s/12)`` (longer for
    ``s > 0``), then resampled by ``1 / r`` back to its duration, which multiplies every
    frequency by ``r``.

    Attributes:
        semitones: shifts to draw from, uniformly.
        p: probability of shifting each utterance.
    """

    semitones: tuple[float, ...] = (-2.0, -1.0, 1.0, 2.0)
    p: float = 1.0

    def __post_init__(self) -> None:
        if not self.semitones or any(not math.isfinite(s) for s in self.semitones):
            raise ValueError(
                f"semitones: expected a non-empty tuple of finite values, found {self.semitones}"
            )
        check_probability(self.p)

    def __call__(
        self, waveforms: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``waveforms (batch, samples)``, ``lengths (batch,)`` -> shifted waveforms, lengths unchanged."""
        check_batch(waveforms, lengths, "(batch, samples)")
        lengths = lengths.to(waveforms.device)
        ratios = [float(rational(2.0 ** (s / 12.0))) for s in self.semitones]
        drawn = _draw(tuple(ratios), self.p, waveforms.shape[0], generator, waveforms.device)

        def shift(x: torch.Tensor, n: torch.Tensor, ratio: float) -> tuple[torch.Tensor, torch.Tensor]:
            stretched, stretched_lengths = time_stretch(x, n, 1 / ratio)  # duration x ratio
            shifted, _ = resample(stretched, stretched_lengths, 1 / rational(ratio))  # duration back
            shifted = shifted[:, : int(n.max())]
            if shifted.shape[1] < int(n.max()):
                shifted = torch.nn.functional.pad(shifted, (0, int(n.max()) - shifted.shape[1]))
            return shifted.masked_fill(lengths_to_padding_mask(n, shifted.shape[1]), 0.0), n

        return _regroup(waveforms, lengths, drawn, shift)


__all__ = ["PitchShift", "SpeedPerturb", "TempoPerturb", "resample", "time_stretch"]
