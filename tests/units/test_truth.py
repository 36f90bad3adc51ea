"""Frame-level ground truth from phone alignments and utterance labels."""

from __future__ import annotations

import pytest

from speechssl.data import Manifest, Utterance
from speechssl.units.truth import check_truth, frame_truth


def _row(**labels) -> Utterance:
    return Utterance(id="u1", path="u1.wav", duration=0.5, sample_rate=16000, speaker="ann", split="train",
                     labels=labels)  # fmt: skip


def test_phone_truth_follows_the_alignment_at_the_unit_rate():
    row = _row(word="sa", phone_times="s:0.04:0.12 a:0.12:0.2")
    # 640-sample (40 ms) frames: centres 0.02, 0.06, 0.10, 0.14, 0.18, 0.22
    assert list(frame_truth(row, "phone", 6, 640)) == ["sil", "s", "s", "a", "a", "sil"]
    assert list(frame_truth(row, "word", 3, 640)) == ["sa"] * 3
    assert list(frame_truth(row, "speaker", 2, 640)) == ["ann"] * 2


def test_missing_truth_names_the_columns():
    manifest = Manifest([_row(word="sa")])
    with pytest.raises(ValueError, match=r"'phone' needs a 'phone_times' column.*\['speaker', 'word'\]"):
        check_truth(manifest, "phone")
    with pytest.raises(ValueError, match=r"expected 'phone' or a label column of .* found 'emotion'"):
        check_truth(manifest, "emotion")
    with pytest.raises(ValueError, match="utterance u1 phone_times: expected 0 <= start < end"):
        frame_truth(_row(phone_times="s:0.3:0.1"), "phone", 4, 160)
