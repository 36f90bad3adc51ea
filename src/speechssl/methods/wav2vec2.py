"""wav2vec 2.0: contrastive prediction of quantized latents at masked time steps.

Baevski, Zhou, Mohamed, Auli (2020), "wav2vec 2.0: A Framework for Self-Supervised Learning
of Speech Representations", NeurIPS. The waveform CNN encodes 20 ms latents ``z_t``;
spans of them are replaced by a learned mask embedding (§3.1) before the Transformer
context network produces ``c_t``; the unmasked latents are quantized by a product Gumbel
quantizer into targets ``q_t`` (§2); at every masked step the context must pick ``q_t``
among ``K`` distractors quantized from other masked steps of the same utterance (§3.2):

    L = L_m + α L_d,   L_m = −log( exp(sim(c_t, q_t)/κ) / Σ_{q̃ ∈ Q_t} exp(sim(c_t, q̃)/κ) )   (eqs. 2-3)

with ``sim`` the cosine similarity, ``Q_t`` the target and its ``K`` distractors, and
``L_d`` the codebook diversity loss (eq. 4). As in BASE (§4.2), the CNN features also pay an
L2 penalty and the gradient reaching the CNN is scaled down.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from speechssl.data.batch import AudioBatch
from speechssl.methods.base import MaskedPredictionMethod, MethodOutput
from speechssl.methods.contrastive import info_nce, sample_negatives
from speechssl.models.encoder import SpeechEncoder
from speechssl.models.frontends import WaveformFrontend
from speechssl.models.gumbel_quantizer import GumbelTemperatureSchedule, GumbelVectorQuantizer
from speechssl.models.masking import (
    check_span_start_options,
    masked_slots,
    span_start_capacity,
    span_start_mask,
)


@dataclass
class Wav2Vec2Config:
    """wav2vec 2.0's objective; defaults are BASE's (Baevski et al. 2020, §3-4).

    Attributes:
        mask_prob: ``p``, probability of each latent frame starting a masked span (0.065).
        mask_length: ``M``, frames per masked span (10); with ``p`` about 49% of frames are masked.
        min_masks: fewest spans per utterance (2 in the reference implementation).
        num_negatives: ``K`` distractors per masked frame (100).
        temperature: ``κ`` dividing the cosine similarities (0.1).
        diversity_weight: ``α`` of the diversity loss (0.1).
        feature_penalty_weight: weight of the L2 penalty on the CNN features (10).
        feature_grad_scale: factor on the gradient reaching the CNN feature encoder (0.1).
        codebook_groups: ``G`` (2).
        codebook_entries: ``V`` per group (320).
        codebook_dim: dimension of a quantized vector, ``d/G`` per group entry (256: 128 per entry).
        final_dim: dimension of the space where context and targets are compared (256).
        gumbel: annealing of the Gumbel temperature τ: from 2 to 0.5 (LARGE: 0.1), times
            0.999995 per update.
        quantizer_dropout: dropout on the CNN features entering the quantizer (0.1).
    """

    mask_prob: float = 0.065
    mask_length: int = 10
    min_masks: int = 2
    num_negatives: int = 100
    temperature: float = 0.1
    diversity_weight: float = 0.1
    feature_penalty_weight: float = 10.0
    feature_grad_scale: float = 0.1
    codebook_groups: int = 2
    codebook_entries: int = 320
    codebook_dim: int = 256
    final_dim: int = 256
    gumbel: GumbelTemperatureSchedule = field(default_factory=GumbelTemperatureSchedule)
    quantizer_dropout: float = 0.1

    def __post_init__(self) -> None:
        check_span_start_options(self.mask_prob, self.mask_length, self.min_masks)
        for name in ("num_negatives", "codebook_groups", "codebook_entries", "final_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive integer, found {getattr(self, name)}")
        if self.codebook_dim < 1 or self.codebook_dim % self.codebook_groups != 0:
            raise ValueError(
                f"codebook_dim: expected a positive multiple of codebook_groups={self.codebook_groups}, "
                f"found {self.codebook_dim}"
            )
        if not self.temperature > 0:
            raise ValueError(f"temperature: expected > 0, found {self.temperature}")
        for name in ("diversity_weight", "feature_penalty_weight", "feature_grad_scale"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected >= 0, found {getattr(self, name)}")
        if not 0.0 <= self.quantizer_dropout < 1.0:
            raise ValueError(
                f"quantizer_dropout: expected a probability in [0, 1), found {self.quantizer_dropout}"
            )


def contrastive_logits(
    context: torch.Tensor, targets: torch.Tensor, distractors: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Logits ``sim(c_t, q̃)/κ`` of wav2vec 2.0's contrastive task (Baevski et al. 2020, eq. 3).

    A distractor equal to its target (the same codewords quantized at another frame) is no
    negative: its logit is ``−inf``, as in the reference implementation.

    Args:
        context: ``(queries, dim)`` projected context vectors ``c_t`` at masked frames.
        targets: ``(queries, dim)`` projected quantized targets ``q_t``.
        distractors: ``(queries, K, dim)`` projected quantized distractors.
        temperature: ``κ``.

    Returns:
        ``(queries, 1 + K)`` float32 logits (autocast off), the target first.
    """
    candidates = torch.cat([targets[:, None], distractors], dim=1)  # (queries, 1 + K, dim)
    with torch.autocast(device_type=context.device.type, enabled=False):
        # (queries, 1, dim) against (queries, 1 + K, dim) -> (queries, 1 + K)
        similarity = F.cosine_similarity(context.float()[:, None], candidates.float(), dim=-1)
    logits = similarity / temperature
    same_as_target = (distractors == targets[:, None]).all(dim=-1)  # (queries, K)
    return torch.cat([logits[:, :1], logits[:, 1:].masked_fill(same_as_target, float("-inf"))], dim=1)


