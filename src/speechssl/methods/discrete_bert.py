"""Discrete BERT: masked language modelling on the units of a frozen speech tokenizer.

Baevski, Auli, Mohamed (2019), "Effectiveness of self-supervised pre-training for speech
recognition", arXiv:1911.03912, §2-3. A frozen vq-wav2vec quantizer turns the audio into a
sequence of discrete tokens ``c_t``; a BERT Transformer reads them through an embedding
table, with spans of tokens replaced by a ``[MASK]`` token, and predicts the original token at
every masked position ``t ∈ M``:

    L = Σ_{t ∈ M} −log p(c_t | X)

(averaged over ``M`` here). Spans as in the paper: each token starts a span of ``M = 10``
tokens with probability ``p = 0.05`` (spans overlap; about 40% of the tokens end up masked).

Replacement. The paper replaces every masked token by ``[MASK]``; it does not describe
BERT's 80/10/10 rule (Devlin et al. 2019: of the selected tokens 80% become ``[MASK]``,
10% a random token, 10% stay), so ``random_prob`` and ``keep_prob`` default to 0 and
setting them to 0.1 each gives BERT's rule. Either way the loss covers every selected token.

The tokenizer lives inside the encoder (``frontend="units"``,
:class:`~speechssl.models.units.UnitFrontend`): :meth:`DiscreteBERT.build_encoder` loads the
tokenizer once, writes its config into the encoder config and puts it into the front-end, so a
checkpoint's encoder turns waveforms into hidden states by itself.
The masking runs inside the front-end through its ``feature_transform`` hook, which sees the
``(batch, frames)`` units before they are embedded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from speechssl.augment.base import rand
from speechssl.config import load_yaml, to_dict
from speechssl.data.batch import AudioBatch
from speechssl.data.config import DataConfig
from speechssl.methods.base import MethodOutput, PretextMethod
from speechssl.methods.hubert import mean_cross_entropy, unit_tokenizer_dir
from speechssl.methods.targets import prepare_units
from speechssl.models.encoder import EncoderConfig, SpeechEncoder, UnitTokenizerConfig, build_context
from speechssl.models.init import init_linear_
from speechssl.models.masking import (
    check_span_start_options,
    masked_slots,
    span_start_capacity,
    span_start_mask,
)
from speechssl.models.units import (
    TOKENIZER_CONFIG,
    UnitFrontend,
    UnitTargets,
    load_unit_tokenizer,
    unit_tokenizer_config,
)


@dataclass
class DiscreteBERTConfig:
    """Discrete BERT's objective (Baevski, Auli, Mohamed 2019, §2-3).

    Attributes:
        units: directory of the frozen tokenizer whose units are the input tokens
            (:func:`~speechssl.models.units.save_unit_tokenizer`; vq-wav2vec's Gumbel
            quantizer in the paper). When empty, :meth:`DiscreteBERT.prepare` makes it from
            ``targets`` first.
        targets: the label pipeline's settings (``kind="quantizer"`` with ``teacher=`` a
            VQ-APC or wav2vec 2.0 run, as the paper's vq-wav2vec tokens; or k-means).
        mask_prob: ``p``, probability of each token starting a masked span (0.05).
        mask_length: ``M``, tokens per masked span (10).
        min_masks: fewest spans per utterance (1; not in the paper, every utterance then has
            a target).
        random_prob: fraction of the selected tokens replaced by a uniformly random unit
            instead of ``[MASK]`` (0; BERT: 0.1).
        keep_prob: fraction of the selected tokens left unchanged (0; BERT: 0.1).
    """

    units: str = ""
    targets: UnitTargets = field(default_factory=UnitTargets)
    mask_prob: float = 0.05
    mask_length: int = 10
    min_masks: int = 1
    random_prob: float = 0.0
    keep_prob: float = 0.0

    def __post_init__(self) -> None:
        check_span_start_options(self.mask_prob, self.mask_length, self.min_masks)
        for name in ("random_prob", "keep_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}: expected a probability in [0, 1], found {getattr(self, name)}")
        if self.random_prob + self.keep_prob > 1.0:
            raise ValueError(
                "random_prob + keep_prob: expected at most 1 (the rest become [MASK]), found "
                f"{self.random_prob} + {self.keep_prob}"
            )


class DiscreteBERT(PretextMethod):
    """Discrete BERT pretraining of a unit-front-end encoder (Baevski, Auli, Mohamed 2019).

    Args:
        encoder: the encoder being pretrained; its front-end must be ``units`` with the
            tokenizer of ``config.units`` (build it with :meth:`build_encoder`).
        config: the objective's settings.
        generator: source of the masking randomness (global RNG when None).
    """

    def __init__(
        self, encoder: SpeechEncoder, config: DiscreteBERTConfig, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        frontend = encoder.frontend
        if not isinstance(frontend, UnitFrontend):
            raise ValueError(
                "encoder.frontend: expected 'units' (build the encoder with "
                f"DiscreteBERT.build_encoder), found {encoder.config.frontend!r}"
            )
        expected, found = to_dict(saved_tokenizer_config(config.units)), to_dict(frontend.tokenizer.config)
        if expected != found:
            raise ValueError(
                f"encoder.units: expected the config of the tokenizer in {config.units} ({expected}), found {found}"
            )
        self.encoder = encoder
        self.config = config
        self.generator = generator
        self.num_units = frontend.tokenizer.num_units
        self.mask_index = frontend.mask_index
        self.head = nn.Linear(encoder.dim, self.num_units)
        init_linear_(self.head)

    @classmethod
    def prepare(
        cls, config: DiscreteBERTConfig, encoder_config: EncoderConfig, data: DataConfig, run_dir: Path
    ) -> DiscreteBERTConfig:
        """``config`` with ``units`` set: the tokenizer ``targets`` describes is made first when it is empty."""
        return prepare_units(config, encoder_config, data, run_dir)

    @classmethod
    def build_encoder(cls, encoder_config: EncoderConfig, method_config: DiscreteBERTConfig) -> SpeechEncoder:
        """A unit-front-end encoder on the tokenizer of ``method_config.units``, loaded once.

        The encoder config gets ``frontend="units"`` and ``units`` = the tokenizer's config; its
        context network is built from ``encoder_config``.
        """
        tokenizer = load_unit_tokenizer(unit_tokenizer_dir(method_config.units, "discrete_bert"))
        config = dataclasses.replace(encoder_config, frontend="units", units=tokenizer.config)
        frontend = UnitFrontend(tokenizer, config.dim, config.dropout)
        return SpeechEncoder(frontend, build_context(config), config)

    def compute_mask(self, unit_lengths: torch.Tensor, frames: int) -> torch.Tensor:
        """``(batch, frames)`` bool span mask over the valid tokens, on ``unit_lengths``' device.

        Each valid token starts a span of ``M`` tokens with probability ``p`` (drawn as
        ``int(p·length + U)`` starts, ``U ~ Uniform[0, 1)``, without replacement, at least ``min_masks``).
        """
        config = self.config
        return span_start_mask(
            unit_lengths, frames, config.mask_prob, config.mask_length, config.min_masks, self.generator
        )

    def corrupt(self, units: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The input tokens: selected ones become ``[MASK]``, a random unit (``random_prob``) or stay (``keep_prob``).

        Args:
            units: ``(batch, frames)`` int64 units, ``-1`` on padding.
            mask: ``(batch, frames)`` bool, the selected tokens ``M``.

        Returns:
            ``(batch, frames)`` int64 tokens.
        """
        draw, unit_draw = rand((2, *units.shape), self.generator, units.device)  # (batch, frames) each
        random_units = (unit_draw * self.num_units).long().clamp(max=self.num_units - 1)  # (batch, frames)
        replaced = torch.where(draw < self.config.random_prob, random_units, self.mask_index)
        replaced = torch.where(draw >= 1.0 - self.config.keep_prob, units, replaced)  # (batch, frames)
        return torch.where(mask, replaced, units)

    def forward(self, batch: AudioBatch) -> MethodOutput:
        """``Σ_{t ∈ M} −log p(c_t | X) / |M|`` of ``batch``.

        Returns:
            the loss and, as metrics, the ``masked_accuracy`` and the ``masked_fraction`` of
            valid tokens.
        """
        captured: dict[str, torch.Tensor] = {}

        def mask_units(units: torch.Tensor, unit_lengths: torch.Tensor) -> torch.Tensor:
            mask = self.compute_mask(unit_lengths, units.shape[1])  # (batch, frames)
            captured["targets"], captured["mask"] = units, mask
            return self.corrupt(units, mask)

        output = self.encoder(batch.waveforms, batch.lengths, mask_units, output_hidden_states=False)
        mask = captured["mask"]  # (batch, frames)
        config = self.config
        slots = masked_slots(
            mask, span_start_capacity(mask.shape[1], config.mask_prob, config.mask_length, config.min_masks)
        )  # the masked tokens, a fixed number of slots per utterance
        logits = self.head(
            slots.gather(output.hidden_states[-1]).flatten(0, 1)
        ).float()  # (batch * slots, num_units)
        targets = slots.gather(captured["targets"]).flatten()  # (batch * slots,)
        loss, accuracy = mean_cross_entropy(logits, targets, slots.valid.flatten())
        metrics = {
            "masked_accuracy": accuracy,
            "masked_fraction": mask.sum() / output.lengths.sum(),
        }
        return MethodOutput(loss, metrics)


def saved_tokenizer_config(units: str) -> UnitTokenizerConfig:
    """The config of the tokenizer saved in directory ``units`` (its ``tokenizer.yaml`` only)."""
    directory = unit_tokenizer_dir(units, "discrete_bert")
    where = str(directory / TOKENIZER_CONFIG)
    return unit_tokenizer_config(load_yaml(directory / TOKENIZER_CONFIG), where=where)


__all__ = ["DiscreteBERT", "DiscreteBERTConfig"]
