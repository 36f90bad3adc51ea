"""APC and VQ-APC: the shifted L1 loss, encoder checks, learning on a fixed batch, CLI to upstream."""

from __future__ import annotations

import pytest
import torch

from speechssl.cli import main
from speechssl.methods import build_method, method_config
from speechssl.methods.apc import APC, VQAPC, APCConfig, VQAPCConfig, shifted_l1
from speechssl.models import EncoderConfig, SpeechEncoder
from speechssl.models.checkpoint import find_latest
from speechssl.upstream import build_upstream


def _encoder(**overrides) -> SpeechEncoder:
    options = dict(
        context="lstm", dim=32, layers=2, heads=2, ffn_dim=64, dropout=0.0, attention_dropout=0.0,
        pos_conv_kernel=8, pos_conv_groups=4, n_mels=20, subsampling_channels=4, causal=True,
        feature_norm=False,
    )  # fmt: skip
    options.update(overrides)
    return SpeechEncoder.from_config(EncoderConfig(**options))


def test_shifted_l1_on_a_hand_checkable_case():
    # stride 1, one mel band: prediction y_t is compared with target x_{t+c}
    predictions = torch.tensor([[1.0, 2.0, 3.0], [5.0, 6.0, 7.0]])[:, :, None, None]
    targets = torch.tensor([[10.0, 20.0, 40.0], [0.0, 8.0, 1e3]])[:, :, None, None]  # 1e3: padding
    valid = torch.tensor([[True, True, True], [True, True, False]])[:, :, None]
    # c = 1: |20 - 1|, |40 - 2|, |8 - 5|; the pair (6, padding) is left out
    assert shifted_l1(predictions, targets, valid, 1).item() == pytest.approx((19 + 38 + 3) / 3)
    assert shifted_l1(predictions, targets, valid, 2).item() == pytest.approx(39.0)
    assert shifted_l1(predictions, targets, valid, 3).item() == 0.0  # no pair left


def test_padded_frames_never_contribute():
    generator = torch.Generator().manual_seed(0)
    predictions = torch.randn(2, 5, 4, 3, generator=generator)
    targets = torch.randn(2, 5, 4, 3, generator=generator)
    valid = torch.ones(2, 5, 4, dtype=torch.bool)
    valid[1, 2:] = False
    valid[1, 1, 3] = False  # a partial last block
    garbage_targets = targets.masked_fill(~valid[..., None], 1e6)
    loss = shifted_l1(predictions, garbage_targets, valid, 1)
    errors = (predictions[:, :4] - targets[:, 1:]).abs()  # (batch, 4, stride, mels)
    kept = valid[:, 1:]
    expected = errors[kept].mean()  # (valid frames, mels) -> scalar
    torch.testing.assert_close(loss, expected)


def test_apc_needs_a_causal_encoder_without_feature_norm():
    with pytest.raises(ValueError, match=r"encoder\.feature_norm: expected false for APC.*found true"):
        APC(_encoder(causal=False, feature_norm=True), APCConfig())
    with pytest.raises(ValueError, match=r"encoder\.causal: expected true for APC.*found false"):
        APC(_encoder(causal=False), APCConfig())
    with pytest.raises(ValueError, match="time_shift: expected >= 1, found 0"):
        APCConfig(time_shift=0)
    with pytest.raises(ValueError, match="codebook_size: expected >= 1, found 0"):
        method_config("vq_apc", {"codebook_size": 0})


@pytest.mark.parametrize(
    ("name", "context", "lr", "steps"),
    [("apc", "lstm", 3e-3, 15), ("apc", "transformer", 3e-3, 30), ("vq_apc", "lstm", 1e-3, 40)],
)
def test_a_few_steps_on_a_fixed_batch_lower_the_loss(name, context, lr, steps, tone_batch):
    torch.manual_seed(0)
    options = {"codebook_size": 64} if name == "vq_apc" else {}
    method = build_method(name, method_config(name, options), _encoder(context=context))
    optimizer = torch.optim.Adam(method.parameters(), lr=lr)
    batch = tone_batch([9600, 7000, 4000])
    losses = []
    for _ in range(steps):
        output = method(batch)
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
        losses.append(output.loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_vq_apc_loss_is_l1_plus_codebook_and_weighted_commitment(tone_batch):
    method = VQAPC(_encoder(), VQAPCConfig(codebook_size=8, commitment_weight=0.5))
    output = method(tone_batch([8000, 5000]))
    metrics = output.metrics
    expected = metrics["l1"] + metrics["codebook"] + 0.5 * metrics["commitment"]
    torch.testing.assert_close(output.loss.detach(), expected)
    assert 1.0 <= float(metrics["perplexity"]) <= 8.0 and 0.0 < float(metrics["code_usage"]) <= 1.0
    output.loss.backward()
    assert method.quantizer.codebook.grad is not None
    assert method.encoder.frontend.subsampling.projection.weight.grad.abs().sum() > 0  # straight through


def test_pretrain_cli_then_the_checkpoint_loads_as_an_upstream(tmp_path, tiny_pretrain_overrides):
    overrides = [o for o in tiny_pretrain_overrides if not o.startswith("objective.")]
    run = tmp_path / "run"
    argv = ["pretrain", "--method", "apc", "--run-dir", str(run), *overrides, f"data.root={tmp_path / 'c'}"]
    assert main(argv) == 0
    checkpoint = find_latest(run)
    assert checkpoint is not None and checkpoint.name == "step_00000003"
    upstream = build_upstream(str(checkpoint))
    assert upstream.num_layers == 2  # encoder.layers=1: the LSTM input and its one layer
    assert upstream.downsample_rate == 640
    assert upstream.encoder.config.context == "lstm" and upstream.encoder.config.causal
    output = upstream(torch.randn(2, 8000), torch.tensor([8000, 5000]))
    assert len(output.hidden_states) == 2 and torch.isfinite(output.last_hidden_state).all()
