"""Log-mel targets: block stacking, the front-end's own features, the masked mean."""

from __future__ import annotations

import pytest
import torch

from speechssl.methods.log_mel_targets import (
    encode_with_log_mel_targets,
    log_mel_stride,
    masked_frame_mean,
    stack_frames,
)
from speechssl.models import EncoderConfig, SpeechEncoder


def test_stack_frames_groups_consecutive_frames_and_marks_the_partial_last_block():
    features = torch.arange(2 * 6 * 1, dtype=torch.float32).view(2, 6, 1)  # (batch, frames, channels)
    features[1, 3:] = 0.0
    blocks, valid = stack_frames(features, torch.tensor([6, 3]), stride=4, frames=2)
    assert blocks.shape == (2, 2, 4, 1)
    assert blocks[0, :, :, 0].tolist() == [[0, 1, 2, 3], [4, 5, 0, 0]]
    assert valid.tolist() == [
        [[True] * 4, [True, True, False, False]],
        [[True, True, True, False], [False] * 4],
    ]


def test_masked_frame_mean_ignores_invalid_frames_and_is_zero_without_any():
    errors = torch.tensor([[[[1.0, 3.0], [100.0, 100.0]]]])  # (batch, frames, stride, channels)
    valid = torch.tensor([[[True, False]]])
    assert masked_frame_mean(errors, valid).item() == pytest.approx(2.0)
    assert masked_frame_mean(errors, torch.zeros_like(valid)).item() == 0.0


def test_targets_are_the_front_ends_own_log_mel_features():
    config = EncoderConfig(
        dim=16, layers=1, heads=2, ffn_dim=32, pos_conv_kernel=4, pos_conv_groups=4, n_mels=20,
        subsampling_channels=4,
    )  # fmt: skip
    encoder = SpeechEncoder.from_config(config).eval()
    waveforms, lengths = 0.1 * torch.randn(2, 5000), torch.tensor([5000, 3300])
    waveforms[1, 3300:] = 0.0
    stride = log_mel_stride(encoder, "test")
    encoded = encode_with_log_mel_targets(encoder, waveforms, lengths, stride)
    features, feature_lengths = encoder.frontend.filterbank(waveforms, lengths)
    frames = encoded.output.last_hidden_state.shape[1]
    assert stride == 4 and encoded.targets.shape == (2, frames, 4, 20)
    features = features.clone()
    for row, n in enumerate(feature_lengths.tolist()):  # per-utterance normalisation (feature_norm)
        valid = features[row, :n]
        features[row, :n] = (valid - valid.mean(0)) / torch.sqrt(valid.var(0, unbiased=False) + 1e-5)
    expected, expected_valid = stack_frames(features, feature_lengths, 4, frames)
    torch.testing.assert_close(encoded.targets, expected, rtol=1e-4, atol=1e-4)
    assert torch.equal(encoded.valid, expected_valid)
    assert int(encoded.valid[1].sum()) == int(feature_lengths[1])


def test_waveform_front_end_has_no_log_mel_targets():
    config = EncoderConfig(
        frontend="waveform", dim=16, layers=1, heads=2, ffn_dim=32, pos_conv_kernel=4, pos_conv_groups=4,
        conv_channels=8,
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"encoder\.frontend: expected 'fbank'.*found 'waveform'"):
        log_mel_stride(SpeechEncoder.from_config(config), "APC")
