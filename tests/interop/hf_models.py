"""Tiny random transformers models of the four architectures and the hidden states they give."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

TINY = {
    "hidden_size": 16,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "conv_dim": (8, 8, 8),
    "conv_kernel": (10, 3, 3),
    "conv_stride": (5, 2, 2),
    "num_conv_pos_embeddings": 4,
    "num_conv_pos_embedding_groups": 2,
    "layerdrop": 0.0,
}
HEADS = {
    "num_codevectors_per_group": 5,
    "num_codevector_groups": 2,
    "codevector_dim": 8,
    "proj_codevector_dim": 6,
}
LARGE = {"feat_extract_norm": "layer", "do_stable_layer_norm": True, "conv_bias": True}
WAVLM = {"num_buckets": 16, "max_bucket_distance": 20}
# name -> (transformers class, config changes)
ARCHITECTURES: dict[str, tuple[str, dict]] = {
    "wav2vec2-base": ("Wav2Vec2ForPreTraining", HEADS),
    "wav2vec2-large": ("Wav2Vec2Model", LARGE),
    "hubert-base": ("HubertModel", {}),
    "hubert-large": ("HubertModel", LARGE),
    "wavlm-base": ("WavLMModel", WAVLM),
    "wavlm-large": ("WavLMModel", {**WAVLM, **LARGE}),
    "data2vec-audio": ("Data2VecAudioModel", {"conv_pos_kernel_size": 3, "conv_bias": True}),
}


def make_hf_model(name: str, seed: int = 0):
    """The tiny random ``name`` model in eval mode, its norms, gates and biases perturbed so that
    no parameter keeps an identity initialisation a wrong mapping could hide behind."""
    class_name, changes = ARCHITECTURES[name]
    model_class = getattr(transformers, class_name)
    torch.manual_seed(seed)
    model = model_class(model_class.config_class(**{**TINY, **changes})).eval()
    with torch.no_grad():
        for parameter_name, parameter in model.named_parameters():
            if parameter.dim() <= 1 or "gru_rel_pos_const" in parameter_name or "rel_attn" in parameter_name:
                parameter.add_(0.3 * torch.randn_like(parameter))
    return model


def hf_hidden_states(model, waveforms: torch.Tensor, attention_mask: torch.Tensor | None = None) -> list:
    """Every hidden state of a transformers base model (``Wav2Vec2ForPreTraining``: its ``wav2vec2``);
    the last after the final LayerNorm of pre-LN models, whichever transformers version."""
    base = getattr(model, "wav2vec2", model)
    with torch.no_grad():
        output = base(waveforms, attention_mask=attention_mask, output_hidden_states=True)
    return [*output.hidden_states[:-1], output.last_hidden_state]


def padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Three utterances of different lengths, zero-padded: ``(3, 1600)`` and their lengths."""
    generator = torch.Generator().manual_seed(1)
    lengths = torch.tensor([1600, 1130, 650])
    waveforms = 0.5 * torch.randn(3, 1600, generator=generator)
    waveforms[torch.arange(1600)[None, :] >= lengths[:, None]] = 0.0
    return waveforms, lengths


def normalized(waveforms: torch.Tensor) -> torch.Tensor:
    """Each row of ``(batch, samples)`` at zero mean and unit variance, as ``Wav2Vec2FeatureExtractor`` does."""
    mean = waveforms.mean(dim=1, keepdim=True)
    return (waveforms - mean) / torch.sqrt(waveforms.var(dim=1, unbiased=False, keepdim=True) + 1e-7)
