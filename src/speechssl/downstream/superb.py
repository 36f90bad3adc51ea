"""SUPERB's training protocol for utterance classification: KS, IC, SID and ER.

Yang et al. 2021, *SUPERB: Speech processing Universal PERformance Benchmark*, with the
settings of s3prl's downstream configs (s3prl v0.4: ``downstream/speech_commands``,
``fluent_commands``, ``voxceleb1`` and ``emotion``, ``config.yaml`` and ``expert.py``). All
four train the same model on the frozen upstream: the learnable weighted sum of layers, a
linear projector to 256 dimensions, mean pooling over frames and a linear classifier
(:class:`~speechssl.downstream.heads.ProjectedLinearHead`; for IC one softmax per slot,
action, object and location, their cross-entropies summed), with Adam at a learning rate of
1e-4, gradients clipped to norm 1, for a fixed number of updates; the checkpoint with the
best ``dev`` accuracy is scored once on ``test``.

How the protocol is expressed here (:meth:`SuperbProtocol.head_config`); each setting
defaults to s3prl's, and a ``--head key=value`` override names a departure:

- Adam without weight decay is AdamW with ``weight_decay=0``. The batch is s3prl's
  ``train_batch_size × gradient_accumulate_steps`` at once: s3prl averages the accumulated
  losses, which gives the same gradient per update.
- ``total_steps`` updates with ``dev`` scored every ``eval_step`` updates are
  ``total_steps / eval_step`` rounds of ``eval_steps`` updates, every one run
  (``patience`` = rounds), the best ``dev`` round kept, as s3prl keeps its best ``dev``
  checkpoint (ties: speechssl keeps the lower ``dev`` cross-entropy, s3prl the first).
  ``patience=K`` stops early; ``eval_steps=null max_epochs=N`` validates every epoch.
- SID trains on random crops of 8 s (``crop_seconds``, s3prl's ``max_timestep: 128000``
  samples at 16 kHz of its training set; ``dev`` and ``test`` are whole): the upstream's
  frames are cached, so the crop is a random window of the equivalent number of cached
  frames of each longer utterance, drawn anew every time it is batched
  (:class:`~speechssl.downstream.training.FrameInputs`; it differs from cropping the audio
  only through the encoder's context). ``crop_seconds=null`` trains on whole utterances
  from pooled means, which is much faster.
- Keyword spotting's silence crops are fixed
  (:func:`~speechssl.data.corpora.speech_commands.silence_crops`). Features are
  standardised with ``train`` statistics, as every speechssl head does.
- KS draws training utterances class-balanced with replacement, as s3prl's
  ``WeightedRandomSampler``; ``dev`` accuracy is computed on the plain ``dev`` set
  (s3prl resamples it class-balanced).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from speechssl.config import from_dict
from speechssl.downstream.training import HeadTrainingConfig

PROTOCOL_VERSION = "SUPERB (Yang et al. 2021), s3prl v0.4 downstream configs"


@dataclass(frozen=True)
class SuperbProtocol:
    """One SUPERB utterance-classification task's training settings (s3prl's ``config.yaml``).

    Attributes:
        total_steps: optimizer updates (``runner.total_steps``).
        eval_step: updates between two ``dev`` evaluations (``runner.eval_step``).
        batch_size: utterances per update (``train_batch_size × gradient_accumulate_steps``).
        lr: Adam learning rate (``optimizer.lr``).
        max_grad_norm: gradient clipping (``runner.gradient_clipping``).
        projector_dim: the linear projector's width (``modelrc.projector_dim``).
        balanced: class-balanced sampling of ``train`` (keyword spotting).
        slot_separator: the label is slots joined by this string, one softmax each
            (intent classification: ``action|object|location``, right when all three are).
        crop_seconds: train on random crops of this many seconds (``max_timestep`` / 16 kHz);
            ``None``: whole utterances (s3prl's KS, IC and ER configs set none).
    """

    total_steps: int
    batch_size: int
    eval_step: int = 4000
    lr: float = 1e-4
    max_grad_norm: float = 1.0
    projector_dim: int = 256
    balanced: bool = False
    slot_separator: str | None = None
    crop_seconds: float | None = None

    @property
    def rounds(self) -> int:
        """``dev`` evaluations in a run: ``total_steps / eval_step`` (rounded up)."""
        return math.ceil(self.total_steps / self.eval_step)

    def head_config(self, overrides: Mapping[str, Any] | None = None) -> HeadTrainingConfig:
        """The head training of this protocol, with ``overrides`` (``--head key=value``, e.g.
        ``eval_steps=null max_epochs=20`` for a smoke test) applied on top."""
        settings = {
            "head": "projected_linear",
            "hidden": self.projector_dim,
            "dropout": 0.0,
            "lr": self.lr,
            "weight_decay": 0.0,
            "batch_size": self.batch_size,
            "max_epochs": self.rounds,
            "patience": self.rounds,
            "eval_steps": self.eval_step,
            "max_grad_norm": self.max_grad_norm,
            "balanced": self.balanced,
            "slot_separator": self.slot_separator,
            "crop_seconds": self.crop_seconds,
        }
        return from_dict(HeadTrainingConfig, {**settings, **(overrides or {})}, where="head")


# s3prl v0.4: speech_commands (batch 32), fluent_commands (32), voxceleb1 (8 × 4, max_timestep 128000),
# emotion (4 × 8); dev every 4000 updates, emotion every 1000
KEYWORD_SPOTTING = SuperbProtocol(total_steps=200_000, batch_size=32, balanced=True)
INTENT_CLASSIFICATION = SuperbProtocol(total_steps=200_000, batch_size=32, slot_separator="|")
SPEAKER_IDENTIFICATION = SuperbProtocol(total_steps=200_000, batch_size=32, crop_seconds=8.0)
EMOTION_RECOGNITION = SuperbProtocol(total_steps=30_000, batch_size=32, eval_step=1000)

__all__ = [
    "EMOTION_RECOGNITION",
    "INTENT_CLASSIFICATION",
    "KEYWORD_SPOTTING",
    "PROTOCOL_VERSION",
    "SPEAKER_IDENTIFICATION",
    "SuperbProtocol",
]
