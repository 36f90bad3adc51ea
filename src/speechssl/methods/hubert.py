"""HuBERT: masked prediction of hidden units given by a frozen tokenizer.

Hsu, Bolte, Tsai, Lakhotia, Salakhutdinov, Mohamed (2021), "HuBERT: Self-Supervised Speech
Representation Learning by Masked Prediction of Hidden Units", IEEE/ACM TASLP. A frozen
acoustic unit discovery model ``h`` (k-means on MFCC frames in iteration 1, on a layer of
the previous iteration's model afterwards, §II-B and §IV-C) labels every frame ``t`` of an
utterance ``X`` with a hidden unit ``z_t``. Spans of the student's frames are replaced by a
learned mask embedding (``X̃``, the indices ``M`` drawn as in wav2vec 2.0: each frame starts
a span of ``l`` frames with probability ``p``), and the Transformer ``f`` predicts a
distribution over the ``C`` units at every frame (§II-A and §III, the unnumbered equation for
``p_f``):

    p_f(c | X̃, t) = exp(sim(A o_t, e_c) / τ) / Σ_{c'=1..C} exp(sim(A o_t, e_{c'}) / τ)

with ``o_t`` the last hidden state, ``A`` a projection to ``final_dim``, ``e_c`` a learned
embedding of unit ``c``, ``sim`` the cosine similarity and ``τ = 0.1``. The loss weighs the
cross-entropy over the masked and the unmasked frames (§II-A, eqs. 1-3):

    L = β L_m + (1 − β) L_u,   L_m = −Σ_{t ∈ M} log p_f(z_t | X̃, t),   L_u = −Σ_{t ∉ M} log p_f(z_t | X̃, t)

``β = 1`` (masked frames only) is the paper's choice. Here each sum is averaged over its
frames, so ``β`` weighs two per-frame means.

The tokenizer (:class:`~speechssl.models.units.UnitTokenizer`) is a submodule: its tensors
travel with the checkpoint, and it has no trainable parameters, so the optimizer leaves it
alone. Its frames must come at the encoder's rate: the rates are compared when the method is
built, and the unit and frame counts of every utterance when a batch is scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from speechssl.config import ConfigError
from speechssl.data.batch import AudioBatch, lengths_to_padding_mask
from speechssl.data.config import DataConfig
from speechssl.methods.base import MaskedPredictionMethod, MethodOutput
from speechssl.methods.targets import prepare_units
from speechssl.models.encoder import EncoderConfig, SpeechEncoder
from speechssl.models.init import init_linear_
from speechssl.models.masking import (
    check_span_start_options,
    masked_slots,
    span_start_capacity,
    span_start_mask,
)
from speechssl.models.units import UnitTargets, UnitTokenizer, load_unit_tokenizer


def unit_tokenizer_dir(units: str, method: str) -> Path:
    """The tokenizer directory named by a method's ``units`` option; ConfigError when it is empty."""
    if not units:
        raise ConfigError(
            "units: expected the directory of a saved unit tokenizer (tokenizer.yaml and "
            "tokenizer.safetensors), found an empty value; fit one (speechssl.units) and set "
            f"{method}'s units to its directory, or leave units empty and set targets: pretraining "
            "runs the label pipeline first (the method's prepare hook)"
        )
    return Path(units)


