"""Log-mel targets at the encoder's frame rate, for methods that predict or reconstruct features.

APC and VQ-APC (Chung et al. 2019; 2020) predict future log-mel frames, the VQ autoencoder
(van den Oord et al. 2017) reconstructs them. Their targets are the features the encoder's
own fbank front-end computes (:class:`~speechssl.models.frontends.FilterbankFrontend`: the
log-mel filterbank, after the per-utterance normalisation when ``feature_norm`` is on),
recorded through its ``feature_transform`` hook during the encoder's forward pass, so no
second log-mel is computed.

The front-end's convolutions subsample 4x (10 ms log-mel frames, 40 ms encoder frames).
Encoder frame ``t`` is paired with the block of log-mel frames ``4t .. 4t + 3`` (the frames
it subsamples), stacked into one target of ``4 · n_mels`` values, as in the frame stacking
of Mockingjay (Liu et al. 2020). With causal subsampling, frame ``t`` has seen
log-mel frames ``<= 4t`` (:class:`~speechssl.models.frontends.ConvSubsampling`), so block
``t + c`` lies strictly in its future for every ``c >= 1``. The last block of an utterance
may be partial; its missing frames are marked invalid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from speechssl.data.batch import lengths_to_padding_mask
from speechssl.models.encoder import SpeechEncoder
from speechssl.models.frontends import FilterbankFrontend
from speechssl.models.output import EncoderOutput


@dataclass
class EncodedWithTargets:
    """An encoder's output and the log-mel blocks of its frames.

    Attributes:
        output: the encoder's hidden states ``(batch, frames, dim)`` and frame lengths.
        targets: ``(batch, frames, stride, n_mels)`` log-mel block of each encoder frame,
            zero where invalid; detached.
        valid: ``(batch, frames, stride)`` bool, True on the log-mel frames inside the utterance.
    """

    output: EncoderOutput
    targets: torch.Tensor
    valid: torch.Tensor


def log_mel_stride(encoder: SpeechEncoder, method: str) -> int:
    """Log-mel frames per encoder frame (4 for the fbank front-end).

    Raises:
        ValueError: the encoder has no fbank front-end, so there are no log-mel features.
    """
    if not isinstance(encoder.frontend, FilterbankFrontend):
        raise ValueError(
            f"encoder.frontend: expected 'fbank' ({method} targets are its log-mel features), "
            f"found {encoder.config.frontend!r}"
        )
    return encoder.frontend.subsampling.stride


def stack_frames(
    features: torch.Tensor, lengths: torch.Tensor, stride: int, frames: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Group ``stride`` consecutive feature frames per output frame.

    Args:
        features: ``(batch, feature_frames, channels)``, zero on padded frames.
        lengths: ``(batch,)`` valid feature frames per utterance.
        stride: feature frames per output frame.
        frames: output frames; features past ``frames · stride`` are dropped, missing ones are zero.

    Returns:
        ``blocks (batch, frames, stride, channels)`` with block ``t`` = feature frames
        ``stride·t .. stride·t + stride − 1``, and ``valid (batch, frames, stride)`` bool,
        True on frames before ``lengths``.
    """
    batch, feature_frames, channels = features.shape
    total = frames * stride
    if total > feature_frames:
        features = F.pad(features, (0, 0, 0, total - feature_frames))  # (batch, total, channels)
    blocks = features[:, :total].reshape(batch, frames, stride, channels)  # (batch, frames, stride, channels)
    valid = ~lengths_to_padding_mask(lengths, total)  # (batch, total)
    return blocks, valid.view(batch, frames, stride)  # valid: (batch, frames, stride)


def encode_with_log_mel_targets(
    encoder: SpeechEncoder, waveforms: torch.Tensor, lengths: torch.Tensor, stride: int
) -> EncodedWithTargets:
    """Run ``encoder`` and stack the log-mel features its front-end saw per output frame.

    Args:
        encoder: an encoder with an fbank front-end (see :func:`log_mel_stride`).
        waveforms: ``(batch, samples)`` zero-padded audio.
        lengths: ``(batch,)`` valid samples per utterance.
        stride: log-mel frames per encoder frame, from :func:`log_mel_stride`.
    """
    recorded: list[tuple[torch.Tensor, torch.Tensor]] = []

    def record(features: torch.Tensor, feature_lengths: torch.Tensor) -> torch.Tensor:
        recorded.append((features.detach(), feature_lengths))
        return features

    output = encoder(waveforms, lengths, feature_transform=record, output_hidden_states=False)
    features, feature_lengths = recorded[0]  # (batch, feature_frames, n_mels), (batch,)
    frames = output.hidden_states[-1].shape[1]
    targets, valid = stack_frames(features, feature_lengths, stride, frames)
    return EncodedWithTargets(output, targets, valid)


def masked_frame_mean(errors: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``errors`` over the valid log-mel frames and every channel.

    Args:
        errors: ``(batch, frames, stride, channels)`` element-wise errors.
        valid: ``(batch, frames, stride)`` bool, True where the target frame exists.

    Returns:
        a scalar; zero (with a zero gradient) when no frame is valid.
    """
    weights = valid[..., None].to(errors.dtype)  # (batch, frames, stride, 1)
    count = weights.sum() * errors.shape[-1]
    return (errors * weights).sum() / count.clamp(min=1.0)


__all__ = [
    "EncodedWithTargets",
    "encode_with_log_mel_targets",
    "log_mel_stride",
    "masked_frame_mean",
    "stack_frames",
]
