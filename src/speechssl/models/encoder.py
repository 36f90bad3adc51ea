"""The speech encoder pretrained by every method: front-end + context network.

The context network is a Transformer (:mod:`speechssl.models.transformer`) or a stack of
recurrent layers (:mod:`speechssl.models.recurrent`), chosen by ``EncoderConfig.context``.

Masked prediction (wav2vec 2.0, HuBERT, data2vec) goes through the encoder's public
forward: with ``EncoderConfig.mask_embedding`` the encoder owns the learned embedding that
replaces the frames of ``mask_time_indices`` before the context network, and it returns
the pre-mask features the methods' targets are made of (``output_features``).

``SpeechEncoder(frontend, context, config)`` takes its parts ready-made;
:meth:`SpeechEncoder.from_config` builds them from an :class:`EncoderConfig`, and
:func:`load_encoder_preset` reads the named YAML presets shipped in
``speechssl/configs/encoder/``.

The config of a unit front-end (:class:`UnitTokenizerConfig`, Discrete BERT's input) is part
of the encoder config, and a tokenizer may read a (teacher) encoder, so the three configs
live here together. The unit front-end itself is built by :mod:`speechssl.models.units`,
which registers it with :func:`register_frontend`; this module never imports it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Literal

import torch
import yaml
from torch import nn

from speechssl.config import ConfigError, from_dict
from speechssl.data.audio import DEFAULT_SAMPLE_RATE
from speechssl.features.filterbank import FilterbankConfig, LogMelFilterbank
from speechssl.models.frontends import (
    ConvFeatureEncoder,
    ConvSubsampling,
    FeatureTransform,
    FilterbankFrontend,
    Frontend,
    FrontendOutput,
    WaveformFrontend,
)
from speechssl.models.output import EncoderOutput
from speechssl.models.padding import receptive_field
from speechssl.models.recurrent import RecurrentEncoder, RecurrentLayer
from speechssl.models.relative_position import RelativePositionBias, RelativePositionGate
from speechssl.models.transformer import (
    ConvPositionalEmbedding,
    StackedConvPositionalEmbedding,
    TransformerEncoder,
    TransformerLayer,
)

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

ContextNetwork = TransformerEncoder | RecurrentEncoder


@dataclass
class EncoderConfig:
    """Architecture of a :class:`SpeechEncoder`.

    Attributes:
        sample_rate: rate of the audio the encoder reads, in Hz: the one owner of the rate.
            The fbank front-end's mel filters and 25 ms / 10 ms windows and the methods'
            views and crops are computed at it; a run's ``data.sample_rate`` must equal it.
            (The waveform CNN's strides are in samples: 320 samples are 20 ms at 16 kHz.)
        frontend: ``"fbank"`` (log-mel + 4x conv subsampling, 40 ms frames),
            ``"waveform"`` (wav2vec 2.0 CNN on raw audio, 20 ms frames) or ``"units"``
            (a frozen unit tokenizer and an embedding table, Discrete BERT's input; frames
            at the tokenizer's rate).
        context: the context network on top of the front-end: ``"transformer"``, or
            residual ``"lstm"`` / ``"gru"`` layers of ``dim`` units
            (:class:`~speechssl.models.recurrent.RecurrentEncoder`; unidirectional when
            ``causal``, else bidirectional with the two directions projected back to
            ``dim``). The recurrent ones ignore ``heads``, ``ffn_dim``,
            ``attention_dropout``, ``activation_dropout`` and ``pos_conv_*``.
        dim: model dimension of the context network.
        layers: number of context layers (Transformer blocks or recurrent layers).
        heads: attention heads; must divide ``dim``.
        ffn_dim: inner dimension of the feed-forward blocks.
        dropout: dropout on the front-end output, the Transformer input and each residual branch.
        attention_dropout: dropout on the attention weights.
        activation_dropout: dropout after the feed-forward GELU.
        layer_drop: probability of skipping each layer in training (LayerDrop).
        pos_conv_kernel: kernel of the convolutional positional embedding (frames).
        pos_conv_groups: groups of that convolution; must divide ``dim``.
        pos_conv_norm: ``"weight"``: one weight-normalised convolution (wav2vec 2.0, HuBERT,
            WavLM); ``"layer"``: ``pos_conv_layers`` convolutions, each followed by a LayerNorm
            without parameters (data2vec-audio, which uses 5 layers of kernel 19).
        pos_conv_layers: convolutions of the positional embedding (1 with ``pos_conv_norm="weight"``).
        layer_norm_first: Transformer layers in the pre-LN arrangement with a final LayerNorm
            (wav2vec 2.0 LARGE, transformers' ``do_stable_layer_norm``; the default), or post-LN
            with the LayerNorm before the first layer (wav2vec 2.0 / HuBERT / WavLM BASE,
            data2vec-audio); see :mod:`speechssl.models.transformer`.
        relative_position_buckets: buckets of WavLM's gated relative position bias
            (:mod:`speechssl.models.relative_position`; 320 in WavLM), 0 for none.
        relative_position_max_distance: offset (frames) from which relative positions share the
            last bucket (800 in WavLM).
        causal: attend (and convolve, in the positional embedding and fbank subsampling)
            only over the past, or run recurrent layers left to right only, e.g. for
            autoregressive predictive coding.
        n_mels: mel bands of the fbank front-end.
        feature_norm: per-utterance mean/variance normalisation of the log-mel features.
        log_offset: the fbank front-end's absolute offset before the log
            (:attr:`~speechssl.features.filterbank.FilterbankConfig.log_offset`).
        floor_db: the fbank front-end's floor below each utterance's peak
            (:attr:`~speechssl.features.filterbank.FilterbankConfig.floor_db`); None keeps only
            ``log_offset``, whose fixed level makes normalised features depend on the recording
            level (a checkpoint saved without the field keeps that behaviour).
        subsampling_channels: channels of the fbank front-end's two Conv2d layers.
        conv_channels: channels of every wav2vec 2.0 CNN layer.
        conv_kernels: kernel of each CNN layer.
        conv_strides: stride of each CNN layer.
        conv_norm: ``"group"`` (first CNN layer only, wav2vec 2.0 BASE) or ``"layer"`` (every layer, LARGE).
        conv_bias: whether the CNN convolutions have a bias.
        waveform_norm: scale each utterance to zero mean and unit variance before the CNN
            (the input normalisation of wav2vec 2.0 LARGE and data2vec-audio, transformers'
            ``do_normalize``); the waveform front-end only.
        units: for ``frontend="units"``, the tokenizer's :class:`UnitTokenizerConfig` (its
            tensors are saved with the encoder's weights).
        mask_embedding: give the encoder the learned ``(dim,)`` embedding (U(0, 1) init, as in
            wav2vec 2.0, Baevski et al. 2020 §3.1) that replaces masked frames; the
            masked-prediction methods set it (:meth:`SpeechEncoder.add_mask_embedding`).
    """

    sample_rate: int = DEFAULT_SAMPLE_RATE
    frontend: Literal["fbank", "waveform", "units"] = "fbank"
    context: Literal["transformer", "lstm", "gru"] = "transformer"
    dim: int = 768
    layers: int = 12
    heads: int = 12
    ffn_dim: int = 3072
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    layer_drop: float = 0.0
    pos_conv_kernel: int = 128
    pos_conv_groups: int = 16
    pos_conv_norm: Literal["weight", "layer"] = "weight"
    pos_conv_layers: int = 1
    layer_norm_first: bool = True
    relative_position_buckets: int = 0
    relative_position_max_distance: int = 800
    causal: bool = False
    n_mels: int = 80
    feature_norm: bool = True
    log_offset: float = 1e-6
    floor_db: float | None = None
    subsampling_channels: int = 256
    conv_channels: int = 512
    conv_kernels: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_strides: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    conv_norm: Literal["group", "layer"] = "group"
    conv_bias: bool = False
    waveform_norm: bool = False
    units: UnitTokenizerConfig | None = None
    mask_embedding: bool = False

    def __post_init__(self) -> None:
        if self.frontend not in ("fbank", "waveform", "units"):
            raise ValueError(f"frontend: expected 'fbank', 'waveform' or 'units', found {self.frontend!r}")
        if (self.frontend == "units") != (self.units is not None):
            raise ValueError(
                "units: expected a unit tokenizer config exactly when frontend='units', found "
                f"frontend={self.frontend!r} and units={'set' if self.units is not None else 'null'}"
            )
        if self.units is not None and not isinstance(self.units, UnitTokenizerConfig):
            raise ValueError(f"units: expected a UnitTokenizerConfig, found {type(self.units).__name__}")
        if self.context not in ("transformer", "lstm", "gru"):
            raise ValueError(f"context: expected 'transformer', 'lstm' or 'gru', found {self.context!r}")
        if self.conv_norm not in ("group", "layer"):
            raise ValueError(f"conv_norm: expected 'group' or 'layer', found {self.conv_norm!r}")
        if self.waveform_norm and self.frontend != "waveform":
            raise ValueError(f"waveform_norm: expected false with frontend={self.frontend!r}, found true")
        if self.pos_conv_norm not in ("weight", "layer"):
            raise ValueError(f"pos_conv_norm: expected 'weight' or 'layer', found {self.pos_conv_norm!r}")
        if self.pos_conv_norm == "weight" and self.pos_conv_layers != 1:
            raise ValueError(
                f"pos_conv_layers: expected 1 with pos_conv_norm='weight', found {self.pos_conv_layers}"
            )
        if self.relative_position_buckets and (
            self.relative_position_buckets < 4 or self.relative_position_buckets % 4
        ):
            raise ValueError(
                "relative_position_buckets: expected 0 or a positive multiple of 4, "
                f"found {self.relative_position_buckets}"
            )
        if (
            self.relative_position_buckets
            and self.relative_position_max_distance <= self.relative_position_buckets // 4
        ):
            raise ValueError(
                "relative_position_max_distance: expected more than relative_position_buckets / 4, "
                f"found {self.relative_position_max_distance}"
            )
        if self.relative_position_buckets and self.causal:
            raise ValueError(
                "relative_position_buckets: expected 0 with causal=true (WavLM's bias is bidirectional)"
            )
        for name in (
            "sample_rate",
            "dim",
            "layers",
            "heads",
            "ffn_dim",
            "pos_conv_kernel",
            "pos_conv_groups",
            "pos_conv_layers",
            "n_mels",
            "subsampling_channels",
            "conv_channels",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive integer, found {getattr(self, name)}")
        if self.context == "transformer" and self.dim % self.heads != 0:
            raise ValueError(f"heads: expected a divisor of dim={self.dim}, found {self.heads}")
        if self.context == "transformer" and self.dim % self.pos_conv_groups != 0:
            raise ValueError(
                f"pos_conv_groups: expected a divisor of dim={self.dim}, found {self.pos_conv_groups}"
            )
        for name in ("dropout", "attention_dropout", "activation_dropout", "layer_drop"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name}: expected a probability in [0, 1), found {getattr(self, name)}")
        self.conv_kernels = tuple(self.conv_kernels)
        self.conv_strides = tuple(self.conv_strides)
        if not self.conv_kernels or len(self.conv_kernels) != len(self.conv_strides):
            raise ValueError(
                f"conv_strides: expected one stride per kernel ({len(self.conv_kernels)}), "
                f"found {len(self.conv_strides)}"
            )
        if min(self.conv_kernels + self.conv_strides) < 1:
            raise ValueError(
                f"conv_kernels/conv_strides: expected positive integers, found {self.conv_kernels} / {self.conv_strides}"
            )
        if self.causal and self.frontend == "fbank" and self.feature_norm:
            raise ValueError(
                "feature_norm: expected false with causal=true (per-utterance normalisation uses "
                "statistics of future frames), found true"
            )
        if self.causal and self.frontend == "fbank" and self.floor_db is not None:
            raise ValueError(
                f"floor_db: expected null with causal=true (the floor below the utterance's peak "
                f"reads future frames), found {self.floor_db}"
            )
        if self.causal and self.frontend == "waveform" and self.conv_norm == "group":
            raise ValueError(
                "conv_norm: expected 'layer' with causal=true (group norm uses statistics of "
                "future frames), found 'group'"
            )

    @property
    def min_samples(self) -> int:
        """Shortest utterance the front-end reads: the waveform CNN's receptive field (400 samples
        for wav2vec 2.0's), else 1."""
        return receptive_field(self.conv_kernels, self.conv_strides) if self.frontend == "waveform" else 1


@dataclass
class UnitFeatureConfig:
    """The frames a tokenizer discretises.

    Attributes:
        source: ``"mfcc"`` (13 cepstra at 10 ms, plus Δ and ΔΔ when ``deltas``),
            ``"encoder"`` (hidden state ``layer`` of the encoder ``encoder``), ``"cnn"``
            (the layer-normalised CNN features of ``encoder``'s waveform front-end), or
            ``"upstream"`` (hidden state ``layer`` of any harness upstream, e.g. a Hugging
            Face model: ``hf:<dir>``; its weights stay in their own files, see ``upstream``).
        layer: hidden-state index for ``source="encoder"`` or ``"upstream"`` (0 = first, -1 = last).
        pool: average non-overlapping groups of this many frames (e.g. 4 turns 10 ms MFCC
            frames into the 40 ms frames of the fbank encoder).
        deltas: append Δ and ΔΔ (regression over ±2 frames) to the MFCC.
        encoder: architecture of the encoder for ``"encoder"`` and ``"cnn"`` (its weights
            are the tokenizer's tensors).
        upstream: for ``"upstream"``, the upstream spec (``hf:<dir>``, ``fbank``,
            ``random:<preset>``, ...); the tokenizer is rebuilt from it
            (:func:`speechssl.units.pipeline.load_tokenizer`), not from its own files.
        upstream_fingerprint: the upstream's content fingerprint when the tokenizer was made;
            loading it from a changed upstream is an error.
        sample_rate: Hz of the audio the MFCC are computed on (``source="mfcc"``; the other
            sources read at their encoder's or upstream's rate).
    """

    source: Literal["mfcc", "encoder", "cnn", "upstream"] = "mfcc"
    layer: int = -1
    pool: int = 1
    deltas: bool = True
    encoder: EncoderConfig | None = None
    upstream: str = ""
    upstream_fingerprint: str = ""
    sample_rate: int = DEFAULT_SAMPLE_RATE

    def __post_init__(self) -> None:
        if self.source not in ("mfcc", "encoder", "cnn", "upstream"):
            raise ValueError(
                f"source: expected 'mfcc', 'encoder', 'cnn' or 'upstream', found {self.source!r}"
            )
        if (self.source == "upstream") != bool(self.upstream):
            raise ValueError(
                f"upstream: expected an upstream spec exactly when source='upstream', found "
                f"source={self.source!r}, upstream={self.upstream!r}"
            )
        if self.pool < 1:
            raise ValueError(f"pool: expected a positive integer, found {self.pool}")
        if self.source in ("encoder", "cnn") and self.encoder is None:
            raise ValueError(f"encoder: expected an encoder config for source={self.source!r}, found none")
        if self.source == "cnn" and self.encoder is not None and self.encoder.frontend != "waveform":
            raise ValueError(
                f"encoder.frontend: expected 'waveform' for source='cnn', found {self.encoder.frontend!r}"
            )


@dataclass
class UnitTokenizerConfig:
    """A tokenizer: its features and how a frame becomes one of ``num_units`` indices.

    Attributes:
        features: the frames being discretised.
        num_units: size of the unit inventory (``k``, or ``V^G`` for a Gumbel quantizer).
        assignment: ``"nearest"`` (nearest of ``num_units`` centroids, Euclidean) or
            ``"gumbel"`` (argmax of a Gumbel product quantizer's logits).
        groups: ``G`` of a Gumbel quantizer (``num_units = entries^G``); 1 for ``"nearest"``.
        feature_dim: dimension of the feature frames (centroid or quantizer input size).
    """

    features: UnitFeatureConfig = field(default_factory=UnitFeatureConfig)
    num_units: int = 100
    assignment: Literal["nearest", "gumbel"] = "nearest"
    groups: int = 1
    feature_dim: int = 39

    def __post_init__(self) -> None:
        if self.assignment not in ("nearest", "gumbel"):
            raise ValueError(f"assignment: expected 'nearest' or 'gumbel', found {self.assignment!r}")
        for name in ("num_units", "groups", "feature_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive integer, found {getattr(self, name)}")
        if self.assignment == "nearest" and self.groups != 1:
            raise ValueError(f"groups: expected 1 for assignment='nearest', found {self.groups}")
        if (
            self.assignment == "gumbel"
            and round(self.num_units ** (1 / self.groups)) ** self.groups != self.num_units
        ):
            raise ValueError(
                f"num_units: expected entries^groups for a Gumbel quantizer with groups={self.groups}, "
                f"found {self.num_units}"
            )

    @property
    def entries(self) -> int:
        """``V``, entries per group (``num_units`` for ``"nearest"``)."""
        return round(self.num_units ** (1 / self.groups))


def fbank_frontend(config: EncoderConfig) -> FilterbankFrontend:
    """Log-mel filterbank and 4x conv subsampling (``frontend="fbank"``)."""
    filterbank = LogMelFilterbank(
        FilterbankConfig(
            sample_rate=config.sample_rate,
            n_mels=config.n_mels,
            log_offset=config.log_offset,
            floor_db=config.floor_db,
        )
    )
    subsampling = ConvSubsampling(
        config.n_mels, config.subsampling_channels, config.dim, config.dropout, causal=config.causal
    )
    return FilterbankFrontend(filterbank, subsampling, feature_norm=config.feature_norm)


def waveform_frontend(config: EncoderConfig) -> WaveformFrontend:
    """wav2vec 2.0's CNN on raw audio (``frontend="waveform"``)."""
    feature_encoder = ConvFeatureEncoder.wav2vec2(
        config.conv_channels, config.conv_kernels, config.conv_strides, config.conv_norm, config.conv_bias
    )
    return WaveformFrontend(feature_encoder, config.dim, config.dropout, config.waveform_norm)


FrontendBuilder = Callable[[EncoderConfig], Frontend]
_FRONTENDS: dict[str, FrontendBuilder] = {"fbank": fbank_frontend, "waveform": waveform_frontend}


def register_frontend(name: str, builder: FrontendBuilder) -> None:
    """Let ``EncoderConfig.frontend == name`` be built by ``builder`` (``units``: :mod:`speechssl.models.units`)."""
    _FRONTENDS[name] = builder


def build_frontend(config: EncoderConfig) -> Frontend:
    """The front-end described by ``config``."""
    return _FRONTENDS[config.frontend](config)


def build_context(config: EncoderConfig) -> ContextNetwork:
    """The context network described by ``config``: Transformer, LSTM or GRU layers."""
    if config.context != "transformer":
        recurrent_layers = [
            RecurrentLayer(
                config.dim, config.context, bidirectional=not config.causal, dropout=config.dropout
            )
            for _ in range(config.layers)
        ]
        return RecurrentEncoder(config.dim, recurrent_layers, config.dropout, config.layer_drop)
    positional: ConvPositionalEmbedding | StackedConvPositionalEmbedding
    if config.pos_conv_norm == "weight":
        positional = ConvPositionalEmbedding(
            config.dim, config.pos_conv_kernel, config.pos_conv_groups, causal=config.causal
        )
    else:
        positional = StackedConvPositionalEmbedding(
            config.dim, config.pos_conv_kernel, config.pos_conv_groups, config.pos_conv_layers, config.causal
        )
    relative = config.relative_position_buckets > 0
    layers = [
        TransformerLayer(
            config.dim,
            config.heads,
            config.ffn_dim,
            config.dropout,
            config.attention_dropout,
            config.activation_dropout,
            layer_norm_first=config.layer_norm_first,
            relative_position_gate=RelativePositionGate(config.dim, config.heads) if relative else None,
        )
        for _ in range(config.layers)
    ]
    bias = (
        RelativePositionBias(
            config.heads, config.relative_position_buckets, config.relative_position_max_distance
        )
        if relative
        else None
    )
    return TransformerEncoder(positional, layers, config.dropout, config.layer_drop, bias)


class SpeechEncoder(nn.Module):
    """Front-end followed by a context network, returning every layer's hidden states.

    Args:
        frontend: waveforms -> ``(batch, frames, dim)`` (:class:`FilterbankFrontend` or
            :class:`WaveformFrontend`).
        context: the :class:`TransformerEncoder` or :class:`RecurrentEncoder` on top.
        config: the :class:`EncoderConfig` the parts were built from (saved with checkpoints).
    """

    def __init__(self, frontend: Frontend, context: ContextNetwork, config: EncoderConfig) -> None:
        super().__init__()
        if frontend.dim != context.dim:
            raise ValueError(f"context.dim: expected the front-end's dim={frontend.dim}, found {context.dim}")
        self.frontend = frontend
        self.context = context
        self._config = config
        self.mask_embedding: nn.Parameter | None = None
        if config.mask_embedding:
            self.add_mask_embedding()

    @classmethod
    def from_config(cls, config: EncoderConfig) -> SpeechEncoder:
        """Build front-end and context network from ``config``, freshly initialised."""
        return cls(build_frontend(config), build_context(config), config)

    @property
    def config(self) -> EncoderConfig:
        return self._config

    def add_mask_embedding(self) -> None:
        """Create :attr:`mask_embedding` (U(0, 1), the wav2vec 2.0 reference init) unless there is one,
        and set ``config.mask_embedding``."""
        if self.mask_embedding is None:
            self.mask_embedding = nn.Parameter(torch.rand(self.dim))
            self._config = dataclasses.replace(self._config, mask_embedding=True)

    @property
    def num_layers(self) -> int:
        """Number of hidden states returned: the context input plus one per context layer."""
        return len(self.context.layers) + 1

    @property
    def dim(self) -> int:
        return self.context.dim

    @property
    def downsample_rate(self) -> int:
        """Input samples per output frame."""
        return self.frontend.downsample_rate

    @property
    def sample_rate(self) -> int:
        """Hz of the audio the encoder reads (``config.sample_rate``)."""
        return self._config.sample_rate

    def output_lengths(self, num_samples: torch.Tensor) -> torch.Tensor:
        """Output frames for ``num_samples`` valid samples (int64, any shape)."""
        return self.frontend.output_lengths(num_samples)

    def check_lengths(self, lengths: torch.Tensor) -> None:
        """Raise ValueError if an utterance is shorter than the front-end reads (one host read;
        :meth:`forward` makes none, see :meth:`Frontend.check_lengths`)."""
        self.frontend.check_lengths(lengths)

    def unpadded_lengths(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor | None:
        """The ``lengths`` to give :meth:`forward`: None when no utterance of ``waveforms (batch,
        samples)`` is padded (the unmasked path), else ``lengths (batch,)``; raises like
        :meth:`check_lengths`. One host read, for eager entry points such as the upstreams."""
        self.check_lengths(lengths)
        if bool((lengths == waveforms.shape[-1]).all()):
            return None
        return lengths

    def forward(
        self,
        waveforms: torch.Tensor,
        lengths: torch.Tensor | None,
        feature_transform: FeatureTransform | None = None,
        mask_time_indices: torch.Tensor | None = None,
        output_features: bool = False,
        feature_grad_scale: float = 1.0,
        output_hidden_states: bool = True,
    ) -> EncoderOutput:
        """Encode a padded batch.

        Args:
            waveforms: ``(batch, samples)`` float audio at :attr:`sample_rate`, zero-padded.
            lengths: ``(batch,)`` int64 valid samples per utterance; None when no utterance is
                padded, which runs the unmasked kernels (``F.group_norm``, attention without a
                mask) and gives the same values as full lengths.
            feature_transform: optional ``(features (batch, frames, frontend.feature_dim), lengths)
                -> features`` applied inside the front-end (e.g. time/frequency masking).
            mask_time_indices: optional ``(batch, frames)`` bool, frames whose front-end output
                is replaced by :attr:`mask_embedding` before the context network (``frames``
                as given by :meth:`output_lengths` of the padded length).
            output_features: also return the front-end's intermediate features (see
                :class:`EncoderOutput`).
            feature_grad_scale: factor on the gradient reaching the waveform CNN (values unchanged).
            output_hidden_states: return every layer's hidden state; False returns only the
                last one (``hidden_states`` has one entry), for methods that read no other.

        Returns:
            :class:`EncoderOutput` with ``num_layers`` hidden states ``(batch, frames, dim)``
            (one with ``output_hidden_states=False``).
        """
        frontend: FrontendOutput = self.frontend.encode(
            waveforms, lengths, feature_transform, feature_grad_scale
        )
        x = frontend.x  # (batch, frames, dim)
        if mask_time_indices is not None:
            x = self.apply_mask(x, mask_time_indices)
        hidden_states = self.context(
            x, None if lengths is None else frontend.lengths, output_hidden_states=output_hidden_states
        )
        output = EncoderOutput(hidden_states, frontend.lengths, self.downsample_rate)
        if output_features:
            output.features = frontend.clean
            output.extract_features = frontend.features
            output.cnn_features = frontend.cnn_features
        return output

    def apply_mask(self, x: torch.Tensor, mask_time_indices: torch.Tensor) -> torch.Tensor:
        """``x (batch, frames, dim)`` with the frames of ``mask_time_indices (batch, frames)``
        replaced by :attr:`mask_embedding`."""
        if self.mask_embedding is None:
            raise ValueError(
                "mask_time_indices: expected an encoder with a mask embedding "
                "(encoder.mask_embedding=true), found none"
            )
        if mask_time_indices.shape != x.shape[:2]:
            raise ValueError(
                f"mask_time_indices: expected (batch, frames) = {tuple(x.shape[:2])}, "
                f"found {tuple(mask_time_indices.shape)}"
            )
        return torch.where(mask_time_indices[:, :, None], self.mask_embedding.to(x.dtype), x)


def _preset_dir() -> Traversable:
    return resources.files("speechssl").joinpath("configs", "encoder")


def encoder_presets() -> list[str]:
    """Names of the encoder presets shipped with speechssl (``tiny``, ``small``, ``base``, ...)."""
    return sorted(
        entry.name.removesuffix(".yaml") for entry in _preset_dir().iterdir() if entry.name.endswith(".yaml")
    )


def load_encoder_preset(name: str) -> EncoderConfig:
    """The :class:`EncoderConfig` of preset ``name``; ConfigError if there is none."""
    available = encoder_presets()
    if name not in available:
        raise ConfigError(f"encoder preset: unknown name {name!r} (expected one of: {', '.join(available)})")
    data = yaml.safe_load(_preset_dir().joinpath(f"{name}.yaml").read_text()) or {}
    return from_dict(EncoderConfig, data, where="encoder")
