"""Upstreams backed by a :class:`~speechssl.models.encoder.SpeechEncoder`."""

from __future__ import annotations

from pathlib import Path

import torch

from speechssl.models.checkpoint import find_latest, load_encoder
from speechssl.models.encoder import SpeechEncoder
from speechssl.models.output import EncoderOutput
from speechssl.upstream.base import Upstream, state_fingerprint


class EncoderUpstream(Upstream):
    """Every hidden state of a speechssl encoder, frozen and in eval mode.

    Attributes:
        checkpoint: the checkpoint folder it was read from (None for random weights), for tasks
            that read more of the run than the encoder (cross-modal retrieval reads its heads).
    """

    checkpoint: Path | None = None

    def __init__(self, encoder: SpeechEncoder, name: str) -> None:
        super().__init__()
        self.encoder = encoder.eval().requires_grad_(False)
        self.name = name
        self.hidden_sizes = [encoder.dim] * encoder.num_layers
        self.downsample_rate = encoder.downsample_rate
        self.sample_rate = encoder.sample_rate
        self.min_samples = encoder.frontend.min_samples
        self._fingerprint: str | None = None

    def train(self, mode: bool = True) -> EncoderUpstream:
        """Upstreams stay frozen: dropout and layer drop are never switched back on."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        return self.encoder(waveforms, self.encoder.unpadded_lengths(waveforms, lengths))

    def output_lengths(self, num_samples: torch.Tensor) -> torch.Tensor:
        return self.encoder.output_lengths(num_samples)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = state_fingerprint(self.encoder, self.encoder.config)
        return self._fingerprint

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> EncoderUpstream:
        """The encoder saved in checkpoint directory ``path`` (or a run directory's latest)."""
        path = Path(path)
        if not (path / "encoder.yaml").is_file():
            latest = find_latest(path)
            if latest is None:
                raise FileNotFoundError(
                    f"{path}: not a checkpoint (no encoder.yaml) and no checkpoint found in it as a run directory"
                )
            path = latest
        upstream = cls(load_encoder(path), name=str(path))
        upstream.checkpoint = path
        return upstream

    @classmethod
    def random_init(cls, encoder_config: str, seed: int = 0) -> EncoderUpstream:
        """Same architecture, random weights: the baseline every pretraining must beat.

        ``encoder_config`` is a preset name (``tiny``, ``base``) or an encoder YAML file.
        """
        from speechssl.config import from_dict, load_yaml
        from speechssl.models.encoder import EncoderConfig, load_encoder_preset

        if Path(encoder_config).suffix in (".yaml", ".yml"):
            config = from_dict(EncoderConfig, load_yaml(encoder_config), where="encoder")
        else:
            config = load_encoder_preset(encoder_config)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            encoder = SpeechEncoder.from_config(config)
        return cls(encoder, name=f"random:{encoder_config}")
