"""An empty label cell is a missing label: the row is left out of that task with a count,
never made a class ``''``."""

from __future__ import annotations

import dataclasses

import pytest

from speechssl.data import Manifest, SyntheticConfig, generate_synthetic_corpus
from speechssl.downstream.cache import FeatureCache
from speechssl.downstream.evaluate import run_evaluation
from speechssl.downstream.plan import EvaluationPlan
from speechssl.downstream.runner import probe_upstreams


@pytest.fixture
def manifest(tmp_path) -> Manifest:
    """Synthetic utterances whose every fifth ``gender`` cell is empty (through a CSV round trip)."""
    corpus = generate_synthetic_corpus(SyntheticConfig(num_utterances=60, num_speakers=2), tmp_path / "c")
    rows = [
        dataclasses.replace(row, labels={**row.labels, "gender": ""}) if index % 5 == 0 else row
        for index, row in enumerate(corpus)
    ]
    Manifest(rows).save(tmp_path / "m.csv")
    return Manifest.load(tmp_path / "m.csv")


def test_a_probe_leaves_rows_without_a_label_out(manifest):
    missing = {
        split: sum(1 for r in manifest if r.split == split and not r.labels["gender"])
        for split in ("train", "valid", "test")
    }
    plan = EvaluationPlan(["gender"], [0], FeatureCache(enabled=False))
    with pytest.warns(
        UserWarning, match=r"task 'gender': rows with an empty 'gender' \(a missing label\) left out"
    ):
        (row,) = probe_upstreams(["fbank"], manifest, plan, layer="last")
    assert row["num_classes"] == 2
    assert row["num_train"] == len(manifest.filter(split="train")) - missing["train"]
    assert row["num_test"] == len(manifest.filter(split="test")) - missing["test"]


def test_a_benchmark_task_leaves_rows_without_a_label_out(tmp_path, manifest):
    plan = EvaluationPlan([f"{tmp_path / 'm.csv'}:gender"], [0], FeatureCache(enabled=False))
    with pytest.warns(UserWarning, match=r"rows with an empty 'gender' \(a missing label\) left out"):
        (row,) = run_evaluation(["fbank"], plan, tmp_path / "report")
    assert 0.0 <= row.value <= 1.0
