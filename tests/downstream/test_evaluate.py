"""Multi-seed evaluation on real data: per-seed files, report, determinism and cache reuse."""

from __future__ import annotations

import json
import shutil

import pytest

from speechssl.downstream.cache import FeatureCache
from speechssl.downstream.evaluate import run_evaluation
from speechssl.downstream.plan import EvaluationPlan
from speechssl.downstream.training import HeadTrainingConfig


def test_evaluation_writes_seeds_report_and_reuses_the_cache(shared_data, tmp_path):
    data_root = shared_data("fsdd").parent
    cache = FeatureCache(tmp_path / "cache")
    config = HeadTrainingConfig(max_epochs=6)
    upstreams = ["fbank", "random:tiny"]
    plan = EvaluationPlan(["keyword_fsdd"], [0, 1], cache, data_root, config)
    rows = run_evaluation(upstreams, plan, tmp_path / "out")

    assert [(r.upstream, r.seed) for r in rows] == [
        ("fbank", 0),
        ("fbank", 1),
        ("random:tiny", 0),
        ("random:tiny", 1),
    ]
    assert all(0.1 < r.value <= 1.0 for r in rows), "above the 10-digit chance level"
    saved = json.loads(
        (tmp_path / "out" / "runs" / "random_tiny" / "keyword_fsdd" / "seed_1.json").read_text()
    )
    assert saved["value"] == rows[3].value
    assert len(saved["layer_weights"]) == 3 and abs(sum(saved["layer_weights"]) - 1) < 1e-5
    report = (tmp_path / "out" / "report.md").read_text()
    assert "keyword_fsdd" in report and "random:tiny" in report and "p-value" in report
    html = (tmp_path / "out" / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<td>keyword_fsdd</td>" in html
    assert 'src="boxplots.png"' in html and 'src="layer_weights_keyword_fsdd.png"' in html
    assert (tmp_path / "out" / "boxplots.png").stat().st_size > 0
    assert (tmp_path / "out" / "layer_weights_keyword_fsdd.png").stat().st_size > 0
    # each upstream's prepare also reads the ceiling's log-mel (fbank's entry): a hit
    assert (cache.stats.hits, cache.stats.misses) == (2, 2)

    again = run_evaluation(upstreams, plan, tmp_path / "again")
    assert (cache.stats.hits, cache.stats.misses) == (6, 2)
    assert [r.value for r in again] == [r.value for r in rows], "same seeds, same cached features"

    # the same output folder resumes: finished seeds are read back, only new ones computed
    (tmp_path / "out" / "runs" / "fbank" / "keyword_fsdd" / "seed_1.json").unlink()
    resumed = run_evaluation(
        upstreams, EvaluationPlan(["keyword_fsdd"], [0, 1, 2], cache, data_root, config), tmp_path / "out"
    )
    assert (cache.stats.hits, cache.stats.misses) == (10, 2), (
        "each upstream read once (and the ceiling), for its missing seeds"
    )
    assert [r.value for r in resumed if r.seed < 2] == [r.value for r in rows]
    assert all(r.upstream_fingerprint and r.data_digest for r in resumed)
    assert resumed[0].extras == rows[0].extras, "a row read back keeps its task-specific values"
    changed = run_evaluation(
        ["fbank"], EvaluationPlan(["keyword_fsdd"], [0], cache, data_root, HeadTrainingConfig(max_epochs=3)),
        tmp_path / "out",
    )  # fmt: skip
    assert changed[0].head["max_epochs"] == 3 and cache.stats.hits == 12, "new head settings recompute"


def test_evaluation_reports_progress_of_features_head_fits_and_seeds(
    shared_data, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr("speechssl.progress.LOG_INTERVAL_S", 0.0)  # a log line on every update
    plan = EvaluationPlan(
        ["keyword_fsdd"], [0, 1], FeatureCache(tmp_path / "cache"), shared_data("fsdd").parent,
        HeadTrainingConfig(max_epochs=2),
    )  # fmt: skip
    rows = run_evaluation(["fbank"], plan, tmp_path / "out")
    err = capsys.readouterr().err
    assert "features fbank: " in err and "utterances (100%)" in err
    assert "head fit (lr 0.01, seed 1): 2/2 epochs (100%)" in err
    assert (
        "evaluation: 0/2" not in err
        and "evaluation: 1/2 seeds (50%)" in err
        and "evaluation: 2/2 seeds (100%)" in err
        and "ETA" in err
    )
    # FSDD's test split holds the 10 digits equally often: the best constant guess scores 0.1
    assert rows[0].extras["chance"] == pytest.approx(0.1, abs=0.01)


def test_verification_rows_report_eer_and_save_trials(shared_data, tmp_path):
    data_root = shared_data("mini_librispeech").parent
    cache = FeatureCache(tmp_path / "cache")
    plan = EvaluationPlan(["verification_librispeech"], [0, 1], cache, data_root)
    rows = run_evaluation(["mfcc"], plan, tmp_path / "out")
    assert [(r.metric, r.seed, r.higher_is_better) for r in rows] == [("eer", 0, False), ("eer", 1, False)]
    assert all(0.0 < r.value < 0.35 and 0.0 < r.extras["min_dcf"] <= 1.0 for r in rows)
    assert (tmp_path / "out" / "trials" / "verification_librispeech" / "test_seed1.txt").stat().st_size > 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "test EER (lower is better)" in report and "| verification_librispeech | minDCF |" in report


def test_query_by_example_rows_report_map_and_mtwv(shared_data, tmp_path):
    data_root = shared_data("fsdd").parent
    cache = FeatureCache(tmp_path / "cache")
    (row,) = run_evaluation(["fbank"], EvaluationPlan(["qbe_fsdd"], [0], cache, data_root), tmp_path / "out")
    assert row.metric == "map" and row.extras["num_queries"] == 10 and row.extras["num_documents"] == 100
    assert 0.1 < row.value <= 1.0, "above the ~0.1 MAP of a random ranking of 10 balanced digits"
    assert 0.0 <= row.extras["mtwv"] <= 1.0
    assert "test MAP (query-by-example)" in (tmp_path / "out" / "report.md").read_text()


def _synthetic(tmp_path):
    from speechssl.data import SyntheticConfig, generate_synthetic_corpus

    return generate_synthetic_corpus(
        SyntheticConfig(num_utterances=240, num_speakers=8), tmp_path / "synthetic"
    )


def test_keyword_task_on_a_google_speech_commands_layout(tmp_path):
    """The synthetic corpus rewritten in Speech Commands' layout: word folders, hex speaker ids."""
    corpus = _synthetic(tmp_path)
    root = tmp_path / "data" / "speech_commands"
    speakers = {s: f"{i:08x}" for i, s in enumerate(sorted(set(corpus.column("speaker"))))}
    counts: dict[tuple[str, str], int] = {}
    lists: dict[str, list[str]] = {"valid": [], "test": []}
    for row in corpus:
        word, speaker = row.labels["word"], speakers[row.speaker]
        n = counts[(word, speaker)] = counts.get((word, speaker), -1) + 1
        relative = f"{word}/{speaker}_nohash_{n}.wav"
        (root / word).mkdir(parents=True, exist_ok=True)
        shutil.copy(row.path, root / relative)
        split = {"00000006": "valid", "00000007": "test"}.get(speaker)
        if split:
            lists[split].append(relative)
    (root / "validation_list.txt").write_text("\n".join(lists["valid"]) + "\n")
    (root / "testing_list.txt").write_text("\n".join(lists["test"]) + "\n")

    cache = FeatureCache(tmp_path / "cache")
    plan = EvaluationPlan(["keyword_gsc"], [0], cache, tmp_path / "data")
    (row,) = run_evaluation(["fbank"], plan, tmp_path / "out")
    assert row.task == "keyword_gsc" and row.value > 0.5, "10 words: chance is about 0.1"


def test_intent_task_on_a_fluent_speech_commands_layout(tmp_path):
    """The synthetic corpus rewritten in FSC's native layout; the intent is the spoken word."""
    corpus = _synthetic(tmp_path)
    root = tmp_path / "data" / "fluent_speech_commands_dataset"
    (root / "data").mkdir(parents=True)
    speakers = sorted(set(corpus.column("speaker")))
    split_of = {s: "train" if i < 5 else "valid" if i < 6 else "test" for i, s in enumerate(speakers)}
    lines = {
        split: [",path,speakerId,transcription,action,object,location\n"]
        for split in ("train", "valid", "test")
    }
    for row in corpus:
        relative = f"wavs/speakers/{row.speaker}/{row.id}.wav"
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(row.path, root / relative)
        word = row.labels["word"]
        split = split_of[row.speaker]
        lines[split].append(f"{len(lines[split]) - 1},{relative},{row.speaker},{word},{word},none,none\n")
    for split, name in (("train", "train_data.csv"), ("valid", "valid_data.csv"), ("test", "test_data.csv")):
        (root / "data" / name).write_text("".join(lines[split]))

    cache = FeatureCache(tmp_path / "cache")
    (row,) = run_evaluation(
        ["fbank"], EvaluationPlan(["intent_fsc"], [0], cache, tmp_path / "data"), tmp_path / "out"
    )
    assert row.task == "intent_fsc" and row.metric == "accuracy"
    assert row.value > 0.5, "10 words: chance is about 0.1"


def test_asr_rows_report_wer_cer_and_examples(tmp_path):
    from speechssl.data import SyntheticConfig, generate_synthetic_corpus
    from speechssl.downstream.asr import CTCTrainingConfig
    from speechssl.downstream.tasks import ASRTask
    from speechssl.upstream import build_upstream

    manifest = generate_synthetic_corpus(
        SyntheticConfig(num_utterances=60, num_speakers=3), tmp_path / "corpus"
    )
    task = ASRTask("asr_synthetic", "synthetic", "corpus", "word", "synthetic words")
    config = CTCTrainingConfig(hidden=16, num_layers=1, max_epochs=2, patience=2)
    plan = EvaluationPlan([task.name], [0], FeatureCache(tmp_path / "cache"), asr=config)
    row = task.prepare(build_upstream("fbank"), manifest, plan, tmp_path / "out")(0)
    assert row.metric == "wer" and not row.higher_is_better and row.value >= 0.0 and row.extras["cer"] >= 0.0
    assert row.extras["epochs_run"] == 2 and len(row.extras["examples"]) == 3
    assert all(reference in set(manifest.column("word")) for reference, _ in row.extras["examples"])


def test_attentive_pooling_reads_cached_frames(shared_data, tmp_path):
    data_root = shared_data("fsdd").parent
    cache = FeatureCache(tmp_path / "cache")
    config = HeadTrainingConfig(head="mlp", pooling="attentive", max_epochs=8, patience=3)
    (row,) = run_evaluation(
        ["fbank"], EvaluationPlan(["keyword_fsdd"], [0], cache, data_root, config), tmp_path / "out"
    )
    assert row.value > 0.5, "10 digits: chance is 0.1"
    assert row.head["pooling"] == "attentive"
    assert (cache.stats.hits, cache.stats.misses) == (0, 2)  # the frames, and the ceiling's pooled log-mel
    assert any(path.name == "offsets.npy" for path in (tmp_path / "cache").rglob("*")), "a frame entry"
