"""Wav2Vec2, HuBERT, WavLM and data2vec-audio models saved with ``transformers`` as upstreams.

The model must already be on disk (``save_pretrained`` output, or a hub snapshot copied
there): nothing is ever downloaded. Input handling follows the directory's feature
extractor (``preprocessor_config.json``), as the model was trained:

* ``do_normalize``: each utterance is scaled to zero mean and unit variance over its
  valid samples only; padding stays zero.
* ``return_attention_mask``: an attention mask is built from the lengths. Models whose
  feature extractor says ``False`` (base wav2vec2/HuBERT/WavLM, whose first convolution
  is group-normalised over time) were trained without one and are fed zero-padded audio
  instead, as ``transformers`` and s3prl do; their padded frames, and the valid frames
  near them, then depend on the padding.

Without a ``preprocessor_config.json`` both default to whether the convolutional front-end
is layer-normalised (``feat_extract_norm == "layer"``, and always for data2vec-audio),
which is how the original fairseq models were trained (``normalize`` was set exactly for
those).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from speechssl.data.audio import DEFAULT_SAMPLE_RATE
from speechssl.models.frontends import utterance_waveform_norm
from speechssl.models.output import EncoderOutput
from speechssl.models.padding import receptive_field
from speechssl.upstream.base import Upstream, state_fingerprint

SUPPORTED_MODEL_TYPES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")
# Used only to mask the input while pretraining; often absent from fine-tuned checkpoints.
_TRAINING_ONLY_WEIGHTS = ("masked_spec_embed",)


def _import_transformers() -> Any:
    try:
        import transformers
    except ImportError as error:
        raise ImportError(
            "HuggingFaceUpstream needs the transformers package: pip install speechssl[hf]"
        ) from error
    return transformers


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` (a model's ``config.json``, ``preprocessor_config.json``); ValueError naming it otherwise."""
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(content).__name__}")
    return content


@dataclass(frozen=True)
class InputHandling:
    """How a transformers speech model reads audio (see the module docstring).

    Attributes:
        normalize: scale each utterance to zero mean and unit variance (``do_normalize``).
        attention_mask: give the model an attention mask (``return_attention_mask``).
        sample_rate: Hz of the audio (``sampling_rate``).
    """

    normalize: bool
    attention_mask: bool
    sample_rate: int


def input_handling(directory: Path, model_config: Mapping[str, Any]) -> InputHandling:
    """The input handling of the model in ``directory`` with ``config.json`` ``model_config``:
    its ``preprocessor_config.json``, else what a layer-normalised CNN implies."""
    layer_norm = model_config.get("feat_extract_norm", "layer") == "layer"
    preprocessor_path = directory / "preprocessor_config.json"
    preprocessor = read_json(preprocessor_path) if preprocessor_path.is_file() else {}
    return InputHandling(
        normalize=bool(preprocessor.get("do_normalize", layer_norm)),
        attention_mask=bool(preprocessor.get("return_attention_mask", layer_norm)),
        sample_rate=int(preprocessor.get("sampling_rate", DEFAULT_SAMPLE_RATE)),
    )


