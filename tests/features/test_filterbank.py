"""Log-mel filterbank and MFCC: reference checks against librosa, padding, lengths, errors.

Kaldi (kaldi-native-fbank) is deliberately not a reference: Kaldi draws its triangles
linearly in the mel domain (not in Hz), leaves them un-normalised, and uses a Povey
window, pre-emphasis and DC removal, so no option setting makes the two definitions
coincide; librosa implements exactly the definition documented in
:mod:`speechssl.features.filterbank`.
"""

from __future__ import annotations

import math

import librosa
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from speechssl.config import ConfigError
from speechssl.data.batch import padded_compute
from speechssl.features import MFCC, FilterbankConfig, LogMelFilterbank, build_features, dct_matrix

SAMPLE_RATE = 16000


def speech_like(num_samples: int, seed: int = 0) -> np.ndarray:
    """A voiced, amplitude-modulated harmonic signal with a little noise (float32)."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / SAMPLE_RATE
    f0 = 120 + 30 * np.sin(2 * np.pi * 2 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 30))
    envelope = np.abs(np.sin(2 * np.pi * 3 * t)) + 0.05
    return (0.3 * voiced * envelope + 0.003 * rng.standard_normal(num_samples)).astype(np.float32)


def librosa_melspectrogram(y: np.ndarray, config: FilterbankConfig) -> np.ndarray:
    """librosa's float64 mel power spectrogram with the same options, ``(frames, n_mels)``."""
    return librosa.feature.melspectrogram(
        y=y.astype(np.float64),
        sr=config.sample_rate,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.win_length,
        window="hann",
        center=config.center,
        pad_mode="constant",
        power=config.power,
        n_mels=config.n_mels,
        fmin=config.f_min,
        fmax=config.f_max,
        htk=config.mel_scale == "htk",
        norm="slaney",
        dtype=np.float64,
    ).T


def run(module: torch.nn.Module, y: np.ndarray) -> np.ndarray:
    features, frame_lengths = module(torch.from_numpy(y)[None], torch.tensor([len(y)]))
    assert int(frame_lengths[0]) == features.shape[1]
    return features[0].double().numpy()


@pytest.mark.parametrize("mel_scale", ["slaney", "htk"])
@pytest.mark.parametrize(
    ("n_fft", "n_mels", "f_min", "f_max"), [(400, 80, 0.0, None), (512, 40, 50.0, 7600.0)]
)
def test_mel_filters_match_librosa(mel_scale, n_fft, n_mels, f_min, f_max):
    """Filters equal librosa's ``filters.mel`` up to float32 rounding (weights are <= 0.04, atol 1e-8)."""
    config = FilterbankConfig(
        n_fft=n_fft, win_length=400, n_mels=n_mels, f_min=f_min, f_max=f_max, mel_scale=mel_scale
    )
    reference = librosa.filters.mel(
        sr=SAMPLE_RATE,
        n_fft=n_fft,
        n_mels=n_mels,
        fmin=f_min,
        fmax=f_max,
        htk=mel_scale == "htk",
        dtype=np.float64,
    )
    ours = LogMelFilterbank(config).mel_filters  # (n_freqs, n_mels)
    assert ours.shape == (n_fft // 2 + 1, n_mels)
    np.testing.assert_allclose(ours.T.double().numpy(), reference, rtol=0, atol=1e-8)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"mel_scale": "htk"},
        {"center": False},
        {"power": 1.0},
        {"n_fft": 512, "win_length": 320, "n_mels": 40, "f_min": 20.0, "f_max": 7600.0},
    ],
)
def test_log_mel_matches_librosa(options):
    """``log(melspectrogram + log_offset)`` agrees with librosa within atol 2e-4 (natural-log units).

    Why this tolerance: our STFT runs in float32 against librosa's float64, so each mel
    energy carries an absolute error of roughly 1e-7 of the frame's peak energy; in the
    log domain the ``log_offset`` (1e-6) bounds how much that error can be amplified in
    near-silent bands. The measured maximum over these signals is ~3e-5.
    """
    config = FilterbankConfig(**options)
    y = speech_like(12345)  # deliberately not a multiple of the hop
    reference = np.log(librosa_melspectrogram(y, config) + config.log_offset)
    ours = run(LogMelFilterbank(config), y)
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, rtol=0, atol=2e-4)


