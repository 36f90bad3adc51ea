"""The contract between a pretext method and the shared trainer.

A method is an ``nn.Module`` that owns the encoder being pretrained plus its own heads,
and turns an :class:`~speechssl.data.batch.AudioBatch` into a scalar loss. The trainer
knows nothing else about it: adding a method means adding a module here and registering
it in :mod:`speechssl.methods`, never editing :mod:`speechssl.train`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from speechssl.data.batch import AudioBatch
from speechssl.data.config import DataConfig
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

    Two class-level hooks run before the method is built, so the trainer stays
    method-agnostic (:func:`speechssl.train.pretrain.pretrain` calls both):

    * :meth:`prepare` makes what the method needs from the pretraining corpus (HuBERT's and
      Discrete BERT's unit tokenizer) and returns the method config to train with;
    * :meth:`build_encoder` builds the encoder this method trains (Discrete BERT's unit
      front-end reads its tokenizer there, once).
    """

    encoder: SpeechEncoder
    min_batch_size: int = 1

    @classmethod
    def prepare(cls, config: Any, encoder_config: EncoderConfig, data: DataConfig, run_dir: Path) -> Any:
        """The method config to train with, after making what it needs in ``run_dir``; ``config`` by default.

        Runs on every rank of a distributed run (the process group is set up); whatever
        it writes, the main process writes and the others wait for. A resumed run calls it
        again and must get the same config back.

        Args:
            config: the method's config dataclass, as resolved from the run config.
            encoder_config: the encoder being pretrained.
            data: the unlabelled pretraining corpus.
            run_dir: the run directory.
        """
        return config

    @classmethod
    def build_encoder(cls, encoder_config: EncoderConfig, method_config: Any) -> SpeechEncoder:
        """The freshly initialised encoder this method trains; ``SpeechEncoder.from_config`` by default.

        Called by :func:`speechssl.train.pretrain.build_pretrain_method`, so the trainer stays
        method-agnostic; the built encoder's ``config`` is the one saved with checkpoints.
        """
        return SpeechEncoder.from_config(encoder_config)

    def forward(self, batch: AudioBatch) -> MethodOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def on_step_end(self, step: int, max_steps: int) -> None:
        """Hook after optimizer step ``step`` (1-based) of ``max_steps``; no-op by default."""


class MaskedPredictionMethod(PretextMethod):
    """A method that replaces masked frames by the encoder's mask embedding (wav2vec 2.0 §3.1).

    It gives its encoder a mask embedding (:meth:`SpeechEncoder.add_mask_embedding`, which
    also sets ``encoder.config.mask_embedding``, saved with checkpoints), draws the mask
    and hands it to the encoder's forward as ``mask_time_indices``. State dicts saved when
    the method held the mask embedding itself (``mask_embedding``) still load: the tensor
    moves to ``encoder.mask_embedding``.
    """

    def __init__(self, encoder: SpeechEncoder) -> None:
        super().__init__()
        encoder.add_mask_embedding()
        self.register_load_state_dict_pre_hook(_move_legacy_mask_embedding)

    def padded_frames(self, samples: int) -> int:
        """Encoder frames of a batch padded to ``samples`` samples: the mask's width.

        Computed on the host from the Python int (no device tensor is read).
        """
        return int(self.encoder.output_lengths(torch.tensor(samples)))


def _move_legacy_mask_embedding(
    module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any
) -> None:
    """Load-state-dict pre-hook: a method-level ``mask_embedding`` fills every missing ``*mask_embedding``
    of ``module`` (the encoder's, and a data2vec teacher's copy of the encoder)."""
    legacy = state_dict.pop(prefix + "mask_embedding", None)
    if legacy is None:
        return
    for name in module.state_dict():
        if name.endswith("mask_embedding") and prefix + name not in state_dict:
            state_dict[prefix + name] = legacy
