"""Encoders, front-ends, heads and pooling shared by every pretext method and downstream task."""

from __future__ import annotations

from speechssl.models.encoder import (
    EncoderConfig,
    SpeechEncoder,
    build_context,
    build_frontend,
    encoder_presets,
    load_encoder_preset,
)
from speechssl.models.frontends import (
    ConvBlock,
    ConvFeatureEncoder,
    ConvSubsampling,
    FeatureTransform,
    FilterbankFrontend,
    MaskedGroupNorm,
    WaveformFrontend,
    utterance_mean_variance_norm,
)
from speechssl.models.heads import ProjectorMLP
from speechssl.models.output import EncoderOutput
from speechssl.models.padding import conv_output_lengths, zero_padding_frames
from speechssl.models.pooling import masked_mean, masked_mean_std
from speechssl.models.recurrent import RecurrentEncoder, RecurrentLayer
from speechssl.models.transformer import (
    ConvPositionalEmbedding,
    FeedForward,
    MultiHeadSelfAttention,
    TransformerEncoder,
    TransformerLayer,
)
from speechssl.models.units import UnitFrontend  # registers the "units" front-end
from speechssl.models.vector_quantizer import VectorQuantizer, VectorQuantizerOutput

__all__ = [
    "ConvBlock",
    "ConvFeatureEncoder",
    "ConvPositionalEmbedding",
    "ConvSubsampling",
    "EncoderConfig",
    "EncoderOutput",
    "FeatureTransform",
    "FeedForward",
    "FilterbankFrontend",
    "MaskedGroupNorm",
    "MultiHeadSelfAttention",
    "ProjectorMLP",
    "RecurrentEncoder",
    "RecurrentLayer",
    "SpeechEncoder",
    "TransformerEncoder",
    "TransformerLayer",
    "UnitFrontend",
    "VectorQuantizer",
    "VectorQuantizerOutput",
    "WaveformFrontend",
    "build_context",
    "build_frontend",
    "conv_output_lengths",
    "encoder_presets",
    "load_encoder_preset",
    "masked_mean",
    "masked_mean_std",
    "utterance_mean_variance_norm",
    "zero_padding_frames",
]