class HuggingFaceUpstream(Upstream):
    """Every hidden state of a ``transformers`` speech model, frozen and in eval mode.

    Layer 0 is the Transformer's input (projected convolutional features plus the
    convolutional positional embedding), then one hidden state per Transformer layer; the
    last is taken after the final layer norm of pre-LN (``do_stable_layer_norm``) models,
    whatever the ``transformers`` version puts in its ``hidden_states`` tuple (5.x gives
    it before that norm, 4.x after).

    Attributes:
        model: the ``transformers`` base model (``Wav2Vec2Model``, ``HubertModel``, ...).
        normalize: whether each utterance is scaled to zero mean and unit variance.
        use_attention_mask: whether the model is given an attention mask built from the
            lengths (otherwise it sees zero-padded audio).
    """

    def __init__(self, model: nn.Module, name: str, normalize: bool, use_attention_mask: bool) -> None:
        super().__init__()
        config = model.config
        if getattr(config, "add_adapter", False):
            raise ValueError(
                f"{name}: config add_adapter=True is not supported "
                "(expected an encoder without the speech-to-text adapter)"
            )
        self.model = model.float().eval().requires_grad_(False)
        self.name = name
        self.normalize = normalize
        self.use_attention_mask = use_attention_mask
        self.hidden_sizes = [config.hidden_size] * (config.num_hidden_layers + 1)
        self.downsample_rate = math.prod(config.conv_stride)
        self.min_samples = receptive_field(config.conv_kernel, config.conv_stride)
        self._fingerprint: str | None = None

    def train(self, mode: bool = True) -> HuggingFaceUpstream:
        """Upstreams stay frozen: dropout and layer drop are never switched back on."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        """Hidden states of ``waveforms`` ``(batch, samples)`` with ``lengths`` ``(batch,)`` samples.

        Returns ``num_layers`` tensors ``(batch, frames, hidden_size)`` and the valid frames
        ``(batch,)`` of each utterance, from the convolutions' arithmetic.
        """
        lengths = lengths.to(device=waveforms.device, dtype=torch.long)
        valid = torch.arange(waveforms.shape[1], device=waveforms.device) < lengths[:, None]
        waveforms = waveforms.float().masked_fill(~valid, 0.0)
        if self.normalize:
            waveforms = utterance_waveform_norm(waveforms, lengths)
        attention_mask = valid.long() if self.use_attention_mask else None
        output = self.model(waveforms, attention_mask=attention_mask, output_hidden_states=True)
        hidden_states = [*output.hidden_states[:-1], output.last_hidden_state]
        return EncoderOutput(hidden_states, self.output_lengths(lengths), self.downsample_rate)

    def output_lengths(self, num_samples: torch.Tensor) -> torch.Tensor:
        """Frames for ``num_samples`` valid samples, from the convolutions' arithmetic."""
        return self.model._get_feat_extract_output_lengths(num_samples.long()).clamp(min=0).long()

    def fingerprint(self) -> str:
        """Covers the config (incl. the running ``transformers`` version), the weights and the input handling."""
        if self._fingerprint is None:
            settings = (self.model.config.to_json_string(), self.normalize, self.use_attention_mask)
            self._fingerprint = state_fingerprint(self.model, settings)
        return self._fingerprint

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> HuggingFaceUpstream:
        """The model saved in ``directory`` (``config.json`` + weights), loaded offline.

        Any head (CTC, pretraining quantiser) is dropped: only the base model is kept.
        """
        directory = Path(directory)
        config_path = directory / "config.json"
        if not directory.is_dir():
            raise FileNotFoundError(
                f"{directory}: expected a transformers model directory, found no directory"
            )
        if not config_path.is_file():
            raise FileNotFoundError(
                f"{directory}: expected a transformers model directory with config.json, found none"
            )
        model_type = read_json(config_path).get("model_type")
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise ValueError(
                f"{config_path}: model_type {model_type!r} is not supported "
                f"(expected one of {', '.join(SUPPORTED_MODEL_TYPES)})"
            )

        transformers = _import_transformers()
        model, loading_info = transformers.AutoModel.from_pretrained(
            directory, local_files_only=True, output_loading_info=True
        )
        missing = sorted(
            key
            for key in loading_info["missing_keys"]
            if not any(key.endswith(weight) for weight in _TRAINING_ONLY_WEIGHTS)
        )
        if missing:
            shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
            raise ValueError(
                f"{directory}: the weights lack {len(missing)} tensor(s) of {type(model).__name__} "
                f"({shown}); expected a complete checkpoint, not randomly initialised layers"
            )

        settings = input_handling(directory, model.config.to_dict())
        if settings.sample_rate != cls.sample_rate:
            raise ValueError(
                f"{directory / 'preprocessor_config.json'}: sampling_rate {settings.sample_rate} is not supported "
                f"(expected {cls.sample_rate})"
            )
        normalize, use_attention_mask = settings.normalize, settings.attention_mask
        return cls(model, name=f"hf:{directory}", normalize=normalize, use_attention_mask=use_attention_mask)
