"""Autoregressive Predictive Coding (APC) and its vector-quantised variant (VQ-APC).

APC: Chung, Hsu, Tang, Glass (2019), "An Unsupervised Autoregressive Model for Speech
Representation Learning", Interspeech, eq. 1. A unidirectional encoder reads the
log-mel frames ``x_1 .. x_N`` and, from its output ``y_i`` at frame ``i``, a linear
"postnet" predicts the frame ``n`` steps ahead; the loss is the L1 distance
``Σ_{i=1}^{N−n} |x_{i+n} − y_i|``. The paper's encoder is a 3-layer unidirectional LSTM of
512 units with residual connections, ``n = 3`` frames of 10 ms.

VQ-APC: Chung, Tang, Glass (2020), "Vector-Quantized Autoregressive Predictive Coding",
Interspeech. The hidden states pass through a vector-quantisation layer before the
postnet, limiting the information they can carry about the future. speechssl uses the
VQ-VAE bottleneck (:class:`~speechssl.models.vector_quantizer.VectorQuantizer`; van den
Oord et al. 2017, eq. 3), so the loss adds its codebook and commitment terms
``MSE(sg[h_i], A) + α · MSE(h_i, sg[A])`` with ``A`` the chosen codebook entry; the paper's
own layer uses the Gumbel-softmax instead (see ``docs/methods/autoregressive_and_vq.md``).

speechssl's fbank encoders emit 40 ms frames (4x subsampling), so the targets live at that
rate: the hidden state ``h_t`` of encoder frame ``t`` predicts the block of 4 log-mel frames
of encoder frame ``t + c`` (:mod:`speechssl.methods.log_mel_targets`). With causal
subsampling, ``h_t`` has seen log-mel frames ``<= 4t``, so ``c = 1`` predicts the frames 40 to
70 ms after the newest one it has seen (APC's ``n = 3`` is 30 ms). The L1 distance is
averaged over valid target frames and mel bands.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from speechssl.data.batch import AudioBatch
from speechssl.methods.base import MethodOutput, PretextMethod
from speechssl.methods.log_mel_targets import encode_with_log_mel_targets, log_mel_stride, masked_frame_mean
from speechssl.models.encoder import SpeechEncoder
from speechssl.models.init import init_linear_
from speechssl.models.vector_quantizer import VectorQuantizer


@dataclass
class APCConfig:
    """Autoregressive predictive coding (Chung et al. 2019).

    Attributes:
        time_shift: ``c``, how many encoder frames ahead the targets are (the paper's ``n``,
            counted in 40 ms encoder frames instead of 10 ms log-mel frames; see the module
            docstring).
    """

    time_shift: int = 1

    def __post_init__(self) -> None:
        if self.time_shift < 1:
            raise ValueError(f"time_shift: expected >= 1, found {self.time_shift}")


@dataclass
class VQAPCConfig(APCConfig):
    """Vector-quantised APC (Chung et al. 2020).

    Attributes:
        codebook_size: entries of the VQ codebook (speechssl's default).
        commitment_weight: α, the weight of the commitment term (VQ-VAE's β = 0.25).
    """

    codebook_size: int = 512
    commitment_weight: float = 0.25

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.codebook_size < 1:
            raise ValueError(f"codebook_size: expected >= 1, found {self.codebook_size}")
        if self.commitment_weight < 0:
            raise ValueError(f"commitment_weight: expected >= 0, found {self.commitment_weight}")


def shifted_l1(
    predictions: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor, time_shift: int
) -> torch.Tensor:
    """APC's loss (Chung et al. 2019, eq. 1): ``|x_{t+c} − y_t|`` averaged over valid targets.

    Prediction ``t`` is compared with target ``t + c``; pairs whose target frame is padding
    (or past the batch) are left out, as are the last ``c`` predictions.

    Args:
        predictions: ``(batch, frames, stride, n_mels)`` the postnet outputs ``y_t``.
        targets: ``(batch, frames, stride, n_mels)`` the log-mel blocks ``x_t``.
        valid: ``(batch, frames, stride)`` bool, True on log-mel frames inside the utterance.
        time_shift: ``c >= 1``.

    Returns:
        the mean absolute error per valid log-mel value; zero when no frame has a target.
    """
    if time_shift < 1:
        raise ValueError(f"time_shift: expected >= 1, found {time_shift}")
    kept = max(predictions.shape[1] - time_shift, 0)
    end = time_shift + kept
    errors = (predictions[:, :kept] - targets[:, time_shift:end]).abs()  # (batch, kept, stride, n_mels)
    return masked_frame_mean(errors, valid[:, time_shift:end])


def check_autoregressive_encoder(encoder: SpeechEncoder, method: str) -> None:
    """Raise ValueError unless ``encoder`` only looks at the past, as autoregressive prediction needs."""
    config = encoder.config
    if config.feature_norm:
        raise ValueError(
            f"encoder.feature_norm: expected false for {method} (per-utterance normalisation uses "
            "statistics of the future frames being predicted), found true"
        )
    if not config.causal:
        raise ValueError(
            f"encoder.causal: expected true for {method} (h_t must not see the frames it predicts), found false"
        )


class APC(PretextMethod):
    """APC pretraining of a causal fbank encoder (Chung et al. 2019).

    Args:
        encoder: a causal encoder with an fbank front-end and ``feature_norm`` off.
        config: the time shift.

    Raises:
        ValueError: the encoder is not causal, normalises features per utterance, or has
            no fbank front-end.
    """

    def __init__(self, encoder: SpeechEncoder, config: APCConfig) -> None:
        super().__init__()
        name = type(self).__name__
        check_autoregressive_encoder(encoder, name)
        self.stride = log_mel_stride(encoder, name)
        self.n_mels = encoder.frontend.feature_dim
        self.encoder = encoder
        self.config = config
        self.postnet = nn.Linear(encoder.dim, self.stride * self.n_mels)
        init_linear_(self.postnet)

    def predict(self, h: torch.Tensor) -> torch.Tensor:
        """The postnet: ``h (batch, frames, dim)`` -> ``(batch, frames, stride, n_mels)`` log-mel blocks."""
        batch, frames, _ = h.shape
        return self.postnet(h).view(
            batch, frames, self.stride, self.n_mels
        )  # (batch, frames, stride, n_mels)

    def forward(self, batch: AudioBatch) -> MethodOutput:
        """The L1 loss of predicting each frame's log-mel block ``time_shift`` frames ahead."""
        encoded = encode_with_log_mel_targets(self.encoder, batch.waveforms, batch.lengths, self.stride)
        predictions = self.predict(encoded.output.last_hidden_state)
        loss = shifted_l1(predictions, encoded.targets, encoded.valid, self.config.time_shift)
        return MethodOutput(loss, {"l1": loss.detach()})


class VQAPC(APC):
    """VQ-APC: APC with a VQ layer between the last hidden state and the postnet (Chung et al. 2020).

    The upstream is the encoder alone: its hidden states are the continuous ones, before
    quantisation.

    Args:
        encoder: as for :class:`APC`.
        config: the time shift and the VQ layer.
    """

    config: VQAPCConfig

    def __init__(self, encoder: SpeechEncoder, config: VQAPCConfig) -> None:
        super().__init__(encoder, config)
        self.quantizer = VectorQuantizer(config.codebook_size, encoder.dim, config.commitment_weight)

    def forward(self, batch: AudioBatch) -> MethodOutput:
        """``L1 + MSE(sg[h], A) + α · MSE(h, sg[A])``; logs each term and the codebook usage."""
        encoded = encode_with_log_mel_targets(self.encoder, batch.waveforms, batch.lengths, self.stride)
        quantized = self.quantizer(encoded.output.last_hidden_state, encoded.output.lengths)
        predictions = self.predict(quantized.quantized)
        l1 = shifted_l1(predictions, encoded.targets, encoded.valid, self.config.time_shift)
        metrics = {
            "l1": l1.detach(),
            "codebook": quantized.codebook_loss.detach(),
            "commitment": quantized.commitment_loss.detach(),
            "perplexity": quantized.perplexity,
            "code_usage": quantized.code_usage,
        }
        return MethodOutput(l1 + quantized.loss, metrics)


__all__ = ["APC", "VQAPC", "APCConfig", "VQAPCConfig", "check_autoregressive_encoder", "shifted_l1"]
