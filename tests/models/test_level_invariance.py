"""The fbank encoders' normalised log-mel features do not depend on the recording level.

Quiet recordings (RAVDESS peaks near ``log 0.1``) put most log-mel values at the absolute
``log_offset`` floor; per-utterance CMVN then encodes how far speech sits above that fixed
level, so a probe trained on one corpus read the level of another. The presets floor each
utterance relative to its own peak (``floor_db``), which makes a gain change a constant shift
that CMVN removes.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from speechssl.features.filterbank import FilterbankConfig, LogMelFilterbank, floor_below_peak
from speechssl.models.encoder import SpeechEncoder, load_encoder_preset


def quiet_utterance(sample_rate: int = 16000) -> torch.Tensor:
    """0.3 s of near-silence, 0.5 s of a quiet harmonic vowel-like burst, 0.3 s of near-silence."""
    generator = torch.Generator().manual_seed(0)
    t = torch.arange(int(0.5 * sample_rate)) / sample_rate
    burst = sum(math.exp(-k / 4) * torch.sin(2 * math.pi * 140 * k * t) for k in range(1, 30))
    burst = 0.02 * burst / burst.abs().max() * torch.hann_window(len(t))
    silence = int(0.3 * sample_rate)
    x = torch.cat([torch.zeros(silence), burst, torch.zeros(silence)])
    return (x + 1e-5 * torch.randn(len(x), generator=generator))[None]  # (1, samples)


def normalised_features(encoder: SpeechEncoder, waveforms: torch.Tensor) -> torch.Tensor:
    """The CMVN-normalised log-mel frames ``(batch, frames, n_mels)`` the subsampling reads."""
    lengths = torch.full((waveforms.shape[0],), waveforms.shape[1])
    with torch.no_grad():
        return encoder.frontend.encode(waveforms, lengths).features


@pytest.mark.parametrize("preset", ["tiny", "small", "base_fbank"])
def test_gain_leaves_normalised_features_unchanged(preset: str) -> None:
    encoder = SpeechEncoder.from_config(load_encoder_preset(preset)).eval()
    x = quiet_utterance()
    clean, quiet = normalised_features(encoder, x), normalised_features(encoder, 0.1 * x)
    assert (quiet - clean).abs().max() < 1e-3


def test_absolute_floor_alone_moves_normalised_features_with_gain() -> None:
    config = dataclasses.replace(load_encoder_preset("tiny"), log_offset=1e-6, floor_db=None)
    encoder = SpeechEncoder.from_config(config).eval()
    x = quiet_utterance()
    clean, quiet = normalised_features(encoder, x), normalised_features(encoder, 0.1 * x)
    assert (quiet - clean).abs().mean() > 0.1


def test_floor_below_peak_matches_the_formula_and_ignores_padding() -> None:
    features = torch.log(torch.tensor([[[1.0, 1e-9], [1e-4, 2e-2], [50.0, 50.0]]]))  # (1, 3, 2)
    padding = torch.tensor([[False, False, True]])
    floored = floor_below_peak(features, padding, floor_db=30.0)
    expected = torch.log(features.exp() + 1.0 * 1e-3)  # peak of the valid frames is 1.0
    torch.testing.assert_close(floored[:, :2], expected[:, :2])


def test_filterbank_floor_is_padding_invariant() -> None:
    filterbank = LogMelFilterbank(FilterbankConfig(log_offset=1e-20, floor_db=60.0))
    x = quiet_utterance()
    alone, alone_lengths = filterbank(x, torch.tensor([x.shape[1]]))
    padded = torch.cat([x, torch.zeros(1, 4000)], dim=1)
    batch = torch.cat([padded, torch.ones_like(padded)])  # a loud second utterance
    together, _ = filterbank(batch, torch.tensor([x.shape[1], padded.shape[1]]))
    torch.testing.assert_close(together[:1, : int(alone_lengths[0])], alone)


def test_floor_db_must_be_positive() -> None:
    with pytest.raises(ValueError, match="floor_db"):
        FilterbankConfig(floor_db=0.0)


def test_a_causal_encoder_refuses_the_floor_below_the_peak():
    with pytest.raises(ValueError, match="floor_db: expected null with causal=true"):
        dataclasses.replace(load_encoder_preset("tiny"), causal=True, feature_norm=False)
