"""SpecAugment time warping, time and frequency masking (Park et al. 2019, "SpecAugment: A
Simple Data Augmentation Method for Automatic Speech Recognition", section 2).

The transforms act on time-major features ``(feats (batch, frames, channels), lengths
(batch,))`` with lengths in frames, e.g. the log-mel filterbank inside the encoder's
front-end (passed as the encoder's ``feature_transform``). Masks lie inside each
utterance's valid frames; padding frames are never written. Masked values are filled
with the utterance's mean over its valid features (``fill="mean"``; equal to the paper's
zero for normalised features) or with zero. Time warping moves frames within each
utterance's valid frames and leaves its length and its padding as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from speechssl.augment.base import bernoulli, check_batch, check_probability, rand
from speechssl.data.batch import lengths_to_padding_mask


def _check_mask_args(max_width: int, num_masks: int, fill: str, p: float) -> None:
    if max_width < 0:
        raise ValueError(f"max_width: expected >= 0, found {max_width}")
    if num_masks < 0:
        raise ValueError(f"num_masks: expected >= 0, found {num_masks}")
    if fill not in ("mean", "zero"):
        raise ValueError(f"fill: expected 'mean' or 'zero', found {fill!r}")
    check_probability(p)


def _draw_spans(
    limit: torch.Tensor,
    extent: torch.Tensor,
    num_masks: int,
    apply: torch.Tensor,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``num_masks`` spans per utterance as in SpecAugment: width ``w ~ U{0..limit}``,
    start ``s ~ U{0..extent - w}``.

    Args:
        limit: ``(batch,)`` int64 largest width per utterance (``<= extent``).
        extent: ``(batch,)`` int64 axis size the spans must stay within.
        num_masks: spans per utterance.
        apply: ``(batch,)`` bool, utterances that get masks (others get width 0).
        generator: source of the draws.

    Returns:
        ``(batch, num_masks)`` int64 starts and widths.
    """
    batch = limit.shape[0]
    draws = rand((2, batch, num_masks), generator, limit.device)
    widths = (draws[0] * (limit[:, None] + 1)).long()  # (batch, num_masks) in 0..limit
    widths = torch.minimum(widths, limit[:, None]) * apply[:, None]  # (batch, num_masks)
    room = extent[:, None] - widths  # (batch, num_masks) admissible starts are 0..room
    starts = torch.minimum((draws[1] * (room + 1)).long(), room)
    return starts, widths


def _span_mask(starts: torch.Tensor, widths: torch.Tensor, size: int) -> torch.Tensor:
    """``(batch, num_masks)`` spans → ``(batch, size)`` bool, True inside any span."""
    positions = torch.arange(size, device=starts.device)
    inside = (positions >= starts[..., None]) & (
        positions < (starts + widths)[..., None]
    )  # (batch, masks, size)
    return inside.any(dim=1)


def _fill_value(feats: torch.Tensor, valid: torch.Tensor, lengths: torch.Tensor, fill: str) -> torch.Tensor:
    """``(batch, 1, 1)`` value written into masks: the mean over valid frames, or zero."""
    if fill == "zero":
        return feats.new_zeros(feats.shape[0], 1, 1)
    total = (feats * valid[..., None]).sum(dim=(1, 2))  # (batch,)
    count = (lengths.clamp(min=1) * feats.shape[2]).to(feats.dtype)  # (batch,)
    return (total / count)[:, None, None]  # (batch, 1, 1)


