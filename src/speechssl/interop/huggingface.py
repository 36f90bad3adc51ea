"""The one mapping between ``transformers`` speech models and speechssl encoders, both directions.

Config fields (:func:`encoder_config_from_hf`, :func:`hf_config_from_encoder`) and state-dict
keys (:func:`tensor_rules`, read by :func:`hf_to_speechssl` and :func:`speechssl_to_hf`) are
written once here for Wav2Vec2, HuBERT, WavLM and data2vec-audio, and for the pretraining
heads of ``Wav2Vec2ForPreTraining`` (Gumbel quantizer, ``project_q``, ``project_hid``), which
become speechssl's :class:`~speechssl.methods.wav2vec2.Wav2Vec2` heads.

What each transformers layout is in speechssl's :class:`~speechssl.models.encoder.EncoderConfig`:

* ``feat_extract_norm`` → ``conv_norm`` (``"group"``: the first CNN layer, ``"layer"``: every
  layer; data2vec-audio is always ``"layer"``), ``conv_bias`` → ``conv_bias``;
* ``do_stable_layer_norm`` → ``layer_norm_first`` (data2vec-audio is always post-LN);
* ``num_conv_pos_embeddings`` / ``num_conv_pos_embedding_groups`` → ``pos_conv_kernel`` /
  ``pos_conv_groups``; data2vec-audio's ``conv_pos_kernel_size`` → ``pos_conv_kernel`` and its
  ``num_conv_pos_embeddings`` → ``pos_conv_layers`` with ``pos_conv_norm="layer"``;
* WavLM's ``num_buckets`` / ``max_bucket_distance`` → ``relative_position_buckets`` /
  ``relative_position_max_distance``;
* the dropouts: ``hidden_dropout`` → ``dropout`` (speechssl uses one rate on the front-end
  output and the residual branches, so ``feat_proj_dropout`` is not read and is written as
  ``dropout``), ``attention_dropout``, ``activation_dropout``, ``layerdrop`` → ``layer_drop``.

Values speechssl cannot represent (another activation, CNN layers of different widths, a
different LayerNorm epsilon, HuBERT without the feature-projection LayerNorm, ...) raise a
one-line ValueError naming the field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from speechssl.methods.wav2vec2 import Wav2Vec2Config
from speechssl.models.encoder import EncoderConfig
from speechssl.upstream.huggingface import SUPPORTED_MODEL_TYPES

LAYER_NORM_EPS = 1e-5  # torch's default, every speechssl LayerNorm
# speechssl's default method for an encoder of each model type (what config.yaml of an import names)
METHOD_OF_MODEL_TYPE = {
    "wav2vec2": "wav2vec2",
    "hubert": "hubert",
    "wavlm": "hubert",
    "data2vec-audio": "data2vec",
}
# the transformers base-model class of each model type
MODEL_CLASS = {
    "wav2vec2": "Wav2Vec2Model",
    "hubert": "HubertModel",
    "wavlm": "WavLMModel",
    "data2vec-audio": "Data2VecAudioModel",
}
HEAD_PREFIXES = ("quantizer.", "project_q.", "project_hid.")


def _require(config: Mapping[str, Any], field: str, expected: Any) -> None:
    found = config.get(field, expected)
    if found != expected:
        raise ValueError(
            f"{field}: expected {expected!r} (what speechssl's encoder implements), found {found!r}"
        )


def encoder_config_from_hf(
    config: Mapping[str, Any], sample_rate: int = 16_000, waveform_norm: bool = False
) -> EncoderConfig:
    """The :class:`EncoderConfig` of a transformers config (``config.json`` as a mapping), reading
    audio at ``sample_rate`` and normalised per utterance when ``waveform_norm`` (the model's
    feature extractor's ``sampling_rate`` and ``do_normalize``).

    Raises:
        ValueError: naming the first field speechssl cannot represent.
    """
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"model_type: expected one of {', '.join(SUPPORTED_MODEL_TYPES)}, found {model_type!r}"
        )
    for field, expected in (
        ("hidden_act", "gelu"),
        ("feat_extract_activation", "gelu"),
        ("layer_norm_eps", LAYER_NORM_EPS),
        ("add_adapter", False),
        ("feat_proj_layer_norm", True),
        ("conv_pos_batch_norm", False),
    ):
        _require(config, field, expected)
    widths = list(config["conv_dim"])
    if len(set(widths)) != 1:
        raise ValueError(f"conv_dim: expected one width for every CNN layer, found {widths}")
    data2vec = model_type == "data2vec-audio"
    fields: dict[str, Any] = {
        "sample_rate": sample_rate,
        "waveform_norm": waveform_norm,
        "frontend": "waveform",
        "context": "transformer",
        "dim": config["hidden_size"],
        "layers": config["num_hidden_layers"],
        "heads": config["num_attention_heads"],
        "ffn_dim": config["intermediate_size"],
        "dropout": config.get("hidden_dropout", 0.1),
        "attention_dropout": config.get("attention_dropout", 0.1),
        "activation_dropout": config.get("activation_dropout", 0.1),
        "layer_drop": config.get("layerdrop", 0.1),
        "conv_channels": widths[0],
        "conv_kernels": tuple(config["conv_kernel"]),
        "conv_strides": tuple(config["conv_stride"]),
        "conv_norm": "layer" if data2vec else config.get("feat_extract_norm", "group"),
        "conv_bias": bool(config.get("conv_bias", False)),
        "pos_conv_groups": config["num_conv_pos_embedding_groups"],
        "layer_norm_first": False if data2vec else bool(config.get("do_stable_layer_norm", False)),
        "mask_embedding": True,
    }
    if data2vec:
        fields.update(
            pos_conv_norm="layer",
            pos_conv_kernel=config["conv_pos_kernel_size"],
            pos_conv_layers=config["num_conv_pos_embeddings"],
        )
    else:
        fields.update(pos_conv_norm="weight", pos_conv_kernel=config["num_conv_pos_embeddings"])
    if model_type == "wavlm":
        fields.update(
            relative_position_buckets=config.get("num_buckets", 320),
            relative_position_max_distance=config.get("max_bucket_distance", 800),
        )
    return EncoderConfig(**fields)


def hf_model_type(config: EncoderConfig, method: str = "") -> str:
    """The transformers model type with ``config``'s layout (``hubert`` for a plain layout
    trained by HuBERT, else ``wav2vec2``).

    Raises:
        ValueError: the encoder has no transformers equivalent; says which ones do.
    """
    exportable = (
        "exportable encoders: the waveform front-end with a Transformer context, not causal "
        "(wav2vec 2.0 / HuBERT / WavLM / data2vec-audio layouts)"
    )
    if config.frontend != "waveform":
        raise ValueError(f"frontend: {config.frontend!r} has no transformers equivalent ({exportable})")
    if config.context != "transformer":
        raise ValueError(f"context: {config.context!r} has no transformers equivalent ({exportable})")
    if config.causal:
        raise ValueError(f"causal: a causal encoder has no transformers equivalent ({exportable})")
    if config.relative_position_buckets:
        if config.pos_conv_norm != "weight":
            raise ValueError(f"pos_conv_norm: expected 'weight' for WavLM, found {config.pos_conv_norm!r}")
        return "wavlm"
    if config.pos_conv_norm == "layer":
        if config.layer_norm_first or config.conv_norm != "layer":
            raise ValueError(
                "layer_norm_first/conv_norm: data2vec-audio has post-LN layers and a layer-norm CNN, found "
                f"layer_norm_first={config.layer_norm_first}, conv_norm={config.conv_norm!r}"
            )
        return "data2vec-audio"
    return "hubert" if method == "hubert" else "wav2vec2"


def hf_config_from_encoder(config: EncoderConfig, model_type: str) -> dict[str, Any]:
    """The transformers config fields (``config.json``) of ``config`` as a ``model_type`` model."""
    fields: dict[str, Any] = {
        "model_type": model_type,
        "hidden_size": config.dim,
        "num_hidden_layers": config.layers,
        "num_attention_heads": config.heads,
        "intermediate_size": config.ffn_dim,
        "hidden_act": "gelu",
        "feat_extract_activation": "gelu",
        "layer_norm_eps": LAYER_NORM_EPS,
        "hidden_dropout": config.dropout,
        "feat_proj_dropout": config.dropout,
        "attention_dropout": config.attention_dropout,
        "activation_dropout": config.activation_dropout,
        "layerdrop": config.layer_drop,
        "conv_dim": [config.conv_channels] * len(config.conv_kernels),
        "conv_kernel": list(config.conv_kernels),
        "conv_stride": list(config.conv_strides),
        "num_feat_extract_layers": len(config.conv_kernels),
        "conv_bias": config.conv_bias,
        "num_conv_pos_embedding_groups": config.pos_conv_groups,
    }
    if model_type == "data2vec-audio":
        fields.update(
            conv_pos_kernel_size=config.pos_conv_kernel, num_conv_pos_embeddings=config.pos_conv_layers
        )
    else:
        fields.update(
            feat_extract_norm=config.conv_norm,
            do_stable_layer_norm=config.layer_norm_first,
            num_conv_pos_embeddings=config.pos_conv_kernel,
        )
    if model_type == "wavlm":
        fields.update(
            num_buckets=config.relative_position_buckets,
            max_bucket_distance=config.relative_position_max_distance,
        )
    return fields


def wav2vec2_objective_from_hf(config: Mapping[str, Any]) -> Wav2Vec2Config:
    """speechssl's :class:`Wav2Vec2Config` of a ``Wav2Vec2ForPreTraining`` config (heads and loss).

    transformers' ``mask_time_prob`` (fairseq's ``mask_prob``) is the fraction of frames
    covered by spans, ``p · M``; speechssl's ``mask_prob`` is ``p``, the span-start probability.
    """
    length = config.get("mask_time_length", 10)
    return Wav2Vec2Config(
        mask_prob=config.get("mask_time_prob", 0.65) / length,
        mask_length=length,
        min_masks=config.get("mask_time_min_masks", 2),
        num_negatives=config.get("num_negatives", 100),
        temperature=config.get("contrastive_logits_temperature", 0.1),
        diversity_weight=config.get("diversity_loss_weight", 0.1),
        codebook_groups=config["num_codevector_groups"],
        codebook_entries=config["num_codevectors_per_group"],
        codebook_dim=config["codevector_dim"],
        final_dim=config["proj_codevector_dim"],
        quantizer_dropout=config.get("feat_quantizer_dropout", 0.0),
    )


def hf_config_from_wav2vec2_objective(objective: Wav2Vec2Config) -> dict[str, Any]:
    """The ``Wav2Vec2ForPreTraining`` config fields of speechssl's :class:`Wav2Vec2Config`."""
    return {
        "mask_time_prob": objective.mask_prob * objective.mask_length,
        "mask_time_length": objective.mask_length,
        "mask_time_min_masks": objective.min_masks,
        "num_negatives": objective.num_negatives,
        "contrastive_logits_temperature": objective.temperature,
        "diversity_loss_weight": objective.diversity_weight,
        "num_codevector_groups": objective.codebook_groups,
        "num_codevectors_per_group": objective.codebook_entries,
        "codevector_dim": objective.codebook_dim,
        "proj_codevector_dim": objective.final_dim,
        "feat_quantizer_dropout": objective.quantizer_dropout,
    }


