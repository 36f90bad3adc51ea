"""Manifest: columns, filtering, CSV/JSONL round trips, relative paths and load-time validation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from speechssl.data.manifest import REQUIRED_COLUMNS, Manifest, ManifestError, Utterance


def make_rows(folder: Path, count: int = 6) -> list[Utterance]:
    return [
        Utterance(
            id=f"utt{i}",
            path=folder / "audio" / f"utt{i}.wav",
            duration=0.5 + 0.1 * i,
            sample_rate=16000,
            speaker=f"spk{i % 2}",
            split=("train", "valid", "test")[i % 3],
            labels={"gender": "fm"[i % 2], "transcript": f'say "{i}", then stop'},
        )
        for i in range(count)
    ]


def test_columns_filter_select_and_iteration(tmp_path):
    manifest = Manifest(make_rows(tmp_path))
    assert len(manifest) == 6 and [row.id for row in manifest] == manifest.ids
    assert manifest.label_columns == ("gender", "transcript")
    assert manifest.columns == (*REQUIRED_COLUMNS, "gender", "transcript")
    assert manifest.column("speaker") == ["spk0", "spk1"] * 3
    assert manifest.column("gender") == ["f", "m"] * 3
    np.testing.assert_allclose(manifest.durations, [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    assert manifest.filter(split="train").ids == ["utt0", "utt3"]
    assert manifest.filter(split=("train", "test"), gender="m").ids == ["utt3", "utt5"]
    assert manifest.select([4, 0]).ids == ["utt4", "utt0"]
    assert manifest.select(np.array([1])).ids == ["utt1"]
    assert manifest.counts("split") == {"test": 2, "train": 2, "valid": 2}
    assert manifest.exclude_ids({"utt1", "utt2"}).ids == ["utt0", "utt3", "utt4", "utt5"]
    assert len(Manifest()) == 0 and Manifest().label_columns == ()


def test_unknown_column_names_the_choices(tmp_path):
    manifest = Manifest(make_rows(tmp_path))
    with pytest.raises(KeyError, match=r"emotion.*expected one of: id, path"):
        manifest.column("emotion")
    with pytest.raises(KeyError, match="emotion"):
        manifest.filter(emotion="happy")


def test_rows_must_be_consistent(tmp_path):
    rows = make_rows(tmp_path, 2)
    with pytest.raises(ValueError, match="duplicate utterance id 'utt0'"):
        Manifest([rows[0], rows[0]])
    odd = Utterance("x", tmp_path / "x.wav", 1.0, 16000, "s", "train", {"gender": "f"})
    with pytest.raises(ValueError, match="label columns"):
        Manifest([rows[0], odd])
    with pytest.raises(ValueError, match="duration"):
        Utterance("x", tmp_path / "x.wav", float("nan"), 16000, "s", "train")
    with pytest.raises(ValueError, match="clashes"):
        Utterance("x", tmp_path / "x.wav", 1.0, 16000, "s", "train", {"split": "a"})


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_roundtrip_with_relative_and_absolute_paths(tmp_path, suffix):
    inside = make_rows(tmp_path / "corpus")
    outside = Utterance(
        "far",
        tmp_path / "elsewhere" / "far.wav",
        2.0,
        8000,
        "spk9",
        "test",
        {"gender": "f", "transcript": 'ünïcode, "quotes"'},
    )
    manifest = Manifest([*inside, outside])
    path = tmp_path / "corpus" / f"manifest{suffix}"
    manifest.save(path)
    assert Manifest.load(path) == manifest
    text = path.read_text(encoding="utf-8")
    assert "audio/utt0.wav" in text and str(tmp_path / "corpus") not in text  # stored relative
    assert str(tmp_path / "elsewhere" / "far.wav") in text  # outside the folder: absolute

    moved = tmp_path / "moved"
    shutil.move(tmp_path / "corpus", moved)
    reloaded = Manifest.load(moved / f"manifest{suffix}")
    assert reloaded[0].path == moved / "audio" / "utt0.wav"
    assert reloaded[-1].path == outside.path


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20), min_size=1, max_size=5
    ),
    durations=st.lists(st.floats(min_value=0, max_value=1e5, allow_nan=False), min_size=5, max_size=5),
)
def test_roundtrip_preserves_arbitrary_text_and_exact_durations(tmp_path, texts, durations):
    rows = [
        Utterance(f"u{i}", tmp_path / f"{i}.wav", durations[i], 16000, text, "train", {"transcript": text})
        for i, text in enumerate(texts)
    ]
    for suffix in (".csv", ".jsonl"):
        Manifest(rows).save(tmp_path / f"m{suffix}")
        assert Manifest.load(tmp_path / f"m{suffix}") == Manifest(rows)


def test_jsonl_integer_labels_become_strings(tmp_path):
    path = tmp_path / "m.jsonl"
    record = {
        "id": "a",
        "path": "a.wav",
        "duration": 1,
        "sample_rate": 8000,
        "speaker": "s",
        "split": "train",
        "digit": 3,
    }
    path.write_text(json.dumps(record) + "\n\n")
    manifest = Manifest.load(path)
    assert manifest[0].labels == {"digit": "3"} and manifest[0].path == tmp_path / "a.wav"


HEADER = "id,path,duration,sample_rate,speaker,split,gender"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,path,sample_rate,speaker,split\n", r"line 1: missing required column 'duration'"),
        ("", r"line 1: empty file"),
        (
            f"{HEADER}\na,a.wav,1.0,16000,s,train,f\nb,b.wav,abc,16000,s,train,f\n",
            r"line 3, column 'duration': expected a number of seconds >= 0, found 'abc'",
        ),
        (f"{HEADER}\na,a.wav,-1,16000,s,train,f\n", r"line 2, column 'duration': expected a finite"),
        (
            f"{HEADER}\na,a.wav,1.0,16k,s,train,f\n",
            r"line 2, column 'sample_rate': expected a positive integer",
        ),
        (f"{HEADER}\na,a.wav,1.0,16000,s,train\n", r"line 2: expected 7 fields, found 6"),
        (f"{HEADER}\n,a.wav,1.0,16000,s,train,f\n", r"line 2, column 'id': expected a non-empty string"),
        (
            f"{HEADER}\na,a.wav,1,16000,s,train,f\na,b.wav,1,16000,s,train,f\n",
            r"line 3, column 'id': duplicate",
        ),
        ("id,id,path,duration,sample_rate,speaker,split\n", r"line 1: column 'id' appears more than once"),
    ],
)
def test_bad_csv_errors_name_file_line_and_column(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ManifestError, match=message) as info:
        Manifest.load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"id": "a"'], r"line 1: not valid JSON"),
        (["[1, 2]"], r"line 1: expected a JSON object"),
        (
            ['{"id": "a", "path": "a.wav", "duration": 1.0, "speaker": "s", "split": "train"}'],
            r"line 1: missing required column 'sample_rate'",
        ),
        (
            [
                '{"id": "a", "path": "a.wav", "duration": 1.0, "sample_rate": 16000, "speaker": "s", "split": "t"}',
                '{"id": "b", "path": "b.wav", "duration": 1.0, "sample_rate": 16000.5, "speaker": "s", "split": "t"}',
            ],
            r"line 2, column 'sample_rate': expected a positive integer",
        ),
        (
            [
                '{"id": "a", "path": "a.wav", "duration": true, "sample_rate": 16000, "speaker": "s", "split": "t"}'
            ],
            r"line 1, column 'duration'",
        ),
        (
            [
                '{"id": "a", "path": "a.wav", "duration": 1, "sample_rate": 16000, "speaker": "s", "split": "t", "x": []}'
            ],
            r"line 1, column 'x': expected a string label",
        ),
        (
            [
                '{"id": "a", "path": "a.wav", "duration": 1, "sample_rate": 16000, "speaker": "s", "split": "t", "x": "1"}',
                '{"id": "b", "path": "b.wav", "duration": 1, "sample_rate": 16000, "speaker": "s", "split": "t"}',
            ],
            r"line 2: label columns",
        ),
    ],
)
def test_bad_jsonl_errors_name_file_and_line(tmp_path, lines, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match=message) as info:
        Manifest.load(path)
    assert str(path) in str(info.value)


def test_suffix_and_missing_file_errors(tmp_path):
    with pytest.raises(ManifestError, match=r"must end in .csv or .jsonl, found '.txt'"):
        Manifest().save(tmp_path / "m.txt")
    with pytest.raises(FileNotFoundError, match="manifest not found"):
        Manifest.load(tmp_path / "absent.csv")


def test_split_rows_are_the_indices_of_each_split_in_manifest_order(tmp_path):
    manifest = Manifest(make_rows(tmp_path, count=7))
    assert manifest.split_rows() == {"train": [0, 3, 6], "valid": [1, 4], "test": [2, 5]}
    assert manifest.split_rows(("test", "other")) == {"test": [2, 5], "other": []}


def test_digest_follows_rows_and_audio_files(tmp_path):
    rows = make_rows(tmp_path, count=3)
    for row in rows:
        row.path.parent.mkdir(parents=True, exist_ok=True)
        row.path.write_bytes(b"RIFF")
    manifest = Manifest(rows)
    digest = manifest.digest()
    assert digest == Manifest(rows).digest() and len(digest) == 64
    assert Manifest(rows[:2]).digest() != digest
    rows[1].path.write_bytes(b"RIFF and more")  # the audio changed size
    assert manifest.digest() != digest
    rows[2].path.unlink()
    with pytest.raises(FileNotFoundError, match=r"utt2\.wav: audio file of utterance 'utt2' not found"):
        manifest.digest()
