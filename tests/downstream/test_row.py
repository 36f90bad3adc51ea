"""Typed result rows: the flat JSON they are saved as and read back from."""

from __future__ import annotations

import json

import pytest

from speechssl.downstream.row import Row


def test_row_round_trips_through_flat_json():
    row = Row(
        "asr_x", 2, "wer", 0.25, False, [0.4, 0.6], {"cer": 0.1, "examples": [["A B", "A"]]},
        "fbank", "abc", "def", {"hidden": 8},
    )  # fmt: skip
    record = json.loads(json.dumps(row.to_dict()))
    assert record["cer"] == 0.1 and "extras" not in record and record["higher_is_better"] is False
    assert Row.from_dict(record) == row


def test_a_record_without_a_value_is_refused():
    with pytest.raises(ValueError, match=r"result row: expected keys \['value'\]"):
        Row.from_dict({"task": "t", "seed": 0, "metric": "accuracy"})
