"""InfoNCE and the sampling of its negatives, shared by CPC and wav2vec 2.0.

van den Oord, Li, Vinyals (2018), "Representation Learning with Contrastive Predictive
Coding", eq. 4: given a query, one positive candidate and ``K`` negatives, the loss is the
cross-entropy of picking the positive, ``−log(f(pos) / Σ_j f(x_j))`` with the scores
``f = exp(logit)``. wav2vec 2.0 (Baevski et al. 2020, eq. 3) is the same loss with cosine
similarities divided by a temperature as logits.

Candidates live in a *pool*: the valid frames (or, for wav2vec 2.0, the masked frames) of a
padded batch concatenated utterance after utterance, so a pool index never addresses
padding. :func:`sample_negatives` draws negatives from the pool uniformly over the set its
strategy allows, never the positive itself:

* ``same_utterance``: other frames of the positive's utterance. Speaker, channel and
  recording conditions are shared by positive and negatives, so they cannot tell them apart;
  only what changes within an utterance (the phonetic content) solves the task. The
  representation is pushed to encode content and is not rewarded for speaker or channel
  information.
* ``other_utterances``: frames of the other utterances of the batch only. Usually another
  speaker and recording: the task can be solved from slowly varying cues (speaker, channel,
  loudness) alone, which the representation then encodes, with no pressure to separate the
  positive from nearby frames of the same utterance. Needs at least two utterances per batch.
* ``mixed``: any other frame of the batch, own utterance included (CPC's minibatch
  negatives, van den Oord et al. 2018 §3.1): both kinds of negatives in the batch's
  proportions, so both content and utterance-level cues are rewarded.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from speechssl.augment.base import rand

NegativeSampling = Literal["same_utterance", "other_utterances", "mixed"]
NEGATIVE_SAMPLING: tuple[NegativeSampling, ...] = ("same_utterance", "other_utterances", "mixed")


def info_nce(logits: torch.Tensor, valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """InfoNCE with the positive in column 0 (van den Oord et al. 2018, eq. 4).

    ``L = −mean_i log(exp(logits[i, 0]) / Σ_j exp(logits[i, j]))``, computed in float32.
    Negatives that must not count carry a logit of ``−inf``.

    Args:
        logits: ``(queries, 1 + negatives)`` scores, the positive first.
        valid: optional ``(queries,)`` bool, the queries the means run over (all when None):
            fixed-size query sets (every padded frame) need no data-dependent selection.

    Returns:
        the scalar loss and the scalar accuracy (fraction of queries whose positive has the
        strictly highest score, ties counted as wrong); zero when no query is valid.
    """
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(
            f"logits: expected (queries, 1 + negatives >= 2 columns), found {tuple(logits.shape)}"
        )
    logits = logits.float()
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    correct = (logits[:, :1] > logits[:, 1:]).all(dim=1).float()  # (queries,)
    if valid is None:
        return F.cross_entropy(logits, target), correct.mean().detach()
    weights = valid.float()  # (queries,)
    count = weights.sum().clamp(min=1.0)
    loss = (F.cross_entropy(logits, target, reduction="none") * weights).sum() / count
    return loss, ((correct * weights).sum() / count).detach()


def pool_offsets(lengths: torch.Tensor) -> torch.Tensor:
    """``(batch,)`` pool index of each utterance's first entry: ``cumsum(lengths) − lengths``."""
    return lengths.cumsum(dim=0) - lengths


