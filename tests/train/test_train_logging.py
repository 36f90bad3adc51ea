"""MetricsLogger: JSON lines, TensorBoard files, disabled ranks, truncation on resume."""

from __future__ import annotations

import json

from speechssl.train.logging import METRICS_FILE, MetricsLogger, read_metrics


def test_each_log_is_one_parseable_json_line_with_loss(tmp_path):
    with MetricsLogger(tmp_path, enabled=True, total_steps=3) as logger:
        for step in (1, 2, 3):
            logger.advance()
            logger.log({"step": step, "loss": 1.0 / step, "lr": 0.1, "audio_seconds_per_second": 12.5})
    lines = (tmp_path / METRICS_FILE).read_text().splitlines()
    assert len(lines) == 3
    records = [json.loads(line) for line in lines]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert records[1]["loss"] == 0.5
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tensorboard").iterdir())


def test_non_finite_values_stay_strict_json(tmp_path):
    with MetricsLogger(tmp_path) as logger:
        logger.log({"step": 1, "loss": float("nan")})
    line = (tmp_path / METRICS_FILE).read_text().strip()
    assert json.loads(line)["loss"] == "nan"
    assert "NaN" not in line


def test_disabled_logger_writes_nothing(tmp_path):
    with MetricsLogger(tmp_path / "run", enabled=False) as logger:
        logger.advance()
        logger.log({"step": 1, "loss": 1.0})
        logger.drop_after(0)
    assert not (tmp_path / "run").exists()


def test_drop_after_removes_records_of_redone_steps(tmp_path):
    with MetricsLogger(tmp_path) as logger:
        for step in range(1, 6):
            logger.log({"step": step, "loss": float(step)})
    with MetricsLogger(tmp_path) as logger:
        logger.drop_after(3)
        logger.log({"step": 4, "loss": 40.0})
    kept = [(r["step"], r["loss"]) for r in read_metrics(tmp_path)]
    assert kept == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0)]
