"""Input alterations of the masked-reconstruction methods, on time-major acoustic features.

Mockingjay (Liu, Yang, Chi, Hsu, Lee 2020, §3.2) and TERA (Liu, Li, Lee 2021, §III) corrupt
the (normalised) log-mel input of a Transformer encoder and train it to reconstruct the
clean frames where the input was altered. The three alterations of TERA act on
``(features (batch, frames, channels), lengths (batch,))`` with lengths in frames:

* :class:`TimeAlteration` (Mockingjay's masked acoustic model, TERA §III-A): spans of
  frames are selected (15%); of the selected positions 80% are set to zero, 10% replaced
  by another position of the same utterance and 10% left unchanged, as BERT's masked
  language model does with tokens.
* :class:`ChannelAlteration` (TERA §III-B): one band of consecutive channels (frequency
  bins) is set to zero on every frame.
* :class:`MagnitudeAlteration` (TERA §III-C): Gaussian noise is added to the whole
  utterance with a probability.

Each returns the altered features and a ``(batch, frames, channels)`` bool mask of the
positions it altered, on which the methods compute their loss. Padding frames are never
altered nor marked.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from speechssl.augment.base import bernoulli, check_batch, check_probability, rand, randn
from speechssl.augment.spectral import FrequencyMask
from speechssl.data.batch import lengths_to_padding_mask
from speechssl.models.masking import span_mask


def _valid_frames(features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``(batch, frames)`` bool, True on the valid frames of ``features (batch, frames, channels)``."""
    return ~lengths_to_padding_mask(lengths.to(features.device), features.shape[1])


