"""Reading and writing transformers model directories through :mod:`speechssl.interop.huggingface`.

:func:`read_hf_model` turns a local ``save_pretrained`` directory (Wav2Vec2, HuBERT, WavLM,
data2vec-audio; ``Wav2Vec2ForPreTraining`` with its heads) into an :class:`ImportedModel`;
:func:`write_hf_model` writes a speechssl encoder as the transformers base model of its layout
with a ``preprocessor_config.json``, loadable offline by ``from_pretrained``. Nothing is
downloaded: ``transformers`` (the ``hf`` extra) reads and writes local files only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from speechssl.interop.huggingface import (
    HEAD_PREFIXES,
    METHOD_OF_MODEL_TYPE,
    MODEL_CLASS,
    encoder_config_from_hf,
    hf_config_from_encoder,
    hf_to_speechssl,
    speechssl_to_hf,
    wav2vec2_objective_from_hf,
)
from speechssl.models.encoder import EncoderConfig, SpeechEncoder
from speechssl.storage import publish_folder, staging_folder
from speechssl.upstream.huggingface import input_handling, read_json

TRAINING_ONLY = "masked_spec_embed"


@dataclass
class ImportedModel:
    """A published model in speechssl's terms, ready to be written as a run.

    Attributes:
        encoder: the :class:`SpeechEncoder` with the published weights.
        method: the speechssl method it was pretrained with (the run's ``method``).
        objective: that method's config when the heads were imported (wav2vec 2.0), else None
            (the method's defaults).
        heads: the method's head tensors by their speechssl names (empty without heads).
        source: where it came from, for messages and the run's provenance.
    """

    encoder: SpeechEncoder
    method: str
    objective: Any = None
    heads: dict[str, torch.Tensor] = field(default_factory=dict)
    source: str = ""


def import_transformers() -> Any:
    """The ``transformers`` module, or ImportError naming the extra to install."""
    try:
        import transformers
    except ImportError as error:
        raise ImportError(
            "importing and exporting transformers models needs: pip install speechssl[hf]"
        ) from error
    return transformers


def build_encoder(config: EncoderConfig, state: dict[str, torch.Tensor], source: str) -> SpeechEncoder:
    """A :class:`SpeechEncoder` of ``config`` holding ``state`` (strictly; without a mask embedding
    when ``state`` has none)."""
    if "mask_embedding" not in state:
        config = dataclasses.replace(config, mask_embedding=False)
    encoder = SpeechEncoder.from_config(config)
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{source}: the converted weights do not fit the encoder ({(missing or unexpected)[0]})"
        )
    return encoder


def read_hf_model(directory: str | Path) -> ImportedModel:
    """The transformers model saved in ``directory`` as speechssl weights (offline).

    A ``Wav2Vec2ForPreTraining`` checkpoint brings its quantizer and projections as
    :class:`~speechssl.methods.wav2vec2.Wav2Vec2` heads; other heads (CTC, classification)
    are left out.

    Raises:
        FileNotFoundError: ``directory`` is not a model directory.
        ValueError: an unsupported model type or config value, naming the field.
    """
    directory = Path(directory)
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{directory}: expected a transformers model directory with config.json, found none"
        )
    hf_config = read_json(config_path)
    model_type = hf_config.get("model_type")
    settings = input_handling(directory, hf_config)
    try:
        config = encoder_config_from_hf(hf_config, settings.sample_rate, settings.normalize)
    except ValueError as error:
        raise ValueError(f"{config_path}: {error}") from error

    transformers = import_transformers()
    with_heads = model_type == "wav2vec2" and "Wav2Vec2ForPreTraining" in (
        hf_config.get("architectures") or []
    )
    model_class = transformers.Wav2Vec2ForPreTraining if with_heads else transformers.AutoModel
    model, info = model_class.from_pretrained(directory, local_files_only=True, output_loading_info=True)
    missing = set(info["missing_keys"])
    if with_heads and any(key.startswith(HEAD_PREFIXES) for key in missing):
        with_heads, model = False, model.wav2vec2
    base = model.wav2vec2 if with_heads else model
    absent = sorted(
        key for key in missing if not key.startswith(HEAD_PREFIXES) and not key.endswith(TRAINING_ONLY)
    )
    if absent:
        raise ValueError(f"{directory}: the weights lack {len(absent)} tensor(s) ({absent[0]}, ...)")
    # a mask embedding the weights lack was drawn at random by transformers: leave it out
    untrained = {TRAINING_ONLY} if any(key.endswith(TRAINING_ONLY) for key in missing) else set()
    state = {name: tensor for name, tensor in base.state_dict().items() if name not in untrained}
    objective = wav2vec2_objective_from_hf(hf_config) if with_heads else None
    if with_heads:
        state.update({k: v for k, v in model.state_dict().items() if k.startswith(HEAD_PREFIXES)})
    try:
        encoder_state, heads = hf_to_speechssl(state, config, objective)
    except ValueError as error:
        raise ValueError(f"{directory}: {error}") from error
    encoder = build_encoder(config, encoder_state, str(directory))
    return ImportedModel(encoder, METHOD_OF_MODEL_TYPE[model_type], objective, heads, f"hf:{directory}")


def write_hf_model(encoder: SpeechEncoder, model_type: str, output: str | Path) -> Path:
    """Write ``encoder`` as the transformers ``model_type`` base model in folder ``output`` (atomically).

    ``config.json`` and the weights (``save_pretrained``), and a ``preprocessor_config.json``
    of a ``Wav2Vec2FeatureExtractor`` at the encoder's rate that normalises each utterance as
    the encoder did (``waveform_norm``) and asks for an attention mask exactly when the CNN is
    layer-normalised (a group-normalised BASE layout is fed zero-padded audio, as in transformers).
    """
    transformers = import_transformers()
    config = encoder.config
    fields = hf_config_from_encoder(config, model_type)
    hf_config = transformers.AutoConfig.for_model(**fields)
    model = getattr(transformers, MODEL_CLASS[model_type])(hf_config)
    model.load_state_dict(speechssl_to_hf(encoder.state_dict(), config), strict=config.mask_embedding)
    extractor = transformers.Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=config.sample_rate,
        padding_value=0.0,
        do_normalize=config.waveform_norm,
        return_attention_mask=config.conv_norm == "layer",
    )
    output = Path(output)
    with staging_folder(output) as staging:
        model.save_pretrained(staging)
        extractor.save_pretrained(staging)
        publish_folder(staging, output)
    return output
