"""Every registered task, end to end through the benchmark, on a tiny subset of its real corpus."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from speechssl.data import Manifest
from speechssl.downstream.asr import CTCTrainingConfig
from speechssl.downstream.cache import FeatureCache
from speechssl.downstream.evaluate import run_evaluation
from speechssl.downstream.tasks import SUITES, CorpusTask, get_task
from speechssl.downstream.training import HeadTrainingConfig

PER_GROUP = 4
LABELS = 3
ASR_SPEAKERS = 6


def tiny_subset(manifest: Manifest, label: str) -> Manifest:
    """The most frequent ``LABELS`` values of ``label`` (all values for speaker and gender
    tasks; the first ``ASR_SPEAKERS`` speakers' transcripts), then at most ``PER_GROUP``
    utterances per (speaker, label, split)."""
    if label == "transcript":
        speakers = sorted(set(manifest.column("speaker")))[:ASR_SPEAKERS]
        manifest = manifest.filter(speaker=speakers)
    values = manifest.column(label)
    kept_values = (
        set(values)
        if label in ("speaker", "transcript", "gender")
        else {v for v, _ in Counter(values).most_common(LABELS)}
    )
    seen: defaultdict[tuple, int] = defaultdict(int)
    rows = []
    for index, row in enumerate(manifest):
        key = (row.speaker, values[index], row.split)
        if values[index] in kept_values and seen[key] < PER_GROUP:
            seen[key] += 1
            rows.append(index)
    return manifest.select(rows)


@pytest.mark.parametrize("name", SUITES["mini"])
def test_task_runs_end_to_end_on_a_tiny_subset(shared_data, tmp_path, monkeypatch, name):
    task = get_task(name)
    data_root = shared_data(task.folder.split("/")[0]).parent
    load = CorpusTask.load
    monkeypatch.setattr(CorpusTask, "load", lambda self, root: tiny_subset(load(self, root), self.label))

    cache = FeatureCache(tmp_path / "cache")
    rows = run_evaluation(
        ["fbank"], [name], data_root, [0, 1], tmp_path / "out", cache,
        HeadTrainingConfig(max_epochs=3), CTCTrainingConfig(hidden=8, num_layers=1, max_epochs=1),
    )  # fmt: skip
    assert [(r["task"], r["seed"]) for r in rows] == [(name, 0), (name, 1)]
    metric = rows[0]["metric"]
    assert all(r["metric"] == metric for r in rows)
    low, high = (0.0, float("inf")) if metric == "wer" else (0.0, 1.0)
    assert all(low <= r["value"] <= high for r in rows), rows
    assert f"| {name} |" in (tmp_path / "out" / "report.md").read_text()
