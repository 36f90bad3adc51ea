"""``data validate`` checks each row's stated duration against its file."""

from __future__ import annotations

import dataclasses
import json

from speechssl.cli import main
from speechssl.data import Manifest, SyntheticConfig, generate_synthetic_corpus


def test_validate_reports_a_duration_that_is_not_the_files(tmp_path, capsys):
    corpus = generate_synthetic_corpus(SyntheticConfig(num_utterances=8, num_speakers=2), tmp_path / "c")
    wrong = corpus[3]
    rows = [dataclasses.replace(row, duration=100.0) if row.id == wrong.id else row for row in corpus]
    Manifest(rows).save(tmp_path / "m.csv")
    assert main(["data", "validate", str(tmp_path / "m.csv"), "--no-decode", "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["bad_files"]["count"] == 0
    (mismatch,) = report["duration_mismatches"]
    assert mismatch["id"] == wrong.id and mismatch["stated"] == 100.0
    assert abs(mismatch["found"] - wrong.duration) < 1e-6
    assert main(["data", "validate", str(tmp_path / "m.csv"), "--no-decode"]) == 2
    assert (
        f"1 row(s) whose duration is not their file's (stated -> header):\n  {wrong.id}:"
        in capsys.readouterr().out
    )
    corpus.save(tmp_path / "right.csv")
    assert main(["data", "validate", str(tmp_path / "right.csv"), "--no-decode"]) == 0


def test_a_segment_row_is_checked_against_the_part_of_its_segment_the_file_holds(tmp_path, capsys):
    corpus = generate_synthetic_corpus(SyntheticConfig(num_utterances=2, num_speakers=2), tmp_path / "c")
    row = corpus[0]
    inside = dataclasses.replace(
        row, id="inside", start=0.1, end=row.duration - 0.1, duration=row.duration - 0.2
    )
    past_end = dataclasses.replace(
        row, id="past", start=0.1, end=row.duration + 5.0, duration=5.0 + row.duration - 0.1
    )
    Manifest([inside]).save(tmp_path / "inside.csv")
    assert main(["data", "validate", str(tmp_path / "inside.csv"), "--no-decode"]) == 0
    capsys.readouterr()
    Manifest([inside, past_end]).save(tmp_path / "past.csv")
    assert main(["data", "validate", str(tmp_path / "past.csv"), "--no-decode", "--json"]) == 2
    (mismatch,) = json.loads(capsys.readouterr().out)["duration_mismatches"]
    assert mismatch["id"] == "past" and abs(mismatch["found"] - (row.duration - 0.1)) < 1e-6
