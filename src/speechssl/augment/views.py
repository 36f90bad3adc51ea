"""A *view*: the augmentation producing one input of a joint-embedding method.

A :class:`View` holds a waveform pipeline (applied to the batch before the encoder) and
a feature pipeline (SpecAugment masks, applied inside the encoder's front-end through
its ``feature_transform`` hook). :func:`build_view` makes one from a :class:`ViewConfig`,
whose fields are the transforms themselves (each a small dataclass with its probability
``p`` and parameter ranges), so that ``objective.view.reverb.p=0.5`` or
``objective.view.speed.factors=[0.9,1.1]`` configure them from the command line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from speechssl.augment.base import Compose, FeatureTransform, Transform, check_probability, check_range
from speechssl.augment.filters import BandPass, Equalizer
from speechssl.augment.resample import PitchShift, SpeedPerturb, TempoPerturb
from speechssl.augment.reverb import Reverberation
from speechssl.augment.spectral import FrequencyMask, TimeMask
from speechssl.augment.waveform import AddBackgroundNoise, AddNoise, Gain, MixUtterances, RandomCrop
from speechssl.data.audio import DEFAULT_SAMPLE_RATE


@dataclass
class BackgroundNoiseConfig:
    """Noise recordings from a folder (:class:`~speechssl.augment.waveform.AddBackgroundNoise`).

    Attributes:
        folder: folder of noise recordings; ``None`` disables the transform.
        snr_db: ``(low, high)`` SNR range in dB.
        p: probability of adding a recording to each utterance.
    """

    folder: str | None = None
    snr_db: tuple[float, float] = (5.0, 20.0)
    p: float = 1.0

    def __post_init__(self) -> None:
        check_range(self.snr_db, "snr_db")
        check_probability(self.p)


@dataclass
class ViewConfig:
    """Augmentation of one view, with speech defaults in the spirit of Brima et al. 2023.

    The waveform pipeline runs crop → speed → tempo → pitch → reverb → band_pass →
    equalizer → gain → mix → noise → background_noise; the feature pipeline runs
    time_mask → freq_mask. A transform with ``p = 0`` is left out.

    Attributes:
        crop_seconds: random crop duration; ``None`` keeps whole utterances.
        speed: speed perturbation (resampling; changes durations).
        tempo: tempo perturbation (phase vocoder; changes durations).
        pitch: pitch shift in semitones.
        reverb: synthetic-RIR reverberation.
        band_pass: random band-pass filter.
        equalizer: random graphic equaliser.
        gain: random gain in dB.
        mix: another utterance of the batch at a low SNR.
        noise: white or pink noise at an SNR.
        background_noise: recordings from a folder at an SNR.
        time_mask: SpecAugment time masks on the front-end features.
        freq_mask: SpecAugment frequency masks on the front-end features.
    """

    crop_seconds: float | None = 2.0
    speed: SpeedPerturb = field(default_factory=lambda: SpeedPerturb(p=0.0))
    tempo: TempoPerturb = field(default_factory=lambda: TempoPerturb(p=0.0))
    pitch: PitchShift = field(default_factory=lambda: PitchShift(p=0.0))
    reverb: Reverberation = field(default_factory=lambda: Reverberation(p=0.0))
    band_pass: BandPass = field(default_factory=lambda: BandPass(p=0.0))
    equalizer: Equalizer = field(default_factory=lambda: Equalizer(p=0.0))
    gain: Gain = field(default_factory=lambda: Gain((-6.0, 6.0), p=0.5))
    mix: MixUtterances = field(default_factory=lambda: MixUtterances(p=0.0))
    noise: AddNoise = field(default_factory=lambda: AddNoise((5.0, 20.0), "white", p=0.5))
    background_noise: BackgroundNoiseConfig = field(default_factory=BackgroundNoiseConfig)
    time_mask: TimeMask = field(default_factory=lambda: TimeMask(100, 2, max_fraction=0.1))
    freq_mask: FrequencyMask = field(default_factory=lambda: FrequencyMask(8, 2))

    def __post_init__(self) -> None:
        if self.crop_seconds is not None and self.crop_seconds <= 0:
            raise ValueError(f"crop_seconds: expected > 0 or None, found {self.crop_seconds}")

    @property
    def changes_durations(self) -> bool:
        """Whether a transform that changes durations (speed, tempo) may apply."""
        return self.speed.p > 0 or self.tempo.p > 0


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


def build_view(config: ViewConfig, sample_rate: int = DEFAULT_SAMPLE_RATE, crop: bool = True) -> View:
    """The :class:`View` described by ``config`` for audio at ``sample_rate`` Hz.

    Args:
        config: the transforms.
        sample_rate: rate of the waveforms; the transforms that have one (``band_pass``,
            ``equalizer``, ``reverb``) are set to it.
        crop: include the random crop (a caller that crops both views identically, e.g.
            frame-level objectives, passes ``False``).
    """
    waveform: list[Transform] = []
    if crop and config.crop_seconds is not None:
        waveform.append(RandomCrop(config.crop_seconds, sample_rate))
    for transform in (
        config.speed,
        config.tempo,
        config.pitch,
        config.reverb,
        config.band_pass,
        config.equalizer,
        config.gain,
        config.mix,
        config.noise,
    ):
        if transform.p > 0:
            # transforms with a rate (band_pass, equalizer, reverb) run at the view's
            rated = hasattr(transform, "sample_rate") and transform.sample_rate != sample_rate
            waveform.append(dataclasses.replace(transform, sample_rate=sample_rate) if rated else transform)
    background = config.background_noise
    if background.folder is not None and background.p > 0:
        waveform.append(AddBackgroundNoise(background.folder, background.snr_db, background.p, sample_rate))
    features: list[Transform] = [t for t in (config.time_mask, config.freq_mask) if t.p > 0]
    return View(Compose(waveform), Compose(features))


__all__ = ["BackgroundNoiseConfig", "View", "ViewConfig", "build_view"]
