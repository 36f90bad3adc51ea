"""What an evaluation runs: which tasks, seeds and data, which cache and head settings.

One :class:`EvaluationPlan` is built once (by the CLI for ``probe``, ``benchmark`` and the
studies, or by library callers) and handed to
:func:`~speechssl.downstream.evaluate.run_evaluation` and the studies built on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speechssl.config import from_dict, merge, to_dict
from speechssl.downstream.asr import CTCTrainingConfig
from speechssl.downstream.cache import FeatureCache
from speechssl.downstream.screening import DEFAULT_MAX_BAD_FRACTION, check_max_bad_fraction
from speechssl.downstream.training import HeadTrainingConfig
from speechssl.downstream.verification import XVectorTrainingConfig


@dataclass
class EvaluationPlan:
    """The settings every (upstream, task) evaluation of one run shares.

    Attributes:
        tasks: registered task names (``probe``: label columns of its manifest).
        seeds: the seeds every task runs with.
        cache: the feature cache (default: the user's speechssl cache folder).
        data_root: folder holding the corpora (``../shared/data`` layout).
        head: head training of utterance classification tasks.
        asr: CTC head training of ASR tasks.
        xvector: x-vector head training of SUPERB's speaker verification (ASV).
        head_overrides: the head-training fields the user set (``--head key=value``); a task
            with a published protocol (SUPERB) applies them on top of its own settings,
            the others read ``head``.
        asr_overrides: the CTC head fields the user set (``--head asr.key=value``); a CTC task
            with its own settings (SUPERB's ASR and PR) applies them on top, the others read ``asr``.
        baselines: upstream specs the studies evaluate beside their models (e.g. ``fbank``).
        max_bad_fraction: the largest share of a split's utterances an evaluation may leave out
            as bad files (unreadable, or shorter than the upstream reads) before it refuses
            (:func:`~speechssl.downstream.screening.usable_rows`).
    """

    tasks: Sequence[str]
    seeds: Sequence[int]
    cache: FeatureCache = field(default_factory=FeatureCache)
    data_root: Path = Path("../shared/data")
    head: HeadTrainingConfig = field(default_factory=HeadTrainingConfig)
    asr: CTCTrainingConfig = field(default_factory=CTCTrainingConfig)
    xvector: XVectorTrainingConfig = field(default_factory=XVectorTrainingConfig)
    head_overrides: dict[str, Any] = field(default_factory=dict)
    asr_overrides: dict[str, Any] = field(default_factory=dict)
    baselines: Sequence[str] = ()
    max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION

    def __post_init__(self) -> None:
        check_max_bad_fraction(self.max_bad_fraction)
        self.tasks, self.seeds, self.baselines = list(self.tasks), list(self.seeds), list(self.baselines)
        self.data_root = Path(self.data_root)
        if not self.tasks:
            raise ValueError("tasks: expected at least one task, found none")
        if not self.seeds:
            raise ValueError("seeds: expected at least one seed, found none")

    def ctc_config(self, base: CTCTrainingConfig | None) -> CTCTrainingConfig:
        """A CTC task's head settings: ``base`` (its own, e.g. SUPERB's) with
        :attr:`asr_overrides` written over it, or :attr:`asr` for a task without its own.

        Raises:
            ConfigError: an unknown key or a value of the wrong type, naming ``asr.<key>``.
        """
        if base is None:
            return self.asr
        return from_dict(CTCTrainingConfig, merge(to_dict(base), self.asr_overrides), where="asr")


__all__ = ["EvaluationPlan"]
