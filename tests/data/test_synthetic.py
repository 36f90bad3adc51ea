"""Synthetic corpus: determinism, caching, factor independence and that the factors are audible."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import soundfile
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from speechssl.config import ConfigError, from_dict
from speechssl.data.audio import DEFAULT_SAMPLE_RATE, load_audio
from speechssl.data.synthetic import (
    WORDS,
    SpeakerVoice,
    SyntheticConfig,
    UtteranceFactors,
    generate_synthetic_corpus,
    resonator_sos,
    sample_factors,
    sample_speakers,
    synthesize_utterance,
)

FACTORS = ("speaker", "word", "contour", "rate", "loudness", "snr")


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    """240 utterances of 6 speakers, generated once for the module."""
    config = SyntheticConfig(num_utterances=240, num_speakers=6, seed=3)
    return generate_synthetic_corpus(config, tmp_path_factory.mktemp("synthetic"))


def test_config_validation():
    with pytest.raises(ValueError, match="num_speakers must be >= 2"):
        SyntheticConfig(num_speakers=1)
    with pytest.raises(ValueError, match="sum below 1"):
        SyntheticConfig(valid_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ConfigError, match="num_utterances: expected int, found 'many'"):
        from_dict(SyntheticConfig, {"num_utterances": "many"})


def test_same_seed_same_audio_other_seed_other_audio(tmp_path):
    config = SyntheticConfig(num_utterances=12, num_speakers=4, seed=7)
    first = generate_synthetic_corpus(config, tmp_path / "a")
    second = generate_synthetic_corpus(config, tmp_path / "b")
    other = generate_synthetic_corpus(
        SyntheticConfig(num_utterances=12, num_speakers=4, seed=8), tmp_path / "c"
    )
    for row_a, row_b in zip(first, second, strict=True):
        assert row_a.path.read_bytes() == row_b.path.read_bytes()
        assert (row_a.labels, row_a.speaker, row_a.split, row_a.duration) == (
            row_b.labels,
            row_b.speaker,
            row_b.split,
            row_b.duration,
        )
    assert any(a.path.read_bytes() != c.path.read_bytes() for a, c in zip(first, other, strict=True))


def test_regeneration_is_skipped_for_the_same_config(tmp_path):
    config = SyntheticConfig(num_utterances=6, num_speakers=2)
    manifest = generate_synthetic_corpus(config, tmp_path)
    stamp = manifest[0].path.stat().st_mtime_ns
    assert generate_synthetic_corpus(config, tmp_path) == manifest
    assert manifest[0].path.stat().st_mtime_ns == stamp
    bigger = generate_synthetic_corpus(SyntheticConfig(num_utterances=8, num_speakers=2), tmp_path)
    assert len(bigger) == 8


def test_manifest_columns_splits_and_durations(small_corpus):
    manifest = small_corpus
    assert manifest.label_columns == (
        "gender", "word", "phones", "phone_times", "contour", "rate", "loudness", "snr"
    )  # fmt: skip
    assert set(manifest.column("sample_rate")) == {DEFAULT_SAMPLE_RATE}
    assert all(row.labels["phones"].split() == list(WORDS[row.labels["word"]]) for row in manifest)
    assert all(2 <= len(phones) <= 4 for phones in WORDS.values()) and len(WORDS) == 10
    for split in ("train", "valid", "test"):  # every speaker in every split, so speaker ID works
        assert len(manifest.filter(split=split).counts("speaker")) == 6
    assert 0.5 < manifest.durations.mean() < 1.2
    row = manifest[0]
    assert soundfile.info(str(row.path)).frames == round(row.duration * DEFAULT_SAMPLE_RATE)


def test_factors_are_independent():
    factors = sample_factors(SyntheticConfig(num_utterances=3000, num_speakers=20, seed=0))
    table = {
        name: [str(getattr(f, name).id if name == "speaker" else getattr(f, name)) for f in factors]
        for name in FACTORS
    }
    for a, b in itertools.combinations(FACTORS, 2):
        values_a, values_b = sorted(set(table[a])), sorted(set(table[b]))
        counts = np.zeros((len(values_a), len(values_b)))
        for x, y in zip(table[a], table[b], strict=True):
            counts[values_a.index(x), values_b.index(y)] += 1
        p_value = stats.chi2_contingency(counts).pvalue
        assert p_value > 1e-3, f"{a} and {b} look dependent (chi-square p = {p_value:.2g})"


def test_speaker_voices_follow_gender():
    voices = sample_speakers(20, seed=0)
    assert sum(v.gender == "f" for v in voices) == 10
    female = [v for v in voices if v.gender == "f"]
    male = [v for v in voices if v.gender == "m"]
    assert min(v.f0_hz for v in female) > max(v.f0_hz for v in male)
    assert min(v.vtl_factor for v in female) > max(v.vtl_factor for v in male)


def test_resonator_has_unity_dc_gain_and_peaks_at_its_formant():
    from scipy.signal import sosfreqz

    frequencies, response = sosfreqz(
        resonator_sos(1000.0, 100.0, DEFAULT_SAMPLE_RATE)[None, :], worN=4096, fs=DEFAULT_SAMPLE_RATE
    )
    assert abs(response[0]) == pytest.approx(1.0)
    assert frequencies[np.argmax(np.abs(response))] == pytest.approx(1000.0, abs=10)


def estimate_f0(waveform: np.ndarray) -> np.ndarray:
    """Autocorrelation F0 (Hz) of each loud 40 ms frame of ``waveform`` ``(samples,)``."""
    frame, hop = 640, 160
    frames = np.lib.stride_tricks.sliding_window_view(waveform, frame)[::hop]  # (frames, frame)
    energy = np.sqrt(np.mean(frames**2, axis=1))
    f0 = []
    for segment in frames[energy > 0.3 * energy.max()]:
        segment = segment - segment.mean()
        correlation = np.correlate(segment, segment, mode="full")[frame - 1 :]
        lags = np.arange(DEFAULT_SAMPLE_RATE // 400, DEFAULT_SAMPLE_RATE // 60)
        f0.append(DEFAULT_SAMPLE_RATE / lags[np.argmax(correlation[lags])])
    return np.array(f0)


@pytest.mark.parametrize(("contour", "sign"), [("rise", 1), ("fall", -1), ("flat", 0)])
def test_pitch_contour_is_audible(contour, sign):
    voice = SpeakerVoice(
        "x", "m", f0_hz=120.0, vtl_factor=1.0, open_quotient=0.6, breathiness=0.03, tilt_coefficient=0.8
    )
    waveform = synthesize_utterance(
        UtteranceFactors(voice, "ua", contour, "slow", "medium", "30dB"), np.random.default_rng(0)
    )
    f0 = estimate_f0(waveform)
    change = 12 * np.log2(np.median(f0[-3:]) / np.median(f0[:3]))  # semitones
    if sign == 0:
        assert abs(change) < 1.5
    else:
        assert sign * change > 3


def test_rate_loudness_and_noise_are_audible(small_corpus):
    def mean_over(column, value, measure):
        return np.mean([measure(row) for row in small_corpus.filter(**{column: value})])

    def duration(row):
        return row.duration

    def level(row):
        return 20 * np.log10(np.sqrt(np.mean(load_audio(row.path) ** 2)))

    def noise_floor(row):  # leading silence relative to the whole
        waveform = load_audio(row.path)
        return 20 * np.log10(np.std(waveform[:1600]) / np.std(waveform))

    rates = [mean_over("rate", value, duration) for value in ("slow", "normal", "fast")]
    levels = [mean_over("loudness", value, level) for value in ("soft", "medium", "loud")]
    floors = [mean_over("snr", value, noise_floor) for value in ("30dB", "20dB", "10dB")]
    assert rates[0] > rates[1] > rates[2]
    assert levels[0] + 5 < levels[1] < levels[2] - 5
    assert floors[0] + 7 < floors[1] < floors[2] - 7


def log_spectrum_mean(waveform: np.ndarray) -> np.ndarray:
    """Mean log power spectrum ``(frequencies,)`` over 32 ms frames of ``waveform`` ``(samples,)``."""
    frames = np.lib.stride_tricks.sliding_window_view(waveform, 512)[::160] * np.hanning(512)  # (frames, 512)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (frames, 257)
    return np.log(power + 1e-10).mean(axis=0)


def test_linear_probe_recovers_speaker_and_word(small_corpus):
    features = np.stack(
        [log_spectrum_mean(load_audio(row.path)) for row in small_corpus]
    )  # (utterances, 257)
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    speaker = cross_val_score(probe, features, small_corpus.column("speaker"), cv=3).mean()
    word = cross_val_score(probe, features, small_corpus.column("word"), cv=3).mean()
    assert speaker > 3 * (1 / 6), f"speaker accuracy {speaker:.2f}"
    assert word > 3 * (1 / 10), f"word accuracy {word:.2f}"
