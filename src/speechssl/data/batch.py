"""The batch that flows from the data loader to every model and method."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace

import numpy as np
import torch


@dataclass
class AudioBatch:
    """A padded batch of mono 16 kHz waveforms.

    Attributes:
        waveforms: ``(batch, samples)`` float32, zero-padded after each utterance's end.
        lengths: ``(batch,)`` int64, number of valid samples per utterance.
        ids: utterance ids, one per row.
        labels: task label columns of the manifest (``speaker``, ``keyword``, ...), one
            list per column with one entry per row.
        text: the paired text of each row (``DataConfig.text_column``), or None.
        images: ``(batch, channels, height, width)`` float32 paired images
            (``DataConfig.image_column``), or None.
    """

    waveforms: torch.Tensor
    lengths: torch.Tensor
    ids: list[str]
    labels: dict[str, list] = field(default_factory=dict)
    text: list[str] | None = None
    images: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.waveforms.dim() != 2:
            raise ValueError(f"waveforms must be (batch, samples), found shape {tuple(self.waveforms.shape)}")
        if self.lengths.shape != (self.waveforms.shape[0],):
            raise ValueError(
                f"lengths must be (batch,) = ({self.waveforms.shape[0]},), found {tuple(self.lengths.shape)}"
            )
        if self.text is not None and len(self.text) != self.waveforms.shape[0]:
            raise ValueError(
                f"text must hold one string per row ({self.waveforms.shape[0]}), found {len(self.text)}"
            )
        if self.images is not None and (
            self.images.dim() != 4 or self.images.shape[0] != self.waveforms.shape[0]
        ):
            raise ValueError(
                f"images must be (batch, channels, height, width) with batch = {self.waveforms.shape[0]}, "
                f"found {tuple(self.images.shape)}"
            )

    def __len__(self) -> int:
        return self.waveforms.shape[0]

    @property
    def padding_mask(self) -> torch.Tensor:
        """``(batch, samples)`` bool, True on padding."""
        return lengths_to_padding_mask(self.lengths, self.waveforms.shape[1])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> AudioBatch:
        images = self.images.to(device, non_blocking=non_blocking) if self.images is not None else None
        return replace(
            self,
            waveforms=self.waveforms.to(device, non_blocking=non_blocking),
            lengths=self.lengths.to(device, non_blocking=non_blocking),
            images=images,
        )

    def pin_memory(self) -> AudioBatch:
        images = self.images.pin_memory() if self.images is not None else None
        return replace(
            self, waveforms=self.waveforms.pin_memory(), lengths=self.lengths.pin_memory(), images=images
        )


def pad_waveforms(waveforms: Sequence[torch.Tensor | np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad 1-D waveforms ``(samples,)`` into ``waveforms (batch, max samples)`` float32 and
    ``lengths (batch,)`` int64, on the first waveform's device (the CPU for NumPy arrays)."""
    if len(waveforms) == 0:
        raise ValueError("waveforms: expected at least one waveform, found none")
    tensors = [torch.as_tensor(waveform, dtype=torch.float32) for waveform in waveforms]
    shapes = [tuple(tensor.shape) for tensor in tensors]
    if any(len(shape) != 1 for shape in shapes):
        raise ValueError(f"waveforms: expected 1-D waveforms (samples,), found shapes {shapes}")
    lengths = torch.tensor([shape[0] for shape in shapes], dtype=torch.int64, device=tensors[0].device)
    padded = tensors[0].new_zeros(len(tensors), max(shape[0] for shape in shapes))  # (batch, samples)
    for row, tensor in enumerate(tensors):
        padded[row, : tensor.shape[0]] = tensor
    return padded, lengths


def lengths_to_padding_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """``(batch,)`` lengths → ``(batch, max_len)`` bool mask, True where padded."""
    max_len = int(lengths.max()) if max_len is None else max_len
    positions = torch.arange(max_len, device=lengths.device)
    return positions[None, :] >= lengths[:, None]


_PADDED_COMPUTE: ContextVar[bool] = ContextVar("padded_compute", default=False)


@contextmanager
def padded_compute() -> Iterator[None]:
    """Inside the block, :func:`host_lengths` reads nothing: padded batches are computed as on an
    accelerator, at their padded length (e.g. to check that a step makes no host read)."""
    token = _PADDED_COMPUTE.set(True)
    try:
        yield
    finally:
        _PADDED_COMPUTE.reset(token)


def host_lengths(lengths: torch.Tensor) -> list[int] | None:
    """``lengths`` as Python ints when reading them costs no device synchronisation, else None.

    They are free to read when they live in host memory (the CPU) and the code runs eagerly;
    under ``torch.compile``, ``torch.export`` or tracing, on an accelerator and inside
    :func:`padded_compute`, a caller takes its padded path instead.
    """
    if (
        torch.compiler.is_compiling()
        or torch.compiler.is_exporting()
        or torch.jit.is_tracing()
        or lengths.device.type != "cpu"
        or _PADDED_COMPUTE.get()
    ):
        return None
    return lengths.tolist()
