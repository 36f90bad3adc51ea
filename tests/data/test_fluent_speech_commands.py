"""Fluent Speech Commands (Lugosch et al., Interspeech 2019) read from a tiny fixture in its native layout."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from speechssl.data.audio import BadFileSummary
from speechssl.data.corpora import available_corpora, detect_corpus, load_corpus, load_fluent_speech_commands

HEADER = ",path,speakerId,transcription,action,object,location\n"
# split -> (speakerId, uuid, transcription, action, object, location); FSC speakers are split-disjoint.
ROWS = {
    "train": [
        ("2BqVo8kVB2Skwgyb", "0a3129c0-4474-11e9-a9a5-5dbec3b8816a", "Change language", "change language",
         "none", "none"),
        ("2BqVo8kVB2Skwgyb", "0ee42a80-4474-11e9-a9a5-5dbec3b8816a", "Turn on the lights in the kitchen",
         "activate", "lights", "kitchen"),
        ("4aGjX3AG5xcxeL7a", "1a6b6ac0-45a0-11e9-8ec0-7bf21d1cfe30", "Okay, bring me my shoes", "bring",
         "shoes", "none"),
    ],
    "valid": [
        ("7B4XmNppyrCK977p", "2c8f5f00-4474-11e9-bc65-55b32b211b66", "Increase the volume", "increase",
         "volume", "none"),
    ],
    "test": [
        ("4BrX8aDqK2cLZRYl", "3b1d3a10-45c3-11e9-8ec0-7bf21d1cfe30", "Decrease the heating in the bedroom",
         "decrease", "heat", "bedroom"),
        ("4BrX8aDqK2cLZRYl", "4c0ad0c0-45c3-11e9-8ec0-7bf21d1cfe30", "Lights off", "deactivate", "lights",
         "none"),
    ],
}  # fmt: skip
CSV_NAMES = {"train": "train_data.csv", "valid": "valid_data.csv", "test": "test_data.csv"}


def wav_path(speaker: str, uuid: str) -> str:
    return f"wavs/speakers/{speaker}/{uuid}.wav"


def csv_line(index: int, row: tuple[str, ...]) -> str:
    speaker, uuid, transcription, action, obj, location = row
    text = f'"{transcription}"' if "," in transcription else transcription
    return f"{index},{wav_path(speaker, uuid)},{speaker},{text},{action},{obj},{location}\n"


@pytest.fixture
def fsc_root(tmp_path: Path, write_audio: Callable[..., Path]) -> Path:
    """``fluent_speech_commands_dataset/`` with six 16 kHz wavs (0.1 s to 0.35 s) and the three split CSVs."""
    root = tmp_path / "fluent_speech_commands_dataset"
    (root / "data").mkdir(parents=True)
    number = 0
    for split, rows in ROWS.items():
        lines = [HEADER]
        for index, row in enumerate(rows):
            write_audio(root / wav_path(row[0], row[1]), seconds=0.1 + 0.05 * number)
            lines.append(csv_line(index, row))
            number += 1
        (root / "data" / CSV_NAMES[split]).write_text("".join(lines))
    return root


def test_rows_splits_and_labels(fsc_root):
    manifest = load_corpus("fluent_speech_commands", fsc_root)
    assert available_corpora()["fluent_speech_commands"] is load_fluent_speech_commands
    assert detect_corpus(fsc_root) == "fluent_speech_commands"
    assert len(manifest) == 6
    assert manifest.ids == [row[1] for rows in ROWS.values() for row in rows]
    assert manifest.column("split") == ["train"] * 3 + ["valid"] + ["test"] * 2
    assert manifest.label_columns == ("transcript", "action", "object", "location", "intent")
    assert manifest.counts("speaker") == {
        "2BqVo8kVB2Skwgyb": 2,
        "4aGjX3AG5xcxeL7a": 1,
        "7B4XmNppyrCK977p": 1,
        "4BrX8aDqK2cLZRYl": 2,
    }
    assert manifest.column("intent") == [
        "change language|none|none",
        "activate|lights|kitchen",
        "bring|shoes|none",
        "increase|volume|none",
        "decrease|heat|bedroom",
        "deactivate|lights|none",
    ]
    shoes = manifest[2]
    assert shoes.labels == {
        "transcript": "Okay, bring me my shoes",
        "action": "bring",
        "object": "shoes",
        "location": "none",
        "intent": "bring|shoes|none",
    }
    assert shoes.path == fsc_root / wav_path("4aGjX3AG5xcxeL7a", "1a6b6ac0-45a0-11e9-8ec0-7bf21d1cfe30")
    assert shoes.sample_rate == 16000 and shoes.duration == pytest.approx(0.2)


def test_detection_needs_both_the_csv_and_the_speaker_folders(fsc_root):
    assert detect_corpus(fsc_root / "wavs") == "folder"
    (fsc_root / "data" / "train_data.csv").unlink()
    assert detect_corpus(fsc_root) == "folder"


def test_missing_column_names_the_csv(fsc_root):
    valid = fsc_root / "data" / "valid_data.csv"
    valid.write_text(valid.read_text().replace(",location\n", ",place\n", 1))
    with pytest.raises(ValueError, match=r"valid_data\.csv, line 1: expected columns .*\(missing location\)"):
        load_fluent_speech_commands(fsc_root)


def test_missing_split_csv(fsc_root):
    (fsc_root / "data" / "test_data.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"found no data/test_data\.csv"):
        load_fluent_speech_commands(fsc_root)


def test_missing_wav_names_the_csv_line_or_is_recorded(fsc_root):
    speaker, uuid = ROWS["test"][1][:2]
    (fsc_root / wav_path(speaker, uuid)).unlink()
    with pytest.raises(
        FileNotFoundError, match=rf"test_data\.csv, line 3: audio file not found: .*{uuid}\.wav"
    ):
        load_fluent_speech_commands(fsc_root)
    summary = BadFileSummary()
    manifest = load_corpus("fluent_speech_commands", fsc_root, bad_files=summary)
    assert len(manifest) == 5 and uuid not in manifest.ids
    assert [(bad.id, bad.reason) for bad in summary] == [(uuid, "file not found")]


def test_wav_named_twice(fsc_root):
    test_csv = fsc_root / "data" / "test_data.csv"
    test_csv.write_text(test_csv.read_text() + csv_line(2, ROWS["train"][0]))
    with pytest.raises(
        ValueError, match=r"test_data\.csv, line 4: expected each wav once, .*train_data\.csv, line 2"
    ):
        load_fluent_speech_commands(fsc_root)
