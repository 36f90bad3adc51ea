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
class UtteranceTask:
    """An utterance classification task.

    Attributes:
        name: registry name, ``<task>_<corpus>``.
        corpus: corpus loader name (see :func:`speechssl.data.available_corpora`).
        folder: the corpus folder relative to the data root (``../shared/data`` layout).
        label: manifest column to predict (``speaker`` or a label column).
        folds: turns the corpus manifest into the folds the task is averaged over.
        split_rule: one line saying how the split was made, for reports.
    """

    name: str
    corpus: str
    folder: str
    label: str
    folds: FoldMaker
    split_rule: str

    def load(self, data_root: str | Path) -> Manifest:
        """The corpus manifest under ``data_root``, with every row (folds re-split it)."""
        return load_corpus(self.corpus, Path(data_root) / self.folder)


@dataclass(frozen=True)
class VerificationTask:
    """A speaker verification task: cosine scoring on speakers not used for any training.

    Attributes:
        name: registry name, ``verification_<corpus>``.
        corpus: corpus loader name.
        folder: the corpus folder relative to the data root.
        split_rule: one line saying how speakers and trials were chosen, for reports.
    """

    name: str
    corpus: str
    folder: str
    split_rule: str
    label: str = "speaker"

    def load(self, data_root: str | Path) -> Manifest:
        """The corpus manifest under ``data_root``, with every row."""
        return load_corpus(self.corpus, Path(data_root) / self.folder)


@dataclass(frozen=True)
class QueryByExampleTask:
    """Query-by-example spoken term detection by DTW on frame features (no training).

    Attributes:
        name: registry name, ``qbe_<corpus>``.
        corpus: corpus loader name.
        folder: the corpus folder relative to the data root.
        label: the column naming each utterance's keyword.
        split_rule: one line saying how queries and search sets were drawn, for reports.
    """

    name: str
    corpus: str
    folder: str
    label: str
    split_rule: str

    def load(self, data_root: str | Path) -> Manifest:
        """The corpus manifest under ``data_root``, with every row."""
        return load_corpus(self.corpus, Path(data_root) / self.folder)


@dataclass(frozen=True)
class ASRTask:
    """Character CTC speech recognition on frame features (:mod:`speechssl.downstream.asr`).

    Attributes:
        name: registry name, ``asr_<corpus>``.
        corpus: corpus loader name.
        folder: the corpus folder relative to the data root.
        split_rule: one line saying how the split was made, for reports.
        label: the transcript column.
    """

    name: str
    corpus: str
    folder: str
    split_rule: str
    label: str = "transcript"

    def load(self, data_root: str | Path) -> Manifest:
        """The corpus manifest under ``data_root``, with every row."""
        return load_corpus(self.corpus, Path(data_root) / self.folder)


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
            "keyword_asc", "arabic_speech_commands", "arabic_speech_commands", "keyword", _as_is,
            "the corpus's own speaker-disjoint train/val/test CSVs (40 keywords)",
        ),
        UtteranceTask(
            "keyword_fsdd", "fsdd", "fsdd", "keyword", _as_is,
            "FSDD's official split: recordings 0-4 test, 5-9 valid, rest train (same 6 speakers)",
        ),
        UtteranceTask(
            "speaker_librispeech", "librispeech", "mini_librispeech/LibriSpeech", "speaker", _as_is,
            "each of the 28 speakers' utterances split 70/15/15",
        ),
        UtteranceTask(
            "speaker_ravdess", "ravdess", "ravdess", "speaker", _within_speaker,
            "each of the 24 actors' utterances split 70/15/15",
        ),
        UtteranceTask(
            "speaker_fsdd", "fsdd", "fsdd", "speaker", _as_is,
            "FSDD's official split (6 speakers in every split)",
        ),
        UtteranceTask(
            "gender_librispeech", "librispeech", "mini_librispeech/LibriSpeech", "gender",
            _speaker_disjoint_by_gender, "speaker-disjoint 60/20/20, stratified by gender",
        ),
        UtteranceTask(
            "gender_ravdess", "ravdess", "ravdess", "gender", _as_is,
            "actor-disjoint: actors 1-16 train, 17-20 valid, 21-24 test",
        ),
        UtteranceTask(
            "intent_fsc", "fluent_speech_commands", "fluent_speech_commands_dataset", "intent", _as_is,
            "the corpus's own speaker-disjoint train/valid/test CSVs (31 action|object|location intents)",
        ),
        UtteranceTask(
            "emotion_ravdess", "ravdess", "ravdess", "emotion", _actor_folds,
            "4 actor-disjoint folds of 6 actors (3 female, 3 male), averaged",
        ),
        VerificationTask(
            "verification_librispeech", "librispeech", "mini_librispeech/LibriSpeech", VERIFICATION_RULE
        ),
        VerificationTask("verification_ravdess", "ravdess", "ravdess", VERIFICATION_RULE),
        ASRTask(
            "asr_librispeech", "librispeech", "mini_librispeech/LibriSpeech",
            "each speaker's utterances split 70/15/15 (Mini LibriSpeech: 1.37 h in all)",
        ),
        QueryByExampleTask("qbe_fsdd", "fsdd", "fsdd", "keyword", QBE_RULE),
        QueryByExampleTask("qbe_asc", "arabic_speech_commands", "arabic_speech_commands", "keyword", QBE_RULE),
    ]  # fmt: skip
    return {task.name: task for task in tasks}


def get_task(name: str) -> Task:
    tasks = available_tasks()
    if name not in tasks:
        raise ValueError(f"unknown task {name!r} (expected one of: {', '.join(tasks)})")
    return tasks[name]
