"""Front-ends: from padded waveforms to a time-major ``(batch, frames, dim)`` sequence.

Two families, both passing per-utterance ``lengths`` along and computing output lengths
exactly from the convolution arithmetic ``floor((L + padding - kernel) / stride) + 1``:

* :class:`FilterbankFrontend`: log-mel filterbank, optional per-utterance mean/variance
  normalisation, then 4x convolutional subsampling (as in the Conformer / ESPnet
  ``Conv2dSubsampling``; Gulati et al. 2020).
* :class:`WaveformFrontend`: the wav2vec 2.0 CNN feature encoder on raw audio followed by
  the feature projection (Baevski et al. 2020, §2 and Appendix B).

Both accept a ``feature_transform(features, lengths) -> features`` hook applied to the
intermediate time-major features before the projection to the model dimension; pretext
methods use it for SpecAugment-style masking (Park et al. 2019) or to record the
unmasked features as targets. ``forward`` returns the output and its lengths;
``encode`` returns a :class:`FrontendOutput` with the intermediate features as well, what
:class:`~speechssl.models.encoder.SpeechEncoder` hands to the methods that need them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from speechssl.augment.base import FeatureTransform
from speechssl.data.batch import host_lengths, lengths_to_padding_mask
from speechssl.features.filterbank import LogMelFilterbank, check_audio
from speechssl.models.gradient import grad_multiply
from speechssl.models.init import init_linear_
from speechssl.models.padding import conv_output_lengths, receptive_field, zero_padding_frames


@dataclass
class FrontendOutput:
    """Everything a front-end computes for a padded batch.

    Attributes:
        x: ``(batch, frames, dim)`` the output (after the output dropout), zero on padded frames.
        lengths: ``(batch,)`` int64 valid frames per utterance.
        clean: ``(batch, frames, dim)`` the same output before the output dropout, zero on
            padded frames (data2vec's teacher input).
        features: ``(batch, feature_frames, feature_dim)`` the features projected to ``dim``
            (after ``feature_transform``): the normalised log-mel features (4x as many frames as
            ``x``), or the layer-normalised CNN features that wav2vec 2.0 quantizes; None for the
            unit front-end.
        cnn_features: ``(batch, channels, frames)`` the waveform CNN's output, zero on padded
            frames, after gradient scaling (wav2vec 2.0's feature penalty); None otherwise.
    """

    x: torch.Tensor
    lengths: torch.Tensor
    clean: torch.Tensor
    features: torch.Tensor | None = None
    cnn_features: torch.Tensor | None = None


def full_lengths(x: torch.Tensor, time_dim: int) -> torch.Tensor:
    """``(batch,)`` int64 lengths of a batch without padding: every row has ``x.shape[time_dim]`` frames."""
    return torch.full((x.shape[0],), x.shape[time_dim], dtype=torch.long, device=x.device)


def check_no_grad_scale(feature_grad_scale: float, frontend: str) -> None:
    """Raise unless ``feature_grad_scale`` is 1: only the waveform CNN's gradient can be scaled."""
    if feature_grad_scale != 1.0:
        raise ValueError(
            f"feature_grad_scale: expected 1.0 with the {frontend} front-end (only the waveform CNN's "
            f"gradient is scaled), found {feature_grad_scale}"
        )


class Frontend(nn.Module):
    """Base of the encoder's front-ends: a padded batch of audio -> frames of ``dim``.

    Subclasses set ``downsample_rate`` (input samples per output frame), ``feature_dim``
    (channels seen by ``feature_transform``) and ``dim``, and implement
    :meth:`output_lengths` and :meth:`encode`; :meth:`forward` is ``encode``'s output and lengths.
    ``min_samples`` is the shortest utterance the front-end reads (the waveform CNN's receptive
    field); :meth:`check_lengths` enforces it outside the forward pass, which reads no lengths
    on the host (so a training step does not synchronise and the forward can be exported).
    """

    downsample_rate: int
    feature_dim: int
    dim: int
    min_samples: int = 1

    def check_lengths(self, lengths: torch.Tensor) -> None:
        """Raise ValueError if an utterance of ``lengths (batch,)`` is shorter than ``min_samples``.

        One host read: call it where the lengths are known on the host (data pipeline,
        inference entry points), not inside a training step.
        """
        if self.min_samples > 1 and lengths.numel() > 0:
            shortest = int(lengths.min())
            if shortest < self.min_samples:
                raise ValueError(
                    f"lengths: expected every utterance to have at least {self.min_samples} samples "
                    f"(the front-end's receptive field), found {shortest}"
                )

    def output_lengths(self, num_samples: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Output frames for ``num_samples`` valid samples (int64, any shape)."""
        raise NotImplementedError

    def encode(
        self,
        waveforms: torch.Tensor,
        lengths: torch.Tensor | None,
        feature_transform: FeatureTransform | None = None,
        feature_grad_scale: float = 1.0,
    ) -> FrontendOutput:  # pragma: no cover - abstract
        """Encode a padded batch into a :class:`FrontendOutput`."""
        raise NotImplementedError

    def forward(
        self,
        waveforms: torch.Tensor,
        lengths: torch.Tensor | None,
        feature_transform: FeatureTransform | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (batch, frames, dim)`` zero on padded frames and ``lengths (batch,)`` in frames
        of ``waveforms (batch, samples)`` with ``lengths (batch,)`` valid samples (None without
        padding; see :meth:`encode`)."""
        output = self.encode(waveforms, lengths, feature_transform)
        return output.x, output.lengths


def utterance_mean_variance_norm(
    features: torch.Tensor, lengths: torch.Tensor, eps: float = 1e-5
) -> torch.Tensor:
    """Per-utterance, per-channel mean and variance normalisation over valid frames (CMVN).

    Args:
        features: ``(batch, frames, channels)``; padded frames are ignored.
        lengths: ``(batch,)`` valid frames per utterance.

    Returns:
        ``(batch, frames, channels)``, zero-mean unit-variance on valid frames, zero on padding.
    """
    valid = (~lengths_to_padding_mask(lengths, features.shape[1]))[:, :, None].to(features.dtype)
    count = lengths.clamp(min=1).to(features.dtype)[:, None, None]  # (batch, 1, 1)
    mean = (features * valid).sum(dim=1, keepdim=True) / count  # (batch, 1, channels)
    variance = ((features - mean) * valid).pow(2).sum(dim=1, keepdim=True) / count
    return (features - mean) * torch.rsqrt(variance + eps) * valid


def utterance_waveform_norm(
    waveforms: torch.Tensor, lengths: torch.Tensor | None, eps: float = 1e-7
) -> torch.Tensor:
    """Each utterance scaled to zero mean and unit variance over its valid samples, as the
    feature extractor of wav2vec 2.0 LARGE and data2vec-audio does (transformers' ``do_normalize``,
    fairseq's ``normalize``): ``(x - mean) / sqrt(variance + eps)``.

    Args:
        waveforms: ``(batch, samples)``; padded samples are ignored.
        lengths: ``(batch,)`` valid samples per utterance (None: no padding).

    Returns:
        ``(batch, samples)``, zero on padded samples.
    """
    if lengths is None:
        lengths = full_lengths(waveforms, 1)
    valid = (~lengths_to_padding_mask(lengths, waveforms.shape[1])).to(waveforms.dtype)  # (batch, samples)
    count = lengths.clamp(min=1).to(waveforms.dtype)[:, None]  # (batch, 1)
    mean = (waveforms * valid).sum(dim=1, keepdim=True) / count
    variance = ((waveforms - mean) * valid).pow(2).sum(dim=1, keepdim=True) / count
    return (waveforms - mean) * torch.rsqrt(variance + eps) * valid


class ConvSubsampling(nn.Module):
    """Two ``Conv2d(kernel 3, stride 2)`` + ReLU layers over (time, frequency), then a Linear.

    Reduces the frame rate 4x: ``L -> ceil(L / 2) -> ceil(L / 4)``, each convolution
    padded by 2 frames in time (1 on each side, or 2 on the left when ``causal`` so that
    output frame ``t`` sees only input frames ``<= 4t``) and 1 bin on each side in
    frequency. Padded frames are zeroed between the layers, so the valid outputs of a
    padded utterance equal those computed without padding.
    """

    stride = 4

    def __init__(
        self, in_features: int, channels: int, out_dim: int, dropout: float = 0.0, causal: bool = False
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.causal = causal
        self.conv1 = nn.Conv2d(1, channels, kernel_size=3, stride=2)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, stride=2)
        freq_bins = math.ceil(math.ceil(in_features / 2) / 2)
        self.projection = nn.Linear(channels * freq_bins, out_dim)
        self.dropout = nn.Dropout(dropout)
        init_linear_(self.projection)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Output frames for ``lengths`` input frames."""
        for _ in range(2):
            lengths = conv_output_lengths(lengths, kernel_size=3, stride=2, padding=2)
        return lengths

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Subsample by 4 in time, project, then dropout.

        Args:
            features: ``(batch, frames, in_features)``, zero on padded frames.
            lengths: ``(batch,)`` valid frames per utterance.

        Returns:
            ``(batch, ceil(frames / 4), out_dim)`` and the output lengths ``(batch,)``.
        """
        x, lengths = self.project(features, lengths)
        return self.dropout(x), lengths

    def project(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` without the dropout: ``(batch, ceil(frames / 4), out_dim)`` and the lengths."""
        if features.dim() != 3 or features.shape[-1] != self.in_features:
            raise ValueError(
                f"features: expected (batch, frames, {self.in_features}), found {tuple(features.shape)}"
            )
        time_padding = (2, 0) if self.causal else (1, 1)
        x = features[:, None]  # (batch, 1, frames, in_features)
        for conv in (self.conv1, self.conv2):
            x = F.pad(x, (1, 1, *time_padding))  # pads (freq_left, freq_right, time_left, time_right)
            x = F.relu(conv(x))  # (batch, channels, frames', freq')
            lengths = conv_output_lengths(lengths, kernel_size=3, stride=2, padding=2)
            x = zero_padding_frames(x, lengths, time_dim=2)
        batch, channels, frames, freq = x.shape
        x = x.transpose(1, 2).reshape(batch, frames, channels * freq)  # (batch, frames, channels * freq)
        return self.projection(x), lengths


class FilterbankFrontend(Frontend):
    """Log-mel filterbank -> optional per-utterance CMVN -> ``feature_transform`` -> 4x conv subsampling.

    Attributes:
        downsample_rate: input samples per output frame (hop length x 4, 640 at 16 kHz).
        feature_dim: channels seen by ``feature_transform`` (the number of mel bands).
        dim: output dimension.
    """

    def __init__(
        self, filterbank: LogMelFilterbank, subsampling: ConvSubsampling, feature_norm: bool = True
    ) -> None:
        super().__init__()
        if subsampling.in_features != filterbank.n_mels:
            raise ValueError(
                f"subsampling.in_features: expected n_mels={filterbank.n_mels}, found {subsampling.in_features}"
            )
        self.filterbank = filterbank
        self.subsampling = subsampling
        self.feature_norm = feature_norm
        self.downsample_rate = filterbank.hop_length * subsampling.stride
        self.feature_dim = filterbank.n_mels
        self.dim = subsampling.projection.out_features

    def output_lengths(self, num_samples: torch.Tensor) -> torch.Tensor:
        """Output frames for ``num_samples`` valid samples (int64, any shape)."""
        return self.subsampling.output_lengths(self.filterbank.num_frames(num_samples))

    def encode(
        self,
        waveforms: torch.Tensor,
        lengths: torch.Tensor | None,
        feature_transform: FeatureTransform | None = None,
        feature_grad_scale: float = 1.0,
    ) -> FrontendOutput:
        """Encode a padded batch, with the log-mel ``features`` and the ``clean`` output.

        Args:
            waveforms: ``(batch, samples)`` float audio.
            lengths: ``(batch,)`` int64 valid samples per utterance (None: no utterance is padded).
            feature_transform: optional ``(log_mel (batch, frames, n_mels), frame_lengths) -> log_mel``
                applied after normalisation (training-time masking).
            feature_grad_scale: must be 1 (there is no CNN on the waveform to scale).
        """
        check_no_grad_scale(feature_grad_scale, "fbank")
        if lengths is None:
            lengths = full_lengths(waveforms, 1)
        check_audio(waveforms, lengths)
        features, frame_lengths = self.filterbank(waveforms, lengths)  # (batch, frames, n_mels)
        if self.feature_norm:
            features = utterance_mean_variance_norm(features, frame_lengths)
        if feature_transform is not None:
            features = zero_padding_frames(feature_transform(features, frame_lengths), frame_lengths)
        clean, out_lengths = self.subsampling.project(features, frame_lengths)  # (batch, frames', dim)
        x = zero_padding_frames(self.subsampling.dropout(clean), out_lengths)
        return FrontendOutput(x, out_lengths, zero_padding_frames(clean, out_lengths), features)


class _MaskedGroupNormFunction(torch.autograd.Function):
    """Group norm over the valid frames, forward and backward by hand (Wu & He 2018, eq. 1-2).

    In one buffer, in place: ``m = x * valid`` gives the mean of the ``n = length * per_group``
    valid values of each group, ``m - mean ⊗ valid`` their variance (two passes, no
    cancellation), then ``m * weight * rstd + bias ⊗ valid`` the output, zero on padded frames
    (``⊗``: an outer product over (channel, frame), ``baddbmm``). The backward is the group-norm gradient
    ``rstd (dŷ - mean(dŷ) - x̂ mean(dŷ x̂))`` over valid frames, zero on padded frames, computed
    in place in ``dy * valid``. Forward and backward each allocate one full-size tensor (their
    result), like ``nn.GroupNorm``; the input is kept for the backward.
    """

    @staticmethod
    def forward(ctx, x, valid, lengths, weight, bias, num_groups: int, eps: float):
        batch, channels, _ = x.shape
        per_group = channels // num_groups
        stat_dtype = torch.promote_types(x.dtype, torch.float32)  # statistics in at least float32
        out = x * valid  # (batch, channels, frames), zero on padded frames
        count = (lengths.clamp(min=1) * per_group).to(stat_dtype)[:, None]  # (batch, 1)
        mean = (
            out.sum(-1, dtype=stat_dtype).view(batch, num_groups, per_group).sum(-1) / count
        )  # (batch, groups)
        mean_c = mean.repeat_interleave(per_group, dim=1)  # (batch, channels)
        out.baddbmm_(-mean_c.to(x.dtype)[:, :, None], valid)  # x - mean on valid frames, 0 on padded
        squares = torch.linalg.vector_norm(out, dim=-1, dtype=stat_dtype).square()  # (batch, channels)
        rstd = torch.rsqrt(
            squares.view(batch, num_groups, per_group).sum(-1) / count + eps
        )  # (batch, groups)
        out.mul_((rstd.repeat_interleave(per_group, dim=1) * weight.to(stat_dtype)).to(x.dtype)[:, :, None])
        out.baddbmm_(bias.to(x.dtype)[None, :, None].expand(batch, -1, -1), valid)  # + bias on valid frames
        ctx.save_for_backward(x, valid, lengths, mean, rstd, weight)
        ctx.num_groups = num_groups
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        x, valid, lengths, mean, rstd, weight = ctx.saved_tensors
        batch, channels, frames = x.shape
        groups = ctx.num_groups
        per_group = channels // groups
        stat_dtype = rstd.dtype
        grad_x = (grad_out * valid).contiguous()  # (batch, channels, frames), zero on padded frames
        # Sums over valid frames, per (batch, channel): of dy and of dy * x.
        sum_dy = grad_x.sum(-1, dtype=stat_dtype)  # (batch, channels)
        sum_dy_x = (
            torch.bmm(grad_x.view(batch * channels, 1, frames), x.view(batch * channels, frames, 1))
            .to(stat_dtype)
            .view(batch, channels)
        )
        mean_c = mean.repeat_interleave(per_group, dim=1)  # (batch, channels)
        rstd_c = rstd.repeat_interleave(per_group, dim=1)  # (batch, channels)
        sum_dy_xhat = rstd_c * (sum_dy_x - mean_c * sum_dy)  # (batch, channels)
        grad_weight = sum_dy_xhat.sum(0).to(weight.dtype)
        grad_bias = sum_dy.sum(0).to(weight.dtype)
        count = (lengths.clamp(min=1) * per_group).to(stat_dtype)[:, None]  # (batch, 1)
        w = weight.to(stat_dtype)[None, :]  # (1, channels)
        mean_dxhat = (w * sum_dy).view(batch, groups, per_group).sum(-1) / count  # (batch, groups)
        mean_dxhat_xhat = (w * sum_dy_xhat).view(batch, groups, per_group).sum(-1) / count
        # dx = rstd (w dy - mean_dxhat - (x - mean) rstd mean_dxhat_xhat) on valid frames.
        k_dy = rstd_c * w  # (batch, channels)
        k_x = (-rstd.square() * mean_dxhat_xhat).repeat_interleave(per_group, dim=1)
        k_1 = (rstd * (rstd * mean * mean_dxhat_xhat - mean_dxhat)).repeat_interleave(per_group, dim=1)
        dtype = x.dtype
        grad_x.mul_(k_dy.to(dtype)[:, :, None])
        grad_x.addcmul_(x, k_x.to(dtype)[:, :, None])
        grad_x.baddbmm_(k_1.to(dtype)[:, :, None], valid)
        grad_x.mul_(valid)  # x is not zero on padded frames
        return grad_x, None, None, grad_weight, grad_bias, None, None


class MaskedGroupNorm(nn.Module):
    """Group normalisation (Wu & He 2018) with statistics over the valid frames only.

    With ``num_groups == num_channels`` this is the per-channel normalisation of the first
    layer of the wav2vec 2.0 feature encoder, made independent of padding. Without
    ``lengths`` (a batch without padding) it is ``F.group_norm``.
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        if num_channels % num_groups != 0:
            raise ValueError(
                f"num_groups: expected a divisor of num_channels={num_channels}, found {num_groups}"
            )
        self.num_groups = num_groups
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """Normalise ``x (batch, channels, frames)`` over the first ``lengths (batch,)`` frames
        (all frames when ``lengths`` is None).

        Padded frames come out as zero.
        """
        if lengths is None:
            return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
        valid = (~lengths_to_padding_mask(lengths, x.shape[2])).to(x.dtype)[:, None, :]  # (batch, 1, frames)
        return _MaskedGroupNormFunction.apply(
            x.contiguous(), valid, lengths, self.weight, self.bias, self.num_groups, self.eps
        )


class ConvBlock(nn.Module):
    """``Conv1d`` (no padding) -> optional normalisation -> GELU, one layer of the wav2vec 2.0 CNN.

    ``norm``: ``"group"`` (:class:`MaskedGroupNorm` with one group per channel), ``"layer"``
    (LayerNorm over channels at every frame) or ``None``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        norm: Literal["group", "layer"] | None = None,
        bias: bool = False,
    ) -> None:
        super().__init__()
        if norm not in ("group", "layer", None):
            raise ValueError(f"norm: expected 'group', 'layer' or None, found {norm!r}")
        self.kernel_size = kernel_size
        self.stride = stride
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, bias=bias)
        nn.init.kaiming_normal_(self.conv.weight)
        self.norm: nn.Module | None
        if norm == "group":
            self.norm = MaskedGroupNorm(out_channels, out_channels)
        elif norm == "layer":
            self.norm = nn.LayerNorm(out_channels)
        else:
            self.norm = None

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return conv_output_lengths(lengths, self.kernel_size, self.stride)

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Convolve ``x (batch, in_channels, frames)`` with ``lengths (batch,)`` valid frames
        (None: no padding).

        Returns ``(batch, out_channels, frames')`` and the output lengths ``(batch,)`` (None
        without padding).
        """
        x = self.conv(x)  # (batch, out_channels, frames')
        lengths = None if lengths is None else self.output_lengths(lengths)
        if isinstance(self.norm, MaskedGroupNorm):
            x = self.norm(x, lengths)
        elif self.norm is not None:
            x = self.norm(x.transpose(1, 2)).transpose(1, 2)  # LayerNorm over (batch, frames', channels)
        return F.gelu(x), lengths


class ConvFeatureEncoder(nn.Module):
    """A stack of :class:`ConvBlock` s turning ``(batch, 1, samples)`` into ``(batch, channels, frames)``."""

    def __init__(self, blocks: Sequence[ConvBlock]) -> None:
        super().__init__()
        if not blocks:
            raise ValueError("blocks: expected at least one ConvBlock, found none")
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = blocks[-1].conv.out_channels
        self.stride = math.prod(block.stride for block in blocks)
        self.receptive_field = receptive_field(
            [block.kernel_size for block in blocks], [block.stride for block in blocks]
        )

    @classmethod
    def wav2vec2(
        cls,
        channels: int = 512,
        kernels: Sequence[int] = (10, 3, 3, 3, 3, 2, 2),
        strides: Sequence[int] = (5, 2, 2, 2, 2, 2, 2),
        norm: Literal["group", "layer"] = "group",
        bias: bool = False,
    ) -> ConvFeatureEncoder:
        """The wav2vec 2.0 feature encoder (Baevski et al. 2020, §4.2): ``norm="group"`` normalises
        the first layer only (BASE), ``norm="layer"`` every layer (LARGE / LV-60k).
        """
        if len(kernels) != len(strides):
            raise ValueError(f"strides: expected {len(kernels)} values like kernels, found {len(strides)}")
        blocks = [
            ConvBlock(
                in_channels=1 if i == 0 else channels,
                out_channels=channels,
                kernel_size=kernel,
                stride=stride,
                norm=norm if (norm == "layer" or i == 0) else None,
                bias=bias,
            )
            for i, (kernel, stride) in enumerate(zip(kernels, strides, strict=True))
        ]
        return cls(blocks)

    def output_lengths(self, num_samples: torch.Tensor) -> torch.Tensor:
        """Output frames for ``num_samples`` valid samples."""
        for block in self.blocks:
            num_samples = block.output_lengths(num_samples)
        return num_samples

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Encode ``x (batch, 1, samples)`` with ``lengths (batch,)`` valid samples (None: no padding).

        Returns ``(batch, channels, frames)`` (zero on padded frames) and frame lengths ``(batch,)``
        (None without padding). When the lengths are free to read (host memory,
        :func:`~speechssl.data.batch.host_lengths`), the utterances of each length run
        together over their own samples only, with the same result as the padded batch and no
        work on padding.
        """
        samples = None if lengths is None else host_lengths(lengths)
        if samples is not None:
            return self._forward_by_length(x, lengths, samples)
        for block in self.blocks:
            x, lengths = block(x, lengths)
        return zero_padding_frames(x, lengths, time_dim=2), lengths

    def _forward_by_length(
        self, x: torch.Tensor, lengths: torch.Tensor, samples: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The utterances of ``x (batch, 1, samples)`` grouped by length, each group unpadded."""
        frames = self.output_lengths(lengths)  # (batch,)
        padded_frames = int(self.output_lengths(torch.tensor(x.shape[2])))
        out = x.new_zeros(x.shape[0], self.out_channels, padded_frames)  # (batch, channels, frames)
        for length in sorted(set(samples) - set(range(self.receptive_field))):  # shorter ones: no frame
            rows = torch.tensor([i for i, n in enumerate(samples) if n == length], device=x.device)
            features, _ = self.forward(x[rows, :, :length], None)  # (group, channels, group frames)
            out = out.index_copy(0, rows, F.pad(features, (0, padded_frames - features.shape[2])))
        return out, frames


class WaveformFrontend(Frontend):
    """wav2vec 2.0 CNN feature encoder -> LayerNorm -> ``feature_transform`` -> Linear -> dropout.

    The LayerNorm + Linear is wav2vec 2.0's feature projection ("layer_norm" and
    "post_extract_proj" in fairseq). ``feature_transform`` sees the layer-normalised CNN
    features, i.e. what wav2vec 2.0 quantises as targets. With ``waveform_norm`` each
    utterance is first scaled to zero mean and unit variance (:func:`utterance_waveform_norm`).

    Attributes:
        downsample_rate: input samples per output frame (product of strides, 320).
        feature_dim: channels seen by ``feature_transform`` (CNN channels).
        dim: output dimension.
    """

    def __init__(
        self, feature_encoder: ConvFeatureEncoder, dim: int, dropout: float = 0.0, waveform_norm: bool = False
    ) -> None:
        super().__init__()
        self.feature_encoder = feature_encoder
        self.waveform_norm = waveform_norm
        self.feature_dim = feature_encoder.out_channels
        self.downsample_rate = feature_encoder.stride
        self.min_samples = feature_encoder.receptive_field
        self.dim = dim
        self.layer_norm = nn.LayerNorm(self.feature_dim)
        self.projection = nn.Linear(self.feature_dim, dim)
        self.dropout = nn.Dropout(dropout)
        init_linear_(self.projection)

    def output_lengths(self, num_samples: torch.Tensor) -> torch.Tensor:
        """Output frames for ``num_samples`` valid samples (int64, any shape)."""
        return self.feature_encoder.output_lengths(num_samples)

    def encode(
        self,
        waveforms: torch.Tensor,
        lengths: torch.Tensor | None,
        feature_transform: FeatureTransform | None = None,
        feature_grad_scale: float = 1.0,
    ) -> FrontendOutput:
        """Encode a padded batch, with the CNN features, the layer-normalised ``features`` and
        the ``clean`` output.

        Args:
            waveforms: ``(batch, samples)`` float audio; every utterance needs at least
                ``min_samples`` (the CNN's receptive field, 400) samples (:meth:`check_lengths`;
                a shorter one has no frame).
            lengths: ``(batch,)`` int64 valid samples per utterance; None when no utterance is
                padded (the group norm and the masking then take their unpadded paths).
            feature_transform: optional ``(features (batch, frames, channels), lengths) -> features``.
            feature_grad_scale: factor on the gradient reaching the CNN (wav2vec 2.0 BASE
                scales it by 0.1, Baevski et al. 2020 §4.2); the values are unchanged.
        """
        check_audio(waveforms, full_lengths(waveforms, 1) if lengths is None else lengths)
        if self.waveform_norm:
            waveforms = utterance_waveform_norm(waveforms, lengths)
        samples = waveforms[:, None, :]  # (batch, 1, samples)
        cnn_features, padded_lengths = self.feature_encoder(samples, lengths)  # (batch, channels, frames)
        frame_lengths = full_lengths(cnn_features, 2) if padded_lengths is None else padded_lengths
        if feature_grad_scale != 1.0:
            cnn_features = grad_multiply(cnn_features, feature_grad_scale)
        features = self.layer_norm(cnn_features.transpose(1, 2))  # (batch, frames, channels)
        features = zero_padding_frames(features, padded_lengths)
        if feature_transform is not None:
            features = feature_transform(features, frame_lengths)
        clean = self.projection(features)  # (batch, frames, dim)
        x = zero_padding_frames(self.dropout(clean), padded_lengths)
        return FrontendOutput(
            x, frame_lengths, zero_padding_frames(clean, padded_lengths), features, cnn_features
        )
