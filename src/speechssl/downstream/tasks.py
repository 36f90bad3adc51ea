"""Downstream tasks by name: a corpus in its native layout, a label column and an honest split.

Each utterance-level task (keyword spotting, speaker identification, gender, emotion)
turns a corpus manifest into one or more *folds*: copies of the manifest whose ``split``
column says which rows train, validate and test. The split follows what the task
measures: speaker identification tests on unseen utterances of training speakers;
keyword, gender and emotion tasks never share a speaker between splits, so they cannot
be solved by recognising voices. Emotion on RAVDESS is averaged over actor folds, as
SUPERB averages emotion recognition over IEMOCAP sessions (Yang et al. 2021).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from speechssl.data import Manifest, group_disjoint_split, group_folds, load_corpus, within_group_split

FoldMaker = Callable[[Manifest], list[Manifest]]


def _as_is(manifest: Manifest) -> list[Manifest]:
    return [manifest]


def _within_speaker(manifest: Manifest) -> list[Manifest]:
    return [within_group_split(manifest, valid_fraction=0.15, test_fraction=0.15)]


def _speaker_disjoint_by_gender(manifest: Manifest) -> list[Manifest]:
    return [group_disjoint_split(manifest, valid_fraction=0.2, test_fraction=0.2, stratify="gender")]


def _actor_folds(manifest: Manifest) -> list[Manifest]:
    return group_folds(manifest, folds=4, stratify="gender")


@dataclass(frozen=True)
class CorpusTask:
    """What every task names: a corpus in its native layout and the column it is about.

    Attributes:
        name: registry name, ``<task>_<corpus>``.
        corpus: corpus loader name (see :func:`speechssl.data.available_corpora`).
        folder: the corpus folder relative to the data root (``../shared/data`` layout).
        label: manifest column the task is about (``speaker``, ``keyword``, ``transcript``, ...).
        split_rule: one line saying how splits, trials or queries were made, for reports.
    """

    name: str
    corpus: str
    folder: str
    label: str
    split_rule: str

    def load(self, data_root: str | Path) -> Manifest:
        """The corpus manifest under ``data_root``, with every row (tasks re-split it)."""
        return load_corpus(self.corpus, Path(data_root) / self.folder)


@dataclass(frozen=True)
class UtteranceTask(CorpusTask):
    """An utterance classification task; ``folds`` turns the corpus manifest into the
    re-split copies the task is averaged over."""

    folds: FoldMaker


class VerificationTask(CorpusTask):
    """Speaker verification by cosine scoring on speakers not used for any training
    (:mod:`speechssl.downstream.verification`)."""


class QueryByExampleTask(CorpusTask):
    """Query-by-example spoken term detection by DTW on frame features
    (:mod:`speechssl.downstream.query_by_example`)."""


class ASRTask(CorpusTask):
    """Character CTC speech recognition on frame features (:mod:`speechssl.downstream.asr`)."""


Task = UtteranceTask | VerificationTask | QueryByExampleTask | ASRTask
QBE_RULE = (
    "per seed, speaker halves (dev picks the layer); 1 query per keyword vs 100 utterances of other speakers"
)
VERIFICATION_RULE = (
    "speakers split per seed into dev (1/3, picks the layer) and test; all target pairs + as many non-targets"
)


def available_tasks() -> dict[str, Task]:
    """Every downstream task, by name."""
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
        UtteranceTask(
            "speaker_ravdess", "ravdess", "ravdess", "speaker",
            "each of the 24 actors' utterances split 70/15/15", _within_speaker,
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
        VerificationTask(
            "verification_librispeech", "librispeech", "mini_librispeech/LibriSpeech", "speaker", VERIFICATION_RULE
        ),
        VerificationTask("verification_ravdess", "ravdess", "ravdess", "speaker", VERIFICATION_RULE),
        ASRTask(
            "asr_librispeech", "librispeech", "mini_librispeech/LibriSpeech", "transcript",
            "each speaker's utterances split 70/15/15 (Mini LibriSpeech: 1.37 h in all)",
        ),
        QueryByExampleTask("qbe_fsdd", "fsdd", "fsdd", "keyword", QBE_RULE),
        QueryByExampleTask("qbe_asc", "arabic_speech_commands", "arabic_speech_commands", "keyword", QBE_RULE),
    ]  # fmt: skip
    return {task.name: task for task in tasks}


SUITES = {
    # every task whose corpus is in the shared mini data (Fluent Speech Commands is not)
    "mini": (
        "keyword_asc", "keyword_fsdd", "speaker_librispeech", "speaker_ravdess", "speaker_fsdd",
        "gender_librispeech", "gender_ravdess", "emotion_ravdess", "verification_librispeech",
        "verification_ravdess", "asr_librispeech", "qbe_fsdd", "qbe_asc",
    ),
    # the four utterance tasks of the Barlow Twins speech study (speaker, gender, emotion, keyword)
    "utterance": ("speaker_librispeech", "gender_ravdess", "emotion_ravdess", "keyword_asc"),
}  # fmt: skip


def suite_tasks(suite: str, data_root: str | Path) -> list[str]:
    """The task names of ``suite``, after checking that each one's corpus is under ``data_root``."""
    if suite not in SUITES:
        raise ValueError(f"--suite: expected one of {sorted(SUITES)}, found {suite!r}")
    tasks = available_tasks()
    folders = [Path(data_root) / tasks[name].folder for name in SUITES[suite]]
    missing = sorted({str(folder) for folder in folders if not folder.is_dir()})
    if missing:
        raise ValueError(
            f"--suite {suite}: corpus folder(s) not found: {', '.join(missing)} (check --data-root)"
        )
    return list(SUITES[suite])


def get_task(name: str) -> Task:
    tasks = available_tasks()
    if name not in tasks:
        raise ValueError(f"unknown task {name!r} (expected one of: {', '.join(tasks)})")
    return tasks[name]
