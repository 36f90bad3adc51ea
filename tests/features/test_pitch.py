"""Batched YIN: tones, harmonic signals, silence and noise, padding; framing; interpolation."""

from __future__ import annotations

import math

import librosa
import pytest
import torch

from speechssl.features.framing import frame_signal
from speechssl.features.pitch import PitchConfig, estimate_pitch, interpolate_unvoiced, yin

SR = 16000
HOP = 640


def tone(f0: float, seconds: float = 1.0, amplitude: float = 0.3) -> torch.Tensor:
    t = torch.arange(int(seconds * SR), dtype=torch.float64) / SR
    return (amplitude * torch.sin(2 * math.pi * f0 * t)).float()


def pitch_of(waveform: torch.Tensor, config: PitchConfig | None = None):
    frames = waveform.shape[0] // HOP + 1
    return estimate_pitch(
        waveform[None], torch.tensor([waveform.shape[0]]), frames, HOP, SR, config or PitchConfig()
    )


@pytest.mark.parametrize("f0", [65.0, 110.0, 147.3, 220.0, 385.0])
def test_tone_f0_within_half_a_percent_and_voiced(f0):
    estimate = pitch_of(tone(f0))
    inner = slice(1, -2)  # the first and last windows reach past the tone's ends
    assert estimate.voiced[0, inner].all()
    assert estimate.f0[0, inner].sub(f0).abs().max().item() < 0.005 * f0
    assert estimate.periodicity[0, inner].min().item() > 0.9


def test_harmonic_signal_gives_its_fundamental_like_librosa():
    t = torch.arange(SR, dtype=torch.float64) / SR
    sawtooth = (0.3 * ((t * 120.0) % 1.0 - 0.5)).float()  # every harmonic of 120 Hz
    estimate = pitch_of(sawtooth)
    reference = librosa.yin(sawtooth.numpy(), fmin=60, fmax=400, sr=SR, frame_length=1024, hop_length=HOP)
    assert estimate.f0[0, 1:-2].mean().item() == pytest.approx(120.0, rel=0.01)
    assert estimate.f0[0, 1:-2].mean().item() == pytest.approx(float(reference[1:-2].mean()), rel=0.01)


def test_silence_and_white_noise_are_unvoiced():
    silence = pitch_of(torch.zeros(SR))
    assert not silence.voiced.any() and (silence.periodicity == 0).all()
    noise = pitch_of(0.3 * torch.randn(SR, generator=torch.Generator().manual_seed(0)))
    assert noise.voiced.float().mean().item() < 0.05
    assert noise.periodicity.mean().item() < 0.4


def test_tone_after_silence_turns_voiced_at_its_onset_and_padding_is_ignored():
    waveform = torch.cat([torch.zeros(SR // 2), tone(200.0, 0.5)])
    estimate = pitch_of(waveform)
    assert not estimate.voiced[0, :11].any() and estimate.voiced[0, 14:-2].all()  # onset at frame 12.5
    batch = torch.stack([waveform, torch.cat([tone(150.0, 0.5), torch.zeros(SR // 2)])])
    lengths = torch.tensor([SR, SR // 2])
    together = estimate_pitch(batch, lengths, 26, HOP, SR, PitchConfig())
    alone = estimate_pitch(batch[1:, : SR // 2], lengths[1:], 26, HOP, SR, PitchConfig())
    assert torch.equal(together.voiced[1], alone.voiced[0])
    torch.testing.assert_close(together.f0[1], alone.f0[0])


def test_frame_signal_centres_windows_and_zero_pads():
    waveforms = torch.arange(1.0, 21.0)[None]  # samples 1..20, so zero means padding
    windows = frame_signal(
        waveforms, torch.tensor([18]), num_frames=4, hop_length=5, window_length=4, first_centre=2
    )
    # window k covers [2 + 5k - 2, 2 + 5k + 2): samples 0..3, 5..8, 10..13, 15..18 (index 18+ is past the length)
    assert windows.tolist() == [[[1, 2, 3, 4], [6, 7, 8, 9], [11, 12, 13, 14], [16, 17, 18, 0]]]
    left = frame_signal(waveforms, torch.tensor([20]), num_frames=2, hop_length=5, window_length=6)
    assert left.tolist() == [[[0, 0, 0, 1, 2, 3], [3, 4, 5, 6, 7, 8]]]


def test_interpolate_unvoiced_fills_between_and_holds_at_the_edges():
    values = torch.tensor([[9.0, 2.0, 9.0, 9.0, 5.0, 9.0], [9.0, 9.0, 9.0, 9.0, 9.0, 9.0]])
    voiced = torch.tensor([[False, True, False, False, True, False], [False] * 6])
    assert interpolate_unvoiced(values, voiced).tolist() == [[2, 2, 3, 4, 5, 5], [0, 0, 0, 0, 0, 0]]


def test_errors():
    with pytest.raises(ValueError, match=r"f0_min/f0_max: expected 0 < f0_min < f0_max, found 300\.0/200\.0"):
        PitchConfig(f0_min=300.0, f0_max=200.0)
    with pytest.raises(ValueError, match=r"windows: expected \(batch, frames, samples >= 668\)"):
        yin(torch.zeros(1, 2, 100), SR, PitchConfig())
    with pytest.raises(ValueError, match="num_frames/hop_length/window_length: expected positive integers"):
        frame_signal(torch.zeros(1, 10), torch.tensor([10]), 0, 5, 5)
