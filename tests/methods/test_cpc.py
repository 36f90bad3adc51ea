"""CPC: log-bilinear InfoNCE, queries and negatives inside the valid frames, causality, training, end to end."""

from __future__ import annotations

import math

import pytest
import torch

from speechssl.cli import main
from speechssl.methods import build_method, method_config
from speechssl.methods.contrastive import info_nce
from speechssl.methods.cpc import CPC, CPCConfig, cpc_logits, pool_to_padded
from speechssl.models import EncoderConfig, SpeechEncoder, load_encoder_preset
from speechssl.train.logging import read_metrics
from speechssl.upstream import build_upstream

# The cpc preset shrunk: 8-channel CNN with the paper's strides (160 samples per frame),
# one causal 16-unit GRU.
TINY_ENCODER = dict(
    frontend="waveform", context="gru", causal=True, dim=16, layers=1, dropout=0.0, conv_channels=8,
    conv_kernels=(10, 8, 4, 4, 4), conv_strides=(5, 4, 2, 2, 2), conv_norm="layer",
)  # fmt: skip

# `speechssl pretrain --method cpc` shrunk to seconds: a 40-utterance synthetic corpus, 3 updates.
CPC_TINY_OVERRIDES = (
    "encoder.dim=16", "encoder.conv_channels=8",
    "objective.prediction_steps=4", "objective.num_negatives=16",
    "data.synthetic.num_utterances=40", "data.synthetic.num_speakers=4", "data.crop_seconds=0.75",
    "data.max_batch_seconds=3.0", "data.num_workers=0",
    "optim.warmup_steps=1", "train.max_steps=3", "train.log_every=1", "train.checkpoint_every=2",
    "train.device=cpu",
)  # fmt: skip


def make_method(**objective) -> CPC:
    encoder = SpeechEncoder.from_config(EncoderConfig(**TINY_ENCODER))
    return CPC(encoder, CPCConfig(**{"prediction_steps": 3, "num_negatives": 8, **objective}))


def test_infonce_of_identical_candidates_is_log_n_plus_one():
    pool = torch.randn(1, 6).expand(10, 6)  # every candidate latent is the same vector
    predictions = torch.randn(4, 6)
    logits = cpc_logits(predictions, pool, torch.tensor([0, 1, 2, 3]), torch.randint(4, 10, (4, 7)))
    loss, _ = info_nce(logits)
    assert loss.item() == pytest.approx(math.log(8), rel=1e-5)


def test_infonce_vanishes_when_the_prediction_matches_only_the_positive():
    pool = 10.0 * torch.eye(8)  # orthogonal latents
    positives = torch.tensor([1, 5])
    logits = cpc_logits(pool[positives], pool, positives, torch.tensor([[0, 2, 3], [4, 6, 7]]))
    assert torch.equal(logits, torch.tensor([[100.0, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 0.0]]))
    loss, accuracy = info_nce(logits)
    assert loss.item() < 1e-6 and accuracy.item() == 1.0


@pytest.mark.parametrize("strategy", ["same_utterance", "other_utterances", "mixed"])
def test_positives_and_negatives_stay_inside_the_valid_frames(make_batch, strategy, monkeypatch):
    import speechssl.methods.cpc as cpc_module

    calls = []
    sample = cpc_module.sample_negatives

    def record(positives, lengths, num_negatives, strategy, generator, check):
        negatives = sample(positives, lengths, num_negatives, strategy, generator, check)
        calls.append((positives, lengths, negatives))
        return negatives

    monkeypatch.setattr(cpc_module, "sample_negatives", record)
    method = make_method(negative_sampling=strategy, num_negatives=50)
    method(make_batch([3200, 1600, 2400]))  # 18, 8 and 13 frames

    assert len(calls) == 3  # one per prediction step
    for k, (positives, lengths, negatives) in enumerate(calls, start=1):
        assert lengths.tolist() == [18, 8, 13]
        # queries: every padded (b, t < 18 - k); those with t + k < length count
        counted = (torch.arange(18 - k)[None, :] < torch.tensor([18, 8, 13])[:, None] - k).flatten()
        positives, negatives = positives[counted], negatives[counted]
        offsets = torch.tensor([0, 18, 26])
        expected = torch.cat([offsets[b] + torch.arange(k, n) for b, n in enumerate([18, 8, 13])])
        assert torch.equal(positives, expected)  # z_{t+k} for every t with t + k < length
        assert ((negatives >= 0) & (negatives < 39)).all()  # indices into the 39 valid frames
        assert not (negatives == positives[:, None]).any()


def test_pool_indices_map_to_the_padded_frames():
    # pool of 3 + 1 + 2 valid frames in a batch padded to 4 frames
    padded = pool_to_padded(torch.tensor([[0, 2, 3], [4, 5, 1]]), torch.tensor([3, 1, 2]), 4)
    assert padded.tolist() == [[0, 2, 4], [8, 9, 1]]


