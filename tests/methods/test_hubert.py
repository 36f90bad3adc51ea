"""HuBERT: cosine logits, β weighting, frame-rate and length checks, masking, training, upstream."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from speechssl.config import ConfigError
from speechssl.methods import build_method, method_config
from speechssl.methods.hubert import HuBERT, HuBERTConfig, align_units, cosine_logits, mean_cross_entropy
from speechssl.models import SpeechEncoder
from speechssl.models.units import save_unit_tokenizer
from speechssl.train import load_pretrain_config
from speechssl.train.logging import read_metrics
from speechssl.train.pretrain import pretrain
from speechssl.upstream import build_upstream

# `hubert_tiny` shrunk to seconds: a 1-layer 32-dim fbank encoder, a 40-utterance synthetic
# corpus, 3 updates.
HUBERT_TINY_OVERRIDES = [
    "encoder.dim=32", "encoder.heads=2", "encoder.ffn_dim=64", "encoder.layers=1", "encoder.n_mels=16",
    "encoder.subsampling_channels=8", "encoder.pos_conv_kernel=8", "encoder.pos_conv_groups=4",
    "objective.final_dim=16",
    "data.synthetic.num_utterances=40", "data.synthetic.num_speakers=4", "data.crop_seconds=0.75",
    "data.max_batch_seconds=6.0", "data.num_workers=0",
    "optim.warmup_steps=1", "train.max_steps=3", "train.log_every=1", "train.checkpoint_every=3",
    "train.device=cpu",
]  # fmt: skip


@pytest.fixture
def units_dir(tmp_path, mfcc_tokenizer):
    """A saved 8-unit MFCC tokenizer at 40 ms, the fbank encoder's rate."""
    return str(save_unit_tokenizer(mfcc_tokenizer(pool=4), tmp_path / "units"))


def make_method(encoder, units: str, **objective) -> HuBERT:
    return HuBERT(encoder, HuBERTConfig(units=units, **objective), generator=torch.Generator().manual_seed(0))


def test_cosine_logit_cross_entropy_matches_a_manual_computation():
    projected = torch.tensor([[3.0, 4.0], [0.0, -2.0]])  # (queries, final_dim)
    embeddings = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])  # (num_units, final_dim)
    logits = cosine_logits(projected, embeddings, temperature=0.1)
    s = 1 / math.sqrt(2)
    expected = torch.tensor([[0.6, 0.8, -1.4 * s], [0.0, -1.0, s]]) / 0.1  # cosines / τ
    assert torch.allclose(logits, expected, atol=1e-5)
    padded = torch.cat([logits, torch.randn(1, 3)])  # a third, invalid row (an unused slot)
    loss, accuracy = mean_cross_entropy(padded, torch.tensor([1, 0, -1]), torch.tensor([True, True, False]))
    by_hand = [-(row[t] - torch.logsumexp(row, 0)) for row, t in zip(expected, (1, 0), strict=True)]
    assert loss.item() == pytest.approx(float(sum(by_hand) / 2), rel=1e-5)
    assert accuracy.item() == 0.5  # the first query's best unit is 1 (right), the second's is 2 (wrong)


def test_masked_weight_one_ignores_the_unmasked_frames(tiny_encoder, units_dir, tone_batch):
    batch = tone_batch([8000, 6400])
    losses = {}
    for weight in (1.0, 0.5):
        for perturb in (False, True):
            torch.manual_seed(0)
            method = make_method(tiny_encoder(), units_dir, masked_weight=weight).eval()
            calls = []

            def change_unmasked(module, inputs, output, calls=calls, perturb=perturb):
                calls.append(output.shape[0])  # first call: masked frames, second: unmasked
                return output + 5.0 * torch.randn_like(output) if perturb and len(calls) == 2 else output

            method.final_projection.register_forward_hook(change_unmasked)
            output = method(batch)
            losses[weight, perturb] = output.loss.item()
            terms = output.metrics
            expected = weight * terms["loss_masked"] + (1 - weight) * terms["loss_unmasked"]
            assert output.loss.item() == pytest.approx(float(expected), rel=1e-6)
    assert losses[1.0, True] == losses[1.0, False]
    assert losses[0.5, True] != pytest.approx(losses[0.5, False], rel=1e-3)


