"""The batch that flows from the data loader to every model and method."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

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
    """

    waveforms: torch.Tensor
    lengths: torch.Tensor
    ids: list[str]
    labels: dict[str, list] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.waveforms.dim() != 2:
            raise ValueError(f"waveforms must be (batch, samples), found shape {tuple(self.waveforms.shape)}")
        if self.lengths.shape != (self.waveforms.shape[0],):
            raise ValueError(
                f"lengths must be (batch,) = ({self.waveforms.shape[0]},), found {tuple(self.lengths.shape)}"
            )

    def __len__(self) -> int:
        return self.waveforms.shape[0]

    @property
    def padding_mask(self) -> torch.Tensor:
        """``(batch, samples)`` bool, True on padding."""
        return lengths_to_padding_mask(self.lengths, self.waveforms.shape[1])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> AudioBatch:
        return replace(
            self,
            waveforms=self.waveforms.to(device, non_blocking=non_blocking),
            lengths=self.lengths.to(device, non_blocking=non_blocking),
        )

    def pin_memory(self) -> AudioBatch:
        return replace(self, waveforms=self.waveforms.pin_memory(), lengths=self.lengths.pin_memory())


def lengths_to_padding_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """``(batch,)`` lengths → ``(batch, max_len)`` bool mask, True where padded."""
    max_len = int(lengths.max()) if max_len is None else max_len
    positions = torch.arange(max_len, device=lengths.device)
    return positions[None, :] >= lengths[:, None]
