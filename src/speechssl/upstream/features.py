"""Hand-crafted baselines as upstreams: log-mel filterbank and MFCC."""

from __future__ import annotations

import torch

from speechssl.features import MFCC, LogMelFilterbank
from speechssl.models.output import EncoderOutput
from speechssl.upstream.base import Upstream, state_fingerprint


class FeatureUpstream(Upstream):
    """A single-layer upstream computing ``fbank`` (80 log-mel) or ``mfcc`` (13) frames at 10 ms."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        if kind == "fbank":
            self.features = LogMelFilterbank()
            dim = self.features.config.n_mels
            self.settings = (kind, self.features.config)
        elif kind == "mfcc":
            self.features = MFCC()
            dim = self.features.n_mfcc
            self.settings = (kind, self.features.filterbank.config, dim)
        else:
            raise ValueError(f"unknown feature upstream {kind!r} (expected 'fbank' or 'mfcc')")
        self.name = kind
        self.hidden_sizes = [dim]
        self.downsample_rate = self.features.hop_length

    def output_lengths(self, num_samples: torch.Tensor) -> torch.Tensor:
        return self.features.num_frames(num_samples)

    def fingerprint(self) -> str:
        return state_fingerprint(self.features, self.settings)

    @torch.no_grad()
    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        frames, frame_lengths = self.features(waveforms, lengths)
        return EncoderOutput([frames], frame_lengths, self.downsample_rate)
