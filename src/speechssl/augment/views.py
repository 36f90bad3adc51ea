"""A *view*: the augmentation producing one input of a joint-embedding method.

A :class:`View` holds a waveform pipeline (applied to the batch before the encoder) and
a feature pipeline (SpecAugment masks, applied inside the encoder's front-end through
its ``feature_transform`` hook). :func:`build_view` makes one from a :class:`ViewConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from speechssl.augment.base import Compose, Transform, check_probability, check_range
from speechssl.augment.spectral import FrequencyMask, TimeMask
from speechssl.augment.waveform import AddNoise, Gain, RandomCrop
from speechssl.models.frontends import FeatureTransform


@dataclass
class ViewConfig:
    """Augmentation of one view, with speech defaults in the spirit of Brima et al. 2023.

    Attributes:
        crop_seconds: random crop duration; ``None`` keeps whole utterances.
        noise_p: probability of additive noise per utterance.
        noise_snr_db: ``(low, high)`` SNR range in dB.
        noise_color: ``"white"`` or ``"pink"``.
        gain_p: probability of a random gain per utterance.
        gain_db: ``(low, high)`` gain range in dB.
        time_mask_p: probability of time masking per utterance.
        time_mask_max_width: widest time mask in frames (SpecAugment ``T``).
        time_mask_max_fraction: widest time mask as a fraction of valid frames.
        time_mask_count: time masks per utterance.
        freq_mask_p: probability of frequency masking per utterance.
        freq_mask_max_width: widest frequency mask in channels (SpecAugment ``F``).
        freq_mask_count: frequency masks per utterance.
    """

    crop_seconds: float | None = 2.0
    noise_p: float = 0.5
    noise_snr_db: tuple[float, float] = (5.0, 20.0)
    noise_color: Literal["white", "pink"] = "white"
    gain_p: float = 0.5
    gain_db: tuple[float, float] = (-6.0, 6.0)
    time_mask_p: float = 1.0
    time_mask_max_width: int = 100
    time_mask_max_fraction: float = 0.1
    time_mask_count: int = 2
    freq_mask_p: float = 1.0
    freq_mask_max_width: int = 8
    freq_mask_count: int = 2

    def __post_init__(self) -> None:
        if self.crop_seconds is not None and self.crop_seconds <= 0:
            raise ValueError(f"crop_seconds: expected > 0 or None, found {self.crop_seconds}")
        for name in ("noise_p", "gain_p", "time_mask_p", "freq_mask_p"):
            check_probability(getattr(self, name), name)
        check_range(self.noise_snr_db, "noise_snr_db")
        check_range(self.gain_db, "gain_db")
        if self.noise_color not in ("white", "pink"):
            raise ValueError(f"noise_color: expected 'white' or 'pink', found {self.noise_color!r}")
        if not 0.0 <= self.time_mask_max_fraction <= 1.0:
            raise ValueError(
                f"time_mask_max_fraction: expected a fraction in [0, 1], found {self.time_mask_max_fraction}"
            )
        for name in ("time_mask_max_width", "time_mask_count", "freq_mask_max_width", "freq_mask_count"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected >= 0, found {getattr(self, name)}")


@dataclass(frozen=True)
class View:
    """A waveform pipeline and a feature pipeline making one augmented view.

    Attributes:
        waveform: transform of ``(waveforms (batch, samples), lengths (batch,))``.
        features: transform of ``(feats (batch, frames, channels), lengths (batch,))``.
    """

    waveform: Transform
    features: Transform

    def __call__(
        self, waveforms: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply the waveform pipeline to ``waveforms (batch, samples)`` with ``lengths (batch,)``."""
        return self.waveform(waveforms, lengths, generator)

    def feature_transform(self, generator: torch.Generator | None = None) -> FeatureTransform:
        """The feature pipeline as the encoder's ``feature_transform`` hook, drawing from ``generator``."""

        def transform(feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            return self.features(feats, lengths, generator)[0]

        return transform


def build_view(config: ViewConfig, sample_rate: int = 16000) -> View:
    """The :class:`View` described by ``config`` for audio at ``sample_rate`` Hz.

    Waveform pipeline: crop → gain → noise; feature pipeline: time masks → frequency masks.
    """
    waveform: list[Transform] = []
    if config.crop_seconds is not None:
        waveform.append(RandomCrop(config.crop_seconds, sample_rate))
    waveform.append(Gain(config.gain_db, p=config.gain_p))
    waveform.append(AddNoise(config.noise_snr_db, config.noise_color, p=config.noise_p))
    features: list[Transform] = [
        TimeMask(
            config.time_mask_max_width,
            config.time_mask_count,
            max_fraction=config.time_mask_max_fraction,
            p=config.time_mask_p,
        ),
        FrequencyMask(config.freq_mask_max_width, config.freq_mask_count, p=config.freq_mask_p),
    ]
    return View(Compose(waveform), Compose(features))


__all__ = ["View", "ViewConfig", "build_view"]
