"""data2vec: EMA teacher and schedule, top-K instance-normalised targets, masked regression loss, training, checkpoints."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from preemption import assert_same_weights, preempted_at

from speechssl.methods import build_method, method_config
from speechssl.methods.data2vec import (
    Data2Vec,
    Data2VecConfig,
    EmaDecaySchedule,
    average_top_layers,
    feed_forward_outputs,
    masked_regression_loss,
    masked_variance,
)
from speechssl.models import SpeechEncoder
from speechssl.models.checkpoint import find_latest
from speechssl.train import load_pretrain_config, pretrain
from speechssl.train.config import OptimConfig
from speechssl.train.logging import read_metrics
from speechssl.train.pretrain import LoaderData
from speechssl.train.trainer import build_optimizer
from speechssl.upstream import build_upstream

# `speechssl pretrain --method data2vec` (data2vec_tiny.yaml) shrunk to seconds.
DATA2VEC_TINY_OVERRIDES = (
    "encoder.dim=32", "encoder.heads=2", "encoder.ffn_dim=64", "encoder.layers=2", "encoder.n_mels=40",
    "encoder.subsampling_channels=8", "encoder.pos_conv_kernel=8", "encoder.pos_conv_groups=4",
    "objective.ema.anneal_steps=4",
    "data.synthetic.num_utterances=40", "data.synthetic.num_speakers=4", "data.crop_seconds=0.75",
    "data.max_batch_seconds=6.0", "data.num_workers=0",
    "optim.warmup_steps=1", "train.max_steps=3", "train.log_every=1", "train.checkpoint_every=2",
    "train.device=cpu",
)  # fmt: skip


def make_method(tiny_encoder, frontend: str = "fbank", layers: int = 3, **objective) -> Data2Vec:
    """A data2vec method around the tiny encoder with ``layers`` Transformer layers, 2-frame spans."""
    encoder = SpeechEncoder.from_config(dataclasses.replace(tiny_encoder(frontend).config, layers=layers))
    options = {"mask_length": 2, "mask_prob": 0.2, "top_k_layers": 2, **objective}
    return Data2Vec(encoder, Data2VecConfig(**options))


def test_decay_schedule_is_linear_then_constant():
    schedule = EmaDecaySchedule(start=0.999, end=0.9999, anneal_steps=100)
    assert schedule(0) == 0.999
    assert schedule(50) == pytest.approx(0.99945, abs=1e-12)
    assert schedule(100) == 0.9999 and schedule(1000) == 0.9999
    assert EmaDecaySchedule(anneal_steps=0)(0) == 0.9999
    assert Data2VecConfig().ema == EmaDecaySchedule(0.999, 0.9999, 30000)


@pytest.mark.parametrize("transformer_only", [True, False])
def test_ema_update_matches_the_formula(tiny_encoder, transformer_only):
    torch.manual_seed(0)
    method = make_method(
        tiny_encoder, ema_transformer_only=transformer_only, ema=EmaDecaySchedule(0.9, 0.99, 10)
    )
    student = method.encoder.context if transformer_only else method.encoder
    with torch.no_grad():
        for parameter in student.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter))
    old = {name: p.clone() for name, p in method.teacher.named_parameters()}
    method.on_step_end(5, 100)
    tau = 0.9 + 0.09 * 5 / 10
    assert method.ema_decay.item() == pytest.approx(tau)
    for name, parameter in method.teacher.named_parameters():
        expected = tau * old[name] + (1 - tau) * dict(student.named_parameters())[name]
        assert torch.allclose(parameter, expected, atol=1e-7), name
    for name, buffer in method.teacher.named_buffers():
        assert torch.equal(buffer, dict(student.named_buffers())[name]), name


def test_teacher_has_no_grads_is_not_optimized_and_stays_in_eval(tiny_encoder, make_batch):
    method = make_method(tiny_encoder)
    optimizer = build_optimizer(method, OptimConfig())
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    teacher = list(method.teacher.parameters())
    assert teacher and not any(id(p) in optimized for p in teacher)
    assert {id(p) for p in method.encoder.parameters()} <= optimized and id(
        method.encoder.mask_embedding
    ) in optimized
    method.train()
    assert method.encoder.training and not method.teacher.training
    method(make_batch([4000, 3000])).loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in teacher)
    assert method.encoder.mask_embedding.grad is not None and method.regression_head.weight.grad is not None


def test_targets_normalise_over_valid_frames_only():
    torch.manual_seed(0)
    lengths = torch.tensor([5, 3])
    layers = [torch.randn(2, 7, 4) for _ in range(3)]
    for layer in layers:
        layer[1, 3:] = 1e3 * torch.randn(4, 4)  # garbage on padded frames
    targets = average_top_layers(layers, lengths, top_k=2)
    for row, length in enumerate(lengths.tolist()):
        manual = torch.stack(
            [F.instance_norm(layer[row : row + 1, :length].transpose(1, 2)) for layer in layers[1:]]
        ).mean(dim=0)  # (K, 1, dim, length) -> (1, dim, length)
        assert torch.allclose(targets[row, :length], manual[0].T, atol=1e-5)
        assert not targets[row, length:].any()
    assert torch.allclose(
        average_top_layers(layers, lengths, 1, instance_norm=False)[0, :5], layers[2][0, :5]
    )


@pytest.mark.parametrize("transformer_only", [True, False])
def test_teacher_targets_ignore_padding(tiny_encoder, make_batch, transformer_only):
    method = make_method(tiny_encoder, ema_transformer_only=transformer_only).eval()
    alone = make_batch([4000])
    padded = make_batch([8000, 4000])
    padded.waveforms[1] = torch.cat([alone.waveforms[0], torch.zeros(4000)])

    def targets(batch):
        output = method.encoder(batch.waveforms, batch.lengths, output_features=True)
        return method.teacher_targets(
            batch.waveforms, batch.lengths, output.features, output.lengths
        ), output.lengths

    single, single_lengths = targets(alone)
    batched, batched_lengths = targets(padded)
    frames = int(single_lengths[0])
    assert int(batched_lengths[1]) == frames and batched.shape[1] > frames
    assert torch.allclose(batched[1, :frames], single[0], atol=1e-4)
    assert not batched[1, frames:].any()


def test_ffn_targets_are_thefeed_forward_outputs_before_the_residual(tiny_encoder):
    torch.manual_seed(0)
    method = make_method(tiny_encoder).eval()
    context = method.teacher
    x, lengths = torch.randn(2, 9, 32), torch.tensor([9, 6])
    outputs = feed_forward_outputs(context, lambda: context(x, lengths))
    hidden = context(x, lengths)
    attn_mask = context.attention_mask(lengths, 9)
    for i, layer in enumerate(context.layers):
        h = hidden[i]
        after_attention = h + layer.attention(layer.attention_norm(h), attn_mask)
        expected = layer.ffn(layer.ffn_norm(after_attention))  # (batch, frames, dim)
        valid = lengths[:, None] > torch.arange(9)  # (batch, frames)
        assert torch.allclose(outputs[i][valid], expected[valid], atol=1e-5), i


def test_loss_counts_masked_steps_only():
    torch.manual_seed(0)
    predictions, targets = torch.randn(2, 6, 4), torch.randn(2, 6, 4)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[0, 1:3] = mask[1, 4] = True
    loss = masked_regression_loss(predictions, targets, mask, beta=0.25)
    changed = predictions.clone()
    changed[0, 0] += 10.0
    changed[1, 5] -= 10.0
    assert masked_regression_loss(changed, targets, mask, beta=0.25) == loss
    changed[1, 4] += 1.0
    assert masked_regression_loss(changed, targets, mask, beta=0.25) != loss
    assert masked_regression_loss(predictions, targets, torch.zeros_like(mask), beta=0.25) == 0


def test_masked_variance_is_the_variance_of_the_selected_frames():
    x = torch.randn(2, 6, 4, generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[0, 1, 1, 0, 0, 1], [1, 0, 0, 0, 1, 0]], dtype=torch.bool)
    torch.testing.assert_close(masked_variance(x, mask), x[mask].var(dim=0, correction=0).mean())
    assert masked_variance(x, torch.zeros_like(mask)) == 0


def test_smooth_l1_and_squared_error_by_hand():
    targets = torch.zeros(1, 1, 2)
    predictions = torch.tensor([[[0.1, 2.0]]])
    mask = torch.ones(1, 1, dtype=torch.bool)
    # β = 0.5: ½·0.1²/0.5 = 0.01 (inside β) and 2.0 − ½·0.5 = 1.75 (outside), mean 0.88
    assert masked_regression_loss(predictions, targets, mask, beta=0.5).item() == pytest.approx(0.88)
    # β = 0: the reference speech setting, squared error (0.01 + 4) / 2
    assert masked_regression_loss(predictions, targets, mask, beta=0.0).item() == pytest.approx(2.005)


def test_teacher_reads_the_front_end_output_before_its_dropout(tiny_encoder, make_batch):
    method = make_method(tiny_encoder)
    method.encoder.frontend.subsampling.dropout.p = 0.5
    batch = make_batch([4000, 3000])
    teacher_inputs = []
    method.teacher.register_forward_pre_hook(lambda module, args: teacher_inputs.append(args[0]))
    method.train()(batch)
    clean = teacher_inputs[0]  # what the (transformer-only) teacher reads
    latents, _ = method.encoder.frontend(batch.waveforms, batch.lengths)  # train mode: with dropout
    reference, _ = method.encoder.frontend.eval()(batch.waveforms, batch.lengths)
    assert torch.allclose(clean, reference, atol=1e-6) and not torch.allclose(latents, clean)


@pytest.mark.parametrize("frontend", ["fbank", "waveform"])
@pytest.mark.parametrize("transformer_only", [True, False])
@pytest.mark.parametrize("target", ["ffn", "layer"])
def test_forward_on_both_front_ends(tiny_encoder, make_batch, frontend, transformer_only, target):
    torch.manual_seed(0)
    method = make_method(
        tiny_encoder, frontend, ema_transformer_only=transformer_only, target_layer_output=target
    )
    output = method(make_batch([4000, 3000]))
    output.loss.backward()
    assert math.isfinite(output.loss.item()) and output.loss.item() > 0
    metrics = output.metrics
    assert metrics.keys() == {"ema_decay", "target_var", "prediction_var", "masked_fraction"}
    assert float(metrics["ema_decay"]) == pytest.approx(0.999)
    assert 0.0 < float(metrics["target_var"]) <= 1.0 + 1e-4  # an average of unit-variance layers
    assert 0.0 < float(metrics["masked_fraction"]) < 1.0


def test_a_few_steps_on_a_fixed_batch_lower_the_loss(tiny_encoder, make_batch):
    torch.manual_seed(0)
    method = make_method(tiny_encoder)
    batch = make_batch([4000, 3500, 3000])
    optimizer = torch.optim.Adam([p for p in method.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for step in range(1, 31):
        method.generator = torch.Generator().manual_seed(1)  # the same masks at every step
        loss = method(batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        method.on_step_end(step, 30)
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_errors_name_the_option(tiny_encoder):
    with pytest.raises(
        ValueError, match=r"top_k_layers: expected at most the encoder's 3 context layers, found 8"
    ):
        make_method(tiny_encoder, top_k_layers=8)
    with pytest.raises(ValueError, match="mask_prob: expected 0 < mask_prob \\* mask_length <= 1"):
        Data2VecConfig(mask_prob=0.2)
    with pytest.raises(ValueError, match="loss_beta: expected >= 0"):
        Data2VecConfig(loss_beta=-1.0)
    with pytest.raises(ValueError, match=r"ema\.start/ema\.end: expected 0 <= start <= end <= 1"):
        EmaDecaySchedule(start=0.9999, end=0.999)
    recurrent = SpeechEncoder.from_config(dataclasses.replace(tiny_encoder().config, context="gru", layers=2))
    with pytest.raises(ValueError, match="target_layer_output: expected 'layer' with a recurrent context"):
        Data2Vec(recurrent, Data2VecConfig(top_k_layers=2))
    assert (
        Data2Vec(recurrent, Data2VecConfig(top_k_layers=2, target_layer_output="layer")).teacher is not None
    )


def test_registered_and_built_by_name(tiny_encoder):
    method = build_method("data2vec", method_config("data2vec", {"top_k_layers": 1}), tiny_encoder())
    assert isinstance(method, Data2Vec) and method.config == Data2VecConfig(top_k_layers=1)


def test_pretrain_loads_as_upstream_and_resumes_exactly(tmp_path, monkeypatch):
    overrides = [*DATA2VEC_TINY_OVERRIDES, f"data.root={tmp_path / 'corpus'}", "train.max_steps=4"]
    config = load_pretrain_config(None, overrides, method="data2vec")
    straight = pretrain(config, tmp_path / "straight")
    records = read_metrics(tmp_path / "straight")
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert {"ema_decay", "target_var", "prediction_var", "masked_fraction"} <= records[0].keys()
    assert all(math.isfinite(r["loss"]) for r in records)

    upstream = build_upstream(str(straight.checkpoint))
    assert upstream.downsample_rate == 640 and len(upstream.hidden_sizes) == 3  # input + 2 layers
    output = upstream(torch.randn(2, 8000), torch.tensor([8000, 6400]))
    assert output.hidden_states[-1].shape[-1] == 32

    with preempted_at(monkeypatch, LoaderData, 4):
        pretrain(config, tmp_path / "resumed")
    assert find_latest(tmp_path / "resumed").name == "step_00000002"
    resumed = pretrain(config, tmp_path / "resumed", resume=True)

    expected = assert_same_weights(resumed.checkpoint, straight.checkpoint)
    assert any(name.startswith("teacher.") for name in expected)
    student = expected["encoder.context.layers.0.ffn.fc1.weight"]
    assert not torch.equal(expected["teacher.layers.0.ffn.fc1.weight"], student)  # an average, not a copy


def test_state_dicts_from_before_the_encoder_owned_the_mask_embedding_still_load(tiny_encoder):
    torch.manual_seed(0)
    saved = make_method(tiny_encoder, ema_transformer_only=False).state_dict()
    assert {"encoder.mask_embedding", "teacher.mask_embedding"} <= saved.keys()
    legacy = {name: value for name, value in saved.items() if not name.endswith("mask_embedding")}
    legacy["mask_embedding"] = saved["encoder.mask_embedding"]  # where the method kept it
    method = make_method(tiny_encoder, ema_transformer_only=False)
    method.load_state_dict(legacy, strict=True)
    assert torch.equal(method.encoder.mask_embedding, saved["encoder.mask_embedding"])
    assert torch.equal(method.teacher.mask_embedding, saved["encoder.mask_embedding"])
    assert method.encoder.config.mask_embedding
