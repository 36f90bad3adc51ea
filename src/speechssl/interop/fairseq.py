"""fairseq wav2vec 2.0 and HuBERT checkpoints (``.pt``) as speechssl models, without running pickled code.

A fairseq checkpoint is a pickled dict with the weights under ``"model"`` and the model
and task options under ``"cfg"`` (``cfg["model"]``, ``cfg["task"]``, fairseq >= 0.10) or
``"args"`` (an ``argparse.Namespace``, older files); the task's ``normalize`` (LARGE models)
becomes the encoder's ``waveform_norm``. It is read with ``torch.load(weights_only=True)`` (:func:`~speechssl.models.checkpoint.read_torch_file`),
which only rebuilds tensors, containers and the classes allowed here
(:data:`SAFE_GLOBALS`: ``argparse.Namespace``, and omegaconf's containers when omegaconf is
installed); any other class in the file stops the load with a message saying what to do.

The fairseq names and options are turned into transformers' (the layout of
``Wav2Vec2ForPreTraining`` / ``HubertModel``), and from there into speechssl's by the one
mapping of :mod:`speechssl.interop.huggingface`. HuBERT's ``final_proj`` and
``label_embs_concat`` are not imported (speechssl's HuBERT heads belong to a unit tokenizer
the checkpoint does not carry).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from speechssl.interop.hf_files import ImportedModel, build_encoder
from speechssl.interop.huggingface import (
    METHOD_OF_MODEL_TYPE,
    encoder_config_from_hf,
    hf_to_speechssl,
    wav2vec2_objective_from_hf,
)
from speechssl.models.checkpoint import read_torch_file

# fairseq model name (cfg.model._name or args.arch) -> transformers model type
MODEL_TYPES = {"wav2vec2": "wav2vec2", "hubert": "hubert"}
# Weights fairseq keeps that have no place in the encoder (HuBERT's unit heads).
DROPPED = ("label_embs_concat", "final_proj.")
_OMEGACONF_CLASSES = (
    "omegaconf.dictconfig.DictConfig",
    "omegaconf.listconfig.ListConfig",
    "omegaconf.base.ContainerMetadata",
    "omegaconf.base.Metadata",
    "omegaconf.nodes.AnyNode",
)


def safe_globals() -> list[Any]:
    """The classes a fairseq checkpoint may hold that ``torch.load`` is allowed to rebuild."""
    allowed: list[Any] = [argparse.Namespace]
    for path in _OMEGACONF_CLASSES:
        module, name = path.rsplit(".", 1)
        try:
            allowed.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return allowed


def load_fairseq_file(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict of ``path``, unpickled with only :func:`safe_globals` allowed.

    Raises:
        ValueError: the file holds another class (naming it and what to do instead).
    """
    content = read_torch_file(
        path,
        safe_globals(),
        advice="re-save the checkpoint with plain 'cfg' (dict) and 'model' (tensors) entries, or convert it "
        "to a transformers directory and import hf:<dir>",
    )
    if not isinstance(content, Mapping) or "model" not in content:
        raise ValueError(f"{path}: expected a fairseq checkpoint (a dict with a 'model' entry), found none")
    return dict(content)


def _plain(value: Any) -> Any:
    """Nested mappings and sequences (a Namespace, omegaconf containers) as plain dicts and lists."""
    if isinstance(value, argparse.Namespace):
        return {key: _plain(item) for key, item in vars(value).items()}
    if isinstance(value, Mapping) or hasattr(value, "items"):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple) or type(value).__name__ == "ListConfig":
        return [_plain(item) for item in value]
    return value


