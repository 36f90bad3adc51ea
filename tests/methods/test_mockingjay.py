"""Mockingjay and TERA (Mockingjay plus channel and magnitude alteration): the masked L1 loss,
the loss only on altered positions, training on a fixed batch, pretraining end to end."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from speechssl.cli import main
from speechssl.data.batch import AudioBatch
from speechssl.methods import build_method, method_config
from speechssl.methods.log_mel_targets import stack_frames
from speechssl.methods.mockingjay import Mockingjay, MockingjayConfig, masked_l1
from speechssl.methods.tera import TERA, TERAConfig
from speechssl.models import SpeechEncoder, utterance_mean_variance_norm
from speechssl.models.alteration import ChannelAlteration, MagnitudeAlteration
from speechssl.models.checkpoint import find_latest
from speechssl.train import load_pretrain_config, pretrain
from speechssl.upstream import build_upstream


def chirp_batch() -> AudioBatch:
    """Two harmonic sweeps, the second shorter (10000 samples = 63 log-mel frames, a partial last unit)."""
    t = torch.arange(16000, dtype=torch.float64) / 16000
    first = torch.sin(2 * math.pi * (150 * t + 200 * t**2)) + 0.5 * torch.sin(
        2 * math.pi * (450 * t + 600 * t**2)
    )
    second = torch.sin(2 * math.pi * (300 * t - 100 * t**2))
    waveforms = 0.3 * torch.stack([first, second]).float()
    waveforms[1, 10000:] = 0.0
    return AudioBatch(waveforms, torch.tensor([16000, 10000]), ["a", "b"])


def normalised_log_mel(encoder: SpeechEncoder, batch: AudioBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """What the front-end feeds its subsampling, computed independently of the method."""
    features, lengths = encoder.frontend.filterbank(batch.waveforms, batch.lengths)
    return utterance_mean_variance_norm(features, lengths), lengths


class ConstructedHead(nn.Module):
    """Predicts ``target + 1`` on the positions in ``record["mask"]`` and ``target + 100`` elsewhere."""

    def __init__(self, target: torch.Tensor, lengths: torch.Tensor, record: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.target, self.lengths, self.record = target, lengths, record
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        batch, frames, _ = hidden.shape
        target, _ = stack_frames(self.target, self.lengths, 4, frames)  # (batch, frames, 4, n_mels)
        mask, _ = stack_frames(self.record["mask"], self.lengths, 4, frames)
        prediction = target + torch.where(mask, 1.0, 100.0) + self.anchor
        return prediction.reshape(batch, frames, -1)  # (batch, frames, 4 * n_mels), the head's layout


def test_masked_l1_hand_case_and_empty_mask():
    prediction = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    target = torch.tensor([[[0.0, 0.0], [0.0, 10.0]]])
    mask = torch.tensor([[[True, False], [False, True]]])
    assert float(masked_l1(prediction, target, mask)) == pytest.approx((1.0 + 6.0) / 2)
    empty = masked_l1(prediction.requires_grad_(), target, torch.zeros_like(mask))
    assert empty.item() == 0.0
    empty.backward()
    with pytest.raises(ValueError, match=r"expected equal shapes \(batch, frames, unit, n_mels\)"):
        masked_l1(prediction, target[:, :1], mask)


def test_loss_is_l1_over_exactly_the_altered_valid_frames(tiny_encoder):
    torch.manual_seed(0)
    encoder = tiny_encoder()
    method = Mockingjay(encoder, MockingjayConfig())
    batch = chirp_batch()
    target, lengths = normalised_log_mel(encoder, batch)
    assert lengths.tolist() == [101, 63]
    record: dict[str, torch.Tensor] = {}

    def alter_fixed_units(features: torch.Tensor, frame_lengths: torch.Tensor):
        # units 3..4 of utterance 0 and the last, partial unit 15 (frames 60..62 valid, 63 padding) of utterance 1
        mask = torch.zeros(features.shape[:2], dtype=torch.bool)
        mask[0, 12:20] = True
        mask[1, 60:64] = True
        mask &= torch.arange(features.shape[1])[None] < frame_lengths[:, None]
        record["mask"] = mask[..., None].expand_as(features)
        return features.masked_fill(record["mask"], 0.0), record["mask"]

    method.alter = alter_fixed_units
    method.head = ConstructedHead(target, lengths, record)
    output = method(batch)
    assert output.loss.item() == pytest.approx(1.0, abs=1e-6)  # the +100 positions never count
    assert int(record["mask"].sum()) == (8 + 3) * 16
    assert float(output.metrics["altered_fraction"]) == pytest.approx(11 / 164)


def test_loss_with_the_real_alteration_counts_only_selected_frames(tiny_encoder):
    torch.manual_seed(0)
    encoder = tiny_encoder()
    method = Mockingjay(encoder, MockingjayConfig(), generator=torch.Generator().manual_seed(1))
    batch = chirp_batch()
    target, lengths = normalised_log_mel(encoder, batch)
    record: dict[str, torch.Tensor] = {}
    real_alter = method.alter

    def recording_alter(features: torch.Tensor, frame_lengths: torch.Tensor):
        altered, record["mask"] = real_alter(features, frame_lengths)
        return altered, record["mask"]

    method.alter = recording_alter
    method.head = ConstructedHead(target, lengths, record)
    assert method(batch).loss.item() == pytest.approx(1.0, abs=1e-6)
    assert 0 < float(record["mask"].float().mean()) < 0.3


def test_a_few_steps_on_a_fixed_batch_lower_the_loss(tiny_encoder):
    torch.manual_seed(0)
    generator = torch.Generator()
    method = Mockingjay(tiny_encoder(), MockingjayConfig(), generator=generator)
    optimizer = torch.optim.Adam(method.parameters(), lr=3e-3)
    batch = chirp_batch()
    losses = []
    for _ in range(25):
        generator.manual_seed(0)  # the same alteration every step: a fixed objective
        loss = method(batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.7 * losses[0]


def test_registered_and_needs_an_fbank_encoder(tiny_encoder):
    method = build_method("mockingjay", method_config("mockingjay", {"time": {"span": 3}}), tiny_encoder())
    assert isinstance(method, Mockingjay) and method.config.time.span == 3 and method.unit == 4
    with pytest.raises(ValueError, match=r"encoder\.frontend: expected 'fbank' .*found 'waveform'"):
        Mockingjay(tiny_encoder("waveform"), MockingjayConfig())


def test_cli_pretrain_end_to_end_and_the_checkpoint_loads_as_an_upstream(tmp_path, tiny_pretrain_overrides):
    overrides = [o for o in tiny_pretrain_overrides if not o.startswith("objective.")]
    run = tmp_path / "run"
    argv = ["pretrain", "--method", "mockingjay", "--run-dir", str(run), f"data.root={tmp_path / 'corpus'}"]
    assert main([*argv, *overrides]) == 0
    checkpoint = find_latest(run)
    assert checkpoint is not None and checkpoint.name == "step_00000003"
    upstream = build_upstream(str(checkpoint))
    assert upstream.num_layers == 2 and upstream.downsample_rate == 640
    features = upstream(torch.randn(2, 8000), torch.tensor([8000, 5000]))
    assert features.last_hidden_state.shape == (2, 13, 32)
    assert torch.isfinite(features.last_hidden_state).all()


def log_mel_and_lengths(lengths: list[int], channels: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    features = torch.randn(len(lengths), max(lengths), channels, generator=torch.Generator().manual_seed(0))
    valid = torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]
    return features * valid[..., None], torch.tensor(lengths)


def test_without_channel_and_magnitude_alteration_tera_is_mockingjay(tiny_encoder):
    features, lengths = log_mel_and_lengths([57, 30])
    config = TERAConfig(channel=ChannelAlteration(max_fraction=0.0), magnitude=MagnitudeAlteration(p=0.0))
    tera = TERA(tiny_encoder(), config, generator=torch.Generator().manual_seed(3))
    mockingjay = Mockingjay(tiny_encoder(), config, generator=torch.Generator().manual_seed(3))
    for found, expected in zip(
        tera.alter(features, lengths), mockingjay.alter(features, lengths), strict=True
    ):
        assert torch.equal(found, expected)


def test_tera_mask_is_the_union_of_time_channel_and_magnitude_alterations(tiny_encoder):
    features, lengths = log_mel_and_lengths([57, 30])
    generator = torch.Generator()
    tera = TERA(tiny_encoder(), TERAConfig(magnitude=MagnitudeAlteration(p=0.0)), generator=generator)
    saw_band = False
    for seed in range(10):
        generator.manual_seed(seed)
        altered, mask = tera.alter(features, lengths)
        time_frames = mask.all(-1)  # frames altered in every channel
        band = mask & ~time_frames[..., None]  # the channel band on the other frames
        for row, length in enumerate(lengths.tolist()):
            assert not mask[row, length:].any() and torch.equal(altered[row, length:], features[row, length:])
            rows = band[row, :length][~time_frames[row, :length]]  # (unselected frames, channels)
            if len(rows):
                assert (rows == rows[0]).all()  # the same band on every frame
                saw_band |= bool(rows[0].any())
        assert (altered[band] == 0).all() and torch.equal(altered[~mask], features[~mask])
    assert saw_band
    noisy = TERA(tiny_encoder(), TERAConfig(magnitude=MagnitudeAlteration(p=1.0)), torch.Generator())
    _, mask = noisy.alter(features, lengths)
    valid = torch.arange(57)[None, :] < lengths[:, None]
    assert torch.equal(mask, valid[..., None].expand_as(mask))  # a noised utterance is altered everywhere


def test_tera_loss_is_l1_over_the_altered_positions_only(tiny_encoder):
    torch.manual_seed(0)
    encoder = tiny_encoder()
    method = TERA(encoder, TERAConfig(), generator=torch.Generator().manual_seed(4))
    batch = chirp_batch()
    target, lengths = normalised_log_mel(encoder, batch)
    record: dict[str, torch.Tensor] = {}
    real_alter = method.alter

    def recording_alter(features: torch.Tensor, frame_lengths: torch.Tensor):
        altered, record["mask"] = real_alter(features, frame_lengths)
        return altered, record["mask"]

    method.alter = recording_alter
    method.head = ConstructedHead(target, lengths, record)
    output = method(batch)
    assert output.loss.item() == pytest.approx(1.0, abs=1e-6)
    fraction = int(record["mask"].sum()) / (164 * 16)
    assert output.metrics["altered_fraction"].item() == pytest.approx(fraction)


def test_tera_a_few_steps_on_a_fixed_batch_lower_the_loss(tiny_encoder):
    torch.manual_seed(0)
    generator = torch.Generator()
    method = TERA(tiny_encoder(), TERAConfig(), generator=generator)
    optimizer = torch.optim.Adam(method.parameters(), lr=3e-3)
    batch = chirp_batch()
    losses = []
    for _ in range(25):
        generator.manual_seed(0)
        loss = method(batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.7 * losses[0]


def test_tera_config_from_options_and_pretrain_end_to_end(tiny_encoder, tmp_path, tiny_pretrain_overrides):
    config = method_config("tera", {"channel": {"max_fraction": 0.1}, "magnitude": {"p": 0.5}})
    assert (
        config.channel.max_fraction == 0.1 and config.magnitude.std == 0.2 and config.time.mask_prob == 0.15
    )
    assert isinstance(build_method("tera", config, tiny_encoder()), TERA)
    overrides = [o for o in tiny_pretrain_overrides if not o.startswith("objective.")]
    run_config = load_pretrain_config(None, [*overrides, f"data.root={tmp_path / 'corpus'}"], method="tera")
    result = pretrain(run_config, tmp_path / "run")
    assert result.step == 3 and math.isfinite(result.loss)
    upstream = build_upstream(str(result.checkpoint))
    assert upstream.num_layers == 2 and upstream.downsample_rate == 640
