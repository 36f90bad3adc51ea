"""A VQ-VAE-style autoencoder of log-mel frames through a discrete bottleneck.

van den Oord, Vinyals, Kavukcuoglu (2017), "Neural Discrete Representation Learning",
§3, eq. 3: ``L = log p(x | z_q(x)) + ||sg[z_e(x)] − e||² + β ||z_e(x) − sg[e]||²``. The
encoder's last hidden state is ``z_e``; :class:`~speechssl.models.vector_quantizer.VectorQuantizer`
replaces every frame by its nearest codebook entry ``e`` (straight-through gradients) and
adds the codebook and commitment terms; a small convolutional decoder reconstructs the
input log-mel frames from the quantised sequence. The reconstruction term is the mean
squared error, the negative log-likelihood of a unit-variance Gaussian decoder up to
constants (the paper's speech decoder is an autoregressive WaveNet on raw audio).

Targets are at the encoder's frame rate: encoder frame ``t`` reconstructs its block of 4
log-mel frames (:mod:`speechssl.methods.log_mel_targets`), the features the front-end
itself saw (normalised per utterance when ``feature_norm`` is on).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from speechssl.data.batch import AudioBatch
from speechssl.methods.base import MethodOutput, PretextMethod
from speechssl.methods.log_mel_targets import encode_with_log_mel_targets, log_mel_stride, masked_frame_mean
from speechssl.models.encoder import SpeechEncoder
from speechssl.models.padding import zero_padding_frames
from speechssl.models.vector_quantizer import VectorQuantizer


@dataclass
class VQVAEConfig:
    """The VQ autoencoder.

    Attributes:
        codebook_size: ``K`` codebook entries (the paper's experiments use 512).
        commitment_weight: β (the paper uses 0.25).
        decoder_channels: width of the decoder's hidden convolution.
        decoder_kernel: odd kernel (encoder frames) of both decoder convolutions.
    """

    codebook_size: int = 512
    commitment_weight: float = 0.25
    decoder_channels: int = 256
    decoder_kernel: int = 3

    def __post_init__(self) -> None:
        if self.codebook_size < 1:
            raise ValueError(f"codebook_size: expected >= 1, found {self.codebook_size}")
        if self.commitment_weight < 0:
            raise ValueError(f"commitment_weight: expected >= 0, found {self.commitment_weight}")
        if self.decoder_channels < 1:
            raise ValueError(f"decoder_channels: expected >= 1, found {self.decoder_channels}")
        if self.decoder_kernel < 1 or self.decoder_kernel % 2 == 0:
            raise ValueError(f"decoder_kernel: expected an odd number >= 1, found {self.decoder_kernel}")


class FrameDecoder(nn.Module):
    """``Conv1d -> ReLU -> Conv1d`` over encoder frames, ``kernel // 2`` zeros of padding each side.

    Padded input frames are zeroed first, so valid outputs equal those of the unpadded
    utterance.

    Args:
        in_dim: width of the quantised frames.
        channels: hidden width.
        out_dim: output width (``stride · n_mels``).
        kernel: odd kernel size in frames.
    """

    def __init__(self, in_dim: int, channels: int, out_dim: int, kernel: int = 3) -> None:
        super().__init__()
        self.hidden = nn.Conv1d(in_dim, channels, kernel, padding=kernel // 2)
        self.output = nn.Conv1d(channels, out_dim, kernel, padding=kernel // 2)

    def forward(self, z: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``z (batch, frames, in_dim)`` with ``lengths (batch,)`` valid frames -> ``(batch, frames, out_dim)``."""
        x = zero_padding_frames(z, lengths).transpose(1, 2)  # (batch, in_dim, frames)
        x = zero_padding_frames(F.relu(self.hidden(x)), lengths, time_dim=2)  # (batch, channels, frames)
        return self.output(x).transpose(1, 2)  # (batch, out_dim, frames) -> (batch, frames, out_dim)


class VQVAE(PretextMethod):
    """Encoder → vector quantiser → decoder reconstructing the log-mel blocks (van den Oord et al. 2017).

    The upstream is the encoder alone (continuous hidden states, before quantisation).

    Args:
        encoder: an encoder with an fbank front-end.
        config: codebook and decoder sizes.
    """

    def __init__(self, encoder: SpeechEncoder, config: VQVAEConfig) -> None:
        super().__init__()
        self.stride = log_mel_stride(encoder, "VQVAE")
        self.n_mels = encoder.frontend.feature_dim
        self.encoder = encoder
        self.config = config
        self.quantizer = VectorQuantizer(config.codebook_size, encoder.dim, config.commitment_weight)
        self.decoder = FrameDecoder(
            encoder.dim, config.decoder_channels, self.stride * self.n_mels, config.decoder_kernel
        )

    def forward(self, batch: AudioBatch) -> MethodOutput:
        """``MSE(x, decoder(z_q)) + MSE(sg[z_e], e) + β · MSE(z_e, sg[e])`` over valid frames."""
        encoded = encode_with_log_mel_targets(self.encoder, batch.waveforms, batch.lengths, self.stride)
        lengths = encoded.output.lengths
        quantized = self.quantizer(encoded.output.last_hidden_state, lengths)
        reconstruction = self.decoder(quantized.quantized, lengths)  # (batch, frames, stride * n_mels)
        batch_size, frames, _ = reconstruction.shape
        reconstruction = reconstruction.view(
            batch_size, frames, self.stride, self.n_mels
        )  # (batch, frames, stride, n_mels)
        mse = masked_frame_mean((reconstruction - encoded.targets).pow(2), encoded.valid)
        metrics = {
            "reconstruction": mse.detach(),
            "codebook": quantized.codebook_loss.detach(),
            "commitment": quantized.commitment_loss.detach(),
            "perplexity": quantized.perplexity,
            "code_usage": quantized.code_usage,
        }
        return MethodOutput(mse + quantized.loss, metrics)


__all__ = ["VQVAE", "FrameDecoder", "VQVAEConfig"]
