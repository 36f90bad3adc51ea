"""Every registered task, end to end through the benchmark, on a tiny subset of its real corpus
(the ``tiny_tasks`` fixture of ``conftest.py``)."""

from __future__ import annotations

import pytest

from speechssl.downstream.asr import CTCTrainingConfig
from speechssl.downstream.cache import FeatureCache
from speechssl.downstream.evaluate import run_evaluation
from speechssl.downstream.plan import EvaluationPlan
from speechssl.downstream.tasks import SUITES, UtteranceTask, get_task
from speechssl.downstream.training import HeadTrainingConfig


@pytest.mark.parametrize("name", SUITES["mini"])
def test_task_runs_end_to_end_on_a_tiny_subset(shared_data, tmp_path, tiny_tasks, name):
    task = get_task(name)
    data_root = shared_data(task.folder.split("/")[0]).parent

    cache = FeatureCache(tmp_path / "cache")
    plan = EvaluationPlan(
        [name], [0, 1], cache, data_root,
        HeadTrainingConfig(max_epochs=3), CTCTrainingConfig(hidden=8, num_layers=1, max_epochs=1),
    )  # fmt: skip
    rows = run_evaluation(["fbank"], plan, tmp_path / "out")
    assert [(r.task, r.seed) for r in rows] == [(name, 0), (name, 1)]
    metric = rows[0].metric
    assert all(r.metric == metric == task.metric.name for r in rows)
    low, high = (0.0, float("inf")) if metric == "wer" else (0.0, 1.0)
    assert all(low <= r.value <= high for r in rows), rows
    if isinstance(task, UtteranceTask):  # the log-mel + MLP ceiling beside every accuracy
        assert all(0.0 <= r.extras["ceiling"] <= 1.0 for r in rows), rows
    assert f"| {name} |" in (tmp_path / "out" / "report.md").read_text()
