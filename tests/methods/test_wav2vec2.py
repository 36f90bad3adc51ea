"""wav2vec 2.0: contrastive logits, masking, gradient scaling, feature penalty, training, end to end."""

from __future__ import annotations

import math

import pytest
import torch

from speechssl.cli import main
from speechssl.methods import build_method, method_config
from speechssl.methods.contrastive import info_nce
from speechssl.methods.wav2vec2 import Wav2Vec2, Wav2Vec2Config, contrastive_logits
from speechssl.models import EncoderConfig, SpeechEncoder
from speechssl.models.gumbel_quantizer import GumbelTemperatureSchedule
from speechssl.train.logging import read_metrics
from speechssl.upstream import build_upstream

# A two-layer 16-channel CNN (stride 20) under a 1-layer, 16-dim Transformer: the method's
# arithmetic at a size where a step takes milliseconds.
TINY_ENCODER = dict(
    frontend="waveform", dim=16, layers=1, heads=2, ffn_dim=32, dropout=0.0, attention_dropout=0.0,
    pos_conv_kernel=4, pos_conv_groups=2, conv_channels=16, conv_kernels=(10, 4), conv_strides=(5, 4),
)  # fmt: skip
TINY_OBJECTIVE = dict(
    num_negatives=10, codebook_entries=8, codebook_dim=8, final_dim=16, quantizer_dropout=0.0
)  # fmt: skip

# `speechssl pretrain --method wav2vec2` shrunk to seconds: the tiny config's waveform
# encoder made smaller, a 40-utterance synthetic corpus, 3 updates.
WAV2VEC2_TINY_OVERRIDES = (
    "encoder.dim=32", "encoder.heads=2", "encoder.ffn_dim=64", "encoder.layers=1",
    "encoder.conv_channels=16", "encoder.pos_conv_kernel=8", "encoder.pos_conv_groups=4",
    "objective.codebook_entries=16", "objective.codebook_dim=16", "objective.final_dim=16",
    "objective.num_negatives=20",
    "data.synthetic.num_utterances=40", "data.synthetic.num_speakers=4", "data.crop_seconds=0.75",
    "data.max_batch_seconds=6.0", "data.num_workers=0",
    "optim.warmup_steps=1", "train.max_steps=3", "train.log_every=1", "train.checkpoint_every=2",
    "train.device=cpu",
)  # fmt: skip


def make_method(**objective) -> Wav2Vec2:
    encoder = SpeechEncoder.from_config(EncoderConfig(**TINY_ENCODER))
    return Wav2Vec2(encoder, Wav2Vec2Config(**{**TINY_OBJECTIVE, **objective}))


def test_contrastive_loss_of_equally_similar_candidates_is_log_k_plus_one():
    torch.manual_seed(0)
    context, targets = torch.randn(6, 16), torch.randn(6, 16)
    distractors = targets[:, None] * torch.tensor([2.0, 0.5, 3.0])[None, :, None]  # same direction, not equal
    loss, accuracy = info_nce(contrastive_logits(context, targets, distractors, temperature=0.1))
    assert loss.item() == pytest.approx(math.log(4), rel=1e-5)
    assert accuracy.item() == 0.0


def test_contrastive_loss_vanishes_when_the_target_is_far_more_similar():
    torch.manual_seed(0)
    targets = torch.randn(6, 16)
    distractors = -targets[:, None].expand(6, 5, 16)  # cosine −1 against the context
    logits = contrastive_logits(targets, targets, distractors, temperature=0.1)  # context = target: cosine 1
    assert torch.allclose(logits[:, 0], torch.full((6,), 10.0))
    loss, accuracy = info_nce(logits)
    assert loss.item() < 1e-6 and accuracy.item() == 1.0  # exactly log(1 + 5e^−20) ≈ 1e−8


def test_a_distractor_equal_to_its_target_is_not_a_negative():
    targets = torch.randn(2, 4)
    distractors = torch.stack([targets, torch.randn(2, 4)], dim=1)  # (queries, K=2, dim), first is the target
    logits = contrastive_logits(torch.randn(2, 4), targets, distractors, temperature=0.1)
    assert torch.isneginf(logits[:, 1]).all() and torch.isfinite(logits[:, [0, 2]]).all()


def test_masked_fraction_matches_p_and_m_and_never_covers_padding():
    method = make_method()
    method.generator = torch.Generator().manual_seed(0)
    lengths = torch.tensor([2000] * 10 + [700])
    mask = method.compute_mask(lengths, 2000)  # (batch, frames)
    p, m = 0.065, 10
    expected = 1 - (1 - p) ** m  # a frame is covered unless none of the M starts before it fires: ≈ 0.49
    assert mask[:10].float().mean().item() == pytest.approx(expected, abs=0.03)
    assert not mask[10, 700:].any() and mask[10, :700].any()
    starts = mask[:, 1:] & ~mask[:, :-1]  # span starts after an unmasked frame
    assert starts.sum().item() > 0.5 * p * lengths.sum().item()


def test_short_utterances_get_the_minimum_number_of_spans():
    method = make_method()
    mask = method.compute_mask(torch.tensor([25, 12]), 25)
    assert mask[0].sum() >= 10 and mask[1, :12].sum() >= 10 and not mask[1, 12:].any()