def sample_negatives(
    positives: torch.Tensor,
    lengths: torch.Tensor,
    num_negatives: int,
    strategy: NegativeSampling = "same_utterance",
    generator: torch.Generator | None = None,
    check: bool = True,
    pool_stride: int | None = None,
) -> torch.Tensor:
    """Pool indices of ``num_negatives`` negatives per positive, uniform with replacement.

    The pool holds ``lengths[b]`` entries of utterance ``b`` after those of utterances
    ``< b``; ``strategy`` picks the allowed set (see the module docstring), from which the
    positive's own index is always removed. With ``pool_stride``, utterance ``b``'s entries
    start at ``b · pool_stride`` instead (a fixed-size pool, e.g. the slots of
    :func:`~speechssl.models.masking.masked_slots`, whose remaining entries are never drawn).

    Args:
        positives: ``(queries,)`` int64 pool index of each query's positive.
        lengths: ``(batch,)`` int64 pool entries per utterance (valid or masked frames).
        num_negatives: ``K``, negatives per query.
        strategy: ``same_utterance``, ``other_utterances`` or ``mixed``.
        generator: source of randomness (global RNG when None); the draws are made on
            ``positives``' device (a generator on another device draws there and they are copied).
        check: raise when a positive's allowed set is empty, which reads the counts back to
            the host. Without the check (a training step: no host read) such a positive gets
            itself as every negative, which :func:`~speechssl.methods.wav2vec2.contrastive_logits`
            scores ``−inf``.
        pool_stride: entries reserved per utterance in a fixed-size pool (packed pool when None);
            a positive in an unused entry gets negatives of its utterance like any other.

    Returns:
        ``(queries, num_negatives)`` int64 pool indices, on ``positives``' device.

    Raises:
        ValueError: an unknown strategy, or (with ``check``) a positive whose allowed set is
            empty (an utterance with a single entry under ``same_utterance``, a single
            utterance under ``other_utterances``).
    """
    if strategy not in NEGATIVE_SAMPLING:
        raise ValueError(f"strategy: expected one of {list(NEGATIVE_SAMPLING)}, found {strategy!r}")
    if num_negatives < 1:
        raise ValueError(f"num_negatives: expected >= 1, found {num_negatives}")
    if pool_stride is not None and pool_stride < 1:
        raise ValueError(f"pool_stride: expected >= 1, found {pool_stride}")
    lengths = lengths.to(positives.device)
    ends = lengths.cumsum(dim=0)  # (batch,)
    starts = ends - lengths  # (batch,)
    total = ends[-1]
    strided = positives
    if pool_stride is None:
        rows = torch.searchsorted(ends, positives, right=True)  # (queries,) utterance of each positive
    else:  # the same draws in packed coordinates, mapped back to the strided pool at the end
        rows = positives // pool_stride  # (queries,)
        positives = starts[rows] + positives - rows * pool_stride  # (queries,) packed index
    if strategy == "same_utterance":
        counts = lengths[rows] - 1
    elif strategy == "other_utterances":
        counts = total - lengths[rows]
    else:
        counts = (total - 1).expand_as(positives)
    if check and positives.numel() and int(counts.min()) < 1:
        raise ValueError(
            f"strategy {strategy!r}: expected at least one allowed negative per positive, found none "
            f"for some positive (pool entries per utterance: {lengths.tolist()})"
        )
    uniform = rand((positives.shape[0], num_negatives), generator, positives.device, torch.float64)
    draws = (uniform * counts[:, None]).long()  # (queries, K) in [0, count)
    if strategy == "same_utterance":
        # offsets inside the utterance, skipping the positive's own position
        draws = starts[rows, None] + draws  # (queries, K)
        negatives = draws + (draws >= positives[:, None]).long()
    elif strategy == "other_utterances":
        # indices of the pool without the positive's utterance, mapped back past it
        negatives = draws + lengths[rows, None] * (draws >= starts[rows, None]).long()
    else:
        negatives = draws + (draws >= positives[:, None]).long()
    if pool_stride is not None:
        negative_rows = torch.searchsorted(ends, negatives, right=True)  # (queries, K)
        negatives = negative_rows * pool_stride + negatives - starts[negative_rows]
    return torch.where(counts[:, None] > 0, negatives, strided[:, None])  # no allowed negative: itself


__all__ = ["NEGATIVE_SAMPLING", "NegativeSampling", "info_nce", "pool_offsets", "sample_negatives"]
