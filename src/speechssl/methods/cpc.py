"""Contrastive Predictive Coding: predict future latents from an autoregressive context.

van den Oord, Li, Vinyals (2018), "Representation Learning with Contrastive Predictive
Coding", arXiv:1807.03748, §2 and §3.1 (audio). A strided CNN encodes the waveform into
latents ``z_t`` (10 ms frames); a causal context network (a GRU in the paper) summarises
``z_{≤t}`` into ``c_t``; for each of ``K`` future steps a linear map ``W_k`` scores candidates
with the log-bilinear ``f_k(z, c_t) = exp(zᵀ W_k c_t)`` (eq. 3), and InfoNCE (eq. 4)

    L_k = −E[ log( f_k(z_{t+k}, c_t) / Σ_{z_j ∈ X} f_k(z_j, c_t) ) ]

asks to pick the true future ``z_{t+k}`` from a set ``X`` holding it and ``N`` negatives. The
loss is the mean of ``L_k`` over ``k = 1..K``. Which frames serve as negatives decides what
the representation must encode (see :mod:`speechssl.methods.contrastive`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from speechssl.data.batch import AudioBatch
from speechssl.methods.base import MethodOutput, PretextMethod
from speechssl.methods.contrastive import (
    NEGATIVE_SAMPLING,
    NegativeSampling,
    info_nce,
    pool_offsets,
    sample_negatives,
)
from speechssl.models.encoder import SpeechEncoder


@dataclass
class CPCConfig:
    """CPC's objective (van den Oord et al. 2018, §3.1).

    Attributes:
        prediction_steps: ``K`` future frames predicted from every context (12).
        num_negatives: ``N`` negatives per prediction. The paper draws them from the
            minibatch without giving a number; 128 is the reimplementation of Rivière,
            Joulin, Mazaré, Dupoux (2020), "Unsupervised pretraining transfers well across
            languages".
        negative_sampling: where negatives come from: ``same_utterance``,
            ``other_utterances`` or ``mixed`` (the paper's minibatch negatives; its Table 2
            compares these choices). See :mod:`speechssl.methods.contrastive` for the
            invariance each imposes.
    """

    prediction_steps: int = 12
    num_negatives: int = 128
    negative_sampling: NegativeSampling = "mixed"

    def __post_init__(self) -> None:
        if self.prediction_steps < 1:
            raise ValueError(f"prediction_steps: expected a positive integer, found {self.prediction_steps}")
        if self.num_negatives < 1:
            raise ValueError(f"num_negatives: expected a positive integer, found {self.num_negatives}")
        if self.negative_sampling not in NEGATIVE_SAMPLING:
            raise ValueError(
                f"negative_sampling: expected one of {list(NEGATIVE_SAMPLING)}, found {self.negative_sampling!r}"
            )


def cpc_logits(
    predictions: torch.Tensor, pool: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor
) -> torch.Tensor:
    """Log-bilinear scores ``zᵀ W_k c_t`` of each prediction's positive and negatives (eq. 3).

    Args:
        predictions: ``(queries, z_dim)`` the predicted latents ``W_k c_t``.
        pool: ``(pool, z_dim)`` the candidate latents (the batch's frames).
        positives: ``(queries,)`` pool index of each query's true future ``z_{t+k}``.
        negatives: ``(queries, N)`` pool indices of its negatives.

    Returns:
        ``(queries, 1 + N)`` float32 logits (autocast off), the positive first.
    """
    candidates = torch.cat([positives[:, None], negatives], dim=1)  # (queries, 1 + N)
    with torch.autocast(device_type=predictions.device.type, enabled=False):
        scores = predictions.float() @ pool.float().T  # (queries, pool): each candidate scored once
        return scores.gather(1, candidates)


class CPC(PretextMethod):
    """CPC pretraining (van den Oord et al. 2018) of an encoder with a causal context network.

    The front-end's output is ``z`` and the context network's last hidden state is ``c``;
    the paper's audio model is the ``cpc`` encoder preset (five strided convolutions, one
    GRU of 256 units). For every ``k`` the queries are the frames ``t`` whose ``t + k`` is
    still inside the utterance, so padding is never predicted nor used as a negative.

    Args:
        encoder: the encoder being pretrained; its context network must be causal.
        config: prediction steps and negative sampling.
        generator: source of the negative-sampling randomness (global RNG when None).
    """

    # other_utterances (and mixed) draw negatives from other utterances of the batch
    min_batch_size = 2

    def __init__(
        self, encoder: SpeechEncoder, config: CPCConfig, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        if not encoder.config.causal:
            raise ValueError(
                "encoder.causal: expected true (c_t must not see the future frames it predicts), found false"
            )
        self.encoder = encoder
        self.config = config
        self.generator = generator
        self.predictors = nn.ModuleList(
            nn.Linear(encoder.dim, encoder.dim, bias=False) for _ in range(config.prediction_steps)
        )

    def forward(self, batch: AudioBatch) -> MethodOutput:
        """The mean over ``k`` of InfoNCE ``L_k`` on ``batch``.

        Every padded frame ``t < frames − k`` is a query; those whose ``t + k`` lies past
        their utterance's end are left out of the means, so the shapes do not depend on the
        lengths and the step reads nothing back to the host.

        Returns:
            the loss and, as metrics, the mean ``accuracy`` of picking the true future and
            the loss and accuracy at the first and last step (``loss_step_1``,
            ``accuracy_step_1``, ``loss_step_K``, ``accuracy_step_K``).

        Raises:
            ValueError: the padded batch is not longer than ``K`` frames.
        """
        # z: (batch, frames, z_dim), the front-end output before its dropout; c: the last hidden state
        encoded = self.encoder(
            batch.waveforms, batch.lengths, output_features=True, output_hidden_states=False
        )
        latents, frame_lengths = encoded.features, encoded.lengths
        steps = self.config.prediction_steps
        batch_size, frames, _ = latents.shape
        if frames <= steps:
            raise ValueError(
                f"lengths: expected an utterance longer than prediction_steps={steps} frames in every batch, "
                f"found {frames} frames in the longest"
            )
        context = encoded.hidden_states[-1]  # (batch, frames, dim)
        candidates = latents.reshape(batch_size * frames, -1)  # (batch * frames, z_dim): padded frames too
        offsets = pool_offsets(frame_lengths)  # (batch,) pool: the valid frames, utterance after utterance
        last = (frame_lengths.sum() - 1).clamp(min=0)  # the last pool index
        rows = torch.arange(batch_size, device=latents.device)[:, None]  # (batch, 1)
        losses, accuracies = [], []
        for k, predictor in enumerate(self.predictors, start=1):
            # queries: every (b, t) with t < frames - k; those with t + k inside utterance b count
            times = torch.arange(frames - k, device=latents.device)[None, :]  # (1, frames - k)
            valid = (times < frame_lengths[:, None] - k).flatten()  # (batch * (frames - k),)
            pool_positives = (offsets[:, None] + times + k).flatten().clamp(max=last)  # (queries,)
            negatives = sample_negatives(
                pool_positives,
                frame_lengths,
                self.config.num_negatives,
                self.config.negative_sampling,
                self.generator,
                check=False,
            )  # (queries, N) pool indices
            positives = (rows * frames + times + k).flatten()  # (queries,) index of z_{t+k} in candidates
            predictions = predictor(context[:, : frames - k]).flatten(0, 1)  # (queries, z_dim): W_k c_t
            logits = cpc_logits(
                predictions, candidates, positives, pool_to_padded(negatives, frame_lengths, frames)
            )
            loss, accuracy = info_nce(logits, valid)
            losses.append(loss)
            accuracies.append(accuracy)
        metrics = {
            "accuracy": torch.stack(accuracies).mean(),
            "loss_step_1": losses[0].detach(),
            "accuracy_step_1": accuracies[0],
            f"loss_step_{steps}": losses[-1].detach(),
            f"accuracy_step_{steps}": accuracies[-1],
        }
        return MethodOutput(torch.stack(losses).mean(), metrics)


def pool_to_padded(indices: torch.Tensor, lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """Pool indices (valid frames, utterance after utterance) as indices into ``(batch * frames)``.

    Args:
        indices: int64 pool indices, any shape.
        lengths: ``(batch,)`` valid frames per utterance.
        frames: padded frames per utterance.
    """
    ends = lengths.cumsum(dim=0)  # (batch,)
    rows = torch.searchsorted(ends, indices, right=True)  # utterance of each index
    return rows * frames + indices - (ends - lengths)[rows]


__all__ = ["CPC", "CPCConfig", "cpc_logits", "pool_to_padded"]
