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
        features: with ``output_features``, ``(batch, frames, dim)`` the front-end output
            before its dropout and before masking, zero on padded frames (data2vec's teacher input).
        extract_features: with ``output_features``, ``(batch, feature_frames, feature_dim)``
            the features the front-end projects: the layer-normalised CNN features wav2vec 2.0
            quantizes (``feature_frames = frames``), or the normalised log-mel features (4x
            as many frames); None for the unit front-end.
        cnn_features: with ``output_features`` and the waveform front-end, ``(batch,
            channels, frames)`` the CNN output (wav2vec 2.0's feature penalty), zero on padded frames.
    """

    hidden_states: list[torch.Tensor]
    lengths: torch.Tensor
    downsample_rate: int
    features: torch.Tensor | None = None
    extract_features: torch.Tensor | None = None
    cnn_features: torch.Tensor | None = None

    @property
    def last_hidden_state(self) -> torch.Tensor:
        return self.hidden_states[-1]

    @property
    def padding_mask(self) -> torch.Tensor:
        """``(batch, frames)`` bool, True on padded frames."""
        return lengths_to_padding_mask(self.lengths, self.hidden_states[-1].shape[1])
