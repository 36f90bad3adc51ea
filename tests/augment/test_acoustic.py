"""Speed, tempo, pitch, band-pass, equaliser, reverberation, mixing and background noise:
what each does to a tone, lengths, padding, seeding and bad options."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from speechssl.augment.filters import BandPass, Equalizer
from speechssl.augment.resample import PitchShift, SpeedPerturb, TempoPerturb, rational
from speechssl.augment.reverb import Reverberation, synthetic_rir
from speechssl.augment.waveform import AddBackgroundNoise, MixUtterances
from speechssl.data.batch import lengths_to_padding_mask

RATE = 16000


def tones(frequencies: list[float], lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(batch, max(lengths))`` sines, zero after each length."""
    time = torch.arange(max(lengths)) / RATE
    waves = torch.stack([torch.sin(2 * math.pi * f * time) for f in frequencies])  # (batch, samples)
    lengths_t = torch.tensor(lengths)
    return waves.masked_fill(lengths_to_padding_mask(lengths_t), 0.0), lengths_t


def peak_hz(wave: torch.Tensor) -> float:
    """Frequency of the largest magnitude bin of a Hann-windowed ``(samples,)`` signal."""
    spectrum = torch.fft.rfft(wave * torch.hann_window(len(wave)), n=8 * len(wave)).abs()
    return float(spectrum.argmax()) * RATE / (8 * len(wave))


def padding_is_zero(waveforms: torch.Tensor, lengths: torch.Tensor) -> bool:
    return bool((waveforms[lengths_to_padding_mask(lengths, waveforms.shape[1])] == 0).all())


def test_speed_perturbation_scales_duration_and_pitch_together():
    waves, lengths = tones([200.0, 200.0], [16000, 12000])
    out, new_lengths = SpeedPerturb(factors=(1.25,))(waves, lengths, torch.Generator().manual_seed(0))
    assert new_lengths.tolist() == [12800, 9600]
    assert padding_is_zero(out, new_lengths)
    assert peak_hz(out[1, 1000:8000]) == pytest.approx(250.0, rel=0.01)


def test_tempo_perturbation_scales_duration_not_pitch():
    waves, lengths = tones([300.0, 300.0], [16000, 10000])
    out, new_lengths = TempoPerturb(rates=(1.25,))(waves, lengths, torch.Generator().manual_seed(0))
    assert new_lengths.tolist() == [12800, 8000]
    assert padding_is_zero(out, new_lengths)
    assert peak_hz(out[0, 2000:10000]) == pytest.approx(300.0, rel=0.01)
    assert float(out[0, 2000:10000].pow(2).mean()) == pytest.approx(0.5, rel=0.1), "the tone's power survives"


@pytest.mark.parametrize("semitones", [2.0, -3.0])
def test_pitch_shift_moves_the_pitch_and_keeps_the_duration(semitones):
    waves, lengths = tones([250.0, 250.0], [16000, 12000])
    out, new_lengths = PitchShift(semitones=(semitones,))(waves, lengths, torch.Generator().manual_seed(0))
    assert torch.equal(new_lengths, lengths) and out.shape == waves.shape
    assert padding_is_zero(out, new_lengths)
    assert peak_hz(out[0, 2000:14000]) == pytest.approx(250.0 * 2 ** (semitones / 12), rel=0.01)


def test_resampling_perturbations_are_seeded_and_p_zero_is_identity():
    waves, lengths = tones([200.0, 310.0, 420.0, 530.0], [8000, 7000, 6000, 8000])
    for transform in (SpeedPerturb(), TempoPerturb(), PitchShift()):
        first = transform(waves, lengths, torch.Generator().manual_seed(3))
        again = transform(waves, lengths, torch.Generator().manual_seed(3))
        assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
        same, same_lengths = type(transform)(p=0.0)(waves, lengths, torch.Generator().manual_seed(3))
        assert torch.equal(same, waves) and torch.equal(same_lengths, lengths)
    assert rational(2 ** (1 / 12)).denominator <= 20


def test_band_pass_removes_out_of_band_tones_and_keeps_in_band_ones():
    waves, lengths = tones([80.0, 1000.0, 7000.0], [16000, 16000, 12000])
    band = BandPass(low_hz=(300.0, 300.0), high_hz=(3000.0, 3000.0))
    out, new_lengths = band(waves, lengths, torch.Generator().manual_seed(0))
    power = (out[:, 2000:10000].pow(2).mean(dim=1) / waves[:, 2000:10000].pow(2).mean(dim=1)).tolist()
    assert power[0] < 0.01 and power[2] < 0.01, "more than 20 dB below the band"
    assert power[1] == pytest.approx(1.0, abs=0.02)
    assert torch.equal(new_lengths, lengths) and padding_is_zero(out, lengths)