@dataclass
class HuBERTConfig:
    """HuBERT's objective; defaults are BASE's (Hsu et al. 2021, §IV-C).

    Attributes:
        units: directory of the frozen target tokenizer
            (:func:`~speechssl.models.units.save_unit_tokenizer`): k-means on MFCC for
            iteration 1, on a layer of the previous model for iteration 2. When empty,
            :meth:`HuBERT.prepare` makes it from ``targets`` first.
        targets: the label pipeline's settings (iteration 1: k-means with k = 100 on MFCC;
            iteration 2: ``teacher=`` the iteration-1 run, ``layer``, k = 500).
        mask_prob: ``p``, probability of each frame starting a masked span (0.08).
        mask_length: ``l``, frames per masked span (10); about 57% of frames are masked.
        min_masks: fewest spans per utterance (2 in the reference implementation).
        masked_weight: ``β`` of ``L = β L_m + (1 − β) L_u`` (1.0: masked frames only).
        final_dim: dimension of the projection ``A o_t`` and the unit embeddings ``e_c`` (256).
        temperature: ``τ`` dividing the cosine similarities (0.1).
        length_tolerance: the most frames by which an utterance's unit count and its
            encoder frame count may differ (frames without a unit, or units without a
            frame, at the end are ignored; more is an error). 1 covers tokenizers with the
            encoder's own framing; MFCC units (centred 25 ms windows) under the waveform
            CNN (400-sample receptive field, no padding) come out 1 or 2 frames longer.
    """

    units: str = ""
    targets: UnitTargets = field(default_factory=UnitTargets)
    mask_prob: float = 0.08
    mask_length: int = 10
    min_masks: int = 2
    masked_weight: float = 1.0
    final_dim: int = 256
    temperature: float = 0.1
    length_tolerance: int = 1

    def __post_init__(self) -> None:
        check_span_start_options(self.mask_prob, self.mask_length, self.min_masks)
        if self.final_dim < 1:
            raise ValueError(f"final_dim: expected a positive integer, found {self.final_dim}")
        if self.length_tolerance < 0:
            raise ValueError(f"length_tolerance: expected an integer >= 0, found {self.length_tolerance}")
        if not 0.0 <= self.masked_weight <= 1.0:
            raise ValueError(f"masked_weight: expected β in [0, 1], found {self.masked_weight}")
        if not self.temperature > 0:
            raise ValueError(f"temperature: expected > 0, found {self.temperature}")


def check_frame_rates(tokenizer: UnitTokenizer, encoder: SpeechEncoder) -> None:
    """Raise unless the tokenizer reads audio at the encoder's sample rate and its units come at
    the encoder's frame rate (samples per frame)."""
    if tokenizer.sample_rate != encoder.sample_rate:
        raise ValueError(
            f"units: expected a tokenizer of audio at encoder.sample_rate = {encoder.sample_rate} Hz, "
            f"found {tokenizer.sample_rate} Hz"
        )
    unit_rate, frame_rate = tokenizer.downsample_rate, encoder.downsample_rate
    if unit_rate == frame_rate:
        return
    pool = tokenizer.config.features.pool
    native = unit_rate // pool
    hint = (
        f"set the tokenizer's features.pool to {frame_rate // native} (now {pool})"
        if frame_rate % native == 0
        else f"its features run at {native} samples per frame, which no pool turns into {frame_rate}"
    )
    raise ValueError(
        f"units: expected the tokenizer's frame rate to equal the encoder's ({frame_rate} samples per frame), "
        f"found {unit_rate} samples per unit; {hint}, or change the encoder's front-end"
    )


def align_units(
    units: torch.Tensor,
    unit_lengths: torch.Tensor,
    frame_lengths: torch.Tensor,
    frames: int,
    tolerance: int,
    check: bool = True,
) -> torch.Tensor:
    """Unit targets on the encoder's frames; ``-1`` where a frame has no unit or is padding.

    Both sequences start at the first sample and advance by the same number of samples, so
    unit ``t`` belongs to frame ``t``; they may end up to ``tolerance`` frames apart.

    Args:
        units: ``(batch, unit_frames)`` int64 units, ``-1`` on padding.
        unit_lengths: ``(batch,)`` units per utterance.
        frame_lengths: ``(batch,)`` encoder frames per utterance.
        frames: padded frames of the encoder's output.
        tolerance: largest allowed ``|unit_lengths − frame_lengths|``.
        check: raise beyond ``tolerance`` (reads the lengths back to the host); pass False
            when :func:`largest_length_difference` has shown no length can exceed it.

    Returns:
        ``(batch, frames)`` int64 targets.
    """
    difference = (unit_lengths.to(frame_lengths.device) - frame_lengths).abs()  # (batch,)
    if check and int(difference.max()) > tolerance:
        row = int(difference.argmax())
        raise ValueError(
            f"length_tolerance: expected each utterance's unit count within {tolerance} frame(s) of its "
            f"encoder frame count, found {int(unit_lengths[row])} units for {int(frame_lengths[row])} frames "
            f"(utterance {row}); the tokenizer and the encoder frame the audio differently"
        )
    kept = min(frames, units.shape[1])
    targets = torch.full((units.shape[0], frames), -1, dtype=torch.long, device=frame_lengths.device)
    targets[:, :kept] = units[:, :kept].to(frame_lengths.device)
    return targets.masked_fill(lengths_to_padding_mask(frame_lengths, frames), -1)


