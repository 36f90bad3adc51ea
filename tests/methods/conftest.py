"""Audio batches shared by the method tests."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from speechssl.data.batch import AudioBatch


def _tone_batch(lengths: list[int], seed: int = 0) -> AudioBatch:
    """Zero-padded audio of 0.1 s tones of random frequencies (200 Hz to 3.2 kHz) plus a little noise."""
    generator = torch.Generator().manual_seed(seed)
    samples, segment = max(lengths), 1600
    segments = -(-samples // segment)
    frequencies = 200 + 3000 * torch.rand(len(lengths), segments, generator=generator)  # (batch, segments)
    frequencies = frequencies.repeat_interleave(segment, dim=1)[:, :samples]  # (batch, samples)
    phase = torch.cumsum(2 * math.pi * frequencies / 16000, dim=1)  # (batch, samples)
    waveforms = 0.1 * torch.sin(phase) + 0.01 * torch.randn(len(lengths), samples, generator=generator)
    lengths_tensor = torch.tensor(lengths)
    waveforms[torch.arange(samples)[None, :] >= lengths_tensor[:, None]] = 0.0
    return AudioBatch(waveforms, lengths_tensor, [str(i) for i in range(len(lengths))])


@pytest.fixture
def tone_batch() -> Callable[..., AudioBatch]:
    """``tone_batch(lengths, seed=0)``: an :class:`AudioBatch` of tone sequences, zero-padded after ``lengths``."""
    return _tone_batch
