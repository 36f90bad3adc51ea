"""Checkpoints: round trip, atomicity under a simulated crash, `latest`, pruning, encoder export."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import yaml
from torch import nn
from train_standins import StandInMethod

from speechssl.models.checkpoint import LATEST, find_latest, list_checkpoints, load_encoder
from speechssl.models.encoder import SpeechEncoder, load_encoder_preset
from speechssl.storage import is_partial
from speechssl.train import checkpoint as checkpoint_module
from speechssl.train.checkpoint import TrainerState, load_checkpoint, save_checkpoint
from speechssl.train.rng import capture_rng_state
from speechssl.train.schedule import build_scheduler

CONFIG = {"method": "stand_in", "optim": {"lr": 0.01, "betas": [0.9, 0.98]}}


def _trained(seed: int = 0) -> tuple[nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """A stand-in with tied weights and a non-contiguous buffer, after one optimizer step."""
    torch.manual_seed(seed)
    method = StandInMethod(tie_weights=True)
    method.register_buffer("transposed", torch.randn(3, 5).t())
    optimizer = torch.optim.AdamW(method.parameters(), lr=0.01)
    scheduler = build_scheduler(optimizer, warmup_steps=1, total_steps=10, min_lr_ratio=0.0)
    for parameter in method.parameters():
        parameter.grad = torch.randn_like(parameter)
    optimizer.step()
    scheduler.step()
    return method, optimizer, scheduler


def _state(step: int) -> TrainerState:
    return TrainerState(
        step=step, epoch=1, batch_in_epoch=3, elapsed_s=1.5, last_loss=0.25, rng_states=[capture_rng_state()]
    )


def test_round_trip_restores_every_tensor_and_the_trainer_state(tmp_path):
    method, optimizer, scheduler = _trained(seed=0)
    saved = _state(7)
    path = save_checkpoint(tmp_path, method, optimizer, scheduler, saved, CONFIG)
    assert path == tmp_path / "step_00000007"
    assert {p.name for p in path.iterdir()} == {
        "model.safetensors",
        "trainer_state.pt",
        "config.yaml",
        "encoder.safetensors",
        "encoder.yaml",
        "checksums.json",
    }
    assert yaml.safe_load((path / "config.yaml").read_text()) == CONFIG
    assert yaml.safe_load((path / "encoder.yaml").read_text()) == {"dim": 8}

    restored, restored_optimizer, restored_scheduler = _trained(seed=1)
    state = load_checkpoint(path, restored, restored_optimizer, restored_scheduler)
    assert dataclasses.replace(state, rng_states=[]) == dataclasses.replace(saved, rng_states=[])
    assert torch.equal(state.rng_states[0]["torch"], saved.rng_states[0]["torch"])
    assert state.rng_states[0]["numpy"] == saved.rng_states[0]["numpy"]
    original = method.state_dict()
    for name, tensor in restored.state_dict().items():
        assert torch.equal(tensor, original[name]), name
    assert restored.decoder.weight is restored.head.weight
    for group, reference in zip(
        restored_optimizer.state_dict()["state"].values(),
        optimizer.state_dict()["state"].values(),
        strict=True,
    ):
        assert all(torch.equal(group[k], reference[k]) for k in ("exp_avg", "exp_avg_sq"))
    assert restored_scheduler.state_dict()["last_epoch"] == scheduler.state_dict()["last_epoch"]


def test_latest_names_the_newest_checkpoint(tmp_path):
    method, optimizer, scheduler = _trained()
    assert find_latest(tmp_path) is None
    for step in (2, 4):
        save_checkpoint(tmp_path, method, optimizer, scheduler, _state(step), CONFIG)
    assert (tmp_path / LATEST).read_text().strip() == "step_00000004"
    assert find_latest(tmp_path) == tmp_path / "step_00000004"


def test_find_latest_falls_back_to_the_highest_complete_checkpoint(tmp_path):
    method, optimizer, scheduler = _trained()
    for step in (3, 12):
        save_checkpoint(tmp_path, method, optimizer, scheduler, _state(step), CONFIG)
    (tmp_path / LATEST).write_text("step_00000099\n")
    assert find_latest(tmp_path) == tmp_path / "step_00000012"
    (tmp_path / LATEST).unlink()
    assert find_latest(tmp_path) == tmp_path / "step_00000012"


def test_crash_mid_write_leaves_latest_on_the_previous_complete_checkpoint(tmp_path, monkeypatch):
    method, optimizer, scheduler = _trained()
    save_checkpoint(tmp_path, method, optimizer, scheduler, _state(1), CONFIG)

    def crash(*args, **kwargs):
        raise OSError("disk vanished")

    with monkeypatch.context() as patch:
        patch.setattr(checkpoint_module.torch, "save", crash)
        with pytest.raises(OSError, match="disk vanished"):
            save_checkpoint(tmp_path, method, optimizer, scheduler, _state(2), CONFIG)
    assert find_latest(tmp_path) == tmp_path / "step_00000001"
    assert list_checkpoints(tmp_path) == [tmp_path / "step_00000001"]
    assert not [p.name for p in tmp_path.iterdir() if is_partial(p)]  # the failed write cleaned up
    load_checkpoint(find_latest(tmp_path), _trained(seed=5)[0])

    # a killed process cannot clean up: its half-written folder stays until the next prune
    (tmp_path / ".step_00000002.killed.partial").mkdir()
    (tmp_path / ".step_00000002.killed.partial" / "model.safetensors").write_bytes(b"half")
    save_checkpoint(tmp_path, method, optimizer, scheduler, _state(2), CONFIG, keep_last=5)
    assert find_latest(tmp_path) == tmp_path / "step_00000002"
    assert not [p for p in tmp_path.iterdir() if is_partial(p)]


def test_pruning_keeps_the_newest(tmp_path):
    method, optimizer, scheduler = _trained()
    for step in range(1, 6):
        save_checkpoint(tmp_path, method, optimizer, scheduler, _state(step), CONFIG, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000004", "step_00000005"]
    assert find_latest(tmp_path) == tmp_path / "step_00000005"


def test_resaving_a_step_replaces_it(tmp_path):
    method, optimizer, scheduler = _trained()
    save_checkpoint(tmp_path, method, optimizer, scheduler, _state(3), CONFIG)
    with torch.no_grad():
        method.head.bias.fill_(4.0)
    save_checkpoint(tmp_path, method, optimizer, scheduler, _state(3), CONFIG)
    restored = _trained(seed=2)[0]
    load_checkpoint(tmp_path / "step_00000003", restored)
    assert torch.all(restored.head.bias == 4.0)
    assert list_checkpoints(tmp_path) == [tmp_path / "step_00000003"]


def test_load_checkpoint_names_a_directory_that_is_not_one(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"expected trainer_state\.pt"):
        load_checkpoint(tmp_path, _trained()[0])


class _EncoderOnlyMethod(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        config = dataclasses.replace(
            load_encoder_preset("tiny"),
            dim=32,
            layers=1,
            heads=2,
            ffn_dim=64,
            pos_conv_groups=4,
            pos_conv_kernel=8,
            subsampling_channels=8,
            n_mels=40,
        )
        self.encoder = SpeechEncoder.from_config(config)
        self.head = nn.Linear(32, 4)


def test_load_encoder_rebuilds_the_speech_encoder_with_its_weights(tmp_path):
    torch.manual_seed(0)
    method = _EncoderOnlyMethod()
    optimizer = torch.optim.AdamW(method.parameters())
    scheduler = build_scheduler(optimizer, 0, 10, 0.0)
    path = save_checkpoint(tmp_path, method, optimizer, scheduler, _state(1), CONFIG)
    encoder = load_encoder(path)
    assert encoder.config == method.encoder.config
    reference = method.encoder.state_dict()
    assert encoder.state_dict().keys() == reference.keys()
    assert all(torch.equal(t, reference[k]) for k, t in encoder.state_dict().items())
    waveforms, lengths = torch.randn(2, 4000), torch.tensor([4000, 3000])
    expected = method.encoder.eval()(waveforms, lengths).last_hidden_state
    assert torch.equal(encoder.eval()(waveforms, lengths).last_hidden_state, expected)
