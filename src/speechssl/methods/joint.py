"""A speech objective plus a multi-modal term: ``L = L_speech + α · L_mm``.

The review's question (Chrupała 2022, "Visually grounded models of spoken language: A survey
of datasets, architectures and evaluation techniques", JAIR 73) is what a second modality adds
to a speech representation. ``joint`` answers it for any existing method: its config names the
base method (``hubert``, ``barlow_twins``, ...) with that method's own objective options, the
multi-modal term (``speech_text`` or ``visually_grounded``, :mod:`speechssl.methods.multimodal`)
with its options, and the weight ``α``. The base method runs unchanged (its views, masks,
targets); the term embeds the batch's unaugmented audio with the same encoder. Losses are summed,
metrics merged (the term's prefixed ``mm_``), and the base method's ``prepare`` and
``build_encoder`` hooks (HuBERT's tokenizer, Discrete BERT's unit front-end) are delegated to,
so the trainer stays method-agnostic.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speechssl.config import ConfigError, to_dict
from speechssl.data.batch import AudioBatch
from speechssl.data.config import DataConfig
from speechssl.methods.base import MethodOutput, PretextMethod
from speechssl.methods.multimodal import TERMS, MultimodalTerm
from speechssl.models.encoder import EncoderConfig, SpeechEncoder


def _base_method(name: str) -> type[PretextMethod]:
    from speechssl.methods import method_spec

    return method_spec(name).method_class


def _typed(name: str, options: dict[str, Any], where: str) -> Any:
    from speechssl.config import from_dict
    from speechssl.methods import method_spec

    return from_dict(method_spec(name).config_class, options, where=where)


@dataclass
class JointConfig:
    """``L = L_base + α · L_term``.

    Attributes:
        base: the speech method (any registered single-modality method).
        base_objective: that method's objective options (its config's fields).
        term: ``speech_text`` or ``visually_grounded``.
        term_objective: the term's options (:class:`~speechssl.methods.multimodal.SpeechTextConfig`
            or :class:`~speechssl.methods.multimodal.VisuallyGroundedConfig` fields).
        alpha: the weight α of the multi-modal term.
    """

    base: str = "barlow_twins"
    base_objective: dict[str, Any] = field(default_factory=dict)
    term: str = "speech_text"
    term_objective: dict[str, Any] = field(default_factory=dict)
    alpha: float = 1.0

    def __post_init__(self) -> None:
        from speechssl.methods import available_methods

        single = sorted(set(available_methods()) - {"joint", *TERMS})
        if self.base not in single:
            raise ConfigError(f"base: expected a speech method ({', '.join(single)}), found {self.base!r}")
        if self.term not in TERMS:
            raise ConfigError(f"term: expected one of {', '.join(TERMS)}, found {self.term!r}")
        if self.alpha < 0:
            raise ConfigError(f"alpha: expected >= 0, found {self.alpha}")
        _typed(self.base, self.base_objective, "objective.base_objective")
        _typed(self.term, self.term_objective, "objective.term_objective")

    def base_config(self) -> Any:
        """The base method's checked config dataclass."""
        return _typed(self.base, self.base_objective, "objective.base_objective")

    def term_config(self) -> Any:
        """The term's checked config dataclass."""
        return _typed(self.term, self.term_objective, "objective.term_objective")


class Joint(PretextMethod):
    """The base method around the encoder, plus the term's heads (see the module docstring).

    ``encoder`` is the base method's (one set of weights, saved once); the term reads it
    through its public forward.
    """

    min_batch_size = 2  # the InfoNCE term needs a negative

    def __init__(self, encoder: SpeechEncoder, config: JointConfig) -> None:
        super().__init__()
        from speechssl.methods import build_method

        self.config = config
        self.base = build_method(config.base, config.base_config(), encoder)
        term_class: type[MultimodalTerm] = TERMS[config.term][1]
        self.term = term_class(encoder.dim, config.term_config())

    @property
    def encoder(self) -> SpeechEncoder:  # type: ignore[override]
        return self.base.encoder

    @classmethod
    def prepare(
        cls, config: JointConfig, encoder_config: EncoderConfig, data: DataConfig, run_dir: Path
    ) -> Any:
        """The base method's ``prepare`` (e.g. HuBERT's tokenizer) and the term's data check."""
        TERMS[config.term][1].check_data(data)
        base = _base_method(config.base).prepare(config.base_config(), encoder_config, data, run_dir)
        return dataclasses.replace(config, base_objective=to_dict(base))

    @classmethod
    def build_encoder(cls, encoder_config: EncoderConfig, method_config: JointConfig) -> SpeechEncoder:
        """The base method's encoder."""
        return _base_method(method_config.base).build_encoder(encoder_config, method_config.base_config())

    def forward(self, batch: AudioBatch) -> MethodOutput:
        """``L_base + α · L_term``; metrics: the base's, ``base_loss``, and the term's as ``mm_*`` with ``mm_loss``."""
        base = self.base(batch)
        term = self.term(self.encoder, batch)
        metrics = dict(base.metrics)
        metrics["base_loss"] = base.loss.detach()
        metrics["mm_loss"] = term.loss.detach()
        metrics.update({f"mm_{name}": value for name, value in term.metrics.items()})
        return MethodOutput(base.loss + self.config.alpha * term.loss, metrics)

    def on_step_end(self, step: int, max_steps: int) -> None:
        """The base method's hook (EMA teachers, annealing), then the term's temperature clip."""
        self.base.on_step_end(step, max_steps)
        self.term.loss.clamp_()


__all__ = ["Joint", "JointConfig"]