@dataclass(frozen=True)
class TimeAlteration:
    """Time alteration of Mockingjay (§3.2) and TERA (§III-A).

    Positions are grouped into *units* of ``unit`` consecutive frames (a call argument:
    the encoder's subsampling factor, so that a unit is one output frame). Spans of
    ``span`` units are drawn with :func:`~speechssl.models.masking.span_mask` until about
    ``mask_prob`` of each utterance's units are covered (spans may overlap, which leaves
    the covered fraction slightly below ``mask_prob``). Each selected unit independently
    is set to zero (probability ``zero_prob``), replaced by the frames of a uniformly drawn
    *other* unit of the same utterance (``random_prob``) or kept (the rest). All selected
    units count as altered: the model must reconstruct them whatever happened to them.

    Attributes:
        mask_prob: fraction of each utterance's units selected (both papers: 0.15).
        span: consecutive units per span (Mockingjay's ``C_num``, TERA's ``W_T``: 7 frames
            of 10 ms in the papers; 2 units of 40 ms is the nearest with the fbank encoder).
        zero_prob: share of the selected units set to zero (0.8).
        random_prob: share of the selected units replaced by another unit (0.1).
    """

    mask_prob: float = 0.15
    span: int = 2
    zero_prob: float = 0.8
    random_prob: float = 0.1

    def __post_init__(self) -> None:
        check_probability(self.mask_prob, "mask_prob")
        check_probability(self.zero_prob, "zero_prob")
        check_probability(self.random_prob, "random_prob")
        if self.zero_prob + self.random_prob > 1.0:
            raise ValueError(
                f"zero_prob + random_prob: expected at most 1, found {self.zero_prob} + {self.random_prob}"
            )
        if self.span < 1:
            raise ValueError(f"span: expected at least 1 unit, found {self.span}")

    def __call__(
        self,
        features: torch.Tensor,
        lengths: torch.Tensor,
        generator: torch.Generator | None = None,
        unit: int = 1,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Alter spans of units.

        Args:
            features: ``(batch, frames, channels)`` time-major features, zero on padding.
            lengths: ``(batch,)`` valid frames per utterance.
            generator: source of the spans and choices (global RNG when None).
            unit: frames per unit; an utterance's last unit may be partial.

        Returns:
            the altered ``(batch, frames, channels)`` features and the ``(batch, frames,
            channels)`` bool mask of the selected units' valid frames.
        """
        check_batch(features, lengths, "(batch, frames, channels)")
        if unit < 1:
            raise ValueError(f"unit: expected at least 1 frame, found {unit}")
        batch, frames, channels = features.shape
        device = features.device
        lengths = lengths.to(device)
        valid = _valid_frames(features, lengths)  # (batch, frames)
        units = -(-frames // unit)
        unit_lengths = torch.div(lengths + unit - 1, unit, rounding_mode="floor")  # (batch,)
        selected = span_mask(
            unit_lengths, units, self.mask_prob, self.span, generator=generator
        )  # (batch, units)
        draws = rand((2, batch, units), generator, device)
        zeroed = selected & (draws[0] < self.zero_prob)  # (batch, units)
        replaced = selected & ~zeroed & (draws[0] < self.zero_prob + self.random_prob)  # (batch, units)
        # another unit of the same utterance: an offset in 1..n-1, wrapped around (itself when n = 1)
        offsets = 1 + (draws[1] * (unit_lengths[:, None] - 1)).long()  # (batch, units)
        positions = torch.arange(units, device=device)  # (units,)
        sources = torch.where(replaced, (positions + offsets) % unit_lengths.clamp(min=1)[:, None], positions)
        frame_positions = torch.arange(frames, device=device)  # (frames,)
        source_frames = sources.repeat_interleave(unit, dim=1)[:, :frames] * unit + frame_positions % unit
        source_frames = torch.minimum(source_frames, (lengths - 1).clamp(min=0)[:, None])  # (batch, frames)
        gathered = features.gather(1, source_frames[..., None].expand(-1, -1, channels))
        replaced_frames = replaced.repeat_interleave(unit, dim=1)[:, :frames] & valid  # (batch, frames)
        zeroed_frames = zeroed.repeat_interleave(unit, dim=1)[:, :frames] & valid  # (batch, frames)
        altered = torch.where(replaced_frames[..., None], gathered, features)
        altered = altered.masked_fill(zeroed_frames[..., None], 0.0)
        selected_frames = selected.repeat_interleave(unit, dim=1)[:, :frames] & valid  # (batch, frames)
        return altered, selected_frames[..., None].expand(-1, -1, channels)


@dataclass(frozen=True)
class ChannelAlteration:
    """Channel alteration of TERA (§III-B): zero one band of consecutive channels.

    Per utterance, a width is drawn from ``U{0..floor(max_fraction · channels)}`` and a
    start uniformly so that the band fits; the band is zeroed on every valid frame (a
    SpecAugment frequency mask with zero fill, :class:`~speechssl.augment.FrequencyMask`).

    Attributes:
        max_fraction: widest band as a fraction of the channels (TERA: 0.2).
    """

    max_fraction: float = 0.2

    def __post_init__(self) -> None:
        check_probability(self.max_fraction, "max_fraction")

    def __call__(
        self, features: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Args:
            features: ``(batch, frames, channels)`` time-major features.
            lengths: ``(batch,)`` valid frames per utterance.
            generator: source of the bands (global RNG when None).

        Returns:
            the altered features and the ``(batch, frames, channels)`` bool band mask.
        """
        check_batch(features, lengths, "(batch, frames, channels)")
        max_width = int(self.max_fraction * features.shape[2])
        band = FrequencyMask(max_width, num_masks=1, fill="zero").masked_positions(
            features, lengths, generator
        )
        return features.masked_fill(band, 0.0), band


@dataclass(frozen=True)
class MagnitudeAlteration:
    """Magnitude alteration of TERA (§III-C): add ``N(0, std²)`` noise to whole utterances.

    Each utterance is altered with probability ``p``: an independent Gaussian draw is added
    to every element of its valid frames.

    Attributes:
        p: probability of altering an utterance (TERA's ``P_N``; the authors' recipe: 0.15).
        std: standard deviation of the noise (0.2 in the authors' recipe).
    """

    p: float = 0.15
    std: float = 0.2

    def __post_init__(self) -> None:
        check_probability(self.p)
        if self.std < 0:
            raise ValueError(f"std: expected >= 0, found {self.std}")

    def __call__(
        self, features: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Args:
            features: ``(batch, frames, channels)`` time-major features.
            lengths: ``(batch,)`` valid frames per utterance.
            generator: source of the coin flips and the noise (global RNG when None).

        Returns:
            the altered features and the ``(batch, frames, channels)`` bool mask of the noisy
            utterances' valid elements.
        """
        check_batch(features, lengths, "(batch, frames, channels)")
        if self.p == 0.0:
            return features, torch.zeros(features.shape, dtype=torch.bool, device=features.device)
        noisy = bernoulli(self.p, features.shape[0], generator, features.device)  # (batch,)
        altered = (noisy[:, None] & _valid_frames(features, lengths))[..., None]  # (batch, frames, 1)
        noise = self.std * randn(tuple(features.shape), generator, features.device)
        return features + noise * altered, altered.expand_as(features)


__all__ = ["ChannelAlteration", "MagnitudeAlteration", "TimeAlteration"]
