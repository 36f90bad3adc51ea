"""Tokenizers taken from the quantizer of a trained VQ-APC or wav2vec 2.0 run.

* VQ-APC (Chung et al. 2020, §2): the VQ layer quantises the encoder's last hidden state to
  the nearest codebook entry (van den Oord et al. 2017, eq. 1–2); the tokenizer is the
  encoder's layer ``-1`` with the codebook as centroids, ``num_units = codebook_size``.
* wav2vec 2.0 (Baevski et al. 2020, §2): the Gumbel product quantizer picks, in eval mode,
  ``argmax_v l_{g,v}`` per group from the layer-normalised CNN features; the tokenizer
  keeps the CNN and the logits layer and combines the ``G`` choices as ``Σ_g i_g V^g``
  (``num_units = V^G``).

The run's ``config.yaml`` names the method and its objective; the method is rebuilt with
:func:`speechssl.methods.build_method` around the checkpoint's encoder and loaded from
``model.safetensors`` before its parts are taken.
"""

from __future__ import annotations

from pathlib import Path

from speechssl.config import load_yaml
from speechssl.methods import build_method, method_config
from speechssl.methods.apc import VQAPC
from speechssl.methods.wav2vec2 import Wav2Vec2
from speechssl.models.checkpoint import load_encoder, read_safetensors, resolve_checkpoint, verify_checkpoint
from speechssl.models.encoder import UnitFeatureConfig, UnitTokenizerConfig
from speechssl.models.units import UnitFeatures, UnitTokenizer

QUANTIZER_METHODS = ("vq_apc", "wav2vec2")


def tokenizer_from_run(path: str | Path) -> UnitTokenizer:
    """The tokenizer of the VQ-APC or wav2vec 2.0 quantizer saved in checkpoint or run directory ``path``.

    Raises:
        FileNotFoundError: ``path`` holds no checkpoint.
        ValueError: naming the checkpoint, when its method has no quantizer.
    """
    checkpoint = resolve_checkpoint(path)
    config = load_yaml(checkpoint / "config.yaml")
    method_name = config.get("method")
    if method_name not in QUANTIZER_METHODS:
        raise ValueError(
            f"{checkpoint / 'config.yaml'}: method {method_name!r} has no quantizer "
            f"(expected one of {', '.join(QUANTIZER_METHODS)})"
        )
    encoder = load_encoder(checkpoint)
    method = build_method(method_name, method_config(method_name, config.get("objective") or {}), encoder)
    verify_checkpoint(checkpoint, ["model.safetensors"])
    method.load_state_dict(read_safetensors(checkpoint / "model.safetensors"), strict=True)
    method.eval()
    if isinstance(method, VQAPC):
        features = UnitFeatures(
            UnitFeatureConfig(source="encoder", layer=-1, encoder=encoder.config), encoder
        )
        codebook = method.quantizer.codebook.detach()  # (codebook_size, dim)
        tokenizer_config = UnitTokenizerConfig(
            features=features.config, num_units=codebook.shape[0], feature_dim=features.dim
        )
        return UnitTokenizer(tokenizer_config, features, centroids=codebook)
    if not isinstance(method, Wav2Vec2):
        raise ValueError(
            f"{checkpoint}: method {method_name!r} built a {type(method).__name__}, not a quantizer"
        )
    quantizer = method.quantizer
    features = UnitFeatures(UnitFeatureConfig(source="cnn", encoder=encoder.config), encoder)
    tokenizer_config = UnitTokenizerConfig(
        features=features.config,
        num_units=quantizer.entries**quantizer.groups,
        assignment="gumbel",
        groups=quantizer.groups,
        feature_dim=features.dim,
    )
    return UnitTokenizer(tokenizer_config, features, logits=quantizer.logits)


__all__ = ["QUANTIZER_METHODS", "tokenizer_from_run"]