@dataclass(frozen=True)
class TimeWarp:
    """SpecAugment time warping: each utterance's time axis is stretched on one side of a
    random point and squeezed on the other (Park et al. 2019, §2, the warp parameter ``W``).

    As s3prl's ``specaug.py`` (and ESPnet's ``TimeWarp``) does it, with its draws: for an
    utterance of ``T`` valid frames, a centre ``c ~ U{W..T-W-1}`` and its new position
    ``w ~ U{c-W+1..c+W}``; frames ``[0, c)`` are resampled to ``w`` frames and frames
    ``[c, T)`` to ``T - w`` by bicubic interpolation along time (``align_corners=False``;
    the channels are not mixed), so the warped utterance keeps its ``T`` frames. An
    utterance of ``T <= 2W`` frames, and every utterance when ``W = 0``, is left unchanged.
    The paper moves a point of a sparse image warp instead; the interpolation here is the
    reference implementation's.

    Attributes:
        window: ``W``, the largest shift of the warp point in frames.
    """

    window: int = 5

    def __post_init__(self) -> None:
        if self.window < 0:
            raise ValueError(f"window: expected an integer >= 0, found {self.window}")

    def warp_points(
        self, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw each utterance's centre ``c`` and its new position ``w`` (two draws per utterance).

        Args:
            lengths: ``(batch,)`` valid frames per utterance.
            generator: source of the draws.

        Returns:
            ``(batch,)`` int64 centres and new positions; both 0 for an utterance left unchanged
            (``T <= 2W``).
        """
        window = self.window
        draws = rand((lengths.shape[0], 2), generator, lengths.device)  # (batch, 2)
        warps = lengths > 2 * window  # (batch,)
        room = (lengths - 2 * window).clamp(min=0)  # (batch,) centres W..T-W-1
        centres = torch.minimum(window + (draws[:, 0] * room).long(), lengths - window - 1)
        warped = torch.minimum(centres - window + 1 + (draws[:, 1] * 2 * window).long(), centres + window)
        return centres * warps, warped * warps

    def __call__(
        self, feats: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Args:
            feats: ``(batch, frames, channels)`` time-major features.
            lengths: ``(batch,)`` valid frames per utterance.
            generator: source of the warp points (:meth:`warp_points`).

        Returns:
            warped ``(batch, frames, channels)`` features and the unchanged lengths.
        """
        check_batch(feats, lengths, "(batch, frames, channels)")
        if self.window == 0:
            return feats, lengths
        lengths = lengths.to(feats.device)
        centres, warped = self.warp_points(lengths, generator)
        utterances = [
            torch.cat([warp_utterance(feats[i, :length], centre, new), feats[i, length:]])
            if centre
            else feats[i]
            for i, (length, centre, new) in enumerate(
                zip(lengths.tolist(), centres.tolist(), warped.tolist(), strict=True)
            )
        ]  # each (frames, channels)
        return torch.stack(utterances), lengths


def warp_utterance(frames: torch.Tensor, centre: int, warped: int) -> torch.Tensor:
    """Move frame ``centre`` of ``frames (T, channels)`` to ``warped``: frames ``[0, centre)``
    resampled to ``warped`` frames and ``[centre, T)`` to ``T - warped``, by bicubic
    interpolation along time (``align_corners=False``; channels are not mixed).

    Raises:
        ValueError: ``centre`` or ``warped`` outside ``[1, T)``.
    """
    length, channels = frames.shape
    if not (0 < centre < length and 0 < warped < length):
        raise ValueError(f"centre/warped: expected frames in [1, {length}), found {centre}/{warped}")
    image = frames[None, None]  # (T, channels) -> (1, 1, T, channels)
    left = F.interpolate(image[..., :centre, :], (warped, channels), mode="bicubic", align_corners=False)
    right = F.interpolate(
        image[..., centre:, :], (length - warped, channels), mode="bicubic", align_corners=False
    )
    return torch.cat([left, right], dim=2)[0, 0]  # (1, 1, T, channels) -> (T, channels)


@dataclass(frozen=True)
class TimeMask:
    """SpecAugment time masking: ``num_masks`` spans of consecutive frames per utterance.

    Each width is drawn from ``U{0..min(max_width, floor(max_fraction · frames))}``
    (the paper's ``T`` and upper bound ``p``) and each start uniformly so the span lies
    within the utterance's valid frames.

    Attributes:
        max_width: largest span in frames (``T``).
        num_masks: spans per utterance.
        max_fraction: largest span as a fraction of the utterance's valid frames.
        fill: ``"mean"`` or ``"zero"``.
        p: probability of masking each utterance.
    """

    max_width: int
    num_masks: int = 1
    max_fraction: float = 1.0
    fill: Literal["mean", "zero"] = "mean"
    p: float = 1.0

    def __post_init__(self) -> None:
        _check_mask_args(self.max_width, self.num_masks, self.fill, self.p)
        if not 0.0 <= self.max_fraction <= 1.0:
            raise ValueError(f"max_fraction: expected a fraction in [0, 1], found {self.max_fraction}")

    def __call__(
        self, feats: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Args:
            feats: ``(batch, frames, channels)`` time-major features.
            lengths: ``(batch,)`` valid frames per utterance.
            generator: source of the spans and the coin flips.

        Returns:
            masked ``(batch, frames, channels)`` features and the unchanged lengths.
        """
        check_batch(feats, lengths, "(batch, frames, channels)")
        if self.p == 0.0 or self.num_masks == 0:
            return feats, lengths
        batch, frames, _ = feats.shape
        lengths = lengths.to(feats.device)
        apply = bernoulli(self.p, batch, generator, feats.device)
        limit = torch.minimum(
            torch.floor(self.max_fraction * lengths.double()).long(), lengths.clamp(max=self.max_width)
        )  # (batch,)
        starts, widths = _draw_spans(limit, lengths, self.num_masks, apply, generator)
        masked = _span_mask(starts, widths, frames)  # (batch, frames)
        valid = ~lengths_to_padding_mask(lengths, frames)  # (batch, frames)
        fill = _fill_value(feats, valid, lengths, self.fill)
        return torch.where(masked[..., None], fill, feats), lengths  # (batch, frames, 1) mask broadcast


@dataclass(frozen=True)
class FrequencyMask:
    """SpecAugment frequency masking: ``num_masks`` bands of consecutive channels per utterance.

    Each width is drawn from ``U{0..min(max_width, channels)}`` (the paper's ``F``) and
    each start uniformly so the band lies within the channels; the band is masked on the
    utterance's valid frames only.

    Attributes:
        max_width: widest band in channels (``F``).
        num_masks: bands per utterance.
        fill: ``"mean"`` or ``"zero"``.
        p: probability of masking each utterance.
    """

    max_width: int
    num_masks: int = 1
    fill: Literal["mean", "zero"] = "mean"
    p: float = 1.0

    def __post_init__(self) -> None:
        _check_mask_args(self.max_width, self.num_masks, self.fill, self.p)

    def masked_positions(
        self, feats: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw the bands: where :meth:`__call__` writes, for callers that fill or score them otherwise.

        Args:
            feats: ``(batch, frames, channels)`` time-major features (only the shape is read).
            lengths: ``(batch,)`` valid frames per utterance.
            generator: source of the bands and the coin flips (the same draws as :meth:`__call__`).

        Returns:
            ``(batch, frames, channels)`` bool, True inside each utterance's bands on its valid frames.
        """
        check_batch(feats, lengths, "(batch, frames, channels)")
        batch, frames, channels = feats.shape
        if self.p == 0.0 or self.num_masks == 0:
            return torch.zeros(feats.shape, dtype=torch.bool, device=feats.device)
        lengths = lengths.to(feats.device)
        apply = bernoulli(self.p, batch, generator, feats.device)
        extent = torch.full((batch,), channels, dtype=torch.long, device=feats.device)
        limit = extent.clamp(max=self.max_width)  # (batch,)
        starts, widths = _draw_spans(limit, extent, self.num_masks, apply, generator)
        band = _span_mask(starts, widths, channels)  # (batch, channels)
        valid = ~lengths_to_padding_mask(lengths, frames)  # (batch, frames)
        return band[:, None, :] & valid[:, :, None]  # (batch, frames, channels)

    def __call__(
        self, feats: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Args:
            feats: ``(batch, frames, channels)`` time-major features.
            lengths: ``(batch,)`` valid frames per utterance.
            generator: source of the bands and the coin flips.

        Returns:
            masked ``(batch, frames, channels)`` features and the unchanged lengths.
        """
        check_batch(feats, lengths, "(batch, frames, channels)")
        if self.p == 0.0 or self.num_masks == 0:
            return feats, lengths
        masked = self.masked_positions(feats, lengths, generator)  # (batch, frames, channels)
        lengths = lengths.to(feats.device)
        valid = ~lengths_to_padding_mask(lengths, feats.shape[1])  # (batch, frames)
        fill = _fill_value(feats, valid, lengths, self.fill)
        return torch.where(masked, fill, feats), lengths


__all__ = ["FrequencyMask", "TimeMask", "TimeWarp", "warp_utterance"]
