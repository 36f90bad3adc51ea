"""Hand-crafted acoustic features: log-mel filterbank, MFCC and YIN pitch, batched and padding-aware."""

from __future__ import annotations

from typing import Any

from speechssl.config import ConfigError, from_dict
from speechssl.features.filterbank import (
    MFCC,
    FilterbankConfig,
    LogMelFilterbank,
    dct_matrix,
    hz_to_mel,
    mel_filterbank,
    mel_to_hz,
)
from speechssl.features.framing import frame_signal
from speechssl.features.pitch import PitchConfig, PitchEstimate, estimate_pitch, interpolate_unvoiced, yin


def build_features(name: str, **options: Any) -> LogMelFilterbank | MFCC:
    """Feature extractor ``name`` (``"fbank"`` or ``"mfcc"``) with :class:`FilterbankConfig` options.

    ``"mfcc"`` also takes ``n_mfcc`` (default 13). Unknown options or wrong types raise
    :class:`~speechssl.config.ConfigError` naming the option.
    """
    if name == "fbank":
        return LogMelFilterbank(from_dict(FilterbankConfig, options, where="features"))
    if name == "mfcc":
        n_mfcc = options.pop("n_mfcc", 13)
        if isinstance(n_mfcc, bool) or not isinstance(n_mfcc, int):
            raise ConfigError(f"features.n_mfcc: expected int, found {n_mfcc!r}")
        filterbank = LogMelFilterbank(from_dict(FilterbankConfig, options, where="features"))
        return MFCC(filterbank, n_mfcc=n_mfcc)
    raise ConfigError(f"features: unknown name {name!r} (expected 'fbank' or 'mfcc')")


__all__ = [
    "MFCC",
    "FilterbankConfig",
    "LogMelFilterbank",
    "PitchConfig",
    "PitchEstimate",
    "build_features",
    "dct_matrix",
    "estimate_pitch",
    "frame_signal",
    "hz_to_mel",
    "interpolate_unvoiced",
    "mel_filterbank",
    "mel_to_hz",
    "yin",
]