def test_frame_rate_mismatch_names_both_rates(tiny_encoder, mfcc_tokenizer, tmp_path):
    units = str(save_unit_tokenizer(mfcc_tokenizer(pool=2), tmp_path / "units"))  # 320 samples per unit
    with pytest.raises(
        ValueError, match=r"encoder's \(640 samples per frame\), found 320 samples.*pool to 4"
    ):
        make_method(tiny_encoder(), units)


def test_units_off_by_more_than_the_tolerance_raise_with_the_counts():
    units = torch.tensor([[1, 2, 3, 4, 5], [6, 7, 8, -1, -1]])  # (batch, unit_frames)
    targets = align_units(units, torch.tensor([5, 3]), torch.tensor([4, 4]), 4, tolerance=1)
    assert targets.tolist() == [[1, 2, 3, 4], [6, 7, 8, -1]]  # extra unit dropped, unit-less frame ignored
    with pytest.raises(ValueError, match=r"found 5 units for 3 frames \(utterance 1\)"):
        align_units(units, torch.tensor([5, 5]), torch.tensor([5, 3]), 5, tolerance=1)


def test_mfcc_units_under_the_waveform_cnn_need_a_tolerance_of_two(
    tiny_encoder, mfcc_tokenizer, tmp_path, tone_batch
):
    units = str(save_unit_tokenizer(mfcc_tokenizer(pool=2), tmp_path / "units"))  # 20 ms, the CNN's rate
    batch = tone_batch([8000, 6000])  # 26 and 19 units for 24 and 18 CNN frames
    with pytest.raises(ValueError, match="found 26 units for 24 frames"):
        make_method(tiny_encoder("waveform"), units)(batch)
    output = make_method(tiny_encoder("waveform"), units, length_tolerance=2)(batch)
    assert math.isfinite(output.loss.item()) and 0 < float(output.metrics["masked_fraction"]) < 1


def test_masked_fraction_matches_p_and_l_and_never_covers_padding(tiny_encoder, units_dir):
    method = make_method(tiny_encoder(), units_dir)
    lengths = torch.tensor([2000] * 10 + [700])
    mask = method.compute_mask(lengths, 2000)  # (batch, frames)
    expected = 1 - (1 - 0.08) ** 10  # a frame is covered unless none of the l starts before it fires: ≈ 0.57
    assert mask[:10].float().mean().item() == pytest.approx(expected, abs=0.03)
    assert not mask[10, 700:].any() and mask[10, :700].any()


def test_forward_reports_accuracies_and_masks_only_valid_frames(tiny_encoder, units_dir, tone_batch):
    output = make_method(tiny_encoder(), units_dir)(tone_batch([8000, 5000, 6400]))
    metrics = output.metrics
    assert {
        "loss_masked",
        "loss_unmasked",
        "masked_accuracy",
        "unmasked_accuracy",
        "masked_fraction",
    } <= metrics.keys()
    assert 0.0 <= float(metrics["masked_accuracy"]) <= 1.0 and 0.0 < float(metrics["masked_fraction"]) < 1.0
    assert output.loss.item() == pytest.approx(float(metrics["loss_masked"]))  # β = 1


def test_the_tokenizer_is_frozen_and_in_the_state_dict(tiny_encoder, units_dir):
    method = make_method(tiny_encoder(), units_dir)
    method.train()
    assert not method.tokenizer.training
    assert not any(p.requires_grad for p in method.tokenizer.parameters())
    assert "tokenizer.centroids" in method.state_dict()


