"""Decoding, downmixing, resampling and the errors for bad files."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import soundfile

from speechssl.data.audio import AudioError, BadFile, BadFileSummary, audio_info, load_audio


def test_load_audio_downmixes_and_keeps_rate(tmp_path, write_audio):
    path = write_audio(tmp_path / "stereo.wav", seconds=0.25, sample_rate=16000, channels=2, subtype="FLOAT")
    stereo, _ = soundfile.read(str(path), dtype="float32")  # (samples, channels)
    waveform = load_audio(path)
    assert waveform.dtype == np.float32 and waveform.shape == (4000,)
    np.testing.assert_allclose(waveform, stereo.mean(axis=1), atol=1e-7)


def test_load_audio_resamples_a_sine_accurately(tmp_path):
    rate, frequency = 8000, 440.0
    time = np.arange(8000) / rate
    path = tmp_path / "sine8k.wav"
    soundfile.write(
        str(path), (0.5 * np.sin(2 * np.pi * frequency * time)).astype(np.float32), rate, subtype="FLOAT"
    )
    waveform = load_audio(path, target_sr=16000)
    assert waveform.shape == (16000,)
    reference = 0.5 * np.sin(2 * np.pi * frequency * np.arange(16000) / 16000)
    inner = slice(200, -200)  # away from the filter's edge transients
    assert np.max(np.abs(waveform[inner] - reference[inner])) < 1e-3


def test_target_sr_none_keeps_native_rate(tmp_path, write_audio):
    path = write_audio(tmp_path / "a.wav", seconds=0.5, sample_rate=8000)
    assert load_audio(path, target_sr=None).shape == (4000,)


def test_offset_and_num_seconds_read_the_segment(tmp_path, write_audio):
    path = write_audio(tmp_path / "a.flac", seconds=1.0, sample_rate=16000)
    full = load_audio(path)
    segment = load_audio(path, offset_seconds=0.25, num_seconds=0.5)
    np.testing.assert_array_equal(segment, full[4000:12000])
    tail = load_audio(path, offset_seconds=0.9, num_seconds=0.5)  # runs past the end: cut short
    np.testing.assert_array_equal(tail, full[14400:])


def test_offset_past_end_is_an_error(tmp_path, write_audio):
    path = write_audio(tmp_path / "short.wav", seconds=0.1)
    with pytest.raises(AudioError, match="past the end") as info:
        load_audio(path, offset_seconds=0.5, num_seconds=0.1)
    assert info.value.path == path


def test_audio_info_reads_header(tmp_path, write_audio):
    path = write_audio(tmp_path / "a.wav", seconds=0.75, sample_rate=8000, channels=2)
    info = audio_info(path)
    assert (info.frames, info.sample_rate, info.channels, info.format) == (6000, 8000, 2, "WAV")
    assert info.duration == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("missing", "file not found"),
        ("zero_bytes", "not a readable audio file"),
        ("garbage", "not a readable audio file"),
        ("empty", "empty audio file"),
        ("nan", "non-finite"),
    ],
)
def test_bad_files_raise_audio_error_naming_the_file(bad_files, kind, reason):
    path = bad_files[kind]
    with pytest.raises(AudioError) as info:
        load_audio(path)
    assert str(path) in str(info.value)
    assert reason in info.value.reason
    assert info.value.path == path


@pytest.mark.parametrize("kind", ["missing", "zero_bytes", "garbage"])
def test_audio_info_rejects_non_audio(bad_files, kind):
    with pytest.raises(AudioError, match=bad_files[kind].name):
        audio_info(bad_files[kind])


def test_audio_error_survives_pickling(tmp_path):
    error = pickle.loads(pickle.dumps(AudioError(tmp_path / "x.wav", "file not found")))
    assert error.path == tmp_path / "x.wav" and error.reason == "file not found"
    assert str(error) == f"{tmp_path / 'x.wav'}: file not found"


def test_bad_file_summary_counts_and_lists():
    summary = BadFileSummary()
    assert not summary and summary.format() == "no bad files"
    summary.add(BadFile("a", "/x/a.wav", "file not found"))
    summary.extend([BadFile(f"b{i}", f"/x/b{i}.wav", "empty audio file") for i in range(3)])
    assert summary.count == len(summary) == 4 and summary.ids == {"a", "b0", "b1", "b2"}
    text = summary.format(limit=2)
    assert text.startswith("4 bad file(s)") and "/x/a.wav: file not found" in text and "2 more" in text
    assert summary.to_dict()["files"][0] == {"id": "a", "path": "/x/a.wav", "reason": "file not found"}


def test_real_fsdd_file_is_resampled_to_16k(shared_data):
    path = shared_data("fsdd") / "recordings" / "0_george_0.wav"
    info = audio_info(path)
    waveform = load_audio(path)
    assert info.sample_rate == 8000
    assert abs(len(waveform) - 2 * info.frames) <= 1
    assert np.isfinite(waveform).all() and 0 < np.abs(waveform).max() <= 1.0
