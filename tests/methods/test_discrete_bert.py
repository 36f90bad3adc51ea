"""Discrete BERT: build_encoder, token masking, the loss, training, upstream from waveforms."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from speechssl.config import ConfigError
from speechssl.methods import build_method, method_config
from speechssl.methods.discrete_bert import DiscreteBERT, DiscreteBERTConfig
from speechssl.models import SpeechEncoder, load_encoder_preset
from speechssl.models.padding import zero_padding_frames
from speechssl.models.units import load_unit_tokenizer, save_unit_tokenizer
from speechssl.train import load_pretrain_config
from speechssl.train.logging import read_metrics
from speechssl.train.pretrain import build_pretrain_method, pretrain
from speechssl.upstream import build_upstream

# `discrete_bert_tiny` shrunk to seconds: a 1-layer 32-dim Transformer on the units, a
# 40-utterance synthetic corpus, 3 updates.
DISCRETE_BERT_TINY_OVERRIDES = [
    "encoder.dim=32", "encoder.heads=2", "encoder.ffn_dim=64", "encoder.layers=1",
    "encoder.pos_conv_kernel=8", "encoder.pos_conv_groups=4",
    "data.synthetic.num_utterances=40", "data.synthetic.num_speakers=4", "data.crop_seconds=0.75",
    "data.max_batch_seconds=6.0", "data.num_workers=0",
    "optim.warmup_steps=1", "train.max_steps=3", "train.log_every=1", "train.checkpoint_every=3",
    "train.device=cpu",
]  # fmt: skip


@pytest.fixture
def units_dir(tmp_path, mfcc_tokenizer):
    """A saved 8-unit MFCC tokenizer at 20 ms."""
    return str(save_unit_tokenizer(mfcc_tokenizer(pool=2), tmp_path / "units"))


def make_method(units: str, **objective) -> DiscreteBERT:
    """A 1-layer, 32-dim Discrete BERT without dropout on the tokenizer in ``units``."""
    config = DiscreteBERTConfig(units=units, **objective)
    tiny = dataclasses.replace(
        load_encoder_preset("tiny"), dim=32, heads=2, ffn_dim=64, layers=1, pos_conv_kernel=8,
        pos_conv_groups=4, dropout=0.0, attention_dropout=0.0,
    )  # fmt: skip
    encoder = DiscreteBERT.build_encoder(tiny, config)
    return DiscreteBERT(encoder, config, generator=torch.Generator().manual_seed(0))


def test_build_encoder_sets_the_units_frontend(units_dir):
    encoder = DiscreteBERT.build_encoder(load_encoder_preset("tiny"), DiscreteBERTConfig(units=units_dir))
    config = encoder.config
    assert config.frontend == "units" and config.dim == load_encoder_preset("tiny").dim
    assert config.units == load_unit_tokenizer(units_dir).config
    with pytest.raises(
        ConfigError, match=r"units: expected the directory.*set discrete_bert's units .*prepare hook"
    ):
        DiscreteBERT.build_encoder(load_encoder_preset("tiny"), DiscreteBERTConfig())


def test_the_method_loads_the_tokenizer_into_the_encoder(units_dir, tone_batch):
    method = make_method(units_dir)
    saved = load_unit_tokenizer(units_dir)
    assert torch.equal(method.encoder.frontend.tokenizer.centroids, saved.centroids)
    batch = tone_batch([8000, 6000])
    assert torch.equal(method.encoder.frontend.tokenizer(batch.waveforms, batch.lengths).units,
                       saved(batch.waveforms, batch.lengths).units)  # fmt: skip


def test_a_fbank_encoder_or_another_tokenizer_is_refused(units_dir, mfcc_tokenizer, tmp_path):
    with pytest.raises(ValueError, match=r"encoder\.frontend: expected 'units'.*found 'fbank'"):
        DiscreteBERT(
            SpeechEncoder.from_config(load_encoder_preset("tiny")), DiscreteBERTConfig(units=units_dir)
        )
    other = str(save_unit_tokenizer(mfcc_tokenizer(pool=4), tmp_path / "other"))
    encoder = make_method(units_dir).encoder
    with pytest.raises(ValueError, match=r"encoder\.units: expected the config of the tokenizer in"):
        DiscreteBERT(encoder, DiscreteBERTConfig(units=other))


def test_masked_fraction_matches_p_and_m_and_never_covers_padding(units_dir):
    method = make_method(units_dir)
    lengths = torch.tensor([2000] * 10 + [700])
    mask = method.compute_mask(lengths, 2000)  # (batch, frames)
    expected = 1 - (1 - 0.05) ** 10  # ≈ 0.40, the paper's "about 40%"
    assert mask[:10].float().mean().item() == pytest.approx(expected, abs=0.03)
    assert not mask[10, 700:].any() and mask[10, :700].any()


def test_selected_tokens_become_mask_and_the_bert_rule_splits_them(units_dir):
    method = make_method(units_dir)
    units = torch.randint(8, (4, 5000))  # (batch, frames)
    mask = torch.rand(4, 5000) < 0.5
    corrupted = method.corrupt(units, mask)
    assert (corrupted[mask] == method.mask_index).all() and torch.equal(corrupted[~mask], units[~mask])

    bert = make_method(units_dir, random_prob=0.1, keep_prob=0.1)
    corrupted = bert.corrupt(units, mask)
    assert torch.equal(corrupted[~mask], units[~mask])
    assert (corrupted[mask] == bert.mask_index).float().mean().item() == pytest.approx(0.8, abs=0.02)
    changed = (corrupted[mask] != units[mask]) & (corrupted[mask] != bert.mask_index)
    assert changed.float().mean().item() == pytest.approx(
        0.1 * 7 / 8, abs=0.02
    )  # a random unit may be the same


def test_loss_is_the_cross_entropy_of_the_original_units_at_masked_tokens(units_dir, tone_batch):
    method = make_method(units_dir).eval()
    batch = tone_batch([8000, 5000])
    captured = {}
    method.head.register_forward_hook(lambda module, inputs, output: captured.update(logits=output))
    output = method(batch)
    sequence = load_unit_tokenizer(units_dir)(batch.waveforms, batch.lengths)
    units = sequence.units  # (batch, frames)
    method.generator = torch.Generator().manual_seed(0)
    mask = method.compute_mask(sequence.lengths, units.shape[1])  # the same draw as in forward
    slots = captured["logits"].shape[0] // 2  # the head scores a fixed number of slots per utterance
    logits = captured["logits"].view(2, slots, -1)  # (batch, slots, num_units)
    valid = torch.arange(slots) < mask.sum(dim=1, keepdim=True)  # (batch, slots) the masked tokens, in order
    expected = F.cross_entropy(logits[valid], units[mask])
    assert output.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert float(output.metrics["masked_fraction"]) == pytest.approx(mask.sum().item() / 42)  # 26 + 16 tokens
    assert sequence.lengths.tolist() == [26, 16]


def test_a_few_steps_on_a_fixed_batch_lower_the_loss(units_dir, tone_batch):
    torch.manual_seed(0)
    method = make_method(units_dir)
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
    assert losses[-1] < 0.5 * losses[0]


def test_config_errors_name_the_option():
    with pytest.raises(ValueError, match=r"mask_prob: expected 0 < mask_prob \* mask_length <= 1"):
        DiscreteBERTConfig(mask_prob=0.2)
    with pytest.raises(ValueError, match=r"random_prob \+ keep_prob: expected at most 1"):
        DiscreteBERTConfig(random_prob=0.6, keep_prob=0.6)


def test_registered_and_built_by_the_pretrain_wiring(units_dir):
    config = load_pretrain_config(
        "discrete_bert_tiny", [*DISCRETE_BERT_TINY_OVERRIDES, f"objective.units={units_dir}"]
    )
    method = build_pretrain_method(config)
    assert isinstance(method, DiscreteBERT) and method.encoder.config.frontend == "units"
    assert config.encoder.frontend == "fbank"  # the run config is left as written
    assert method_config("discrete_bert", {"units": units_dir}) == DiscreteBERTConfig(units=units_dir)
    assert isinstance(build_method("discrete_bert", method.config, method.encoder), DiscreteBERT)


def test_pretrain_then_load_as_upstream_from_waveforms(tmp_path, units_dir, tone_batch):
    run = tmp_path / "run"
    overrides = [
        *DISCRETE_BERT_TINY_OVERRIDES,
        f"objective.units={units_dir}",
        f"data.root={tmp_path / 'corpus'}",
    ]
    pretrain(load_pretrain_config("discrete_bert_tiny", overrides), run)
    records = read_metrics(run)
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(math.isfinite(r["loss"]) and "masked_accuracy" in r for r in records)

    upstream = build_upstream(str(run))
    assert upstream.downsample_rate == 320 and len(upstream.hidden_sizes) == 2  # input + 1 layer
    batch = tone_batch([8000, 6000])
    output = upstream(batch.waveforms, batch.lengths)
    assert output.lengths.tolist() == [26, 19] and output.hidden_states[-1].shape == (2, 26, 32)

    encoder = upstream.encoder
    units = load_unit_tokenizer(units_dir)(batch.waveforms, batch.lengths)  # the tokenizer by hand
    x = zero_padding_frames(
        encoder.frontend.embedding(units.units.clamp(min=0)), units.lengths
    )  # (batch, frames, dim)
    manual = encoder.context(x, units.lengths)
    for got, expected in zip(output.hidden_states, manual, strict=True):
        assert torch.allclose(got, expected, atol=1e-6)
