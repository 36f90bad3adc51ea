"""GumbelVectorQuantizer: hard codes with soft gradients, perplexity, diversity loss, temperature."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from speechssl.models.gumbel_quantizer import (
    GumbelTemperatureSchedule,
    GumbelVectorQuantizer,
    codebook_perplexity,
    diversity_loss,
)


def test_training_forward_picks_codebook_entries_and_backward_is_soft():
    quantizer = GumbelVectorQuantizer(input_dim=8, groups=2, entries=5, code_dim=6).train()
    x = torch.randn(2, 7, 8, requires_grad=True)
    out = quantizer(x, torch.tensor([7, 4]))

    assert out.codes.shape == (2, 7, 6) and out.indices.shape == (2, 7, 2)
    chosen = torch.stack(
        [quantizer.codebook[g, out.indices[..., g]] for g in range(2)], dim=2
    )  # (batch, frames, groups, entry_dim)
    expected = chosen.reshape(2, 7, 6)  # (batch, frames, groups * entry_dim)
    assert torch.allclose(out.codes[0], expected[0])
    assert torch.allclose(out.codes[1, :4], expected[1, :4])
    assert torch.equal(out.codes[1, 4:], torch.zeros(3, 6))

    out.codes.sum().backward()
    assert x.grad is not None and x.grad[0].abs().sum() > 0  # gradients through the soft probabilities
    assert quantizer.logits.weight.grad.abs().sum() > 0
    assert torch.equal(x.grad[1, 4:], torch.zeros(3, 8))  # padding neither contributes nor receives


def test_eval_choice_is_the_argmax_of_the_logits():
    quantizer = GumbelVectorQuantizer(input_dim=4, groups=2, entries=3, code_dim=4).eval()
    x = torch.randn(1, 5, 4)
    out = quantizer(x, torch.tensor([5]))
    logits = quantizer.logits(x).view(1, 5, 2, 3)  # (batch, frames, groups, entries)
    assert torch.equal(out.indices, logits.argmax(dim=-1))
    assert torch.equal(quantizer(x, torch.tensor([5])).codes, out.codes)  # deterministic


def test_perplexity_of_uniform_and_one_hot_usage():
    groups, entries = 2, 8
    uniform = torch.full((10, groups, entries), 1.0 / entries)
    assert codebook_perplexity(uniform).item() == pytest.approx(groups * entries)
    one_entry = F.one_hot(torch.zeros(10, groups, dtype=torch.long), entries).float()
    assert codebook_perplexity(one_entry).item() == pytest.approx(groups)
    every_entry_once = F.one_hot(torch.arange(entries)[:, None].expand(entries, groups), entries).float()
    assert codebook_perplexity(every_entry_once).item() == pytest.approx(groups * entries)


def test_perplexity_of_the_valid_frames_leaves_the_others_out():
    probs = torch.softmax(torch.randn(6, 2, 5, generator=torch.Generator().manual_seed(0)), dim=-1)
    valid = torch.tensor([True, False, True, True, False, True])
    torch.testing.assert_close(codebook_perplexity(probs, valid), codebook_perplexity(probs[valid]))


def test_diversity_loss_extremes():
    groups, entries = 2, 320
    assert diversity_loss(torch.tensor(float(groups * entries)), groups, entries).item() == pytest.approx(0.0)
    one_entry = diversity_loss(torch.tensor(float(groups)), groups, entries).item()
    assert one_entry == pytest.approx(1 - 1 / entries) and one_entry > 0.99


def test_statistics_ignore_padding():
    quantizer = GumbelVectorQuantizer(input_dim=4, groups=1, entries=4, code_dim=4).eval()
    x = torch.randn(2, 6, 4)
    padded = quantizer(x, torch.tensor([6, 3]))
    garbage = x.clone()
    garbage[1, 3:] = 100.0
    assert torch.equal(quantizer(garbage, torch.tensor([6, 3])).perplexity, padded.perplexity)
    valid = torch.cat([x[0], x[1, :3]])[None]  # (1, 9, input_dim): the valid frames only
    assert quantizer(valid, torch.tensor([9])).perplexity.item() == pytest.approx(padded.perplexity.item())


def test_temperature_schedule_and_setting():
    schedule = GumbelTemperatureSchedule()
    assert schedule(0) == 2.0
    assert schedule(1) == pytest.approx(2.0 * 0.999995)
    floor_step = math.ceil(math.log(0.5 / 2.0) / math.log(0.999995))  # ≈ 277k updates
    assert schedule(floor_step - 1) > 0.5 and schedule(floor_step) == 0.5 and schedule(400_000) == 0.5

    quantizer = GumbelVectorQuantizer(input_dim=4, groups=1, entries=4, code_dim=4, temperature=schedule(0))
    quantizer.set_temperature(schedule(1000))
    assert quantizer.temperature.item() == pytest.approx(schedule(1000))
    assert quantizer.state_dict()["temperature"].item() == pytest.approx(
        schedule(1000)
    )  # saved with checkpoints
    with pytest.raises(ValueError, match="temperature: expected > 0, found 0"):
        quantizer.set_temperature(0.0)
    with pytest.raises(ValueError, match="end/start"):
        GumbelTemperatureSchedule(start=0.5, end=2.0)


def test_invalid_sizes_are_named():
    with pytest.raises(ValueError, match="code_dim: expected a positive multiple of groups=2, found 5"):
        GumbelVectorQuantizer(input_dim=4, groups=2, entries=4, code_dim=5)
    with pytest.raises(ValueError, match=r"probs: expected \(frames, groups, entries\)"):
        codebook_perplexity(torch.ones(3, 4))
