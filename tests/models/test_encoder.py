"""SpeechEncoder: outputs, padding invariance, causality, config validation, presets, training."""

from __future__ import annotations

import pytest
import torch

from speechssl.config import ConfigError, from_dict, to_dict
from speechssl.models import (
    EncoderConfig,
    EncoderOutput,
    SpeechEncoder,
    encoder_presets,
    load_encoder_preset,
    masked_mean,
)


def count_parameters(config: EncoderConfig) -> int:
    """Parameters of the encoder built on the meta device: no memory, no forward pass."""
    with torch.device("meta"):
        encoder = SpeechEncoder.from_config(config)
    return sum(p.numel() for p in encoder.parameters())


@pytest.mark.parametrize("frontend", ["fbank", "waveform"])
def test_forward_returns_every_hidden_state_with_exact_lengths(frontend, make_config, speech_batch):
    encoder = SpeechEncoder.from_config(make_config(frontend, layers=3)).eval()
    waveforms, lengths = speech_batch([16000, 11111, 3000])
    output = encoder(waveforms, lengths)
    assert isinstance(output, EncoderOutput)
    assert encoder.num_layers == len(output.hidden_states) == 4
    frames = int(encoder.output_lengths(torch.tensor(16000)))
    assert all(h.shape == (3, frames, 32) for h in output.hidden_states)
    assert torch.equal(output.lengths, encoder.output_lengths(lengths))
    assert output.downsample_rate == encoder.downsample_rate == (640 if frontend == "fbank" else 320)
    assert encoder.dim == 32
    assert encoder.config.frontend == frontend


@pytest.mark.parametrize(
    "options",
    [
        {"frontend": "fbank"},
        {"frontend": "waveform"},
        {"frontend": "waveform", "conv_norm": "layer"},
        {"frontend": "waveform", "layer_norm_first": False},
        {
            "frontend": "waveform",
            "conv_norm": "layer",
            "layer_norm_first": False,
            "waveform_norm": True,
            "pos_conv_norm": "layer",
            "pos_conv_layers": 3,
        },
        {"frontend": "waveform", "relative_position_buckets": 16, "relative_position_max_distance": 20},
    ],
    ids=["fbank", "waveform-group", "waveform-layer", "post-ln", "data2vec-audio", "wavlm"],
)
def test_padding_invariance_in_eval_mode(options, make_config, speech_batch):
    encoder = SpeechEncoder.from_config(make_config(**options)).eval()
    lengths = [12000, 7777, 2500]
    waveforms, lengths_tensor = speech_batch(lengths, seed=3)
    with torch.no_grad():
        batched = encoder(waveforms, lengths_tensor)
        for i, n in enumerate(lengths):
            alone = encoder(waveforms[i : i + 1, :n], torch.tensor([n]))
            valid = int(batched.lengths[i])
            assert valid == int(alone.lengths[0])
            for b, a in zip(batched.hidden_states, alone.hidden_states, strict=True):
                torch.testing.assert_close(b[i, :valid], a[0], rtol=1e-4, atol=1e-4)
                assert torch.all(b[i, valid:] == 0)


@pytest.mark.parametrize(
    ("frontend", "options", "last_sample_of_frame"),
    [
        # fbank frame t reads filterbank frames <= 4t, whose windows end before sample 640 t + 200.
        ("fbank", {"feature_norm": False}, lambda t: 640 * t + 200),
        # CNN frame t reads samples [320 t, 320 t + 400).
        ("waveform", {"conv_norm": "layer"}, lambda t: 320 * t + 400),
    ],
)
@pytest.mark.parametrize("causal", [True, False])
def test_causal_encoder_does_not_see_the_future(
    frontend, options, last_sample_of_frame, causal, make_config, speech_batch
):
    encoder = SpeechEncoder.from_config(make_config(frontend, causal=causal, **options)).eval()
    waveforms, lengths = speech_batch([16000])
    start = last_sample_of_frame(10)  # frames 0..10 end before the perturbation
    perturbed = waveforms.clone()
    perturbed[:, start:] += 0.5 * torch.randn(1, 16000 - start)
    with torch.no_grad():
        before, after = encoder(waveforms, lengths), encoder(perturbed, lengths)
    for b, a in zip(before.hidden_states, after.hidden_states, strict=True):
        assert torch.allclose(b[:, :11], a[:, :11], rtol=0, atol=1e-5) == causal
        assert not torch.allclose(b[:, 12:], a[:, 12:])


