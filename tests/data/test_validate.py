"""validate_manifest: counts, durations, label sets, bad files, text and JSON output."""

from __future__ import annotations

import json
import time

import pytest

from speechssl.data.audio import BadFileSummary
from speechssl.data.corpora import load_corpus
from speechssl.data.manifest import Manifest, Utterance
from speechssl.data.validate import validate_manifest


def test_report_on_a_small_manifest(tmp_path, write_audio, bad_files):
    rows = [
        Utterance(
            f"u{i}",
            write_audio(tmp_path / f"u{i}.wav", seconds=0.25 * (i + 1), sample_rate=(8000, 16000)[i % 2]),
            0.25 * (i + 1),
            (8000, 16000)[i % 2],
            f"spk{i % 2}",
            ("train", "test")[i // 3],
            {"keyword": ("yes", "no")[i % 2]},
        )
        for i in range(4)
    ]
    rows.append(Utterance("broken", bad_files["nan"], 0.1, 16000, "spk2", "test", {"keyword": "yes"}))
    report = validate_manifest(Manifest(rows))
    assert report.num_utterances == 5
    assert report.split_counts == {"test": 2, "train": 3}
    assert report.num_speakers == 3 and report.speakers_per_split == {"test": 2, "train": 2}
    assert report.total_seconds == pytest.approx(2.6)
    assert (report.min_seconds, report.max_seconds) == pytest.approx((0.1, 1.0))
    assert report.mean_seconds == pytest.approx(0.52)
    assert report.label_counts == {"keyword": {"no": 2, "yes": 3}}
    assert report.sample_rates == {8000: 2, 16000: 3}
    assert not report.ok and [bad.id for bad in report.bad_files] == ["broken"]
    text = report.format()
    assert "utterances: 5" in text and "label keyword: 2 values" in text and "nan.wav" in text
    data = json.loads(json.dumps(report.to_dict()))
    assert data["sample_rates"] == {"8000": 2, "16000": 3} and data["bad_files"]["count"] == 1
    assert validate_manifest(Manifest(rows), decode=False).ok  # NaNs are only found by decoding


def test_report_lists_files_left_out_while_loading(broken_folder, bad_files):
    summary = BadFileSummary()
    manifest = load_corpus("folder", broken_folder, bad_files=summary)
    assert validate_manifest(manifest).ok  # the rows left are all good
    nan = Utterance("nan", bad_files["nan"], 0.1, 16000, "unknown", "train")
    report = validate_manifest(Manifest([*manifest, nan]), decode=True, workers=2, bad_files=summary)
    assert not report.ok and report.num_utterances == 4
    assert [bad.id for bad in report.bad_files] == ["b", "c/e", "e", "nan"]  # header failures first
    text = report.format()
    assert "files decoded: 4 bad file(s)" in text
    assert f"b: {broken_folder / 'b.wav'}: not a readable audio file" in text
    assert f"e: {broken_folder / 'e.wav'}: empty audio file (0 samples)" in text
    assert report.to_dict()["bad_files"]["count"] == 4
    assert [bad.id for bad in summary] == ["b", "c/e", "e"]  # the caller's summary is unchanged
    assert not validate_manifest(manifest, decode=False, bad_files=summary).ok


def test_empty_manifest():
    report = validate_manifest(Manifest())
    assert report.num_utterances == 0 and report.max_seconds == 0.0 and report.ok


def test_fsdd_validates_quickly(shared_data):
    manifest = load_corpus("fsdd", shared_data("fsdd"))
    start = time.perf_counter()
    report = validate_manifest(manifest, decode=True, workers=2)
    elapsed = time.perf_counter() - start
    assert elapsed < 30, f"decoding 3000 FSDD files took {elapsed:.1f} s"
    assert report.ok and report.num_utterances == 3000 and report.num_speakers == 6
    assert report.sample_rates == {8000: 3000}
    assert report.label_counts["keyword"] == {str(d): 300 for d in range(10)}
    assert "speakers: 6 (test=6, train=6, valid=6)" in report.format()


def test_warns_about_labels_of_valid_and_test_that_train_lacks(tmp_path, write_audio, capsys):
    audio = write_audio(tmp_path / "a.wav", seconds=0.1)
    layout = [  # split, emotion, free-text column
        ("train", "angry"), ("train", "happy"), ("train", "angry"), ("valid", "sad"),
        ("valid", "angry"), ("test", "sad"), ("test", "fearful"), ("test", "happy"),
    ]  # fmt: skip
    rows = [
        Utterance(f"u{i}", audio, 0.1, 16000, "s", split, {"emotion": emotion, "text": f"words {i}"})
        for i, (split, emotion) in enumerate(layout)
    ]
    report = validate_manifest(Manifest(rows), decode=False)
    assert report.unseen_labels == {"emotion": {"valid": ["sad"], "test": ["fearful", "sad"]}}, (
        "text is no class"
    )
    assert report.ok, "a warning, not a bad file"
    text = report.format()
    assert "warning: label emotion: 2 value(s) in test but not in train: 'fearful', 'sad'" in text
    assert "warning: label emotion: 1 value(s) in valid but not in train: 'sad'" in text
    assert json.loads(json.dumps(report.to_dict()))["unseen_labels"]["emotion"]["test"] == ["fearful", "sad"]
    only_train = Manifest([row for row in rows if row.split == "train"])
    assert validate_manifest(only_train, decode=False).unseen_labels == {}
