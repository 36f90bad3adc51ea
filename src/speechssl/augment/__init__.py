"""Composable, seeded, padding-aware augmentations on batched torch tensors.

Waveform transforms (:mod:`~speechssl.augment.waveform`: crop, noise, gain, mixing;
:mod:`~speechssl.augment.resample`: speed, tempo, pitch; :mod:`~speechssl.augment.filters`:
band-pass, equaliser; :mod:`~speechssl.augment.reverb`: reverberation) and SpecAugment
feature warping and masks (:mod:`~speechssl.augment.spectral`) share one contract (:class:`Transform`)
and are combined into the two pipelines of a :class:`View` (:mod:`~speechssl.augment.views`).
"""

from speechssl.augment.base import Compose, Transform
from speechssl.augment.filters import BandPass, Equalizer
from speechssl.augment.resample import PitchShift, SpeedPerturb, TempoPerturb
from speechssl.augment.reverb import Reverberation
from speechssl.augment.spectral import FrequencyMask, TimeMask, TimeWarp
from speechssl.augment.views import BackgroundNoiseConfig, View, ViewConfig, build_view
from speechssl.augment.waveform import AddBackgroundNoise, AddNoise, Gain, MixUtterances, RandomCrop

__all__ = [
    "AddBackgroundNoise",
    "AddNoise",
    "BackgroundNoiseConfig",
    "BandPass",
    "Compose",
    "Equalizer",
    "FrequencyMask",
    "Gain",
    "MixUtterances",
    "PitchShift",
    "RandomCrop",
    "Reverberation",
    "SpeedPerturb",
    "TempoPerturb",
    "TimeMask",
    "TimeWarp",
    "Transform",
    "View",
    "ViewConfig",
    "build_view",
]