Convert = Callable[[list[torch.Tensor]], list[torch.Tensor]]


def _same(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    return tensors


def _concat(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    return [torch.cat(tensors, dim=0)]


def _split3(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    return [t.clone() for t in tensors[0].chunk(3, dim=0)]


@dataclass(frozen=True)
class TensorRule:
    """``hf`` tensors (transformers names) that are ``ours`` tensors (speechssl names).

    ``to_ours`` turns the ``hf`` tensors, in order, into the ``ours`` ones; ``to_hf`` back.
    """

    hf: tuple[str, ...]
    ours: tuple[str, ...]
    to_ours: Convert = _same
    to_hf: Convert = _same


def _one(hf: str, ours: str) -> TensorRule:
    return TensorRule((hf,), (ours,))


def _affine(hf: str, ours: str) -> list[TensorRule]:
    return [_one(f"{hf}.weight", f"{ours}.weight"), _one(f"{hf}.bias", f"{ours}.bias")]


def tensor_rules(config: EncoderConfig, heads: Wav2Vec2Config | None = None) -> list[TensorRule]:
    """Every tensor of a transformers base model (no prefix) with ``config``'s layout and its
    speechssl encoder name (``SpeechEncoder.state_dict()``); with ``heads``, also the
    ``Wav2Vec2ForPreTraining`` heads and their :class:`~speechssl.methods.wav2vec2.Wav2Vec2` names."""
    rules: list[TensorRule] = []
    for i in range(len(config.conv_kernels)):
        hf, ours = f"feature_extractor.conv_layers.{i}", f"frontend.feature_encoder.blocks.{i}"
        rules.append(_one(f"{hf}.conv.weight", f"{ours}.conv.weight"))
        if config.conv_bias:
            rules.append(_one(f"{hf}.conv.bias", f"{ours}.conv.bias"))
        if config.conv_norm == "layer" or i == 0:
            rules += _affine(f"{hf}.layer_norm", f"{ours}.norm")
    rules += _affine("feature_projection.layer_norm", "frontend.layer_norm")
    rules += _affine("feature_projection.projection", "frontend.projection")
    if config.pos_conv_norm == "weight":
        for name in ("bias", "parametrizations.weight.original0", "parametrizations.weight.original1"):
            rules.append(_one(f"encoder.pos_conv_embed.conv.{name}", f"context.positional.conv.{name}"))
    else:
        for i in range(config.pos_conv_layers):
            rules += _affine(f"encoder.pos_conv_embed.layers.{i}.conv", f"context.positional.layers.{i}")
    rules += _affine("encoder.layer_norm", "context.norm")
    if config.relative_position_buckets:
        rules.append(
            _one(
                "encoder.layers.0.attention.rel_attn_embed.weight",
                "context.relative_position.embedding.weight",
            )
        )
    for i in range(config.layers):
        hf, ours = f"encoder.layers.{i}", f"context.layers.{i}"
        for kind in ("weight", "bias"):
            rules.append(
                TensorRule(
                    tuple(f"{hf}.attention.{p}_proj.{kind}" for p in "qkv"),
                    (f"{ours}.attention.qkv.{kind}",),
                    _concat,
                    _split3,
                )
            )
        rules += _affine(f"{hf}.attention.out_proj", f"{ours}.attention.out")
        rules += _affine(f"{hf}.layer_norm", f"{ours}.attention_norm")
        rules += _affine(f"{hf}.feed_forward.intermediate_dense", f"{ours}.ffn.fc1")
        rules += _affine(f"{hf}.feed_forward.output_dense", f"{ours}.ffn.fc2")
        rules += _affine(f"{hf}.final_layer_norm", f"{ours}.ffn_norm")
        if config.relative_position_buckets:
            rules += _affine(f"{hf}.attention.gru_rel_pos_linear", f"{ours}.relative_position_gate.linear")
            rules.append(_one(f"{hf}.attention.gru_rel_pos_const", f"{ours}.relative_position_gate.scale"))
    rules.append(_one("masked_spec_embed", "mask_embedding"))
    if heads is not None:
        groups, entries = heads.codebook_groups, heads.codebook_entries

        def codebook_to_ours(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
            # (1, groups * entries, code_dim / groups) -> (groups, entries, code_dim / groups)
            return [tensors[0].reshape(groups, entries, -1)]

        def codebook_to_hf(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
            # (groups, entries, code_dim / groups) -> (1, groups * entries, code_dim / groups)
            return [tensors[0].reshape(1, groups * entries, -1)]

        rules.append(
            TensorRule(("quantizer.codevectors",), ("quantizer.codebook",), codebook_to_ours, codebook_to_hf)
        )
        rules += _affine("quantizer.weight_proj", "quantizer.logits")
        rules += _affine("project_q", "target_projection")
        rules += _affine("project_hid", "final_projection")
    return rules


def _is_head(name: str) -> bool:
    return name.startswith(HEAD_PREFIXES)


def hf_to_speechssl(
    state: Mapping[str, torch.Tensor], config: EncoderConfig, heads: Wav2Vec2Config | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A transformers state dict (base-model names; heads by their ``Wav2Vec2ForPreTraining``
    names) as speechssl's: ``(encoder state dict, Wav2Vec2 head tensors)``.

    A missing ``masked_spec_embed`` (fine-tuned checkpoints often lack it) is left out.

    Raises:
        ValueError: a tensor the layout needs is missing, or a tensor is left over (naming it).
    """
    encoder: dict[str, torch.Tensor] = {}
    head_tensors: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for rule in tensor_rules(config, heads):
        if rule.hf == ("masked_spec_embed",) and "masked_spec_embed" not in state:
            continue
        missing = [name for name in rule.hf if name not in state]
        if missing:
            raise ValueError(
                f"{missing[0]}: expected in the transformers weights for this config, found none"
            )
        converted = rule.to_ours([state[name] for name in rule.hf])
        for name, tensor in zip(rule.ours, converted, strict=True):
            (head_tensors if _is_head(rule.hf[0]) else encoder)[name] = tensor
        used.update(rule.hf)
    left = sorted(set(state) - used)
    if left:
        raise ValueError(
            f"{left[0]}: a transformers tensor with no speechssl equivalent ({len(left)} in all)"
        )
    return encoder, head_tensors


def speechssl_to_hf(
    encoder: Mapping[str, torch.Tensor],
    config: EncoderConfig,
    heads: Wav2Vec2Config | None = None,
    head_tensors: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """The transformers state dict (base-model names, heads by their ``Wav2Vec2ForPreTraining``
    names) of a speechssl encoder state dict and, with ``heads``, the Wav2Vec2 head tensors.

    Raises:
        ValueError: a speechssl tensor is missing (naming it).
    """
    source = {**encoder, **(head_tensors or {})}
    state: dict[str, torch.Tensor] = {}
    for rule in tensor_rules(config, heads):
        if rule.ours == ("mask_embedding",) and "mask_embedding" not in source:
            continue
        missing = [name for name in rule.ours if name not in source]
        if missing:
            raise ValueError(f"{missing[0]}: expected in the speechssl weights for this config, found none")
        converted = rule.to_hf([source[name] for name in rule.ours])
        state.update(zip(rule.hf, converted, strict=True))
    return state
