"""What every encoder returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from speechssl.data.batch import lengths_to_padding_mask


@dataclass
class EncoderOutput:
    """Hidden states of every layer of an encoder.

    Attributes:
        hidden_states: one ``(batch, frames, dim)`` tensor per layer; index 0 is the
            context network's input (front-end output, plus the positional embedding of a
            Transformer), the last is the final layer (after a Transformer's final layer norm).
        lengths: ``(batch,)`` int64, number of valid frames per utterance.
        downsample_rate: input samples per output frame (e.g. 320 at 16 kHz = 20 ms).
    """

    hidden_states: list[torch.Tensor]
    lengths: torch.Tensor
    downsample_rate: int

    @property
    def last_hidden_state(self) -> torch.Tensor:
        return self.hidden_states[-1]

    @property
    def padding_mask(self) -> torch.Tensor:
        """``(batch, frames)`` bool, True on padded frames."""
        return lengths_to_padding_mask(self.lengths, self.hidden_states[-1].shape[1])
