"""Condition shifts of the test audio: exact SNR, band limit, gain, seeded and written once."""

from __future__ import annotations

import math

import numpy as np
import soundfile
import torch

from speechssl.data import Manifest, Utterance
from speechssl.downstream.conditions import CONDITIONS, shifted_copies


def tone(seconds: float = 0.5, hz: float = 440.0) -> torch.Tensor:
    t = torch.arange(int(16000 * seconds)) / 16000
    return 0.3 * torch.sin(2 * math.pi * hz * t) + 0.1 * torch.sin(2 * math.pi * 6000 * t)


def test_noise_is_added_at_20_db_snr_and_seeded_by_the_utterance_id():
    x = tone()
    noisy = CONDITIONS["noise20db"].apply(x, "a")
    snr = 10 * torch.log10(x.pow(2).sum() / (noisy - x).pow(2).sum())
    assert abs(float(snr) - 20.0) < 1e-3
    assert torch.equal(noisy, CONDITIONS["noise20db"].apply(x, "a"))
    assert not torch.equal(noisy, CONDITIONS["noise20db"].apply(x, "b"))


def test_telephone_removes_what_lies_above_4_khz_and_keeps_the_length():
    x = tone()
    narrow = CONDITIONS["telephone"].apply(x, "a")
    assert narrow.shape == x.shape
    spectrum = torch.fft.rfft(narrow[2000:6000]).abs()  # 4000 samples: bin k is 4 k Hz
    assert spectrum[1500] < 0.01 * spectrum[110]  # 6 kHz component gone, 440 Hz kept


def test_gain_scales_by_a_tenth():
    x = tone()
    torch.testing.assert_close(CONDITIONS["gain-20db"].apply(x, "a"), 0.1 * x)


def test_shifted_copies_are_written_once_with_suffixed_ids(tmp_path):
    path = tmp_path / "a.wav"
    soundfile.write(path, tone().numpy(), 16000)
    manifest = Manifest([Utterance("a", path, 0.5, 16000, "s1", "test", {"keyword": "yes"})])
    copies = shifted_copies(manifest, CONDITIONS["noise20db"], tmp_path / "out")
    (row,) = copies
    assert row.id == "a@noise20db" and row.labels == {"keyword": "yes"} and row.split == "test"
    audio, rate = soundfile.read(row.path, dtype="float32")
    assert rate == 16000 and len(audio) == 8000
    expected = CONDITIONS["noise20db"].apply(tone(), "a").numpy()
    assert np.abs(audio - expected).max() < 1e-4  # the source wav is 16-bit
    written = row.path.stat().st_mtime_ns
    shifted_copies(manifest, CONDITIONS["noise20db"], tmp_path / "out")
    assert row.path.stat().st_mtime_ns == written