def test_loss_is_infonce_over_the_valid_queries_with_a_pool_of_valid_frames(make_batch, monkeypatch):
    import speechssl.methods.cpc as cpc_module

    drawn = []
    sample = cpc_module.sample_negatives

    def record(*args, **kwargs):
        drawn.append(sample(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(cpc_module, "sample_negatives", record)
    method = make_method(negative_sampling="mixed")
    batch = make_batch([3200, 1600, 2400])  # 18, 8 and 13 frames
    loss = method(batch).loss
    # reference: only the valid (b, t) queries, scored against the 39 valid frames
    encoded = method.encoder(batch.waveforms, batch.lengths, output_features=True)
    lengths = [18, 8, 13]
    pool = torch.cat([encoded.features[b, :n] for b, n in enumerate(lengths)])  # (39, z_dim)
    offsets = [0, 18, 26]
    losses = []
    for k, (predictor, negatives) in enumerate(zip(method.predictors, drawn, strict=True), start=1):
        counted = (torch.arange(18 - k)[None, :] < torch.tensor(lengths)[:, None] - k).flatten()
        context = torch.cat([encoded.hidden_states[-1][b, : n - k] for b, n in enumerate(lengths)])
        positives = torch.cat([offsets[b] + torch.arange(k, n) for b, n in enumerate(lengths)])
        logits = cpc_logits(predictor(context), pool, positives, negatives[counted])
        losses.append(info_nce(logits)[0])
    torch.testing.assert_close(loss, torch.stack(losses).mean())


def test_context_is_causal_so_future_audio_does_not_change_the_past(make_batch):
    method = make_method().eval()
    batch = make_batch([4000])
    changed = batch.waveforms.clone()
    changed[0, 3000:] = torch.randn(1000)
    encoder = method.encoder
    before = encoder(batch.waveforms, batch.lengths).last_hidden_state
    after = encoder(changed, batch.lengths).last_hidden_state
    # frames whose receptive field (465 samples from 160 t) ends before sample 3000
    untouched = (3000 - 465) // 160 + 1
    assert torch.allclose(before[0, :untouched], after[0, :untouched], atol=1e-6)
    assert not torch.allclose(before[0, untouched:], after[0, untouched:])


def test_a_bidirectional_context_is_refused():
    encoder = SpeechEncoder.from_config(EncoderConfig(**{**TINY_ENCODER, "causal": False}))
    with pytest.raises(ValueError, match=r"encoder\.causal: expected true"):
        CPC(encoder, CPCConfig())


def test_too_short_batches_are_named(make_batch):
    method = make_method(prediction_steps=12)
    with pytest.raises(ValueError, match="expected an utterance longer than prediction_steps=12 frames"):
        method(make_batch([1600, 1200]))  # 8 and 5 frames


def test_metrics_and_a_few_steps_on_a_fixed_batch_lower_the_loss(make_batch):
    torch.manual_seed(0)
    method = make_method()
    batch = make_batch([6400, 4800, 5600])
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        method.generator = torch.Generator().manual_seed(0)  # the same negatives every step
        output = method(batch)
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
        losses.append(output.loss.item())
    assert set(output.metrics) == {
        "accuracy",
        "loss_step_1",
        "accuracy_step_1",
        "loss_step_3",
        "accuracy_step_3",
    }
    assert losses[0] == pytest.approx(math.log(9), abs=0.5)
    assert losses[-1] < 0.7 * losses[0]


def test_config_and_registry():
    with pytest.raises(ValueError, match="negative_sampling: expected one of"):
        CPCConfig(negative_sampling="speaker")  # type: ignore[arg-type]
    encoder = SpeechEncoder.from_config(load_encoder_preset("cpc"))
    method = build_method("cpc", method_config("cpc", {}), encoder)
    assert isinstance(method, CPC) and method.config == CPCConfig()
    assert encoder.downsample_rate == 160 and encoder.num_layers == 2 and encoder.dim == 256


def test_pretrain_cli_end_to_end_then_load_as_upstream(tmp_path):
    run = tmp_path / "run"
    overrides = [*CPC_TINY_OVERRIDES, f"data.root={tmp_path / 'corpus'}"]
    assert main(["pretrain", "--method", "cpc", "--run-dir", str(run), *overrides]) == 0
    records = read_metrics(run)
    assert [r["step"] for r in records] == [1, 2, 3]
    assert {"accuracy", "loss_step_1", "loss_step_4"} <= records[0].keys()
    assert all(math.isfinite(r["loss"]) for r in records)

    upstream = build_upstream(str(run / "step_00000003"))
    assert upstream.downsample_rate == 160 and len(upstream.hidden_sizes) == 2  # GRU input + 1 layer
    output = upstream(torch.randn(2, 8000), torch.tensor([8000, 6400]))
    assert output.lengths.tolist() == [48, 38] and output.hidden_states[-1].shape == (2, 48, 16)