def test_mfcc_matches_librosa():
    """MFCCs equal librosa's ``feature.mfcc`` (DCT-II, ortho, no lifter) up to the log base.

    librosa takes the DCT of ``10 log10(max(S, 1e-10))`` (decibels), we of ``ln(S + offset)``;
    with ``log_offset=1e-10`` the two differ by the factor ``10 / ln 10`` wherever
    ``S >> 1e-10`` (true for this signal, whose range is also within librosa's 80 dB
    ``top_db`` clip). Tolerance: atol 2e-3 dB on coefficients of magnitude ~300 (float32
    STFT against float64, as in the log-mel test, times the factor 4.34).
    """
    y = speech_like(SAMPLE_RATE, seed=1)
    module = MFCC(LogMelFilterbank(FilterbankConfig(log_offset=1e-10)), n_mfcc=13)
    ours = run(module, y) * (10 / math.log(10))
    reference = librosa.feature.mfcc(
        y=y.astype(np.float64),
        sr=SAMPLE_RATE,
        n_mfcc=13,
        n_fft=400,
        hop_length=160,
        win_length=400,
        n_mels=80,
        dtype=np.float64,
    ).T
    assert ours.shape == reference.shape == (101, 13)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=2e-3)


def test_mfcc_dct_matches_librosa_on_the_same_log_mel():
    """Given the same log-mel input, the DCT alone matches librosa's to float32 precision (atol 1e-4)."""
    y = speech_like(8000, seed=2)
    module = MFCC(n_mfcc=20)
    log_mel = run(module.filterbank, y)  # (frames, n_mels)
    reference = librosa.feature.mfcc(S=log_mel.T, n_mfcc=20).T
    np.testing.assert_allclose(run(module, y), reference, rtol=0, atol=1e-4)


def test_dct_matrix_is_orthonormal():
    basis = dct_matrix(80, 80).double()
    torch.testing.assert_close(basis.T @ basis, torch.eye(80, dtype=torch.float64), rtol=0, atol=1e-6)


@pytest.mark.parametrize("module_factory", [LogMelFilterbank, MFCC])
@pytest.mark.parametrize("center", [True, False])
def test_padded_utterance_has_same_features_as_alone(module_factory, center):
    config = FilterbankConfig(center=center)
    module = module_factory(LogMelFilterbank(config)) if module_factory is MFCC else module_factory(config)
    lengths = [16000, 9999, 1234, 400]
    signals = [torch.from_numpy(speech_like(n, seed=i)) for i, n in enumerate(lengths)]
    waveforms = torch.nn.utils.rnn.pad_sequence(signals, batch_first=True)  # (batch, samples)
    waveforms[1, lengths[1] :] = 5.0  # garbage after the end must be ignored
    features, frame_lengths = module(waveforms, torch.tensor(lengths))
    for i, signal in enumerate(signals):
        alone, alone_lengths = module(signal[None], torch.tensor([len(signal)]))
        valid = int(frame_lengths[i])
        assert valid == int(alone_lengths[0]) == alone.shape[1]
        torch.testing.assert_close(features[i, :valid], alone[0], rtol=0, atol=1e-4)
        assert torch.all(features[i, valid:] == 0)


@settings(max_examples=40, deadline=None)
@given(
    num_samples=st.integers(min_value=400, max_value=5000),
    hop_length=st.sampled_from([80, 160, 256]),
    center=st.booleans(),
)
def test_num_frames_equals_the_stft_frame_count(num_samples, hop_length, center):
    module = LogMelFilterbank(FilterbankConfig(hop_length=hop_length, center=center))
    features, frame_lengths = module(torch.zeros(1, num_samples), torch.tensor([num_samples]))
    expected = 1 + num_samples // hop_length if center else 1 + (num_samples - 400) // hop_length
    assert features.shape[1] == int(frame_lengths[0]) == expected
    assert int(module.num_frames(torch.tensor(num_samples))) == expected


def test_mel_matrix_and_window_are_buffers_not_parameters():
    module = MFCC()
    assert list(module.parameters()) == []
    buffers = dict(module.named_buffers())
    assert set(buffers) == {"dct", "filterbank.mel_filters", "filterbank.window"}
    assert module.state_dict() == {}  # derived from the config, never saved
    module = module.double()
    features, _ = module(torch.randn(2, 800, dtype=torch.float64), torch.tensor([800, 500]))
    assert features.dtype == torch.float64


