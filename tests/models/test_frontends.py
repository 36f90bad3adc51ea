"""Front-ends: length arithmetic against real conv outputs, padding invariance, the transform hook."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn

from speechssl.data.batch import padded_compute
from speechssl.features import FilterbankConfig, LogMelFilterbank
from speechssl.models import (
    ConvFeatureEncoder,
    ConvSubsampling,
    FilterbankFrontend,
    MaskedGroupNorm,
    WaveformFrontend,
    build_frontend,
    conv_output_lengths,
    utterance_mean_variance_norm,
)

SAMPLE_COUNTS = [400, 401, 719, 720, 1039, 1040, 3200, 16000, 16001, 16319]


def fbank_frontend(causal: bool = False, feature_norm: bool = True) -> FilterbankFrontend:
    filterbank = LogMelFilterbank(FilterbankConfig(n_mels=40))
    return FilterbankFrontend(filterbank, ConvSubsampling(40, 8, 32, causal=causal), feature_norm).eval()


def waveform_frontend(norm: str = "group") -> WaveformFrontend:
    return WaveformFrontend(ConvFeatureEncoder.wav2vec2(channels=16, norm=norm), dim=32).eval()


@pytest.mark.parametrize("causal", [False, True])
def test_fbank_output_lengths_match_conv_output_sizes(causal):
    frontend = fbank_frontend(causal)
    for n in SAMPLE_COUNTS:
        x, lengths = frontend(torch.randn(1, n), torch.tensor([n]))
        assert x.shape == (1, int(lengths[0]), 32)
        assert int(frontend.output_lengths(torch.tensor(n))) == int(lengths[0])
        # 4x subsampling of 1 + n // 160 filterbank frames, rounding up.
        assert int(lengths[0]) == -(-(1 + n // 160) // 4)
    assert frontend.downsample_rate == 640
    assert frontend.feature_dim == 40


def test_waveform_output_lengths_match_conv_output_sizes():
    frontend = waveform_frontend()
    encoder = frontend.feature_encoder
    assert frontend.downsample_rate == 320
    assert encoder.receptive_field == 400  # 25 ms at 16 kHz (Baevski et al. 2020, §4.2)
    assert frontend.feature_dim == 16
    for n in SAMPLE_COUNTS:
        x, lengths = frontend(torch.randn(1, n), torch.tensor([n]))
        assert x.shape == (1, int(lengths[0]), 32)
        assert int(frontend.output_lengths(torch.tensor(n))) == int(lengths[0])
        expected = torch.tensor(n)
        for kernel, stride in zip((10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2), strict=True):
            expected = (expected - kernel) // stride + 1
        assert int(lengths[0]) == int(expected)
    # One second of audio gives 49 frames in wav2vec 2.0.
    assert int(frontend.output_lengths(torch.tensor(16000))) == 49


def test_conv_output_lengths_agrees_with_nn_conv1d():
    for kernel, stride, total_padding in [(3, 2, 2), (10, 5, 0), (2, 2, 0), (5, 1, 4)]:
        conv = nn.Conv1d(1, 1, kernel, stride, padding=total_padding // 2)
        for n in range(kernel, 60):
            assert conv(torch.zeros(1, 1, n)).shape[-1] == int(
                conv_output_lengths(torch.tensor(n), kernel, stride, total_padding)
            )


@pytest.mark.parametrize(
    "frontend_factory",
    [
        lambda: fbank_frontend(),
        lambda: fbank_frontend(causal=True, feature_norm=False),
        lambda: waveform_frontend("group"),
        lambda: waveform_frontend("layer"),
    ],
    ids=["fbank", "fbank-causal", "waveform-group", "waveform-layer"],
)
def test_padded_utterance_gives_same_frames_as_alone(frontend_factory, speech_batch):
    frontend = frontend_factory()
    lengths = [9600, 4321, 2000]
    waveforms, lengths_tensor = speech_batch(lengths)
    with torch.no_grad():
        x, out_lengths = frontend(waveforms, lengths_tensor)
        for i, n in enumerate(lengths):
            alone, alone_lengths = frontend(waveforms[i : i + 1, :n], torch.tensor([n]))
            valid = int(out_lengths[i])
            assert valid == int(alone_lengths[0]) == alone.shape[1]
            torch.testing.assert_close(x[i, :valid], alone[0], rtol=1e-4, atol=1e-5)
            assert torch.all(x[i, valid:] == 0)


@pytest.mark.parametrize("kind", ["fbank", "waveform"])
def test_feature_transform_is_applied_to_the_intermediate_features(kind, make_config, speech_batch):
    frontend = build_frontend(make_config(kind)).eval()
    waveforms, lengths = speech_batch([8000, 5000])
    seen = {}

    def silence_first_channels(features, feature_lengths):
        seen["shape"], seen["lengths"] = features.shape, feature_lengths.clone()
        masked = features.clone()
        masked[:, :, :4] = 0.0  # a frequency / channel mask
        return masked + 1.0  # also dirties the padded frames, which must be zeroed again

    with torch.no_grad():
        plain, plain_lengths = frontend(waveforms, lengths)
        masked, masked_lengths = frontend(waveforms, lengths, feature_transform=silence_first_channels)
    assert seen["shape"][-1] == frontend.feature_dim
    if kind == "fbank":
        assert torch.equal(seen["lengths"], frontend.filterbank.num_frames(lengths))
    else:
        assert torch.equal(seen["lengths"], plain_lengths)
    assert torch.equal(plain_lengths, masked_lengths)
    assert not torch.allclose(plain, masked)
    assert torch.all(masked[1, int(masked_lengths[1]) :] == 0)


def test_masked_group_norm_equals_group_norm_without_padding():
    x = torch.randn(3, 8, 50)
    ours = MaskedGroupNorm(4, 8)
    reference = nn.GroupNorm(4, 8)
    with torch.no_grad():
        ours.weight.normal_()
        ours.bias.normal_()
        reference.weight.copy_(ours.weight)
        reference.bias.copy_(ours.bias)
    torch.testing.assert_close(ours(x, torch.full((3,), 50)), reference(x), rtol=1e-5, atol=1e-5)


def test_masked_group_norm_ignores_padding():
    norm = MaskedGroupNorm(8, 8)
    x = torch.randn(1, 8, 30)
    padded = torch.cat([x, 100 * torch.randn(1, 8, 20)], dim=-1)  # (1, channels, 50)
    out = norm(padded, torch.tensor([30]))
    torch.testing.assert_close(out[..., :30], norm(x, torch.tensor([30])))
    assert torch.all(out[..., 30:] == 0)


@pytest.mark.parametrize("groups", [8, 4, 1])
def test_masked_group_norm_equals_group_norm_of_each_unpadded_utterance(groups):
    torch.manual_seed(0)
    lengths = torch.tensor([50, 31, 2])
    x = (torch.randn(3, 8, 50) * 2 + 3).requires_grad_()
    grad = torch.randn(3, 8, 50)
    ours = MaskedGroupNorm(groups, 8)
    reference = nn.GroupNorm(groups, 8)
    with torch.no_grad():
        ours.weight.normal_()
        ours.bias.normal_()
        reference.weight.copy_(ours.weight)
        reference.bias.copy_(ours.bias)
    out = ours(x, lengths)
    (out * grad).sum().backward()
    for i, length in enumerate(lengths.tolist()):
        utterance = x[i : i + 1, :, :length].detach().requires_grad_()
        expected = reference(utterance)
        (expected * grad[i : i + 1, :, :length]).sum().backward()
        torch.testing.assert_close(out[i : i + 1, :, :length], expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(x.grad[i : i + 1, :, :length], utterance.grad, rtol=1e-4, atol=1e-5)
        assert torch.all(out[i, :, length:] == 0)
        assert torch.all(x.grad[i, :, length:] == 0)
    torch.testing.assert_close(ours.weight.grad, reference.weight.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours.bias.grad, reference.bias.grad, rtol=1e-4, atol=1e-5)


def test_masked_group_norm_gradients_pass_gradcheck():
    norm = MaskedGroupNorm(2, 4).double()
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(2, 4, 9, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([9, 5])
    assert torch.autograd.gradcheck(lambda x, w, b: norm(x, lengths), (x, norm.weight, norm.bias))


def test_masked_group_norm_without_lengths_is_group_norm():
    x = torch.randn(2, 8, 30)
    norm = MaskedGroupNorm(4, 8)
    torch.testing.assert_close(norm(x, None), norm(x, torch.full((2,), 30)), rtol=1e-5, atol=1e-5)


def test_utterance_mean_variance_norm_uses_valid_frames_only():
    features = torch.randn(2, 40, 5) * 3 + 7
    features[1, 25:] = 1e3  # padding
    normed = utterance_mean_variance_norm(features, torch.tensor([40, 25]))
    valid = normed[1, :25]
    torch.testing.assert_close(valid.mean(0), torch.zeros(5), atol=1e-5, rtol=0)
    torch.testing.assert_close(valid.var(0, unbiased=False), torch.ones(5), atol=1e-3, rtol=0)
    assert torch.all(normed[1, 25:] == 0)


def test_waveform_frontend_rejects_utterances_shorter_than_the_receptive_field():
    frontend = waveform_frontend()
    assert frontend.min_samples == 400
    frontend.check_lengths(torch.tensor([800, 400]))
    with pytest.raises(ValueError, match=r"at least 400 samples.*found 399"):
        frontend.check_lengths(torch.tensor([800, 399]))
    fbank_frontend().check_lengths(torch.tensor([800, 1]))  # no minimum


@pytest.mark.parametrize("frontend_factory", [fbank_frontend, waveform_frontend])
def test_wrong_shapes_raise(frontend_factory):
    frontend = frontend_factory()
    with pytest.raises(ValueError, match="waveforms: expected \\(batch, samples\\)"):
        frontend(torch.zeros(800), torch.tensor([800]))
    with pytest.raises(ValueError, match="lengths"):
        frontend(torch.zeros(2, 800), torch.tensor([800]))


def test_mismatched_parts_raise():
    with pytest.raises(ValueError, match=r"subsampling\.in_features: expected n_mels=80, found 40"):
        FilterbankFrontend(LogMelFilterbank(), ConvSubsampling(40, 8, 32))
    with pytest.raises(ValueError, match="strides"):
        ConvFeatureEncoder.wav2vec2(kernels=(10, 3), strides=(5,))


@pytest.mark.parametrize("norm", ["group", "layer"])
def test_cnn_over_each_length_equals_the_padded_batch(norm):
    """With lengths in host memory the CNN runs each length unpadded; values and gradients are
    those of the padded batch, and an utterance shorter than the receptive field has no frame."""
    torch.manual_seed(0)
    cnn = ConvFeatureEncoder.wav2vec2(channels=16, norm=norm)
    waveforms = torch.randn(5, 4000, requires_grad=True)
    lengths = torch.tensor([4000, 3100, 3100, 1200, 300])

    def run(context):
        with context:
            features, frames = cnn(waveforms[:, None, :], lengths)
        (grad,) = torch.autograd.grad((features * torch.linspace(-1, 1, features.shape[2])).sum(), waveforms)
        return features, frames, grad

    grouped, padded = run(contextlib.nullcontext()), run(padded_compute())
    assert torch.equal(grouped[1], padded[1]) and grouped[1][-1] == 0
    torch.testing.assert_close(grouped[0], padded[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grouped[2], padded[2], rtol=1e-4, atol=1e-5)