def largest_length_difference(tokenizer: UnitTokenizer, encoder: SpeechEncoder) -> int:
    """The largest ``|units − encoder frames|`` of an utterance of any length, computed on the host.

    Both counts are chains of ``floor((L + c) / s)`` over strides that divide the common
    samples-per-frame rate ``r`` (:func:`check_frame_rates`), so past the receptive fields
    their difference repeats with period ``r`` in ``L``: 64 periods cover every length.
    """
    samples = torch.arange(64 * encoder.downsample_rate + 1)  # (lengths,)
    return int((tokenizer.output_lengths(samples) - encoder.output_lengths(samples)).abs().max())


def cosine_logits(projected: torch.Tensor, unit_embeddings: torch.Tensor, temperature: float) -> torch.Tensor:
    """``sim(A o_t, e_c) / τ`` for every unit ``c``, the logits of ``p_f(c | X̃, t)`` (Hsu et al. 2021, §II-A).

    Args:
        projected: ``(queries, final_dim)`` projected hidden states ``A o_t``.
        unit_embeddings: ``(num_units, final_dim)`` unit embeddings ``e_c``.
        temperature: ``τ``.

    Returns:
        ``(queries, num_units)`` float32 logits (autocast off).
    """
    with torch.autocast(device_type=projected.device.type, enabled=False):
        queries = F.normalize(projected.float(), dim=-1)  # (queries, final_dim)
        keys = F.normalize(unit_embeddings.float(), dim=-1)  # (num_units, final_dim)
        return queries @ keys.T / temperature  # (queries, num_units)