def test_hop_length_and_n_mels_attributes():
    assert LogMelFilterbank().hop_length == 160
    assert LogMelFilterbank().n_mels == 80
    assert MFCC().hop_length == 160
    assert MFCC().n_mfcc == 13


@pytest.mark.parametrize(
    ("waveforms", "lengths", "match"),
    [
        (torch.zeros(800), torch.tensor([800]), "waveforms: expected \\(batch, samples\\)"),
        (torch.zeros(2, 1, 800), torch.tensor([800, 800]), "waveforms"),
        (torch.zeros(2, 800), torch.tensor([800]), "lengths: expected shape \\(batch,\\) = \\(2,\\)"),
    ],
)
def test_wrong_shapes_raise(waveforms, lengths, match):
    with pytest.raises(ValueError, match=match):
        LogMelFilterbank()(waveforms, lengths)


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"win_length": 512}, "win_length"),
        ({"f_max": 9000.0}, "f_max"),
        ({"f_min": 8000.0}, "f_min"),
        ({"mel_scale": "mel"}, "mel_scale"),
        ({"hop_length": 0}, "hop_length"),
        ({"log_offset": 0.0}, "log_offset"),
        ({"n_mel": 40}, "n_mel"),
    ],
)
def test_build_features_rejects_bad_options(options, key):
    with pytest.raises(ConfigError, match=key):
        build_features("fbank", **options)


def test_build_features():
    fbank = build_features("fbank", n_mels=40, f_max=8000)
    assert isinstance(fbank, LogMelFilterbank) and fbank.n_mels == 40
    mfcc = build_features("mfcc", n_mfcc=20, n_mels=64)
    assert isinstance(mfcc, MFCC) and mfcc.n_mfcc == 20 and mfcc.filterbank.n_mels == 64
    with pytest.raises(ConfigError, match="'plp'"):
        build_features("plp")
    with pytest.raises(ConfigError, match="n_mfcc"):
        build_features("mfcc", n_mfcc="13")
    with pytest.raises(ValueError, match="n_mfcc"):
        MFCC(n_mfcc=81)


def test_features_stay_in_full_precision_under_autocast():
    waveforms = torch.from_numpy(speech_like(4000))[None]
    expected, _ = LogMelFilterbank()(waveforms, torch.tensor([4000]))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        features, _ = LogMelFilterbank()(waveforms, torch.tensor([4000]))
    assert features.dtype == torch.float32
    torch.testing.assert_close(features, expected)


def test_a_batch_split_into_several_stft_chunks_equals_one_pass(monkeypatch):
    """Long batches run the STFT a few utterances at a time; the result is the same as one pass."""
    generator = torch.Generator().manual_seed(0)
    waveforms = torch.randn(5, 4000, generator=generator)
    lengths = torch.tensor([4000, 3100, 2500, 800, 4000])
    filterbank = LogMelFilterbank(FilterbankConfig())
    whole, whole_lengths = filterbank(waveforms, lengths)
    monkeypatch.setattr("speechssl.features.filterbank.CHUNK_SAMPLES", 8000)  # 2 utterances per chunk
    chunked, chunked_lengths = filterbank(waveforms, lengths)
    torch.testing.assert_close(chunked, whole)
    assert torch.equal(chunked_lengths, whole_lengths)


@pytest.mark.parametrize("feature", ["log-mel", "mfcc"])
def test_features_over_each_length_equal_the_padded_batch(feature):
    """With lengths in host memory, utterances run in chunks cut at their longest; the features
    are those of the padded batch computed at full length."""
    torch.manual_seed(0)
    filterbank = LogMelFilterbank(FilterbankConfig(n_mels=40))
    module = filterbank if feature == "log-mel" else MFCC(filterbank)
    lengths = torch.tensor([1000, 16000, 4001, 16000, 160, 9999])
    waveforms = torch.randn(6, 16000)
    bucketed, frames = module(waveforms, lengths)
    with padded_compute():
        padded, padded_frames = module(waveforms, lengths)
    assert torch.equal(frames, padded_frames) and bucketed.shape == padded.shape
    torch.testing.assert_close(bucketed, padded, rtol=1e-5, atol=1e-4)
