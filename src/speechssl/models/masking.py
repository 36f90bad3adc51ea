"""Span masks over the valid frames of a padded batch, shared by the masked-prediction methods.

wav2vec 2.0 (Baevski et al. 2020, §3.1) samples each frame as a span start with probability
``p`` and masks the ``M`` following frames (spans may overlap, so about 49% of frames are
masked for p = 0.065, M = 10); Mockingjay (Liu et al. 2020, §3.2) and TERA (Liu et al. 2021,
§III-A) mask consecutive frames until 15% of each utterance is covered; HuBERT and data2vec
reuse wav2vec 2.0's scheme. :func:`span_mask` draws either kind.

How many spans an utterance of ``L`` frames gets: the reference implementations of
wav2vec 2.0, HuBERT and data2vec (fairseq's ``compute_mask_indices``, Hugging Face's
``_compute_mask_indices``) draw ``int(p·L + U)`` span starts with ``U ~ Uniform[0, 1)``, whose
mean is ``p·L``; rounding ``p·L`` instead is biased for short utterances (at ``L = 100``,
``p = 0.065``, ``M = 10``: 47.2% of the frames masked instead of 49.9%).
:func:`span_start_mask` draws the reference count; :func:`span_mask` rounds by default,
Mockingjay's "until about the fraction is covered".

The methods that score masked frames only read them through :func:`masked_slots`: a fixed
number of slots per utterance, :func:`span_start_capacity`, computed from the padded length
and the masking options (Python numbers), so no shape depends on the mask's values and
nothing waits for an accelerator (selecting ``x[mask]`` would).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from speechssl.augment.base import rand
from speechssl.data.batch import lengths_to_padding_mask


def span_mask(
    lengths: torch.Tensor,
    frames: int,
    mask_prob: float,
    span: int,
    min_spans: int = 0,
    generator: torch.Generator | None = None,
    span_count: Literal["round", "sampled"] = "round",
) -> torch.Tensor:
    """Random spans of ``span`` frames inside each utterance's valid frames.

    Each utterance gets ``max(min_spans, n)`` span starts drawn uniformly without replacement
    from ``[0, length - span]``, ``n`` being ``round(mask_prob * length / span)``
    (``span_count="round"``) or ``int(mask_prob * length / span + U)``, ``U ~ Uniform[0, 1)``
    drawn per utterance (``"sampled"``, the wav2vec 2.0 reference; its mean is
    ``mask_prob * length / span``). Spans may overlap, so the masked fraction is at most about
    ``mask_prob``; with wav2vec 2.0's definition, where ``mask_prob`` is the probability of a
    frame starting a span, pass ``mask_prob * span``. At most ``length - span + 1`` spans are
    drawn; utterances shorter than ``span`` are masked whole when they get a span.

    Args:
        lengths: ``(batch,)`` valid frames per utterance.
        frames: padded length of the batch.
        mask_prob: target fraction of valid frames covered by spans, in ``[0, 1]``.
        span: frames per span (``M``).
        min_spans: fewest spans per utterance (wav2vec 2.0 uses 2).
        generator: source of randomness (global RNG when None).
        span_count: ``"round"`` or ``"sampled"``, how the number of spans is drawn (above).

    Returns:
        ``(batch, frames)`` bool on ``lengths``' device, True on masked frames; padding is
        never masked. The draws are made on that device (a ``generator`` on another device
        draws there and the draws are copied); no value is read back to the host.
    """
    if not 0.0 <= mask_prob <= 1.0:
        raise ValueError(f"mask_prob: expected a fraction in [0, 1], found {mask_prob}")
    if span < 1:
        raise ValueError(f"span: expected at least 1 frame, found {span}")
    if min_spans < 0:
        raise ValueError(f"min_spans: expected >= 0, found {min_spans}")
    if span_count not in ("round", "sampled"):
        raise ValueError(f"span_count: expected 'round' or 'sampled', found {span_count!r}")
    device = lengths.device
    lengths = lengths.long()
    batch = lengths.shape[0]
    positions = torch.arange(frames, device=device)  # (frames,)
    starts_available = (lengths - span + 1).clamp(min=1)  # (batch,)
    # every utterance's start order first, then the U's: the starts of an utterance whose
    # count equals the rounded one are those span_count="round" draws
    keys = rand((batch, frames), generator, device)  # (batch, frames) a random order of the positions
    keys = keys.masked_fill(positions[None, :] >= starts_available[:, None], 2.0)  # impossible starts last
    expected = mask_prob * lengths.double() / span  # (batch,)
    if span_count == "sampled":
        drawn = (expected + rand((batch,), generator, device, torch.float64)).floor()  # int(p·L/M + U)
    else:
        drawn = expected.round()  # half to even, as Python's round
    count = torch.minimum(drawn.long().clamp(min=min_spans), starts_available)
    count = count.masked_fill(lengths <= 0, 0)  # (batch,)
    # the first `count` positions of the random order: `count` starts without replacement
    order = keys.argsort(dim=1)  # (batch, frames)
    starts = torch.zeros(batch, frames, dtype=torch.long, device=device).scatter_(
        1, order, (positions[None, :] < count[:, None]).long()
    )  # (batch, frames) 1 on span starts
    # frame t is covered when a start lies in (t - span, t]: a difference of running counts
    running = starts.cumsum(dim=1)  # (batch, frames)
    before = torch.nn.functional.pad(running, (span, 0))[:, :frames]  # (batch, frames) running[t - span]
    # spans of utterances shorter than `span` are cut at their end, like the padding
    return (running > before) & ~lengths_to_padding_mask(lengths, frames)


def check_span_start_options(mask_prob: float, mask_length: int, min_masks: int) -> None:
    """Validate wav2vec 2.0-style masking options (``p`` starts per frame, spans of ``M``).

    Raises:
        ValueError: naming the option, when ``p·M`` is not in ``(0, 1]``, ``M < 1`` or ``min_masks < 0``.
    """
    if not 0.0 < mask_prob * mask_length <= 1.0:
        raise ValueError(
            "mask_prob: expected 0 < mask_prob * mask_length <= 1 (the fraction of frames the spans "
            f"would cover without overlap), found {mask_prob} * {mask_length}"
        )
    if mask_length < 1:
        raise ValueError(f"mask_length: expected a positive integer, found {mask_length}")
    if min_masks < 0:
        raise ValueError(f"min_masks: expected an integer >= 0, found {min_masks}")


def span_start_mask(
    lengths: torch.Tensor,
    frames: int,
    mask_prob: float,
    mask_length: int,
    min_masks: int = 0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """wav2vec 2.0's mask (Baevski et al. 2020, §3.1), reused by HuBERT, data2vec and Discrete BERT.

    Each valid frame starts a span of ``mask_length`` frames with probability ``mask_prob``:
    ``max(min_masks, int(mask_prob·length + U))`` starts, ``U ~ Uniform[0, 1)``, drawn without
    replacement, as in fairseq's ``compute_mask_indices`` (``span_count="sampled"`` of
    :func:`span_mask`).

    Args:
        lengths: ``(batch,)`` valid frames per utterance.
        frames: padded length of the batch.
        mask_prob: ``p``, probability of a frame starting a span.
        mask_length: ``M``, frames per span.
        min_masks: fewest spans per utterance.
        generator: source of randomness (global RNG when None).

    Returns:
        ``(batch, frames)`` bool on ``lengths``' device, True on masked frames.
    """
    return span_mask(
        lengths, frames, mask_prob * mask_length, mask_length, min_masks, generator, span_count="sampled"
    )


def span_start_capacity(frames: int, mask_prob: float, mask_length: int, min_masks: int = 0) -> int:
    """The most frames :func:`span_start_mask` masks in one utterance of a batch padded to ``frames``.

    An utterance of ``L ≤ frames`` frames gets ``max(min_masks, int(p·L + U)) ≤ max(min_masks,
    ⌈p·frames⌉ + 1)`` spans of ``M`` frames, and never more than its length; computed from Python
    numbers, with one span of margin for rounding. About ``p·M`` of ``frames`` (0.65 with BASE's
    options) where the spans themselves cover about 49%.
    """
    spans = max(min_masks, math.ceil(mask_prob * frames) + 1)
    return min(frames, spans * mask_length)


@dataclass
class MaskedSlots:
    """The frames a ``(batch, frames)`` mask selects, in a fixed number of slots per utterance.

    Attributes:
        indices: ``(batch, slots)`` int64 frame of each slot: the selected frames in time order,
            then unselected ones (invalid slots).
        valid: ``(batch, slots)`` bool, the slots holding a selected frame.
        counts: ``(batch,)`` int64 selected frames per utterance.
    """

    indices: torch.Tensor
    valid: torch.Tensor
    counts: torch.Tensor

    def gather(self, values: torch.Tensor) -> torch.Tensor:
        """``values (batch, frames, *rest)`` at the slots: ``(batch, slots, *rest)``."""
        index = self.indices.reshape(*self.indices.shape, *([1] * (values.dim() - 2)))  # (batch, slots, 1…)
        return values.gather(1, index.expand(*self.indices.shape, *values.shape[2:]))


def masked_slots(mask: torch.Tensor, slots: int) -> MaskedSlots:
    """The frames ``mask`` selects in ``slots`` slots per utterance, shapes independent of the mask's values.

    Args:
        mask: ``(batch, frames)`` bool, at most ``slots`` frames selected per utterance (e.g.
            :func:`span_start_capacity` for :func:`span_start_mask`); extra ones are dropped.
        slots: slots per utterance, at most ``frames``.

    Returns:
        the slots' frame indices, validity and the counts, on ``mask``'s device; no value is read back.
    """
    frames = mask.shape[1]
    if not 0 <= slots <= frames:
        raise ValueError(f"slots: expected 0 to {frames} (the mask's frames), found {slots}")
    positions = torch.arange(frames, device=mask.device)  # (frames,)
    keys = torch.where(mask, positions, positions + frames)  # (batch, frames) selected frames first
    indices = keys.sort(dim=1).indices[:, :slots]  # (batch, slots)
    counts = mask.sum(dim=1)  # (batch,)
    valid = positions[None, :slots] < counts[:, None]  # (batch, slots)
    return MaskedSlots(indices, valid, counts)


__all__ = [
    "MaskedSlots",
    "check_span_start_options",
    "masked_slots",
    "span_mask",
    "span_start_capacity",
    "span_start_mask",
]
