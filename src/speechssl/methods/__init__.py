"""Pretext objectives, one module each, looked up by name.

To add a method: write ``methods/<name>.py`` with a config dataclass and a
:class:`~speechssl.methods.base.PretextMethod` subclass whose ``__init__`` takes
``(encoder, config)``, then add one line to :func:`available_methods`. A method that needs
something made from the pretraining corpus first (HuBERT's unit tokenizer) overrides
:meth:`~speechssl.methods.base.PretextMethod.prepare`; one that needs a particular encoder
(Discrete BERT's unit front-end) overrides
:meth:`~speechssl.methods.base.PretextMethod.build_encoder`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from speechssl.config import ConfigError, from_dict
from speechssl.methods.base import MethodOutput, PretextMethod
from speechssl.models.encoder import SpeechEncoder


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its config dataclass and its module class."""

    config_class: type
    method_class: type[PretextMethod]
    paper: str


def available_methods() -> dict[str, MethodSpec]:
    """Every pretext method speechssl can train, by the name used in configs and the CLI."""
    from speechssl.methods.apc import APC, VQAPC, APCConfig, VQAPCConfig
    from speechssl.methods.barlow_twins import BarlowTwins, BarlowTwinsConfig
    from speechssl.methods.cpc import CPC, CPCConfig
    from speechssl.methods.data2vec import Data2Vec, Data2VecConfig
    from speechssl.methods.discrete_bert import DiscreteBERT, DiscreteBERTConfig
    from speechssl.methods.hubert import HuBERT, HuBERTConfig
    from speechssl.methods.joint import Joint, JointConfig
    from speechssl.methods.mockingjay import Mockingjay, MockingjayConfig
    from speechssl.methods.multimodal import (
        SpeechText,
        SpeechTextConfig,
        VisuallyGrounded,
        VisuallyGroundedConfig,
    )
    from speechssl.methods.pase import PASE, PASEConfig
    from speechssl.methods.tera import TERA, TERAConfig
    from speechssl.methods.vq_vae import VQVAE, VQVAEConfig
    from speechssl.methods.wav2vec2 import Wav2Vec2, Wav2Vec2Config

    return {
        "apc": MethodSpec(APCConfig, APC, "Chung et al. 2019 (autoregressive predictive coding)"),
        "vq_apc": MethodSpec(VQAPCConfig, VQAPC, "Chung et al. 2020 (vector-quantized APC)"),
        "vq_vae": MethodSpec(VQVAEConfig, VQVAE, "van den Oord et al. 2017 (VQ-VAE)"),
        "barlow_twins": MethodSpec(
            BarlowTwinsConfig, BarlowTwins, "Zbontar et al. 2021; Brima et al. 2023 (speech)"
        ),
        "mockingjay": MethodSpec(MockingjayConfig, Mockingjay, "Liu et al. 2020 (Mockingjay)"),
        "tera": MethodSpec(TERAConfig, TERA, "Liu, Li & Lee 2021 (TERA)"),
        "pase": MethodSpec(PASEConfig, PASE, "Pascual et al. 2019 (PASE); Ravanelli et al. 2020 (PASE+)"),
        "cpc": MethodSpec(CPCConfig, CPC, "van den Oord et al. 2018 (Contrastive Predictive Coding)"),
        "wav2vec2": MethodSpec(Wav2Vec2Config, Wav2Vec2, "Baevski et al. 2020 (wav2vec 2.0)"),
        "discrete_bert": MethodSpec(
            DiscreteBERTConfig,
            DiscreteBERT,
            "Baevski, Auli & Mohamed 2019 (Discrete BERT on vq-wav2vec units)",
        ),
        "hubert": MethodSpec(HuBERTConfig, HuBERT, "Hsu et al. 2021 (HuBERT)"),
        "data2vec": MethodSpec(Data2VecConfig, Data2Vec, "Baevski et al. 2022 (data2vec)"),
        "speech_text": MethodSpec(
            SpeechTextConfig, SpeechText, "Radford et al. 2021 (CLIP); Elizalde et al. 2023 (CLAP)"
        ),
        "visually_grounded": MethodSpec(
            VisuallyGroundedConfig, VisuallyGrounded, "Harwath et al. 2016, 2018 (visually grounded speech)"
        ),
        "joint": MethodSpec(
            JointConfig, Joint, "a speech objective + α · a multi-modal term (Chrupała 2022, review §D)"
        ),
    }


def method_spec(name: str) -> MethodSpec:
    methods = available_methods()
    if name not in methods:
        raise ConfigError(f"unknown method {name!r} (expected one of: {', '.join(sorted(methods))})")
    return methods[name]


def method_config(name: str, options: Mapping[str, Any]) -> Any:
    """The checked config dataclass of method ``name`` built from ``options``."""
    return from_dict(method_spec(name).config_class, options, where="objective")


def build_method(name: str, config: Any, encoder: SpeechEncoder) -> PretextMethod:
    """Instantiate method ``name`` around ``encoder`` with its config dataclass."""
    return method_spec(name).method_class(encoder, config)


__all__ = [
    "MethodOutput",
    "MethodSpec",
    "PretextMethod",
    "available_methods",
    "build_method",
    "method_config",
    "method_spec",
]