def test_feature_transform_reaches_the_front_end(make_config, speech_batch):
    encoder = SpeechEncoder.from_config(make_config()).eval()
    waveforms, lengths = speech_batch([8000, 4000])
    calls = []

    def time_mask(features, feature_lengths):
        calls.append((features.shape, feature_lengths))
        masked = features.clone()
        masked[:, 10:20] = 0.0
        return masked

    with torch.no_grad():
        plain = encoder(waveforms, lengths)
        masked = encoder(waveforms, lengths, feature_transform=time_mask)
    assert len(calls) == 1 and calls[0][0][-1] == encoder.frontend.feature_dim == 40
    assert not torch.allclose(plain.last_hidden_state, masked.last_hidden_state)


def test_tiny_encoder_fits_a_toy_target(speech_batch):
    """Regress a fixed vector per utterance from pooled features: the loss must fall fast."""
    config = load_encoder_preset("tiny")
    encoder = SpeechEncoder.from_config(config).train()
    head = torch.nn.Linear(config.dim, 4)
    waveforms, lengths = speech_batch([8000, 6000, 4000, 7000], seed=5)
    target = torch.randn(4, 4)
    optimizer = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=3e-3)
    losses = []
    for _ in range(15):
        output = encoder(waveforms, lengths)
        loss = torch.nn.functional.mse_loss(
            head(masked_mean(output.last_hidden_state, output.lengths)), target
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses


def test_state_dict_round_trip(make_config, speech_batch):
    config = make_config("waveform")
    source = SpeechEncoder.from_config(config).eval()
    copy = SpeechEncoder.from_config(config).eval()
    copy.load_state_dict(source.state_dict())
    waveforms, lengths = speech_batch([4000, 3000])
    with torch.no_grad():
        torch.testing.assert_close(
            copy(waveforms, lengths).last_hidden_state, source(waveforms, lengths).last_hidden_state
        )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dimm": 128}, "unknown key dimm"),
        ({"dim": "big"}, "dim: expected int, found 'big'"),
        ({"frontend": "mel"}, "frontend: expected one of"),
        ({"conv_norm": "batch"}, "conv_norm: expected one of"),
        ({"dim": 100, "heads": 3}, "heads: expected a divisor of dim=100, found 3"),
        ({"dim": 120, "heads": 4, "pos_conv_groups": 16}, "pos_conv_groups: expected a divisor of dim=120"),
        ({"dropout": 1.5}, r"dropout: expected a probability in \[0, 1\), found 1.5"),
        ({"layers": 0}, "layers: expected a positive integer, found 0"),
        ({"conv_strides": [5, 2]}, "conv_strides: expected one stride per kernel"),
        ({"causal": True}, "feature_norm: expected false with causal=true"),
        ({"causal": True, "frontend": "waveform"}, "conv_norm: expected 'layer' with causal=true"),
        ({"pos_conv_layers": 2}, "pos_conv_layers: expected 1 with pos_conv_norm='weight', found 2"),
        (
            {"relative_position_buckets": 10},
            "relative_position_buckets: expected 0 or a positive multiple of 4",
        ),
        ({"waveform_norm": True}, "waveform_norm: expected false with frontend='fbank'"),
    ],
)
def test_config_validation_names_the_key(options, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(EncoderConfig, options)


def test_config_round_trips_through_a_plain_mapping():
    config = load_encoder_preset("base")
    assert from_dict(EncoderConfig, to_dict(config)) == config
    assert isinstance(config.conv_kernels, tuple)


def test_presets_exist_and_load():
    assert {"tiny", "small", "base", "base_fbank"} <= set(encoder_presets())
    tiny = load_encoder_preset("tiny")
    assert tiny.frontend == "fbank" and 96 <= tiny.dim <= 128 and 2 <= tiny.layers <= 3 and tiny.heads == 4
    base = load_encoder_preset("base")
    assert (base.frontend, base.dim, base.layers, base.heads, base.ffn_dim) == ("waveform", 768, 12, 12, 3072)
    base_fbank = load_encoder_preset("base_fbank")
    assert (base_fbank.frontend, base_fbank.dim, base_fbank.layers) == ("fbank", 768, 12)
    with pytest.raises(ConfigError, match=r"unknown name 'huge'.*base, base_fbank"):
        load_encoder_preset("huge")


@pytest.mark.parametrize(
    ("preset", "low", "high"),
    [("base", 90e6, 100e6), ("base_fbank", 90e6, 100e6), ("small", 10e6, 25e6), ("tiny", 1e5, 2e6)],
)
def test_preset_parameter_counts(preset, low, high):
    """wav2vec 2.0 BASE has ~95M parameters (Baevski et al. 2020, §4.2)."""
    assert low <= count_parameters(load_encoder_preset(preset)) <= high


@pytest.mark.parametrize("frontend", ["fbank", "waveform"])
def test_mask_time_indices_replace_frames_by_the_encoders_mask_embedding(frontend, make_config, speech_batch):
    encoder = SpeechEncoder.from_config(make_config(frontend)).eval()
    encoder.add_mask_embedding()
    embedding = encoder.mask_embedding
    encoder.add_mask_embedding()  # idempotent
    assert encoder.mask_embedding is embedding and encoder.config.mask_embedding
    waveforms, lengths = speech_batch([8000, 5000])
    with torch.no_grad():
        x, frame_lengths = encoder.frontend(waveforms, lengths)  # (batch, frames, dim)
        mask = torch.rand(x.shape[:2], generator=torch.Generator().manual_seed(0)) < 0.4  # (batch, frames)
        by_hand = encoder.context(torch.where(mask[:, :, None], embedding, x), frame_lengths)
        output = encoder(waveforms, lengths, mask_time_indices=mask, output_features=True)
    for expected, found in zip(by_hand, output.hidden_states, strict=True):
        torch.testing.assert_close(found, expected)
    torch.testing.assert_close(output.features, x)  # pre-mask front-end output (dropout off)
    assert (output.cnn_features is not None) == (frontend == "waveform")
    assert output.extract_features.shape[::2] == (2, encoder.frontend.feature_dim)  # (batch, _, feature_dim)


def test_output_features_of_the_waveform_frontend_are_its_cnn_and_normalised_features(
    make_config, speech_batch
):
    encoder = SpeechEncoder.from_config(make_config("waveform", dropout=0.5)).train()
    waveforms, lengths = speech_batch([8000, 5000])
    output = encoder(waveforms, lengths, output_features=True)
    frontend = encoder.frontend
    cnn, frame_lengths = frontend.feature_encoder(waveforms[:, None], lengths)  # (batch, channels, frames)
    normalised = frontend.layer_norm(cnn.transpose(1, 2))  # (batch, frames, channels)
    valid = torch.arange(cnn.shape[2])[None, :] < frame_lengths[:, None]  # (batch, frames)
    torch.testing.assert_close(output.cnn_features, cnn)
    torch.testing.assert_close(output.extract_features[valid], normalised[valid])
    clean = frontend.projection(normalised)  # before the output dropout
    torch.testing.assert_close(output.features[valid], clean[valid])
    assert not output.features[~valid].any() and not output.extract_features[~valid].any()
    assert output.hidden_states[0].shape == output.features.shape
    assert encoder(waveforms, lengths).features is None  # only when asked


def test_feature_grad_scale_scales_only_the_cnn_gradient(make_config, speech_batch):
    waveforms, lengths = speech_batch([6000, 4000])
    grads = {}
    for scale in (1.0, 0.25):
        torch.manual_seed(0)
        encoder = SpeechEncoder.from_config(make_config("waveform")).eval()
        encoder(waveforms, lengths, feature_grad_scale=scale).last_hidden_state.sum().backward()
        grads[scale] = (
            encoder.frontend.feature_encoder.blocks[0].conv.weight.grad,
            encoder.frontend.projection.weight.grad,
        )
    torch.testing.assert_close(grads[0.25][0], 0.25 * grads[1.0][0], rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(grads[0.25][1], grads[1.0][1])
    fbank = SpeechEncoder.from_config(make_config("fbank"))
    with pytest.raises(ValueError, match=r"feature_grad_scale: expected 1\.0 with the fbank front-end"):
        fbank(waveforms, lengths, feature_grad_scale=0.1)


def test_masking_without_a_mask_embedding_or_of_the_wrong_shape_is_an_error(make_config, speech_batch):
    encoder = SpeechEncoder.from_config(make_config("fbank"))
    assert encoder.mask_embedding is None and "mask_embedding" not in encoder.state_dict()
    waveforms, lengths = speech_batch([8000])
    frames = int(encoder.output_lengths(lengths)[0])
    with pytest.raises(ValueError, match=r"mask_time_indices: expected an encoder with a mask embedding"):
        encoder(waveforms, lengths, mask_time_indices=torch.ones(1, frames, dtype=torch.bool))
    encoder.add_mask_embedding()
    with pytest.raises(
        ValueError, match=rf"mask_time_indices: expected \(batch, frames\) = \(1, {frames}\), found \(1, 3\)"
    ):
        encoder(waveforms, lengths, mask_time_indices=torch.ones(1, 3, dtype=torch.bool))
    rebuilt = SpeechEncoder.from_config(
        from_dict(EncoderConfig, to_dict(encoder.config))
    )  # a checkpoint's config
    rebuilt.load_state_dict(encoder.state_dict(), strict=True)
    torch.testing.assert_close(rebuilt.mask_embedding, encoder.mask_embedding)


ARCHITECTURES = [
    ("fbank", {}),
    ("waveform", {}),
    ("waveform", {"conv_norm": "layer", "causal": True}),
    ("fbank", {"feature_norm": False, "causal": True}),
    ("fbank", {"context": "lstm"}),
    ("fbank", {"context": "gru", "feature_norm": False, "causal": True}),
]


@pytest.mark.parametrize("frontend, options", ARCHITECTURES)
def test_unpadded_path_equals_the_masked_path(frontend, options, make_config, speech_batch, monkeypatch):
    encoder = SpeechEncoder.from_config(make_config(frontend, **options)).eval()
    waveforms, lengths = speech_batch([6000, 6000, 6000], seed=2)
    masks = []
    attention = torch.nn.functional.scaled_dot_product_attention

    def spy(*args, **kwargs):
        masks.append(kwargs.get("attn_mask"))
        return attention(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    with torch.no_grad():
        masked = encoder(waveforms, lengths, output_features=True)
        unmasked = encoder(waveforms, None, output_features=True)
    if options.get("context", "transformer") == "transformer":
        half = len(masks) // 2
        assert all(mask is not None for mask in masks[:half]) and all(mask is None for mask in masks[half:])
    assert torch.equal(unmasked.lengths, masked.lengths)
    assert len(unmasked.hidden_states) == len(masked.hidden_states) == encoder.num_layers
    for got, expected in zip(unmasked.hidden_states, masked.hidden_states, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(unmasked.features, masked.features, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("frontend, options", ARCHITECTURES)
def test_output_hidden_states_false_returns_the_same_last_state_only(
    frontend, options, make_config, speech_batch
):
    encoder = SpeechEncoder.from_config(make_config(frontend, layers=3, **options)).eval()
    waveforms, lengths = speech_batch([6000, 4100, 2500], seed=3)
    with torch.no_grad():
        every = encoder(waveforms, lengths)
        last = encoder(waveforms, lengths, output_hidden_states=False)
    assert len(every.hidden_states) == 4 and len(last.hidden_states) == 1
    torch.testing.assert_close(last.last_hidden_state, every.last_hidden_state, rtol=0, atol=1e-6)
    assert torch.equal(last.lengths, every.lengths)


def test_unpadded_lengths_is_none_only_without_padding(make_config, speech_batch):
    encoder = SpeechEncoder.from_config(make_config("waveform"))
    waveforms, _ = speech_batch([3000, 3000])
    assert encoder.unpadded_lengths(waveforms, torch.tensor([3000, 3000])) is None
    assert torch.equal(
        encoder.unpadded_lengths(waveforms, torch.tensor([3000, 2000])), torch.tensor([3000, 2000])
    )
    with pytest.raises(ValueError, match=r"at least 400 samples.*found 399"):
        encoder.unpadded_lengths(waveforms, torch.tensor([3000, 399]))
