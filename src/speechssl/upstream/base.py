"""The upstream contract: any frozen representation of audio, layer by layer.

Modelled on s3prl's upstream interface, with lengths first-class: an upstream maps a
padded batch of 16 kHz waveforms to one ``(batch, frames, dim)`` tensor per layer plus
the number of valid frames of each utterance. Speechssl checkpoints (whatever method
trained them) and hand-crafted baselines (log-mel, MFCC) implement it alike, so every
downstream task runs on either.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from speechssl.data.audio import DEFAULT_SAMPLE_RATE
from speechssl.data.batch import pad_waveforms
from speechssl.models.output import EncoderOutput


class Upstream(nn.Module):
    """A frozen representation with ``num_layers`` hidden states.

    Attributes:
        name: identifier used in reports.
        hidden_sizes: feature dimension of each layer.
        downsample_rate: input samples per output frame.
        sample_rate: sample rate the upstream expects (a speechssl encoder's ``sample_rate``; 16 kHz by default).
        min_samples: the shortest utterance it reads (a waveform CNN's receptive field; 1 by default),
            which evaluation leaves out shorter files by (:mod:`speechssl.downstream.screening`).
    """

    name: str
    hidden_sizes: list[int]
    downsample_rate: int
    sample_rate: int = DEFAULT_SAMPLE_RATE
    min_samples: int = 1

    @property
    def num_layers(self) -> int:
        return len(self.hidden_sizes)

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        """Hidden states of ``waveforms`` ``(batch, samples)`` with ``lengths`` ``(batch,)``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def encode(self, waveforms: Sequence[torch.Tensor | np.ndarray]) -> EncoderOutput:
        """Every hidden state of a list of 1-D waveforms ``(samples,)`` at :attr:`sample_rate`.

        The waveforms are zero-padded into one batch with their lengths (each utterance's
        valid frames do not depend on the others) and run without autograd.
        """
        padded, lengths = pad_waveforms(waveforms)  # (batch, samples), (batch,)
        with torch.inference_mode():
            return self(padded, lengths)

    def output_lengths(self, num_samples: torch.Tensor) -> torch.Tensor:
        """Frames :meth:`forward` returns for ``num_samples`` valid samples (int64, any shape)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def fingerprint(self) -> str:
        """A hex digest that changes whenever the upstream's outputs could change.

        It covers the architecture config and every weight (content, not file names), so
        feature caches are keyed by what the upstream computes, not by where it came from.
        """
        raise NotImplementedError  # pragma: no cover - abstract


def state_fingerprint(module: torch.nn.Module, config: object) -> str:
    """SHA-256 over ``repr(config)`` and every tensor of ``module.state_dict()`` (name, dtype, shape, bytes)."""
    digest = hashlib.sha256(repr(config).encode())
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
