"""Small encoder configs and audio batches shared by the model tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from speechssl.models import EncoderConfig


def _make_config(frontend: str = "fbank", **overrides) -> EncoderConfig:
    options = dict(
        frontend=frontend,
        dim=32,
        layers=2,
        heads=4,
        ffn_dim=64,
        dropout=0.0,
        attention_dropout=0.0,
        pos_conv_kernel=16,
        pos_conv_groups=4,
        n_mels=40,
        subsampling_channels=8,
        conv_channels=32,
    )
    options.update(overrides)
    return EncoderConfig(**options)


def _speech_batch(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    waveforms = 0.1 * torch.randn(len(lengths), max(lengths), generator=generator)
    lengths_tensor = torch.tensor(lengths)
    waveforms[torch.arange(max(lengths))[None, :] >= lengths_tensor[:, None]] = 0.0
    return waveforms, lengths_tensor


@pytest.fixture
def make_config() -> Callable[..., EncoderConfig]:
    """``make_config(frontend="fbank", **overrides)``: a small encoder config, dropout off."""
    return _make_config


@pytest.fixture
def speech_batch() -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """``speech_batch(lengths, seed=0)``: ``(batch, samples)`` noise zero-padded after ``lengths``."""
    return _speech_batch


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
