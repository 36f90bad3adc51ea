"""VQ autoencoder: decoder padding, loss terms, straight-through gradients, learning, pretraining."""

from __future__ import annotations

import math

import pytest
import torch

from speechssl.methods import build_method, method_config
from speechssl.methods.vq_vae import VQVAE, FrameDecoder, VQVAEConfig
from speechssl.models import EncoderConfig, SpeechEncoder
from speechssl.train import load_pretrain_config, pretrain
from speechssl.upstream import build_upstream


def _encoder() -> SpeechEncoder:
    config = EncoderConfig(
        dim=32, layers=1, heads=2, ffn_dim=64, dropout=0.0, attention_dropout=0.0, pos_conv_kernel=8,
        pos_conv_groups=4, n_mels=20, subsampling_channels=4,
    )  # fmt: skip
    return SpeechEncoder.from_config(config)


def test_decoder_outputs_on_valid_frames_ignore_padding():
    decoder = FrameDecoder(4, 8, 6, kernel=3)
    z = torch.randn(2, 7, 4)
    z[1, 4:] = 1e3
    batched = decoder(z, torch.tensor([7, 4]))
    alone = decoder(z[1:, :4], torch.tensor([4]))
    assert batched.shape == (2, 7, 6)
    torch.testing.assert_close(batched[1, :4], alone[0])


def test_loss_is_reconstruction_plus_codebook_and_weighted_commitment(tone_batch):
    method = VQVAE(_encoder(), VQVAEConfig(codebook_size=16, commitment_weight=0.5, decoder_channels=8))
    output = method(tone_batch([8000, 5000]))
    metrics = output.metrics
    expected = metrics["reconstruction"] + metrics["codebook"] + 0.5 * metrics["commitment"]
    torch.testing.assert_close(output.loss.detach(), expected)
    assert 1.0 <= float(metrics["perplexity"]) <= 16.0 and 0.0 < float(metrics["code_usage"]) <= 1.0


def test_reconstruction_gradients_reach_the_encoder_straight_through(tone_batch):
    # β = 0: the commitment term is off and the codebook term stops at sg[z_e], so every
    # encoder gradient comes through the quantiser from the reconstruction
    method = VQVAE(_encoder(), VQVAEConfig(codebook_size=8, commitment_weight=0.0, decoder_channels=8))
    method(tone_batch([8000])).loss.backward()
    assert method.encoder.context.layers[0].ffn.fc2.weight.grad.abs().sum() > 0
    assert method.quantizer.codebook.grad.abs().sum() > 0


def test_a_few_steps_on_a_fixed_batch_lower_the_loss(tone_batch):
    torch.manual_seed(0)
    method = build_method("vq_vae", method_config("vq_vae", {"codebook_size": 32}), _encoder())
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)
    batch = tone_batch([9600, 7000, 4000])
    losses = []
    for _ in range(20):
        output = method(batch)
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
        losses.append(output.loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_config_errors_say_expected_and_found():
    with pytest.raises(ValueError, match="decoder_kernel: expected an odd number >= 1, found 4"):
        VQVAEConfig(decoder_kernel=4)
    with pytest.raises(ValueError, match=r"commitment_weight: expected >= 0, found -0\.1"):
        VQVAEConfig(commitment_weight=-0.1)


def test_pretrain_then_the_checkpoint_loads_as_an_upstream(tmp_path, tiny_pretrain_overrides):
    overrides = [o for o in tiny_pretrain_overrides if not o.startswith("objective.")]
    config = load_pretrain_config(None, [*overrides, f"data.root={tmp_path / 'corpus'}"], method="vq_vae")
    result = pretrain(config, tmp_path / "run")
    assert result.step == 3 and math.isfinite(result.loss)
    upstream = build_upstream(str(result.checkpoint))
    assert upstream.num_layers == 2 and upstream.downsample_rate == 640