class Wav2Vec2(MaskedPredictionMethod):
    """wav2vec 2.0 pretraining of a waveform-front-end encoder (Baevski et al. 2020).

    Draws the span mask and runs the encoder with it: CNN (gradient scaled) → LayerNorm →
    projection → the encoder's mask embedding on the masked frames → context network.
    The encoder also returns the CNN features (feature penalty) and the layer-normalised
    CNN features, unmasked, which go through dropout and the :class:`GumbelVectorQuantizer`.
    The last hidden state and the quantized vectors are projected to ``final_dim`` and
    compared by :func:`contrastive_logits` at the masked frames, each against ``K``
    distractors from the other masked frames of its utterance. The masked frames are read
    through :func:`~speechssl.models.masking.masked_slots`, so no shape depends on the mask.

    Args:
        encoder: the encoder being pretrained; its front-end must be the waveform CNN, with a
            mask embedding (added by :class:`~speechssl.methods.base.MaskedPredictionMethod`).
        config: the objective's settings.
        generator: source of the masking and negative-sampling randomness (global RNG when None).
    """

    def __init__(
        self, encoder: SpeechEncoder, config: Wav2Vec2Config, generator: torch.Generator | None = None
    ) -> None:
        if not isinstance(encoder.frontend, WaveformFrontend):
            raise ValueError(
                "encoder.frontend: expected 'waveform' (wav2vec 2.0 quantizes the CNN features), "
                f"found {encoder.config.frontend!r}"
            )
        super().__init__(encoder)
        self.encoder = encoder
        self.config = config
        self.generator = generator
        self.quantizer_dropout = nn.Dropout(config.quantizer_dropout)
        self.quantizer = GumbelVectorQuantizer(
            encoder.frontend.feature_dim,
            config.codebook_groups,
            config.codebook_entries,
            config.codebook_dim,
            temperature=config.gumbel(0),
        )
        self.target_projection = nn.Linear(config.codebook_dim, config.final_dim)
        self.final_projection = nn.Linear(encoder.dim, config.final_dim)

    def compute_mask(self, frame_lengths: torch.Tensor, frames: int) -> torch.Tensor:
        """``(batch, frames)`` bool span mask over the valid frames (§3.1), on ``frame_lengths``' device.

        Each valid frame starts a span of ``M`` frames with probability ``p`` (drawn as
        ``int(p·length + U)`` starts, ``U ~ Uniform[0, 1)``, without replacement, at least ``min_masks``).
        """
        config = self.config
        return span_start_mask(
            frame_lengths, frames, config.mask_prob, config.mask_length, config.min_masks, self.generator
        )

    def forward(self, batch: AudioBatch) -> MethodOutput:
        """``L_m + α L_d + λ_f · feature penalty`` of ``batch``.

        Returns:
            the loss and, as metrics, its terms (``contrastive``, ``diversity``,
            ``feature_penalty``), the contrastive ``accuracy``, the soft and hard codebook
            perplexities (``prob_perplexity``, ``code_perplexity``), the Gumbel
            ``temperature`` and the ``masked_fraction`` of valid frames.
        """
        config = self.config
        waveforms, lengths = batch.waveforms, batch.lengths
        frame_lengths = self.encoder.output_lengths(lengths)  # (batch,)
        frames = self.padded_frames(waveforms.shape[1])
        mask = self.compute_mask(frame_lengths, frames)  # (batch, frames), §3.1
        output = self.encoder(
            waveforms,
            lengths,
            mask_time_indices=mask,
            output_features=True,
            feature_grad_scale=config.feature_grad_scale,
            output_hidden_states=False,
        )
        context = output.last_hidden_state  # (batch, frames, dim)
        features = output.extract_features  # (batch, frames, channels) layer-normalised, unmasked
        cnn_features = output.cnn_features  # (batch, channels, frames)
        # mean square over the valid frames' activations (padded frames are zero)
        feature_penalty = cnn_features.float().pow(2).sum() / (frame_lengths.sum() * cnn_features.shape[1])

        # Quantized targets of the unmasked features, compared at the masked frames.
        quantized = self.quantizer(self.quantizer_dropout(features), frame_lengths)
        slots = masked_slots(
            mask, span_start_capacity(frames, config.mask_prob, config.mask_length, config.min_masks)
        )  # the masked frames, a fixed number of slots per utterance
        predictions = self.final_projection(slots.gather(context)).flatten(0, 1)  # (batch * slots, final_dim)
        targets = self.target_projection(slots.gather(quantized.codes)).flatten(
            0, 1
        )  # (batch * slots, final_dim)
        positives = torch.arange(targets.shape[0], device=targets.device)  # (batch * slots,) pool = the slots
        negatives = sample_negatives(
            positives,
            slots.counts,
            config.num_negatives,
            "same_utterance",
            self.generator,
            check=False,
            pool_stride=slots.indices.shape[1],
        )  # (batch * slots, K); a lone masked frame of its utterance has none (its logits are -inf)
        logits = contrastive_logits(predictions, targets, targets[negatives], config.temperature)
        contrastive, accuracy = info_nce(logits, slots.valid.flatten())

        loss = (
            contrastive
            + config.diversity_weight * quantized.diversity_loss
            + config.feature_penalty_weight * feature_penalty
        )
        metrics = {
            "contrastive": contrastive.detach(),
            "diversity": quantized.diversity_loss.detach(),
            "feature_penalty": feature_penalty.detach(),
            "accuracy": accuracy,
            "prob_perplexity": quantized.perplexity.detach(),
            "code_perplexity": quantized.code_perplexity.detach(),
            "temperature": self.quantizer.temperature.detach().clone(),
            "masked_fraction": slots.counts.sum() / frame_lengths.sum(),
        }
        return MethodOutput(loss, metrics)

    def on_step_end(self, step: int, max_steps: int) -> None:
        """Anneal the Gumbel temperature: ``τ = max(end, start · decay^step)`` of ``config.gumbel``."""
        self.quantizer.set_temperature(self.config.gumbel(step))


__all__ = ["Wav2Vec2", "Wav2Vec2Config", "contrastive_logits"]