def test_forward_reports_the_terms_and_the_loss_adds_them(make_batch):
    method = make_method()
    output = method(make_batch([4000, 2500, 3000]))
    metrics = output.metrics
    assert {
        "accuracy",
        "prob_perplexity",
        "code_perplexity",
        "temperature",
        "masked_fraction",
    } <= metrics.keys()
    expected = metrics["contrastive"] + 0.1 * metrics["diversity"] + 10.0 * metrics["feature_penalty"]
    assert output.loss.item() == pytest.approx(float(expected), rel=1e-5)
    assert 0.0 <= float(metrics["diversity"]) <= 1.0 and float(metrics["temperature"]) == 2.0
    assert 2 <= float(metrics["prob_perplexity"]) <= 16


def test_feature_penalty_is_the_mean_square_of_the_valid_cnn_features(make_batch):
    method = make_method().eval()
    batch = make_batch([4000, 2500])
    features, frame_lengths = method.encoder.frontend.feature_encoder(batch.waveforms[:, None], batch.lengths)
    valid = torch.cat([features[0, :, : frame_lengths[0]], features[1, :, : frame_lengths[1]]], dim=1)
    assert float(method(batch).metrics["feature_penalty"]) == pytest.approx(
        valid.pow(2).mean().item(), rel=1e-5
    )


def test_gradient_reaching_the_cnn_is_scaled(make_batch):
    grads = {}
    for scale in (1.0, 0.1):
        torch.manual_seed(0)
        method = make_method(feature_grad_scale=scale).eval()  # eval: argmax codes, no dropout
        method.generator = torch.Generator().manual_seed(0)
        method(make_batch([4000, 3000])).loss.backward()
        conv = method.encoder.frontend.feature_encoder.blocks[0].conv.weight
        grads[scale] = (conv.grad.clone(), method.final_projection.weight.grad.clone())
    # float32 rounding: 1e-4 of the largest entry's size, not of entries 300x smaller than it
    scale = float(grads[1.0][0].abs().max())
    assert torch.allclose(grads[0.1][0], 0.1 * grads[1.0][0], rtol=1e-4, atol=1e-5 * scale)
    assert torch.allclose(grads[0.1][1], grads[1.0][1])  # the heads' gradients are not scaled


def test_on_step_end_anneals_the_gumbel_temperature():
    method = make_method(gumbel=GumbelTemperatureSchedule(start=2.0, end=0.5, decay=0.5))
    method.on_step_end(1, 10)
    assert method.quantizer.temperature.item() == 1.0
    method.on_step_end(5, 10)
    assert method.quantizer.temperature.item() == 0.5


def test_a_few_steps_on_a_fixed_batch_lower_the_loss(make_batch):
    torch.manual_seed(0)
    method = make_method()
    batch = make_batch([4000, 3500, 3000])
    optimizer = torch.optim.Adam(method.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        torch.manual_seed(1)  # the same Gumbel noise,
        method.generator = torch.Generator().manual_seed(1)  # masks and negatives at every step
        loss = method(batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_the_waveform_frontend_is_required():
    encoder = SpeechEncoder.from_config(EncoderConfig(**{**TINY_ENCODER, "frontend": "fbank", "n_mels": 40}))
    with pytest.raises(ValueError, match=r"encoder\.frontend: expected 'waveform'.*found 'fbank'"):
        Wav2Vec2(encoder, Wav2Vec2Config())


def test_config_errors_name_the_option():
    with pytest.raises(ValueError, match="mask_prob: expected 0 < mask_prob \\* mask_length <= 1"):
        Wav2Vec2Config(mask_prob=0.2)
    with pytest.raises(ValueError, match="codebook_dim: expected a positive multiple of codebook_groups=2"):
        Wav2Vec2Config(codebook_dim=255)
    assert method_config("wav2vec2", {"gumbel": {"end": 0.1}}).gumbel == GumbelTemperatureSchedule(end=0.1)


def test_registered_and_built_by_name():
    encoder = SpeechEncoder.from_config(EncoderConfig(**TINY_ENCODER))
    method = build_method("wav2vec2", method_config("wav2vec2", {}), encoder)
    assert isinstance(method, Wav2Vec2) and method.config == Wav2Vec2Config()


def test_pretrain_cli_end_to_end_then_load_as_upstream(tmp_path):
    run = tmp_path / "run"
    overrides = [*WAV2VEC2_TINY_OVERRIDES, f"data.root={tmp_path / 'corpus'}"]
    assert main(["pretrain", "--method", "wav2vec2", "--run-dir", str(run), *overrides]) == 0
    records = read_metrics(run)
    assert [r["step"] for r in records] == [1, 2, 3]
    assert {"contrastive", "diversity", "accuracy", "code_perplexity", "temperature"} <= records[0].keys()
    assert all(math.isfinite(r["loss"]) for r in records)

    upstream = build_upstream(str(run / "step_00000003"))
    assert upstream.downsample_rate == 320 and len(upstream.hidden_sizes) == 2  # input + 1 layer
    output = upstream(torch.randn(2, 8000), torch.tensor([8000, 6400]))
    assert output.lengths.tolist() == [24, 19] and output.hidden_states[-1].shape == (2, 24, 32)