def model_options(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """fairseq's model options: ``cfg["model"]``, else the ``args`` namespace; with ``_name``."""
    cfg = checkpoint.get("cfg")
    if cfg is not None and _plain(cfg).get("model") is not None:
        return _plain(cfg)["model"]
    args = checkpoint.get("args")
    if args is not None:
        options = _plain(args)
        options.setdefault("_name", options.get("arch", ""))
        return options
    raise ValueError("cfg: expected the model options under 'cfg' or 'args', found neither")


def task_options(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """fairseq's task options (``cfg["task"]``, else the ``args`` namespace): ``sample_rate``, ``normalize``."""
    cfg = checkpoint.get("cfg")
    if cfg is not None and _plain(cfg).get("task") is not None:
        return _plain(cfg)["task"]
    args = checkpoint.get("args")
    return _plain(args) if args is not None else {}


def conv_layers(spec: str) -> list[tuple[int, int, int]]:
    """fairseq's ``conv_feature_layers`` (``"[(512, 10, 5)] + [(512, 3, 2)] * 4"``) as
    ``(channels, kernel, stride)`` triples, evaluated without ``eval``: only list and tuple
    literals of integers joined by ``+`` and ``*``."""

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.List | ast.Tuple):
            items = [value(item) for item in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mult):
            left, right = value(node.left), value(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise ValueError(f"conv_feature_layers: expected list literals joined by + and *, found {spec!r}")

    try:
        layers = value(ast.parse(spec, mode="eval").body)
    except SyntaxError as error:
        raise ValueError(f"conv_feature_layers: not a Python list expression ({spec!r})") from error
    return [tuple(layer) for layer in layers]


def hf_config_from_fairseq(options: Mapping[str, Any]) -> dict[str, Any]:
    """The transformers config fields of fairseq model ``options`` (fairseq's defaults where absent)."""
    name = options.get("_name", "")
    if name not in MODEL_TYPES:
        raise ValueError(f"_name: expected a fairseq model among {', '.join(MODEL_TYPES)}, found {name!r}")
    for field in ("quantize_input", "target_glu"):
        if options.get(field, False):
            raise ValueError(
                f"{field}: expected false (speechssl's wav2vec 2.0 has no such option), found true"
            )
    layers = conv_layers(
        options.get("conv_feature_layers", "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2")
    )
    dim = options.get("encoder_embed_dim", 768)
    mode = options.get("extractor_mode", "default")
    if mode not in ("default", "layer_norm"):
        raise ValueError(f"extractor_mode: expected 'default' or 'layer_norm', found {mode!r}")
    config: dict[str, Any] = {
        "model_type": MODEL_TYPES[name],
        "hidden_size": dim,
        "num_hidden_layers": options.get("encoder_layers", 12),
        "num_attention_heads": options.get("encoder_attention_heads", 12),
        "intermediate_size": options.get("encoder_ffn_embed_dim", 3072),
        "hidden_act": options.get("activation_fn", "gelu"),
        "hidden_dropout": options.get("dropout", 0.1),
        "attention_dropout": options.get("attention_dropout", 0.1),
        "activation_dropout": options.get("activation_dropout", 0.0),
        "layerdrop": options.get("encoder_layerdrop", 0.0),
        "conv_dim": [layer[0] for layer in layers],
        "conv_kernel": [layer[1] for layer in layers],
        "conv_stride": [layer[2] for layer in layers],
        "conv_bias": options.get("conv_bias", False),
        "feat_extract_norm": "group" if mode == "default" else "layer",
        "num_conv_pos_embeddings": options.get("conv_pos", 128),
        "num_conv_pos_embedding_groups": options.get("conv_pos_groups", 16),
        "do_stable_layer_norm": options.get("layer_norm_first", False),
        "mask_time_prob": options.get("mask_prob", 0.65),
        "mask_time_length": options.get("mask_length", 10),
        "num_negatives": options.get("num_negatives", 100),
        "contrastive_logits_temperature": options.get("logit_temp", 0.1),
    }
    if name == "wav2vec2" and options.get("quantize_targets", True):
        final_dim = options.get("final_dim", 0) or dim
        config.update(
            num_codevector_groups=options.get("latent_groups", 2),
            num_codevectors_per_group=options.get("latent_vars", 320),
            codevector_dim=options.get("latent_dim", 0) or final_dim,
            proj_codevector_dim=final_dim,
        )
    return config


_RENAMES = [
    (r"feature_extractor\.conv_layers\.(\d+)\.0\.", r"feature_extractor.conv_layers.\1.conv."),
    (r"feature_extractor\.conv_layers\.(\d+)\.2\.1\.", r"feature_extractor.conv_layers.\1.layer_norm."),
    (r"feature_extractor\.conv_layers\.(\d+)\.2\.", r"feature_extractor.conv_layers.\1.layer_norm."),
    (r"^layer_norm\.", "feature_projection.layer_norm."),
    (r"^post_extract_proj\.", "feature_projection.projection."),
    (r"^mask_emb$", "masked_spec_embed"),
    (r"^encoder\.pos_conv\.0\.weight_g$", "encoder.pos_conv_embed.conv.parametrizations.weight.original0"),
    (r"^encoder\.pos_conv\.0\.weight_v$", "encoder.pos_conv_embed.conv.parametrizations.weight.original1"),
    (r"^encoder\.pos_conv\.0\.bias$", "encoder.pos_conv_embed.conv.bias"),
    (r"^encoder\.layers\.(\d+)\.self_attn\.", r"encoder.layers.\1.attention."),
    (r"^encoder\.layers\.(\d+)\.self_attn_layer_norm\.", r"encoder.layers.\1.layer_norm."),
    (r"^encoder\.layers\.(\d+)\.fc1\.", r"encoder.layers.\1.feed_forward.intermediate_dense."),
    (r"^encoder\.layers\.(\d+)\.fc2\.", r"encoder.layers.\1.feed_forward.output_dense."),
    (r"^quantizer\.vars$", "quantizer.codevectors"),
]


def hf_state_from_fairseq(state: Mapping[str, torch.Tensor], model_type: str) -> dict[str, torch.Tensor]:
    """fairseq weight names as transformers' (``Wav2Vec2ForPreTraining`` heads without prefix);
    HuBERT's unit heads are dropped."""
    renamed: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if model_type == "hubert" and name.startswith(DROPPED):
            continue
        new = name
        for pattern, replacement in _RENAMES:
            new = re.sub(pattern, replacement, new)
        if model_type == "wav2vec2" and new.startswith("final_proj."):
            new = "project_hid." + new.removeprefix("final_proj.")
        renamed[new] = tensor
    return renamed


def read_fairseq_checkpoint(path: str | Path) -> ImportedModel:
    """The fairseq wav2vec 2.0 or HuBERT checkpoint ``path`` as speechssl weights (with the
    wav2vec 2.0 quantizer and projections as heads).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a class outside the allow-list, or an option speechssl cannot represent.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such fairseq checkpoint file")
    checkpoint = load_fairseq_file(path)
    try:
        hf_config = hf_config_from_fairseq(model_options(checkpoint))
        task = task_options(checkpoint)
        config = encoder_config_from_hf(
            hf_config, int(task.get("sample_rate", 16_000)), bool(task.get("normalize", False))
        )
        objective = wav2vec2_objective_from_hf(hf_config) if "num_codevector_groups" in hf_config else None
        state = hf_state_from_fairseq(checkpoint["model"], hf_config["model_type"])
        encoder_state, heads = hf_to_speechssl(state, config, objective)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error
    encoder = build_encoder(config, encoder_state, str(path))
    return ImportedModel(encoder, METHOD_OF_MODEL_TYPE[hf_config["model_type"]], objective, heads, str(path))