def test_a_few_steps_on_a_fixed_batch_lower_the_loss(tiny_encoder, units_dir, tone_batch):
    torch.manual_seed(0)
    method = make_method(tiny_encoder(), units_dir, masked_weight=0.5)
    batch = tone_batch([8000, 7000, 6400])
    optimizer = torch.optim.Adam([p for p in method.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(30):
        method.generator = torch.Generator().manual_seed(1)  # the same mask at every step
        loss = method(batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_an_empty_units_option_says_how_to_make_a_tokenizer(tiny_encoder):
    with pytest.raises(
        ConfigError, match=r"units: expected the directory.*set hubert.s units .*prepare hook"
    ):
        HuBERT(tiny_encoder(), HuBERTConfig())


def test_config_errors_name_the_option():
    with pytest.raises(ValueError, match=r"mask_prob: expected 0 < mask_prob \* mask_length <= 1"):
        HuBERTConfig(mask_prob=0.2)
    with pytest.raises(ValueError, match=r"masked_weight: expected β in \[0, 1\], found 1.5"):
        HuBERTConfig(masked_weight=1.5)
    with pytest.raises(ValueError, match="temperature: expected > 0"):
        HuBERTConfig(temperature=0.0)


def test_registered_and_built_by_name(tiny_encoder, units_dir):
    method = build_method("hubert", method_config("hubert", {"units": units_dir}), tiny_encoder())
    assert isinstance(method, HuBERT) and method.config == HuBERTConfig(units=units_dir)


def test_pretrain_then_load_as_upstream(tmp_path, units_dir):
    run = tmp_path / "run"
    overrides = [*HUBERT_TINY_OVERRIDES, f"objective.units={units_dir}", f"data.root={tmp_path / 'corpus'}"]
    pretrain(load_pretrain_config("hubert_tiny", overrides), run)
    records = read_metrics(run)
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(math.isfinite(r["loss"]) and "masked_accuracy" in r for r in records)

    upstream = build_upstream(str(run))
    assert upstream.downsample_rate == 640 and len(upstream.hidden_sizes) == 2  # input + 1 layer
    output = upstream(torch.randn(2, 8000), torch.tensor([8000, 6400]))
    assert output.lengths.tolist() == [13, 11] and output.hidden_states[-1].shape == (2, 13, 32)


def test_a_tokenizer_at_another_sample_rate_is_an_error(tiny_encoder, mfcc_tokenizer, tmp_path):
    units = str(save_unit_tokenizer(mfcc_tokenizer(pool=4), tmp_path / "units"))  # MFCC at 16 kHz
    encoder = SpeechEncoder.from_config(dataclasses.replace(tiny_encoder().config, sample_rate=8000))
    with pytest.raises(
        ValueError,
        match=r"units: expected a tokenizer of audio at encoder\.sample_rate = 8000 Hz, found 16000 Hz",
    ):
        make_method(encoder, units)


@pytest.mark.parametrize("weight, graphed", [(1.0, (True, False)), (0.0, (False, True)), (0.5, (True, True))])
def test_a_term_of_weight_zero_builds_no_autograd_graph(tiny_encoder, units_dir, tone_batch, weight, graphed):
    torch.manual_seed(0)
    method = make_method(tiny_encoder(), units_dir, masked_weight=weight)
    grad_enabled = []
    method.final_projection.register_forward_hook(
        lambda module, inputs, output: grad_enabled.append(output.requires_grad)
    )
    output = method(tone_batch([8000, 6400]))
    assert tuple(grad_enabled) == graphed  # masked term, then unmasked term
    terms = output.metrics
    expected = weight * terms["loss_masked"] + (1 - weight) * terms["loss_unmasked"]
    assert output.loss.item() == pytest.approx(float(expected), rel=1e-6)
    assert torch.isfinite(terms["loss_unmasked"]) and torch.isfinite(terms["unmasked_accuracy"])
    output.loss.backward()
    assert method.final_projection.weight.grad is not None
