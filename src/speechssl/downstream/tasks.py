"""Downstream tasks by name: a corpus in its native layout, a label column and an honest split.

Each utterance-level task (keyword spotting, speaker identification, gender, emotion)
turns a corpus manifest into one or more *folds*: copies of the manifest whose ``split``
column says which rows train, validate and test. The split follows what the task
measures: speaker identification tests on unseen utterances of training speakers;
keyword, gender and emotion tasks never share a speaker between splits, so they cannot
be solved by recognising voices. Emotion on RAVDESS is averaged over actor folds, as
SUPERB averages emotion recognition over IEMOCAP sessions (Yang et al. 2021). Every
utterance task also reports the chance level and a ceiling reference (log-mel means and an
MLP head, :data:`CEILING_HEAD`), so a report can flag a task that no longer separates
upstreams. Mini LibriSpeech's train-clean-5 has one chapter for 27 of its 28 speakers, so
``speaker_librispeech`` cannot be split by chapter and the channel alone solves it (log-mel
scores 1.000); ``speaker_librispeech_telephone`` tests it through a telephone band instead, so
the chapter's channel no longer matches, and ``speaker_ravdess_statement`` trains and tests on
different sentences (RAVDESS recorded each actor in one session).

Each task is an object of a *task kind* (:data:`TASK_KINDS`, by name: ``utterance``,
``condition_shift`` (trained on clean audio, tested through added noise or a telephone band,
:mod:`speechssl.downstream.conditions`),
``superb`` (utterance tasks trained by SUPERB's protocol, :mod:`speechssl.downstream.superb`),
``verification``, ``query_by_example``, ``asr``, and SUPERB's ``superb_verification`` and
``superb_query_by_example`` on VoxCeleb1's and QUESST 2014's own trials) that owns what differs between tasks:
the features it reads (pooled statistics or frames of every layer), its head and
training, its metric and direction (:class:`~speechssl.downstream.row.Metric`), and
``run(seed) -> Row``. A new kind subclasses :class:`CorpusTask`, registers with
:func:`task_kind`, and its tasks with :func:`register_task`; the evaluator is unchanged.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from speechssl.data import (
    FOLD_COLUMN,
    Manifest,
    folds_from_column,
    group_disjoint_split,
    group_folds,
    load_corpus,
    within_group_split,
)
from speechssl.data.corpora.quesst14 import QuesstGroundTruth, read_ground_truth
from speechssl.data.lexicon import load_cmudict, phonemize, read_lexicon
from speechssl.data.manifest import MANIFEST_SUFFIXES
from speechssl.data.pairing import pair_digit_images
from speechssl.data.splits import labelled_rows, require_label, require_splits
from speechssl.downstream.asr import SUPERB_ASR, SUPERB_PR, CTCTrainingConfig, Unit, train_ctc
from speechssl.downstream.cache import FrameFeatures, PooledFeatures
from speechssl.downstream.conditions import CONDITIONS, shifted_copies
from speechssl.downstream.metrics import chance_accuracy
from speechssl.downstream.plan import EvaluationPlan
from speechssl.downstream.query_by_example import QUESST_PROTOCOL, evaluate_query_by_example, evaluate_quesst
from speechssl.downstream.retrieval import PairEmbeddings, embed_pairs, retrieve
from speechssl.downstream.row import Metric, Row
from speechssl.downstream.superb import (
    EMOTION_RECOGNITION,
    INTENT_CLASSIFICATION,
    KEYWORD_SPOTTING,
    PROTOCOL_VERSION,
    SPEAKER_IDENTIFICATION,
    SuperbProtocol,
)
from speechssl.downstream.training import (
    ClassifierResult,
    HeadTrainingConfig,
    train_frame_classifier,
    train_utterance_classifier,
)
from speechssl.downstream.verification import PROTOCOL as ASV_PROTOCOL
from speechssl.downstream.verification import (
    Trial,
    evaluate_verification,
    read_trials,
    train_xvector_verification,
)
from speechssl.upstream.base import Upstream
from speechssl.upstream.features import FeatureUpstream

FoldMaker = Callable[[Manifest], list[Manifest]]

# The ceiling reference of utterance tasks (issue 15 §3): 80 log-mel means and an MLP head.
CEILING_HEAD = {"head": "mlp", "pooling": "mean", "layer": "weighted", "crop_seconds": None}
SeedRun = Callable[[int], Row]


def _as_is(manifest: Manifest) -> list[Manifest]:
    return [manifest]


def _within_speaker(manifest: Manifest) -> list[Manifest]:
    return [within_group_split(manifest, valid_fraction=0.15, test_fraction=0.15)]


def across_statements(manifest: Manifest) -> list[Manifest]:
    """Speaker identification that never tests on the sentence it trained on: RAVDESS's
    statement "kids" trains, statement "dogs" validates (repetition 1) and tests (repetition 2),
    so each actor's test utterances share no lexical content with its training ones. RAVDESS
    recorded each actor in one session (Livingstone & Russo 2018), so no split of it
    separates sessions; this is the strictest it allows.

    Raises:
        ValueError: no ``statement`` or ``repetition`` column.
    """
    for column in ("statement", "repetition"):
        require_label(manifest, column, "across_statements")

    def split(row: Any) -> str:
        if row.labels["statement"] == "kids":
            return "train"
        return "valid" if row.labels["repetition"] == "1" else "test"

    return [Manifest(dataclasses.replace(row, split=split(row)) for row in manifest)]


def _speaker_disjoint_by_gender(manifest: Manifest) -> list[Manifest]:
    return [group_disjoint_split(manifest, valid_fraction=0.2, test_fraction=0.2, stratify="gender")]


def _actor_folds(manifest: Manifest) -> list[Manifest]:
    return group_folds(manifest, folds=4, stratify="gender")


def leave_one_session_out(manifest: Manifest, valid_ratio: float = 0.2, seed: int = 0) -> list[Manifest]:
    """SUPERB's emotion folds (s3prl v0.4 ``downstream/emotion``): fold ``k`` tests on session
    ``k`` and trains on the others, of which a random ``valid_ratio`` (fixed ``seed``, as
    s3prl's ``random_split`` after ``torch.manual_seed(0)``) is held out as ``valid``.

    Args:
        manifest: rows with a ``session`` label column.

    Raises:
        ValueError: no ``session`` column, or fewer than two sessions.
    """
    if "session" not in manifest.label_columns:
        raise ValueError(
            f"leave-one-session-out: expected a 'session' column, found {manifest.label_columns}"
        )
    sessions = sorted(set(manifest.column("session")))
    if len(sessions) < 2:
        raise ValueError(f"leave-one-session-out: expected at least 2 sessions, found {sessions}")
    folds = []
    for held_out in sessions:
        rest = [row.id for row in manifest if row.labels["session"] != held_out]
        order = np.random.default_rng(seed).permutation(len(rest))
        num_train = int((1 - valid_ratio) * len(rest))
        split_of = {rest[i]: "train" if rank < num_train else "valid" for rank, i in enumerate(order)}
        folds.append(
            Manifest(dataclasses.replace(row, split=split_of.get(row.id, "test")) for row in manifest)
        )
    return folds


TASK_KINDS: dict[str, type[CorpusTask]] = {}


def task_kind(name: str) -> Callable[[type[CorpusTask]], type[CorpusTask]]:
    """Class decorator: register a task kind under ``name`` (see :data:`TASK_KINDS`)."""

    def register(cls: type[CorpusTask]) -> type[CorpusTask]:
        if name in TASK_KINDS:
            raise ValueError(f"task kind {name!r}: already registered by {TASK_KINDS[name].__name__}")
        cls.kind = name
        TASK_KINDS[name] = cls
        return cls

    return register


@dataclass(frozen=True)
class CorpusTask:
    """What every task names: a corpus in its native layout and the column it is about.

    A task *kind* (a subclass registered with :func:`task_kind`) owns everything that
    differs between tasks, so that the evaluator never looks at which kind it runs:
    :attr:`metric` (name and direction), :attr:`seed_meaning`, :meth:`head_settings`
    and :meth:`prepare`, which reads the features the kind needs from the cache and
    returns ``run(seed) -> Row``.

    Attributes:
        name: registry name, ``<task>_<corpus>``.
        corpus: corpus loader name (see :func:`speechssl.data.available_corpora`).
        folder: the corpus folder relative to the data root (``../shared/data`` layout).
        label: manifest column the task is about (``speaker``, ``keyword``, ``transcript``, ...).
        split_rule: one line saying how splits, trials or queries were made, for reports.
    """

    kind: ClassVar[str]
    metric: ClassVar[Metric]
    seed_meaning: ClassVar[str]
    # what the upstream must be when not any upstream will do (``--tasks all`` leaves such tasks out)
    requires: ClassVar[str | None] = None

    name: str
    corpus: str
    folder: str
    label: str
    split_rule: str

    def load(self, data_root: str | Path) -> Manifest:
        """The corpus manifest under ``data_root``, with every row (tasks re-split it)."""
        return load_corpus(self.corpus, Path(data_root) / self.folder, **self.loader_options())

    def loader_options(self) -> dict[str, Any]:
        """Options of the corpus loader (e.g. LibriSpeech's ``subsets``); none by default."""
        return {}

    def missing_paths(self, data_root: str | Path) -> list[Path]:
        """The folders and files this task needs that are not under ``data_root`` (none: it can run)."""
        folder = Path(data_root) / self.folder
        return [] if folder.is_dir() else [folder]

    def head_settings(self, plan: EvaluationPlan) -> dict[str, Any] | None:
        """The trained head's settings recorded with the task's rows (``None``: nothing is trained)."""
        return None

    def prepare(self, upstream: Upstream, manifest: Manifest, plan: EvaluationPlan, output: Path) -> SeedRun:
        """Read the features this task needs from ``plan.cache``; return ``run(seed) -> Row``.

        Args:
            upstream: the frozen upstream.
            manifest: the task's corpus manifest (:meth:`load`).
            plan: the run's settings (cache, head training, ...).
            output: the evaluation's report folder (for files a task keeps, e.g. trials).
        """
        raise NotImplementedError(f"{type(self).__name__}.prepare")

    def row(self, seed: int, value: float, layer_weights: list[float] | None = None, **extras: Any) -> Row:
        """A :class:`Row` of this task's metric."""
        return Row(
            task=self.name,
            seed=seed,
            metric=self.metric.name,
            value=float(value),
            higher_is_better=self.metric.higher_is_better,
            layer_weights=layer_weights,
            extras=extras,
        )


@task_kind("utterance")
@dataclass(frozen=True)
class UtteranceTask(CorpusTask):
    """An utterance classification task, averaged over the re-split copies (folds) of its
    corpus that ``folds`` makes; pooled features for ``head.pooling == "mean"``, frames
    for ``"attentive"`` or random crops (``head.crop_seconds``)."""

    metric: ClassVar[Metric] = Metric("accuracy", "test accuracy")
    seed_meaning: ClassVar[str] = (
        "Classification: the seed sets head initialisation and data order (features are fixed)."
    )
    reports_ceiling: ClassVar[bool] = True

    folds: FoldMaker

    def head_settings(self, plan: EvaluationPlan) -> dict[str, Any]:
        return asdict(plan.head)

    def training_config(self, plan: EvaluationPlan) -> HeadTrainingConfig:
        """The head training of this task: ``plan.head``."""
        return plan.head

    def prepare(self, upstream: Upstream, manifest: Manifest, plan: EvaluationPlan, output: Path) -> SeedRun:
        splits = []
        for fold in self.folds(manifest):
            labels = np.asarray(fold.column(self.label), dtype=object)
            rows = labelled_rows(fold.split_rows(), labels, self.label, f"task {self.name!r}")
            splits.append((rows, {split: [str(v) for v in labels[i]] for split, i in rows.items()}))
        return self.seed_run(upstream, manifest, splits, plan)

    def seed_run(
        self,
        upstream: Upstream,
        manifest: Manifest,
        splits: Sequence[tuple[dict[str, list[int]], dict[str, list[str]]]],
        plan: EvaluationPlan,
    ) -> SeedRun:
        """``run(seed)`` over ``splits`` (row indices of ``manifest`` and their labels), with the
        ceiling reference's features when the kind reports one (:attr:`reports_ceiling`)."""
        config = self.training_config(plan)
        reads_frames = config.pooling == "attentive" or config.crop_seconds is not None
        features = (
            plan.cache.frames(upstream, manifest) if reads_frames else plan.cache.pooled(upstream, manifest)
        )
        ceiling = plan.cache.pooled(FeatureUpstream("fbank"), manifest) if self.reports_ceiling else None
        return partial(self._run, features, ceiling, splits, config)

    def _run(
        self,
        features: PooledFeatures | FrameFeatures,
        ceiling: PooledFeatures | None,
        splits: Sequence[tuple[dict[str, list[int]], dict[str, list[str]]]],
        config: HeadTrainingConfig,
        seed: int,
    ) -> Row:
        """Test accuracy averaged over folds, with validation accuracy, layer weights, the
        chance level (best constant predictor on each fold's test labels) and the ceiling
        reference (log-mel means and an MLP head, :data:`CEILING_HEAD`, same seed and folds)."""
        started = time.perf_counter()
        results = [_train_classifier(features, rows, labels, config, seed) for rows, labels in splits]
        weights = [r.layer_weights for r in results if r.layer_weights is not None]
        extras = {}
        if ceiling is not None:
            ceiling_config = dataclasses.replace(config, **CEILING_HEAD)
            references = [
                _train_classifier(ceiling, rows, labels, ceiling_config, seed) for rows, labels in splits
            ]
            extras["ceiling"] = float(np.mean([r.test_accuracy for r in references]))
        return self.row(
            seed,
            np.mean([r.test_accuracy for r in results]),
            np.mean(weights, axis=0).tolist() if weights else None,
            valid_accuracy=float(np.mean([r.valid_accuracy for r in results])),
            fold_values=[r.test_accuracy for r in results],
            chance=float(np.mean([chance_accuracy(labels["test"]) for _, labels in splits])),
            learning_rate=results[0].lr,
            train_seconds=time.perf_counter() - started,
            **extras,
        )


@task_kind("condition_shift")
@dataclass(frozen=True)
class ConditionShiftTask(UtteranceTask):
    """An utterance task trained and validated on clean audio and tested on its test rows
    heard through a :class:`~speechssl.downstream.conditions.Condition` (added noise, a
    telephone band, a gain change): what a representation keeps of the label when the
    recording condition moves. The shifted copies are written once under
    ``<output>/conditions/<task>/<manifest digest>/``.

    Attributes:
        condition: a name of :data:`~speechssl.downstream.conditions.CONDITIONS`.
    """

    condition: str = "noise20db"

    def prepare(self, upstream: Upstream, manifest: Manifest, plan: EvaluationPlan, output: Path) -> SeedRun:
        folds = self.folds(manifest)
        tested = sorted({i for fold in folds for i in fold.split_rows()["test"]})
        shifted_at = {row: len(manifest) + rank for rank, row in enumerate(tested)}
        folder = output / "conditions" / self.name / manifest.digest()[:16]
        shifted = shifted_copies(manifest.select(tested), CONDITIONS[self.condition], folder)
        splits = []
        for fold in folds:
            rows = fold.split_rows()
            labels = np.asarray(fold.column(self.label), dtype=object)
            splits.append(
                (
                    {**rows, "test": [shifted_at[i] for i in rows["test"]]},
                    {split: [str(v) for v in labels[i]] for split, i in rows.items()},
                )
            )
        return self.seed_run(upstream, Manifest([*manifest, *shifted]), splits, plan)


@task_kind("superb")
@dataclass(frozen=True)
class SuperbTask(UtteranceTask):
    """An utterance classification task of SUPERB, trained as its protocol says
    (:mod:`speechssl.downstream.superb`) rather than with ``plan.head``; the fields the user
    set (``plan.head_overrides``) still apply on top, e.g. fewer epochs for a smoke test.

    Attributes:
        protocol: the task's SUPERB settings (s3prl's config).
        also_needs: further folders or files under the data root the loader reads (e.g. a
            separate test-set archive, a split list).
    """

    reports_ceiling: ClassVar[bool] = False

    protocol: SuperbProtocol
    also_needs: tuple[str, ...] = ()

    def head_settings(self, plan: EvaluationPlan) -> dict[str, Any]:
        """The protocol version, the settings trained with and the user's overrides."""
        resolved = asdict(self.training_config(plan))
        return {"protocol": PROTOCOL_VERSION, **resolved, "overrides": dict(plan.head_overrides)}

    def training_config(self, plan: EvaluationPlan) -> HeadTrainingConfig:
        """SUPERB's settings, with the user's overrides."""
        return self.protocol.head_config(plan.head_overrides)

    def missing_paths(self, data_root: str | Path) -> list[Path]:
        extra = [Path(data_root) / name for name in self.also_needs]
        return [*super().missing_paths(data_root), *(path for path in extra if not path.exists())]


def _train_classifier(
    features: PooledFeatures | FrameFeatures,
    rows: dict[str, list[int]],
    labels: dict[str, list[str]],
    config: HeadTrainingConfig,
    seed: int,
) -> ClassifierResult:
    if isinstance(features, FrameFeatures):
        return train_frame_classifier(features, rows, labels, config, seed)
    # (layers, utterances, dim) of each split
    pooled = {split: np.asarray(features.mean[:, r, :], dtype=np.float32) for split, r in rows.items()}
    return train_utterance_classifier(pooled, labels, config, seed)


@task_kind("verification")
class VerificationTask(CorpusTask):
    """Speaker verification by cosine scoring of pooled features on speakers not used for
    any training (:mod:`speechssl.downstream.verification`); trial lists are kept under
    ``<output>/trials/<task>``."""

    metric: ClassVar[Metric] = Metric(
        "eer",
        "test EER (lower is better)",
        False,
        ("min_dcf", "minDCF"),
        secondary_bounds=(0.0, 1.0),
        chance=0.5,
    )
    seed_meaning: ClassVar[str] = (
        "Verification: the seed sets the dev/test speaker partition and the non-target trials."
    )

    def prepare(self, upstream: Upstream, manifest: Manifest, plan: EvaluationPlan, output: Path) -> SeedRun:
        return partial(
            self._run, plan.cache.pooled(upstream, manifest), manifest, output / "trials" / self.name
        )

    def _run(self, pooled: PooledFeatures, manifest: Manifest, trials_dir: Path, seed: int) -> Row:
        """Test-speaker EER, with minDCF and the layer chosen on dev."""
        result = evaluate_verification(pooled, manifest, seed, trials_dir)
        return self.row(
            seed, result.eer, min_dcf=result.min_dcf, layer=result.layer, dev_eer=result.dev_eer,
            num_trials=result.num_trials,
        )  # fmt: skip


@task_kind("superb_verification")
@dataclass(frozen=True)
class SuperbVerificationTask(CorpusTask):
    """SUPERB ASV: an x-vector head trained with AM-softmax on the corpus's ``train``
    speakers, cosine scoring of the corpus's own trial list
    (:func:`~speechssl.downstream.verification.train_xvector_verification`). Protocol:
    SUPERB (Yang et al. 2021) with s3prl's ``sv_voxceleb1/configs/amsoftmax.yaml`` at commit
    034970b7 (:data:`~speechssl.downstream.verification.PROTOCOL`, written into every row).

    Attributes:
        trials: the trial list's file name in the corpus folder (``veri_test.txt``).
    """

    metric: ClassVar[Metric] = Metric("eer", "test EER (lower is better)", False, ("min_dcf", "minDCF"))
    seed_meaning: ClassVar[str] = "SUPERB ASV: the seed sets head initialisation and batch order."

    trials: str = "veri_test.txt"

    def load(self, data_root: str | Path) -> Manifest:
        """The corpus manifest, its test speakers those of :attr:`trials`."""
        return load_corpus(self.corpus, Path(data_root) / self.folder, trials=self.trials)

    def head_settings(self, plan: EvaluationPlan) -> dict[str, Any]:
        return asdict(plan.xvector)

    def missing_paths(self, data_root: str | Path) -> list[Path]:
        """The corpus folder, else its trial list, when missing."""
        folder = Path(data_root) / self.folder
        return [folder] if not folder.is_dir() else [p for p in [folder / self.trials] if not p.is_file()]

    def prepare(self, upstream: Upstream, manifest: Manifest, plan: EvaluationPlan, output: Path) -> SeedRun:
        trials = read_trials(Path(plan.data_root) / self.folder / self.trials)
        return partial(self._run, plan.cache.frames(upstream, manifest), manifest, trials, plan)

    def _run(
        self, frames: FrameFeatures, manifest: Manifest, trials: list[Trial], plan: EvaluationPlan, seed: int
    ) -> Row:
        """Test EER, with minDCF, dev EER and the protocol version."""
        result = train_xvector_verification(frames, manifest, trials, plan.xvector, seed)
        return self.row(
            seed, result.eer, result.layer_weights, min_dcf=result.min_dcf, dev_eer=result.dev_eer,
            best_epoch=result.best_epoch, epochs_run=result.epochs_run, num_trials=result.num_trials,
            num_speakers=result.num_speakers, protocol=ASV_PROTOCOL,
        )  # fmt: skip


@task_kind("query_by_example")
class QueryByExampleTask(CorpusTask):
    """Query-by-example spoken term detection by DTW on frame features
    (:mod:`speechssl.downstream.query_by_example`)."""

    metric: ClassVar[Metric] = Metric(
        "map", "test MAP (query-by-example)", True, ("mtwv", "MTWV"), secondary_bounds=(-math.inf, 1.0)
    )
    seed_meaning: ClassVar[str] = (
        "Query-by-example: the seed sets the speaker halves, the queries and the search sets."
    )

    def prepare(self, upstream: Upstream, manifest: Manifest, plan: EvaluationPlan, output: Path) -> SeedRun:
        return partial(self._run, plan.cache.frames(upstream, manifest), manifest)

    def _run(self, frames: FrameFeatures, manifest: Manifest, seed: int) -> Row:
        """Test-speaker MAP, with MTWV and the layer chosen on dev."""
        result = evaluate_query_by_example(frames, manifest, self.label, seed)
        return self.row(
            seed, result.map, mtwv=result.mtwv, layer=result.layer, dev_map=result.dev_map,
            num_queries=result.num_queries, num_documents=result.num_documents,
        )  # fmt: skip


@task_kind("superb_query_by_example")
class QuesstTask(CorpusTask):
    """SUPERB QbE: DTW over frame features of the QUESST 2014 queries and documents, scored
    with the corpus's own ground truth (:func:`~speechssl.downstream.query_by_example.evaluate_quesst`);
    the layer is chosen on the dev queries, the eval queries are scored once. Protocol: SUPERB
    (Yang et al. 2021) with s3prl's ``quesst14_dtw`` at commit 24115f13 and the QUESST 2014 TWV
    (:data:`~speechssl.downstream.query_by_example.QUESST_PROTOCOL`, written into every row)."""

    metric: ClassVar[Metric] = Metric("mtwv", "eval MTWV (QUESST 2014)", True, ("atwv", "ATWV"))
    seed_meaning: ClassVar[str] = (
        "SUPERB QbE: nothing is trained or drawn, so every seed gives the same value."
    )

    def prepare(self, upstream: Upstream, manifest: Manifest, plan: EvaluationPlan, output: Path) -> SeedRun:
        root = Path(plan.data_root) / self.folder
        dev, eval_ = read_ground_truth(root, "dev"), read_ground_truth(root, "eval")
        return partial(self._run, plan.cache.frames(upstream, manifest), manifest, dev, eval_)

    def _run(
        self,
        frames: FrameFeatures,
        manifest: Manifest,
        dev: QuesstGroundTruth,
        eval_: QuesstGroundTruth,
        seed: int,
    ) -> Row:
        """Eval MTWV, with ATWV, MAP, the layer chosen on dev and the protocol version."""
        result = evaluate_quesst(frames, manifest, dev, eval_)
        return self.row(
            seed, result.mtwv, atwv=result.atwv, map=result.map, layer=result.layer, dev_mtwv=result.dev_mtwv,
            num_queries=result.num_queries, num_documents=result.num_documents, protocol=QUESST_PROTOCOL,
        )  # fmt: skip


@task_kind("asr")
@dataclass(frozen=True)
class ASRTask(CorpusTask):
    """Character CTC speech recognition on frame features (:mod:`speechssl.downstream.asr`),
    trained on the manifest's ``train`` rows, selected on ``valid``, scored on ``test``.
    ``superb_asr`` is SUPERB's ASR task (Yang et al. 2021) as s3prl v0.4 runs it
    (:data:`~speechssl.downstream.asr.SUPERB_ASR`); ``asr_librispeech`` the small mini one.

    Attributes:
        ctc: the task's own head settings, the plan's ``asr_overrides`` written over them;
            ``None``: the plan's ``asr``.
        corpus_options: options of the corpus loader (e.g. LibriSpeech's subsets and split).
    """

    metric: ClassVar[Metric] = Metric(
        "wer", "test WER (lower is better)", False, ("cer", "CER"), (0.0, math.inf), (0.0, math.inf)
    )
    seed_meaning: ClassVar[str] = "ASR: the seed sets head initialisation and batch order."
    unit: ClassVar[Unit] = "character"

    ctc: CTCTrainingConfig | None = None
    corpus_options: Mapping[str, Any] = field(default_factory=dict)

    def loader_options(self) -> dict[str, Any]:
        return dict(self.corpus_options)

    def missing_paths(self, data_root: str | Path) -> list[Path]:
        """The corpus folder, else the subset folders of :attr:`corpus_options`, when missing."""
        folder = Path(data_root) / self.folder
        subsets = [folder / name for name in self.corpus_options.get("subsets", ())]
        return super().missing_paths(data_root) or [path for path in subsets if not path.is_dir()]

    def head_settings(self, plan: EvaluationPlan) -> dict[str, Any]:
        return asdict(plan.ctc_config(self.ctc))

    def prepare(self, upstream: Upstream, manifest: Manifest, plan: EvaluationPlan, output: Path) -> SeedRun:
        texts = [str(text) for text in manifest.column(self.label)]
        frames = plan.cache.frames(upstream, manifest)
        return partial(self._run, frames, manifest.split_rows(), texts, plan.ctc_config(self.ctc), {})

    def _run(
        self,
        frames: FrameFeatures,
        rows: dict[str, list[int]],
        texts: list[str],
        config: CTCTrainingConfig,
        extras: dict[str, Any],
        seed: int,
    ) -> Row:
        """Test error rate of a CTC head, with the others, the validation error and example decodings."""
        result = train_ctc(frames, rows, texts, config, seed, self.unit)
        primary = result.error_rates.pop(self.metric.name)
        return self.row(
            seed, primary, result.layer_weights, **result.error_rates, valid_error=result.valid_error,
            best_epoch=result.best_epoch, epochs_run=result.epochs_run, examples=result.examples, **extras,
        )  # fmt: skip


@task_kind("phoneme_recognition")
@dataclass(frozen=True)
class PhonemeRecognitionTask(ASRTask):
    """Phoneme recognition: CTC over ARPAbet phones of the word transcripts
    (:func:`~speechssl.data.lexicon.phonemize` with CMUdict), scored by PER. Utterances
    with a word outside the lexicon are left out of every split and counted
    (``out_of_lexicon`` in each row). ``superb_pr`` is SUPERB's PR task as s3prl v0.4 runs
    it (:data:`~speechssl.downstream.asr.SUPERB_PR`). The lexicon is CMUdict, with the
    entries of :attr:`LEXICON_FILE` in the corpus folder written over it when that file is
    there (LibriSpeech's own lexicon covers every word of the corpus, as s3prl's does)."""

    LEXICON_FILE: ClassVar[str] = "librispeech-lexicon.txt"

    metric: ClassVar[Metric] = Metric("per", "test PER (lower is better)", False)
    seed_meaning: ClassVar[str] = "PR: the seed sets head initialisation and batch order."
    unit: ClassVar[Unit] = "phone"

    def lexicon_source(self, plan: EvaluationPlan) -> str:
        """Which lexicon the phones come from (recorded with the head settings, so that a
        lexicon file added later recomputes the rows)."""
        path = plan.data_root / self.folder / self.LEXICON_FILE
        return f"cmudict + {self.LEXICON_FILE} ({path.stat().st_size} bytes)" if path.is_file() else "cmudict"

    def head_settings(self, plan: EvaluationPlan) -> dict[str, Any]:
        return {**super().head_settings(plan), "lexicon": self.lexicon_source(plan)}

    def prepare(self, upstream: Upstream, manifest: Manifest, plan: EvaluationPlan, output: Path) -> SeedRun:
        lexicon_file = plan.data_root / self.folder / self.LEXICON_FILE
        lexicon = load_cmudict()
        if lexicon_file.is_file():
            lexicon.update(read_lexicon(lexicon_file))
        phones = [phonemize(str(text), lexicon) for text in manifest.column(self.label)]
        kept = {i for i, p in enumerate(phones) if p is not None}
        rows = {split: [i for i in r if i in kept] for split, r in manifest.split_rows().items()}
        empty = [split for split, r in rows.items() if not r]
        if empty:
            raise ValueError(
                f"task {self.name}: no utterance of {empty[0]!r} has every word in the lexicon "
                f"({len(phones) - len(kept)} of {len(phones)} left out)"
            )
        texts = [" ".join(p) if p is not None else "" for p in phones]
        frames = plan.cache.frames(upstream, manifest)
        extras = {"out_of_lexicon": len(phones) - len(kept)}
        return partial(self._run, frames, rows, texts, plan.ctc_config(self.ctc), extras)


SUPERB_LIBRISPEECH = {"subsets": ("train-clean-100", "dev-clean", "test-clean"), "split_by": "subset"}
SUPERB_LIBRISPEECH_RULE = (
    f"{PROTOCOL_VERSION}: LibriSpeech train-clean-100 / dev-clean (selects the model) / test-clean"
)


Task = CorpusTask
QBE_RULE = (
    "per seed, speaker halves (dev picks the layer); 1 query per keyword vs 100 utterances of other speakers"
)
VERIFICATION_RULE = (
    "speakers split per seed into dev (1/3, picks the layer) and test; all target pairs + as many non-targets"
)
SUPERB = f"{PROTOCOL_VERSION}: "


@task_kind("retrieval")
@dataclass(frozen=True)
class RetrievalTask(CorpusTask):
    """Cross-modal retrieval on held-out pairs with a multi-modal run's own heads
    (:mod:`speechssl.downstream.retrieval`): recall@1 (main), recall@5/10, median rank and chance.

    Attributes:
        direction: ``speech_to_text``, ``text_to_speech``, ``speech_to_image`` or ``image_to_speech``.
        match: the label column whose equal values make a candidate relevant (``None``: the text
            itself, or the image's own pair).
        gallery_size: held-out pairs each seed draws.
        pairing: ``digits``: the corpus is FSDD paired with scikit-learn's digits
            (:func:`~speechssl.data.pairing.pair_digit_images`, seed 0); ``None``: the corpus's own rows.
    """

    metric: ClassVar[Metric] = Metric(
        "recall_at_1",
        "test R@1 (cross-modal retrieval)",
        True,
        ("recall_at_10", "R@10"),
        secondary_bounds=(0.0, 1.0),
    )
    seed_meaning: ClassVar[str] = (
        "Retrieval: the seed draws the gallery of held-out pairs (nothing is trained)."
    )
    requires: ClassVar[str | None] = "a multi-modal run (speech_text, visually_grounded or joint)"

    direction: str = "speech_to_text"
    match: str | None = None
    gallery_size: int = 100
    pairing: str | None = None

    def load(self, data_root: str | Path) -> Manifest:
        """The corpus manifest; for ``pairing="digits"`` re-split and paired with digit images."""
        manifest = super().load(data_root)
        return pair_digit_images(manifest).manifest if self.pairing == "digits" else manifest

    def prepare(self, upstream: Upstream, manifest: Manifest, plan: EvaluationPlan, output: Path) -> SeedRun:
        checkpoint = getattr(upstream, "checkpoint", None)
        if checkpoint is None:
            raise ValueError(
                f"task {self.name}: expected {self.requires} as upstream, found {upstream.name!r}"
            )
        modality = "text" if "text" in self.direction else "image"
        pairs = manifest.filter(split="test")
        return partial(self._run, embed_pairs(checkpoint, pairs, modality, self.label, self.match))

    def _run(self, embeddings: PairEmbeddings, seed: int) -> Row:
        """Recall@1 of a gallery of ``gallery_size`` held-out pairs drawn with ``seed``."""
        pairs = len(embeddings.speech)
        size = min(self.gallery_size, pairs)
        gallery = np.sort(np.random.default_rng(seed).choice(pairs, size, replace=False))
        result = retrieve(embeddings, self.direction, gallery)
        return self.row(
            seed, result.recall[1], recall_at_5=result.recall[5], recall_at_10=result.recall[10],
            median_rank=result.median_rank, chance=result.chance, num_queries=result.num_queries,
            num_candidates=result.num_candidates, gallery_pairs=size, text_column=embeddings.text_column,
        )  # fmt: skip


ASV_RULE = "VoxCeleb1 veri_test.txt trials; x-vector head trained on the other (dev-set) speakers"
QUESST_RULE = "QUESST 2014 dev queries pick the layer, eval queries scored once against every document"


DIGIT_PAIRS_RULE = (
    "FSDD paired with sklearn 8x8 digits: speakers 4/1/1 and images 70/15/15% disjoint; "
    "the held-out speaker's 500 pairs"
)
LIBRISPEECH_PAIRS_RULE = "Mini LibriSpeech's per-speaker test split (15%), one transcript per utterance"
RETRIEVAL_TASKS = tuple(
    RetrievalTask(f"retrieval_{corpus_name}_{direction}", corpus, folder, label, rule, direction, match, size, pairing)
    for corpus_name, corpus, folder, label, rule, match, size, pairing, directions in (
        ("fsdd", "fsdd", "fsdd", "word", DIGIT_PAIRS_RULE, None, 100, "digits", ("speech_to_text", "text_to_speech")),
        ("fsdd", "fsdd", "fsdd", "image_index", DIGIT_PAIRS_RULE + "; relevant: an image of the spoken digit",
         "keyword", 100, "digits", ("speech_to_image", "image_to_speech")),
        ("librispeech", "librispeech", "mini_librispeech/LibriSpeech", "transcript", LIBRISPEECH_PAIRS_RULE,
         None, 50, None, ("speech_to_text", "text_to_speech")),
    )
    for direction in directions
)  # fmt: skip

REGISTERED_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Make ``task`` (of any registered kind) available by name beside the built-in tasks."""
    if task.name in available_tasks():
        raise ValueError(f"task name {task.name!r}: already registered")
    if type(task) not in TASK_KINDS.values():
        raise ValueError(
            f"task {task.name!r}: expected a kind registered with task_kind, found {type(task).__name__}"
        )
    REGISTERED_TASKS[task.name] = task
    return task


def available_tasks() -> dict[str, Task]:
    """Every downstream task, by name: the built-in ones, then those of :func:`register_task`."""
    tasks: list[Task] = [
        UtteranceTask(
            "keyword_asc", "arabic_speech_commands", "arabic_speech_commands", "keyword",
            "the corpus's own speaker-disjoint train/val/test CSVs (40 keywords)", _as_is,
        ),
        UtteranceTask(
            "keyword_fsdd", "fsdd", "fsdd", "keyword",
            "FSDD's official split: recordings 0-4 test, 5-9 valid, rest train (same 6 speakers)", _as_is,
        ),
        UtteranceTask(
            "keyword_gsc", "speech_commands", "speech_commands", "keyword",
            "the corpus's validation_list.txt / testing_list.txt (speakers hashed into one split)", _as_is,
        ),
        UtteranceTask(
            "speaker_librispeech", "librispeech", "mini_librispeech/LibriSpeech", "speaker",
            "each of the 28 speakers' utterances split 70/15/15", _as_is,
        ),
        ConditionShiftTask(
            "speaker_librispeech_telephone", "librispeech", "mini_librispeech/LibriSpeech", "speaker",
            "as speaker_librispeech; test audio band-limited to 4 kHz (8 kHz path), so the chapter's channel no longer matches",
            _as_is, "telephone",
        ),
        UtteranceTask(
            "speaker_ravdess", "ravdess", "ravdess", "speaker",
            "each of the 24 actors' utterances split 70/15/15", _within_speaker,
        ),
        UtteranceTask(
            "speaker_ravdess_statement", "ravdess", "ravdess", "speaker",
            "statement 'kids' trains, 'dogs' repetition 1 validates, repetition 2 tests (24 actors)",
            across_statements,
        ),
        UtteranceTask(
            "speaker_fsdd", "fsdd", "fsdd", "speaker",
            "FSDD's official split (6 speakers in every split)", _as_is,
        ),
        UtteranceTask(
            "gender_librispeech", "librispeech", "mini_librispeech/LibriSpeech", "gender",
            "speaker-disjoint 60/20/20, stratified by gender", _speaker_disjoint_by_gender,
        ),
        UtteranceTask(
            "gender_ravdess", "ravdess", "ravdess", "gender",
            "actor-disjoint: actors 1-16 train, 17-20 valid, 21-24 test", _as_is,
        ),
        UtteranceTask(
            "intent_fsc", "fluent_speech_commands", "fluent_speech_commands_dataset", "intent",
            "the corpus's own speaker-disjoint train/valid/test CSVs (31 action|object|location intents)", _as_is,
        ),
        UtteranceTask(
            "emotion_ravdess", "ravdess", "ravdess", "emotion",
            "4 actor-disjoint folds of 6 actors (3 female, 3 male), averaged", _actor_folds,
        ),
        ConditionShiftTask(
            "emotion_ravdess_noisy", "ravdess", "ravdess", "emotion",
            "as emotion_ravdess; test audio with white noise at 20 dB SNR", _actor_folds, "noise20db",
        ),
        ConditionShiftTask(
            "emotion_ravdess_telephone", "ravdess", "ravdess", "emotion",
            "as emotion_ravdess; test audio band-limited to 4 kHz (8 kHz path)", _actor_folds, "telephone",
        ),
        ConditionShiftTask(
            "emotion_ravdess_quiet", "ravdess", "ravdess", "emotion",
            "as emotion_ravdess; test audio 20 dB quieter (gain x0.1), as another corpus's recording level",
            _actor_folds, "gain-20db",
        ),
        ConditionShiftTask(
            "keyword_asc_noisy", "arabic_speech_commands", "arabic_speech_commands", "keyword",
            "as keyword_asc; test audio with white noise at 20 dB SNR", _as_is, "noise20db",
        ),
        VerificationTask(
            "verification_librispeech", "librispeech", "mini_librispeech/LibriSpeech", "speaker", VERIFICATION_RULE
        ),
        VerificationTask("verification_ravdess", "ravdess", "ravdess", "speaker", VERIFICATION_RULE),
        ASRTask(
            "asr_librispeech", "librispeech", "mini_librispeech/LibriSpeech", "transcript",
            "each speaker's utterances split 70/15/15 (Mini LibriSpeech: 1.37 h in all)",
        ),
        ASRTask(
            "superb_asr", "librispeech", "LibriSpeech", "transcript", SUPERB_LIBRISPEECH_RULE, SUPERB_ASR,
            SUPERB_LIBRISPEECH,
        ),
        PhonemeRecognitionTask(
            "superb_pr", "librispeech", "LibriSpeech", "transcript", SUPERB_LIBRISPEECH_RULE, SUPERB_PR,
            SUPERB_LIBRISPEECH,
        ),
        QueryByExampleTask("qbe_fsdd", "fsdd", "fsdd", "keyword", QBE_RULE),
        QueryByExampleTask("qbe_asc", "arabic_speech_commands", "arabic_speech_commands", "keyword", QBE_RULE),
        SuperbTask("superb_ks", "speech_commands_superb", "speech_commands_v0.01", "keyword", SUPERB + "12 classes; validation_list.txt dev, the v0.01 test-set archive test; 1 s background-noise crops as _silence_", _as_is, KEYWORD_SPOTTING, ("speech_commands_test_set_v0.01",)),
        SuperbTask("superb_ic", "fluent_speech_commands", "fluent_speech_commands_dataset", "intent", SUPERB + "the corpus's train/valid/test CSVs; correct when action, object and location all are", _as_is, INTENT_CLASSIFICATION),
        SuperbTask("superb_sid", "voxceleb1", "VoxCeleb1", "speaker", SUPERB + "iden_split.txt sets 1/2/3 as train/dev/test (1,251 speakers)", _as_is, SPEAKER_IDENTIFICATION, ("VoxCeleb1/iden_split.txt",)),
        SuperbTask("superb_er", "iemocap", "IEMOCAP_full_release", "emotion", SUPERB + "neu/hap(+exc)/ang/sad; leave one session out, 5 folds averaged, a fixed random 20% of the other sessions' utterances as dev", leave_one_session_out, EMOTION_RECOGNITION),
        SuperbVerificationTask("superb_asv", "voxceleb1_verification", "VoxCeleb1", "speaker", ASV_RULE),
        QuesstTask("superb_qbe", "quesst14", "quesst14Database", "role", QUESST_RULE),
        *RETRIEVAL_TASKS,
    ]  # fmt: skip
    return {**{task.name: task for task in tasks}, **REGISTERED_TASKS}


SUITES = {
    # every task whose corpus is in the shared mini data (Fluent Speech Commands is not), except
    # speaker_librispeech: one chapter per speaker on both sides, log-mel scores 1.000 (see
    # speaker_librispeech_telephone)
    "mini": (
        "keyword_asc", "keyword_fsdd", "speaker_librispeech_telephone", "speaker_ravdess", "speaker_ravdess_statement",
        "speaker_fsdd", "gender_librispeech", "gender_ravdess", "emotion_ravdess", "emotion_ravdess_noisy",
        "emotion_ravdess_telephone", "emotion_ravdess_quiet", "keyword_asc_noisy", "verification_librispeech",
        "verification_ravdess", "asr_librispeech", "qbe_fsdd", "qbe_asc",
    ),
    # the four utterance tasks of the Barlow Twins speech study (speaker, gender, emotion, keyword)
    "utterance": ("speaker_librispeech_telephone", "gender_ravdess", "emotion_ravdess", "keyword_asc"),
    # SUPERB's tasks on its own corpora (Yang et al. 2021), one task a line
    "superb": (
        "superb_ks",
        "superb_ic",
        "superb_sid",
        "superb_er",
        "superb_asv",
        "superb_qbe",
        "superb_asr",
        "superb_pr",
    ),
}  # fmt: skip

# suites that run the tasks whose corpus is under the data root and skip the others, with the reason
PARTIAL_SUITES = ("superb",)


def select_suite(suite: str, data_root: str | Path) -> tuple[list[str], dict[str, str]]:
    """The task names of ``suite`` that can run under ``data_root``, and why each other one cannot.

    A suite of :data:`PARTIAL_SUITES` skips a task whose folders are missing (the reason
    names them); any other suite needs every corpus.

    Raises:
        ValueError: unknown suite; a folder missing for a suite that needs every corpus;
            no task of the suite can run.
    """
    if suite not in SUITES:
        raise ValueError(f"suite: expected one of {sorted(SUITES)}, found {suite!r}")
    tasks = available_tasks()
    missing = {name: tasks[name].missing_paths(data_root) for name in SUITES[suite]}
    skipped = {
        name: f"not found: {', '.join(str(folder) for folder in folders)}"
        for name, folders in missing.items()
        if folders
    }
    if skipped and suite not in PARTIAL_SUITES:
        folders = sorted({str(folder) for found in missing.values() for folder in found})
        raise ValueError(f"suite {suite}: corpus folder(s) not found: {', '.join(folders)} (check data_root)")
    selected = [name for name in SUITES[suite] if name not in skipped]
    if not selected:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in skipped.items())
        raise ValueError(f"suite {suite}: no task's corpus is under {data_root} ({reasons})")
    return selected, skipped


def suite_tasks(suite: str, data_root: str | Path) -> list[str]:
    """The task names of ``suite`` that can run under ``data_root`` (see :func:`select_suite`)."""
    return select_suite(suite, data_root)[0]


@dataclass(frozen=True)
class ManifestTask(UtteranceTask):
    """Utterance classification of a label column of the user's own manifest, from a spec
    ``PATH:LABEL[:speaker-folds=K]`` (:func:`manifest_task`).

    Protocol: speechssl's own (there is no published one for a user's corpus): the head,
    seeds, early stopping and report of every utterance task; the manifest's ``fold`` column
    (:func:`~speechssl.data.splits.with_fold_column`) or ``speaker-folds=K`` gives speaker-disjoint folds
    (fold ``k`` tests, ``k+1`` validates, the rest trains), each a dimension of the statistics
    beside the seeds; otherwise its ``split`` column is used as is.
    """

    def load(self, data_root: str | Path) -> Manifest:
        """The manifest file (``folder`` holds its absolute path), checked against the task's
        label and folds (as ``probe`` checks its manifest), so that a wrong spec fails before
        any feature is extracted."""
        manifest = load_corpus(self.corpus, self.folder)
        require_label(manifest, self.label, f"task {self.name!r}: {self.folder}")
        folds = self.folds(manifest)
        for k, fold in enumerate(folds):
            require_splits(
                fold, f"task {self.name!r}: {self.folder}" + (f", fold {k}" if len(folds) > 1 else "")
            )
        return manifest


def manifest_task(spec: str) -> ManifestTask:
    """The task of a spec ``PATH:LABEL[:speaker-folds=K]``: classify column ``LABEL`` of the
    manifest at ``PATH`` (``.csv``/``.jsonl``, relative to the working folder).

    Its name, used in the report and result folders, is ``<LABEL>_<manifest stem>`` (plus
    ``_speaker<K>folds``). With ``speaker-folds=K`` the manifest is re-split into ``K``
    speaker-disjoint folds (:func:`~speechssl.data.splits.group_folds`).

    Without it, the manifest's ``fold`` column (:func:`~speechssl.data.splits.with_fold_column`) gives the
    folds (:func:`~speechssl.data.splits.folds_from_column`), or else its ``split`` column is used.

    Raises:
        ValueError: a spec without a label, an unknown option, ``speaker-folds`` for the
            ``speaker`` column, or a name that a registered task already has.
        FileNotFoundError: no manifest at ``PATH``.
    """
    path, _, rest = spec.partition(":")
    label, *options = rest.split(":") if rest else [""]
    if not label:
        raise ValueError(f"task {spec!r}: expected PATH:LABEL[:speaker-folds=K], e.g. my.csv:emotion")
    name = f"{label}_{Path(path).stem}"
    if options:
        key, _, value = options[0].partition("=")
        if len(options) > 1 or key != "speaker-folds" or not value.isdigit():
            raise ValueError(
                f"task {spec!r}: unknown option {':'.join(options)!r} (expected speaker-folds=K)"
            )
        if label == "speaker":
            raise ValueError(f"task {spec!r}: speaker-disjoint folds leave no test speaker seen in training")
        folds: FoldMaker = partial(group_folds, folds=int(value))
        rule = (
            f"{value} speaker-disjoint folds made from the manifest (fold k tests, k+1 validates), averaged"
        )
        name += f"_speaker{value}folds"
    elif FOLD_COLUMN in Manifest.load(path).label_columns:
        folds, rule = (
            folds_from_column,
            f"the manifest's {FOLD_COLUMN} column (fold k tests, k+1 validates), averaged",
        )
    else:
        folds, rule = _as_is, "the manifest's own split column"
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    if name in available_tasks():
        raise ValueError(f"task {spec!r}: its name {name!r} is a registered task's; rename the manifest")
    return ManifestTask(name, "manifest", str(Path(path).absolute()), label, rule, folds)


def get_task(name: str) -> Task:
    """The registered task called ``name``, or the task of a manifest spec
    ``PATH.csv:LABEL[:speaker-folds=K]`` (:func:`manifest_task`)."""
    tasks = available_tasks()
    if name in tasks:
        return tasks[name]
    if Path(name.partition(":")[0]).suffix.lower() in MANIFEST_SUFFIXES:
        return manifest_task(name)
    raise ValueError(
        f"unknown task {name!r} (expected one of: {', '.join(tasks)}, or a manifest spec PATH.csv:LABEL)"
    )
