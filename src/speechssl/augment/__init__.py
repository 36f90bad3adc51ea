"""Composable, seeded, padding-aware augmentations on batched torch tensors.

Waveform transforms (:mod:`~speechssl.augment.waveform`) and SpecAugment feature masks
(:mod:`~speechssl.augment.spectral`) share one contract (:class:`Transform`) and are
combined into the two pipelines of a :class:`View` (:mod:`~speechssl.augment.views`).
"""

from speechssl.augment.base import Compose, Transform
from speechssl.augment.spectral import FrequencyMask, TimeMask
from speechssl.augment.views import View, ViewConfig, build_view
from speechssl.augment.waveform import AddNoise, Gain, RandomCrop

__all__ = [
    "AddNoise",
    "Compose",
    "FrequencyMask",
    "Gain",
    "RandomCrop",
    "TimeMask",
    "Transform",
    "View",
    "ViewConfig",
    "build_view",
]
