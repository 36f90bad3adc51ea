"""Task registry on the real corpora: sizes, label sets and split disjointness where the task says so."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from speechssl.data import Manifest, SyntheticConfig, Utterance, generate_synthetic_corpus
from speechssl.downstream import tasks as tasks_module
from speechssl.downstream.cache import FeatureCache
from speechssl.downstream.evaluate import run_evaluation
from speechssl.downstream.plan import EvaluationPlan
from speechssl.downstream.row import Metric
from speechssl.downstream.tasks import SUITES, across_statements, available_tasks, get_task, suite_tasks

SPEAKER_DISJOINT = {
    "keyword_asc", "gender_librispeech", "gender_ravdess", "emotion_ravdess",
    "emotion_ravdess_noisy", "emotion_ravdess_telephone", "emotion_ravdess_quiet", "keyword_asc_noisy",
}  # fmt: skip
SAME_SPEAKERS = {
    "speaker_librispeech",
    "speaker_librispeech_telephone",
    "speaker_ravdess",
    "speaker_ravdess_statement",
    "speaker_fsdd",
    "keyword_fsdd",
}
EXPECTED = {  # task: (utterances, classes, folds)
    "keyword_asc": (3600, 40, 1),
    "keyword_fsdd": (3000, 10, 1),
    "speaker_librispeech": (392, 28, 1),
    "speaker_librispeech_telephone": (392, 28, 1),
    "speaker_ravdess": (1440, 24, 1),
    "speaker_ravdess_statement": (1440, 24, 1),
    "speaker_fsdd": (3000, 6, 1),
    "gender_librispeech": (392, 2, 1),
    "gender_ravdess": (1440, 2, 1),
    "emotion_ravdess": (1440, 8, 4),
    "emotion_ravdess_noisy": (1440, 8, 4),
    "keyword_asc_noisy": (3600, 40, 1),
}


def test_registry_covers_utterance_verification_and_query_by_example_tasks():
    others = {
        "verification_librispeech",
        "verification_ravdess",
        "qbe_fsdd",
        "qbe_asc",
        "intent_fsc",
        "keyword_gsc",
        "asr_librispeech",
        "superb_asr",
        "superb_pr",
        "superb_asv",
        "superb_qbe",
    }
    superb = {"superb_ks", "superb_ic", "superb_sid", "superb_er"}
    retrieval = {name for name in available_tasks() if name.startswith("retrieval_")}  # issue 17
    assert len(retrieval) == 6
    assert set(available_tasks()) == SPEAKER_DISJOINT | SAME_SPEAKERS | others | superb | retrieval
    with pytest.raises(ValueError, match="unknown task 'asr_timit'"):
        get_task("asr_timit")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_task_folds_on_real_data(shared_data, name):
    task = get_task(name)
    manifest = task.load(shared_data(task.folder.split("/")[0]).parent)
    folds = task.folds(manifest)
    utterances, classes, num_folds = EXPECTED[name]
    assert len(folds) == num_folds
    tested = set()
    for fold in folds:
        assert len(fold) == utterances
        splits = {s: fold.filter(split=s) for s in ("train", "valid", "test")}
        assert all(len(rows) for rows in splits.values()), f"{name}: an empty split"
        labels = {s: set(rows.column(task.label)) for s, rows in splits.items()}
        assert len(labels["train"]) == classes
        assert labels["test"] <= labels["train"], f"{name}: test classes unseen in training"
        speakers = {s: set(rows.column("speaker")) for s, rows in splits.items()}
        if name in SPEAKER_DISJOINT:
            assert not speakers["train"] & (speakers["valid"] | speakers["test"])
            assert not speakers["valid"] & speakers["test"]
        else:
            assert speakers["test"] <= speakers["train"]
        tested |= set(splits["test"].ids)
    if num_folds > 1:
        assert tested == set(manifest.ids), "folds must test every utterance once"


def test_suites_name_registered_tasks_and_check_their_corpora(tmp_path):
    tasks = available_tasks()
    needs_multimodal_run = {name for name, task in tasks.items() if task.requires}  # retrieval (issue 17)
    assert set(SUITES["mini"]) == set(tasks) - {
        "intent_fsc",
        "keyword_gsc",
        *SUITES["superb"],
        "speaker_librispeech",
        *needs_multimodal_run,
    }, "every task on the shared corpora but the saturated one"
    assert all(name in tasks for suite in SUITES.values() for name in suite)
    with pytest.raises(
        ValueError, match=r"^suite: expected one of \['mini', 'superb', 'utterance'\], found 'tiny'"
    ):
        suite_tasks("tiny", tmp_path)
    (tmp_path / "fsdd").mkdir()
    with pytest.raises(
        ValueError, match=r"^suite mini: corpus folder\(s\) not found: .*ravdess.*\(check data_root\)"
    ):
        suite_tasks("mini", tmp_path)


def test_mini_suite_resolves_on_the_shared_data(shared_data):
    root = shared_data("fsdd").parent
    assert suite_tasks("mini", root) == list(SUITES["mini"])


def test_a_new_task_kind_runs_through_the_evaluator_untouched(tmp_path, monkeypatch):
    """A kind defined outside the package: its features, metric, direction and rows reach the
    per-seed JSONs and the report without the evaluator knowing the kind."""
    monkeypatch.setattr(tasks_module, "TASK_KINDS", dict(tasks_module.TASK_KINDS))
    monkeypatch.setattr(tasks_module, "REGISTERED_TASKS", {})

    @tasks_module.task_kind("majority")
    class MajorityTask(tasks_module.CorpusTask):
        metric = Metric("majority_accuracy", "majority-class test accuracy")
        seed_meaning = "Majority: the seed changes nothing."

        def prepare(self, upstream, manifest, plan, output):
            pooled = plan.cache.pooled(upstream, manifest)
            rows = manifest.split_rows()
            labels = manifest.column(self.label)
            train = [labels[i] for i in rows["train"]]
            majority = max(sorted(set(train)), key=train.count)
            accuracy = sum(labels[i] == majority for i in rows["test"]) / len(rows["test"])
            return lambda seed: self.row(seed, accuracy, utterances=pooled.mean.shape[1])

    corpus = generate_synthetic_corpus(
        SyntheticConfig(num_utterances=60, num_speakers=4), tmp_path / "data" / "toy"
    )
    task = tasks_module.register_task(
        MajorityTask("gender_toy", "manifest", "toy/manifest.csv", "gender", "the corpus's own split")
    )
    assert get_task("gender_toy") is task and tasks_module.TASK_KINDS["majority"] is MajorityTask
    with pytest.raises(ValueError, match="task name 'gender_toy': already registered"):
        tasks_module.register_task(task)

    cache = FeatureCache(tmp_path / "cache")
    rows = run_evaluation(
        ["fbank"], EvaluationPlan(["gender_toy"], [0, 1], cache, tmp_path / "data"), tmp_path / "out"
    )

    test = corpus.filter(split="test").column("gender")
    train = Counter(corpus.filter(split="train").column("gender")).most_common()
    expected = sum(g == min(g for g, n in train if n == train[0][1]) for g in test) / len(test)
    assert [(r.task, r.seed, r.metric) for r in rows] == [
        ("gender_toy", s, "majority_accuracy") for s in (0, 1)
    ]
    assert all(r.value == pytest.approx(expected) and r.extras["utterances"] == len(corpus) for r in rows)
    assert (cache.stats.hits, cache.stats.misses) == (0, 1)
    saved = json.loads((tmp_path / "out" / "runs" / "fbank" / "gender_toy" / "seed_1.json").read_text())
    assert (
        saved["metric"] == "majority_accuracy"
        and saved["head"] is None
        and saved["utterances"] == len(corpus)
    )
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| gender_toy | majority-class test accuracy | the corpus's own split |" in report
    assert "Majority: the seed changes nothing." in report


def test_speaker_ravdess_statement_never_shares_a_sentence_between_train_and_test(shared_data):
    task = get_task("speaker_ravdess_statement")
    (fold,) = task.folds(task.load(shared_data("ravdess").parent))
    statements = {
        split: {row.labels["statement"] for row in fold if row.split == split}
        for split in ("train", "valid", "test")
    }
    assert statements == {"train": {"kids"}, "valid": {"dogs"}, "test": {"dogs"}}
    speakers = {split: {row.speaker for row in fold if row.split == split} for split in ("train", "test")}
    assert speakers["train"] == speakers["test"] and len(speakers["test"]) == 24
    assert {row.labels["repetition"] for row in fold if row.split == "test"} == {"2"}


def test_across_statements_names_the_missing_column():
    manifest = Manifest([Utterance("a", "a.wav", 1.0, 16000, "s1", "train", {"emotion": "calm"})])
    with pytest.raises(ValueError, match="across_statements"):
        across_statements(manifest)
