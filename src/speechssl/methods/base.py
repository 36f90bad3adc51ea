"""The contract between a pretext method and the shared trainer.

A method is an ``nn.Module`` that owns the encoder being pretrained plus its own heads,
and turns an :class:`~speechssl.data.batch.AudioBatch` into a scalar loss. The trainer
knows nothing else about it: adding a method means adding a module here and registering
it in :mod:`speechssl.methods`, never editing :mod:`speechssl.train`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from speechssl.data.batch import AudioBatch
from speechssl.models.encoder import EncoderConfig, SpeechEncoder


@dataclass
class MethodOutput:
    """Result of one forward pass of a method.

    Attributes:
        loss: scalar tensor to minimise.
        metrics: detached scalars to log (e.g. the invariance and redundancy terms).
    """

    loss: torch.Tensor
    metrics: dict[str, float | torch.Tensor] = field(default_factory=dict)


class PretextMethod(nn.Module):
    """Base class of every self-supervised objective.

    Subclasses set ``self.encoder`` (the part that becomes the upstream) and implement
    :meth:`forward`. Anything that must change with training progress (temperature
    annealing, EMA teachers) goes in :meth:`on_step_end`, which the trainer calls after
    every optimizer step.

    ``min_batch_size`` is the fewest utterances per batch (per rank) the loss is defined
    for; the data pipeline never makes smaller batches.

    A method whose encoder architecture depends on its own config (Discrete BERT reads the
    tokens of a unit tokenizer) overrides :meth:`configure_encoder`, which whoever builds
    the encoder from a run config calls first.
    """

    encoder: SpeechEncoder
    min_batch_size: int = 1

    @classmethod
    def configure_encoder(cls, encoder_config: EncoderConfig, method_config: Any) -> EncoderConfig:
        """The encoder config this method trains, given the run's ``encoder_config``; unchanged by default.

        Called before :meth:`SpeechEncoder.from_config` (see
        :func:`speechssl.train.pretrain.build_pretrain_method`), so the trainer stays
        method-agnostic; the returned config is the one saved with checkpoints.
        """
        return encoder_config

    def forward(self, batch: AudioBatch) -> MethodOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def on_step_end(self, step: int, max_steps: int) -> None:
        """Hook after optimizer step ``step`` (1-based) of ``max_steps``; no-op by default."""
