"""Cutting padded waveforms into centred analysis windows, one per encoder frame."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from speechssl.data.batch import lengths_to_padding_mask


def frame_signal(
    waveforms: torch.Tensor,
    lengths: torch.Tensor,
    num_frames: int,
    hop_length: int,
    window_length: int,
    first_centre: int = 0,
) -> torch.Tensor:
    """Windows of ``window_length`` samples centred every ``hop_length`` samples.

    Window ``k`` starts at sample ``c_k − window_length // 2`` with centre
    ``c_k = first_centre + k · hop_length``; samples before the start of the signal or past
    an utterance's ``lengths`` read as zero (as a centred STFT with constant padding), so
    an utterance frames the same alone or inside a padded batch.

    Args:
        waveforms: ``(batch, samples)`` audio.
        lengths: ``(batch,)`` valid samples per utterance.
        num_frames: windows per utterance.
        hop_length: samples between consecutive centres.
        window_length: samples per window.
        first_centre: centre of window 0, in samples.

    Returns:
        ``(batch, num_frames, window_length)``.
    """
    if waveforms.dim() != 2 or lengths.shape != (waveforms.shape[0],):
        raise ValueError(
            f"waveforms/lengths: expected (batch, samples) and (batch,), found "
            f"{tuple(waveforms.shape)} and {tuple(lengths.shape)}"
        )
    if min(num_frames, hop_length, window_length) < 1:
        raise ValueError(
            "num_frames/hop_length/window_length: expected positive integers, found "
            f"{num_frames}/{hop_length}/{window_length}"
        )
    samples = waveforms.shape[1]
    valid = ~lengths_to_padding_mask(lengths.to(waveforms.device), samples)  # (batch, samples)
    start = first_centre - window_length // 2  # first sample of window 0, may be negative
    end = start + (num_frames - 1) * hop_length + window_length  # one past the last window's end
    padded = F.pad(waveforms * valid, (max(-start, 0), max(end - samples, 0)))  # (batch, padded samples)
    offset = max(start, 0)
    return padded[:, offset:].unfold(1, window_length, hop_length)[:, :num_frames]
