"""Mockingjay: masked acoustic modelling with a bidirectional Transformer encoder.

Liu, Yang, Chi, Hsu, Lee (2020), "Mockingjay: Unsupervised Speech Representation Learning
with Deep Bidirectional Transformer Encoders", ICASSP, §3.2: 15% of the input frames are
selected in consecutive spans; of those, 80% are set to zero, 10% replaced by a random
frame and 10% left unchanged (:class:`~speechssl.models.alteration.TimeAlteration`); a
prediction head on the last layer reconstructs the original frames and the L1 loss is
taken over the selected positions ``M`` only:

    L = (1 / |M|) Σ_{(t, c) ∈ M} |x_{t,c} − x̂_{t,c}|

Masking units. The fbank encoder subsamples its log-mel frames 4x (10 ms → 40 ms) before
the Transformer, so frames are altered in *units* of 4 consecutive input frames: unit ``k``
(frames ``4k .. 4k+3``) is output frame ``k`` (the subsampling gives ``ceil(frames / 4)``
outputs, one per unit, the last possibly partial). The head maps hidden state ``k`` to the
4 stacked frames of unit ``k`` (``4 · n_mels`` values; the stacking of
:mod:`speechssl.methods.log_mel_targets`, shared with APC), as the authors' code does for its
downsampling factor ``R`` ("reshape and stack"); an input frame of a partial unit that
lies past the utterance's end is never scored. Spans are 2 units (80 ms), the nearest to
the papers' 7 frames of 10 ms.

The alteration runs inside the front-end through the encoder's ``feature_transform``
hook, after per-utterance normalisation, so the reconstruction targets are exactly the
normalised log-mel frames the subsampling would have seen unaltered.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from speechssl.data.batch import AudioBatch
from speechssl.methods.base import MethodOutput, PretextMethod
from speechssl.methods.log_mel_targets import log_mel_stride, stack_frames
from speechssl.models import SpeechEncoder
from speechssl.models.alteration import TimeAlteration
from speechssl.models.init import init_linear_


@dataclass
class MockingjayConfig:
    """Mockingjay's masked acoustic model (Liu et al. 2020; defaults from the paper).

    Attributes:
        time: the time alteration: fraction selected (0.15), span in 40 ms units, and the
            80/10/10 split of the selected units.
    """

    time: TimeAlteration = field(default_factory=TimeAlteration)


def masked_l1(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the masked elements: ``Σ_M |x − x̂| / |M|`` (zero when ``M`` is empty).

    Args:
        prediction: ``(batch, frames, unit, n_mels)`` reconstruction ``x̂`` (any shape equal to the others').
        target: ``(batch, frames, unit, n_mels)`` original ``x``.
        mask: ``(batch, frames, unit, n_mels)`` bool, the elements ``M`` that count.

    Returns:
        scalar loss, computed in at least float32.
    """
    if not prediction.shape == target.shape == mask.shape:
        raise ValueError(
            "prediction/target/mask: expected equal shapes (batch, frames, unit, n_mels), found "
            f"{tuple(prediction.shape)}, {tuple(target.shape)} and {tuple(mask.shape)}"
        )
    dtype = torch.promote_types(prediction.dtype, torch.float32)
    error = (prediction.to(dtype) - target.to(dtype)).abs() * mask  # (batch, frames, unit, n_mels)
    return error.sum() / mask.sum().clamp(min=1)


class SpecPredictionHead(nn.Module):
    """Reconstruction head of Mockingjay/TERA: ``Linear → GELU → LayerNorm → Linear``.

    The masked-language-model transform of BERT (Devlin et al. 2019) followed by a linear
    projection to the stacked frames, as in the authors' implementation.

    Args:
        dim: encoder dimension.
        out_dim: values to predict per output frame (``unit · n_mels``).
    """

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.transform = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.output = nn.Linear(dim, out_dim)
        init_linear_(self.transform)
        init_linear_(self.output)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``hidden (batch, frames, dim)`` → ``(batch, frames, out_dim)``."""
        return self.output(self.norm(nn.functional.gelu(self.transform(hidden))))


class Mockingjay(PretextMethod):
    """Mockingjay pretraining of an fbank encoder (Liu et al. 2020).

    Args:
        encoder: the encoder being pretrained; its front-end must be ``fbank``.
        config: the alteration settings.
        generator: a CPU generator, source of the alteration randomness (global RNG when
            None); checkpoint its ``get_state()`` to resume reproducibly.
    """

    def __init__(
        self, encoder: SpeechEncoder, config: MockingjayConfig, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.unit = log_mel_stride(encoder, type(self).__name__)
        self.encoder = encoder
        self.config = config
        self.generator = generator
        self.head = SpecPredictionHead(encoder.dim, self.unit * encoder.frontend.feature_dim)

    def alter(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Altered features and the ``(batch, frames, n_mels)`` bool mask of altered positions.

        Args:
            features: ``(batch, frames, n_mels)`` normalised log-mel frames.
            lengths: ``(batch,)`` valid frames per utterance.
        """
        return self.config.time(features, lengths, self.generator, unit=self.unit)

    def forward(self, batch: AudioBatch) -> MethodOutput:
        """The L1 reconstruction loss of ``batch``'s altered frames.

        Returns:
            the loss and, as metrics, ``altered_fraction`` (share of the valid log-mel
            values in the loss).
        """
        captured: dict[str, torch.Tensor] = {}

        def alter_and_capture(features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            captured["target"] = features
            captured["lengths"] = lengths
            altered, captured["mask"] = self.alter(features, lengths)
            return altered

        output = self.encoder(
            batch.waveforms, batch.lengths, feature_transform=alter_and_capture, output_hidden_states=False
        )
        hidden = output.last_hidden_state  # (batch, frames, dim)
        frame_lengths = captured["lengths"]
        target, _ = stack_frames(captured["target"], frame_lengths, self.unit, hidden.shape[1])
        mask, _ = stack_frames(captured["mask"], frame_lengths, self.unit, hidden.shape[1])
        # (batch, frames, unit * n_mels) -> (batch, frames, unit, n_mels), like the stacked targets
        prediction = self.head(hidden).view_as(target)
        loss = masked_l1(prediction, target, mask)
        valid_values = frame_lengths.sum() * captured["target"].shape[2]
        return MethodOutput(loss, {"altered_fraction": mask.sum() / valid_values.clamp(min=1)})


__all__ = ["Mockingjay", "MockingjayConfig", "SpecPredictionHead", "masked_l1"]
