"""The transform contract, composition, and seeded random draws shared by every augmentation.

A transform maps a padded batch and its lengths to a padded batch and its lengths:

* waveform transforms: ``(waveforms (batch, samples), lengths (batch,))`` in samples;
* feature transforms: ``(feats (batch, frames, channels), lengths (batch,))`` in frames.

Transforms work on the batch's device and never write into padding. Randomness comes
from the optional ``generator`` argument (the global torch RNG when ``None``); draws are
made on the generator's own device and moved to the batch, so one CPU generator makes a
CUDA run reproducible too, and its ``get_state()`` can be checkpointed to resume.
A new augmentation plugs in by implementing :class:`Transform`; transforms that change
durations (speed, tempo) return the new lengths.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import torch

FeatureTransform = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``(features (batch, frames, channels), lengths (batch,)) -> features (batch, frames, channels)``:
applied by an encoder's front-end to its features (e.g. a view's time/frequency masking)."""


class Transform(Protocol):
    """A batched, padding-aware, seeded augmentation."""

    def __call__(
        self, x: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Transform ``x`` (``(batch, samples)`` or ``(batch, frames, channels)``) with
        ``lengths (batch,)`` valid positions along axis 1; return the new pair."""
        ...


class Compose:
    """Apply transforms in order, threading ``(x, lengths)`` and the generator through."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(
        self, x: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        for transform in self.transforms:
            x, lengths = transform(x, lengths, generator)
        return x, lengths

    def __len__(self) -> int:
        return len(self.transforms)

    def __iter__(self) -> Iterator[Transform]:
        return iter(self.transforms)

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


def rand(
    shape: tuple[int, ...],
    generator: torch.Generator | None,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Uniform ``[0, 1)`` draws of ``shape`` and ``dtype`` from ``generator`` (global RNG if None), on ``device``."""
    if generator is None:
        return torch.rand(shape, device=device, dtype=dtype)
    return torch.rand(shape, generator=generator, device=generator.device, dtype=dtype).to(device)


def randn(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Standard normal float32 draws of ``shape`` from ``generator`` (global RNG if None), on ``device``."""
    if generator is None:
        return torch.randn(shape, device=device)
    return torch.randn(shape, generator=generator, device=generator.device).to(device)


def uniform(
    low: float, high: float, batch: int, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """``(batch,)`` float32 draws from ``U[low, high)`` (exactly ``low`` when ``low == high``)."""
    return low + (high - low) * rand((batch,), generator, device)


def crop_offsets(lengths: torch.Tensor, width: int, generator: torch.Generator | None) -> torch.Tensor:
    """``(batch,)`` int64 starts of random crops of ``width`` positions, uniform over each
    utterance's admissible starts ``0..max(0, length - width)`` (0 for an utterance no longer
    than the crop); ``lengths (batch,)`` in samples or frames."""
    slack = (lengths - width).clamp(min=0)  # (batch,) admissible starts are 0..slack
    offsets = (rand(tuple(lengths.shape), generator, lengths.device) * (slack + 1)).long()
    return torch.minimum(offsets, slack)


def bernoulli(p: float, batch: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """``(batch,)`` bool, True with probability ``p``: which utterances a transform applies to."""
    return rand((batch,), generator, device) < p


def check_probability(p: float, name: str = "p") -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: expected a probability in [0, 1], found {p}")


def check_range(bounds: tuple[float, float], name: str) -> None:
    if len(bounds) != 2 or bounds[0] > bounds[1]:
        raise ValueError(f"{name}: expected (low, high) with low <= high, found {tuple(bounds)}")


def check_batch(x: torch.Tensor, lengths: torch.Tensor, layout: str) -> None:
    """Check that ``x`` has the named ``layout`` (e.g. ``"(batch, samples)"``) and ``lengths`` is ``(batch,)``."""
    ndim = layout.count(",") + 1
    if x.dim() != ndim:
        raise ValueError(f"expected input {layout}, found shape {tuple(x.shape)}")
    if lengths.shape != (x.shape[0],):
        raise ValueError(f"expected lengths (batch,) = ({x.shape[0]},), found shape {tuple(lengths.shape)}")