def mean_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``−log p(target)`` and accuracy over the valid rows of ``logits``; zero when none is valid.

    A fixed-size set of rows with a validity mask (not a selection of the valid ones) keeps
    every shape independent of the data.

    Args:
        logits: ``(queries, classes)``.
        targets: ``(queries,)`` int64 class indices; any value on invalid rows.
        valid: ``(queries,)`` bool, the rows the means run over.
    """
    weights = valid.float()  # (queries,)
    count = weights.sum().clamp(min=1.0)
    losses = F.cross_entropy(logits, targets.clamp(min=0), reduction="none")  # (queries,)
    loss = (losses * weights).sum() / count
    accuracy = ((logits.argmax(dim=-1) == targets).float() * weights).sum() / count
    return loss, accuracy.detach()


class HuBERT(MaskedPredictionMethod):
    """HuBERT pretraining of an fbank or waveform-front-end encoder (Hsu et al. 2021).

    Draws the span mask and runs the encoder with it (its mask embedding replaces the
    masked frames before the context network), and scores every unit at every frame by :func:`cosine_logits`
    of ``final_projection(o_t)`` and ``unit_embeddings``; the targets are the frozen
    tokenizer's units of the same audio (:func:`align_units`).

    Args:
        encoder: the encoder being pretrained, with a mask embedding (added by :class:`~speechssl.methods.base.MaskedPredictionMethod`).
        config: the objective's settings; ``config.units`` names the tokenizer.
        generator: source of the masking randomness (global RNG when None).
    """

    def __init__(
        self, encoder: SpeechEncoder, config: HuBERTConfig, generator: torch.Generator | None = None
    ) -> None:
        tokenizer = load_unit_tokenizer(unit_tokenizer_dir(config.units, "hubert"))
        check_frame_rates(tokenizer, encoder)
        super().__init__(encoder)
        self.encoder = encoder
        self.config = config
        self.generator = generator
        self.tokenizer = tokenizer
        # the training step reads the lengths back only when some length could exceed the tolerance
        self.check_lengths = largest_length_difference(tokenizer, encoder) > config.length_tolerance
        self.final_projection = nn.Linear(encoder.dim, config.final_dim)
        init_linear_(self.final_projection)
        self.unit_embeddings = nn.Parameter(torch.empty(tokenizer.num_units, config.final_dim))
        nn.init.uniform_(self.unit_embeddings)

    @classmethod
    def prepare(
        cls, config: HuBERTConfig, encoder_config: EncoderConfig, data: DataConfig, run_dir: Path
    ) -> HuBERTConfig:
        """``config`` with ``units`` set: the k-means tokenizer of ``targets`` is fitted first when it is empty."""
        return prepare_units(config, encoder_config, data, run_dir)

    def compute_mask(self, frame_lengths: torch.Tensor, frames: int) -> torch.Tensor:
        """``(batch, frames)`` bool span mask over the valid frames, on ``frame_lengths``' device.

        Each valid frame starts a span of ``l`` frames with probability ``p`` (drawn as
        ``int(p·length + U)`` starts, ``U ~ Uniform[0, 1)``, without replacement, at least ``min_masks``).
        """
        config = self.config
        return span_start_mask(
            frame_lengths, frames, config.mask_prob, config.mask_length, config.min_masks, self.generator
        )

    def forward(self, batch: AudioBatch) -> MethodOutput:
        """``β L_m + (1 − β) L_u`` of ``batch``.

        Returns:
            the loss and, as metrics, ``loss_masked`` (``L_m``), ``loss_unmasked`` (``L_u``),
            ``masked_accuracy``, ``unmasked_accuracy`` (argmax of ``p_f`` equal to the unit)
            and the ``masked_fraction`` of valid frames.
        """
        config = self.config
        waveforms, lengths = batch.waveforms, batch.lengths
        frame_lengths = self.encoder.output_lengths(lengths)  # (batch,)
        frames = self.padded_frames(waveforms.shape[1])
        sequence = self.tokenizer(waveforms, lengths)
        targets = align_units(
            sequence.units,
            sequence.lengths,
            frame_lengths,
            frames,
            config.length_tolerance,
            self.check_lengths,
        )  # (batch, frames)

        mask = self.compute_mask(frame_lengths, frames)  # (batch, frames)
        hidden = self.encoder(
            waveforms, lengths, mask_time_indices=mask, output_hidden_states=False
        ).last_hidden_state  # (batch, frames, dim)

        # M: the masked frames in fixed-size slots; ~M: every frame, weighted by being unmasked
        slots = masked_slots(
            mask, span_start_capacity(frames, config.mask_prob, config.mask_length, config.min_masks)
        )
        masked_targets = slots.gather(targets)  # (batch, slots)
        terms = (
            (slots.gather(hidden), masked_targets, slots.valid & (masked_targets >= 0), config.masked_weight),
            (hidden, targets, ~mask & (targets >= 0), 1.0 - config.masked_weight),
        )
        losses, accuracies = [], []
        for queries, labels, valid, weight in terms:
            # A term of weight 0 only feeds the metrics: no autograd graph, no backward work.
            with torch.set_grad_enabled(torch.is_grad_enabled() and weight != 0.0):
                queries = queries if torch.is_grad_enabled() else queries.detach()
                projected = self.final_projection(queries.flatten(0, 1))  # (queries, final_dim)
                logits = cosine_logits(projected, self.unit_embeddings, config.temperature)
                loss, accuracy = mean_cross_entropy(logits, labels.flatten(), valid.flatten())
            losses.append(loss)
            accuracies.append(accuracy)
        loss_masked, loss_unmasked = losses
        loss = config.masked_weight * loss_masked + (1.0 - config.masked_weight) * loss_unmasked
        metrics = {
            "loss_masked": loss_masked.detach(),
            "loss_unmasked": loss_unmasked.detach(),
            "masked_accuracy": accuracies[0],
            "unmasked_accuracy": accuracies[1],
            "masked_fraction": mask.sum() / frame_lengths.sum(),
        }
        return MethodOutput(loss, metrics)


__all__ = [
    "HuBERT",
    "HuBERTConfig",
    "align_units",
    "check_frame_rates",
    "cosine_logits",
    "largest_length_difference",
    "mean_cross_entropy",
    "unit_tokenizer_dir",
]