def test_equalizer_applies_its_band_gains():
    waves, lengths = tones([500.0, 2000.0], [16000, 16000])
    louder, _ = Equalizer(gain_db=(6.0, 6.0))(waves, lengths, torch.Generator().manual_seed(0))
    ratio = louder[:, 2000:14000].pow(2).mean(dim=1) / waves[:, 2000:14000].pow(2).mean(dim=1)
    assert ratio.tolist() == pytest.approx([10**0.6] * 2, rel=0.02)
    varied, _ = Equalizer()(waves, lengths, torch.Generator().manual_seed(1))
    assert not torch.allclose(varied, waves)


def test_synthetic_rir_decays_by_60_db_in_rt60():
    rir = synthetic_rir(
        torch.tensor([0.5]), torch.tensor([0.0]), 16000, RATE, 0.0, torch.Generator().manual_seed(0)
    )
    tail = rir[0, 1:].numpy().astype(np.float64)
    assert float(np.sum(tail**2)) == pytest.approx(1.0, rel=1e-4), "DRR 0 dB: tail energy = direct"
    schroeder = np.cumsum(tail[::-1] ** 2)[::-1]  # energy decay curve
    decay_db = 10 * np.log10(schroeder / schroeder[0])
    t5, t25 = np.argmax(decay_db < -5), np.argmax(decay_db < -25)
    rt60 = 3 * (t25 - t5) / RATE  # T20 extrapolated to 60 dB
    assert rt60 == pytest.approx(0.5, rel=0.1)


def test_reverberation_keeps_energy_and_length_and_smears_in_time():
    waves, lengths = tones([440.0, 440.0], [16000, 12000])
    waves[:, 4000:] = 0  # a tone burst then silence: reverberation fills the silence
    waves = waves.masked_fill(lengths_to_padding_mask(lengths), 0.0)
    out, new_lengths = Reverberation(rt60=(0.6, 0.6), drr_db=(0.0, 0.0))(
        waves, lengths, torch.Generator().manual_seed(0)
    )
    assert torch.equal(new_lengths, lengths) and padding_is_zero(out, lengths)
    assert out.pow(2).sum(dim=1).tolist() == pytest.approx(waves.pow(2).sum(dim=1).tolist(), rel=1e-4)
    assert float(out[0, 4400:6000].abs().mean()) > 0.01, "a reverberant tail after the burst"
    dry, _ = Reverberation(p=0.0)(waves, lengths)
    assert torch.equal(dry, waves)


def test_mixing_adds_another_utterance_at_the_snr():
    waves, lengths = tones([200.0, 300.0, 400.0, 500.0], [16000, 12000, 16000, 8000])
    out, _ = MixUtterances(snr_db=(10.0, 10.0))(waves, lengths, torch.Generator().manual_seed(0))
    for row, length in enumerate(lengths.tolist()):
        added = out[row, :length] - waves[row, :length]
        snr = 10 * math.log10(float(waves[row, :length].pow(2).sum() / added.pow(2).sum()))
        assert snr == pytest.approx(10.0, abs=1e-3)
        assert abs(peak_hz(added) - [200, 300, 400, 500][row]) > 50, "never mixed with itself"
    assert padding_is_zero(out, lengths)
    alone, _ = MixUtterances()(waves[:1], lengths[:1])
    assert torch.equal(alone, waves[:1])


def test_background_noise_from_a_folder(tmp_path):
    noise = np.random.default_rng(0).normal(size=4000).astype(np.float32) * 0.1
    sf.write(tmp_path / "hum.wav", noise, RATE)
    waves, lengths = tones([200.0, 300.0], [16000, 9000])
    out, _ = AddBackgroundNoise(tmp_path, snr_db=(5.0, 5.0))(waves, lengths, torch.Generator().manual_seed(0))
    for row, length in enumerate(lengths.tolist()):
        added = out[row, :length] - waves[row, :length]
        assert 10 * math.log10(float(waves[row, :length].pow(2).sum() / added.pow(2).sum())) == pytest.approx(
            5.0, abs=1e-3
        )
    assert padding_is_zero(out, lengths)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"noise folder: no audio files .* under .*empty"):
        AddBackgroundNoise(tmp_path / "empty")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: SpeedPerturb(factors=()), "factors: expected a non-empty tuple"),
        (lambda: TempoPerturb(rates=(0.0,)), r"rates: expected .* found \(0.0,\)"),
        (lambda: BandPass(low_hz=(300.0, 4000.0)), "expected 0 < low_hz < high_hz"),
        (lambda: Equalizer(bands=1), "bands: expected an integer >= 2, found 1"),
        (lambda: Reverberation(rt60=(0.0, 0.5)), "rt60: expected reverberation times > 0 s"),
        (lambda: MixUtterances(snr_db=(20.0, 10.0)), "snr_db: expected"),
    ],
)
def test_bad_options_say_expected_and_found(build, message):
    with pytest.raises(ValueError, match=message):
        build()
