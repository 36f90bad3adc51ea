"""The results page: model vs random-init vs baseline, direction-aware wins, the aim's verdict."""

from __future__ import annotations

import math

import pytest

from speechssl.cli import main
from speechssl.downstream.row import Row
from speechssl.studies.comparison import aim_verdict, compare


def rows(task: str, metric: str, values: dict[str, list[float]], higher_is_better: bool = True) -> list[Row]:
    return [
        Row(task, seed, metric, value, higher_is_better, upstream=upstream)
        for upstream, per_seed in values.items()
        for seed, value in enumerate(per_seed)
    ]


def test_wins_follow_the_metric_direction():
    results = rows("keyword", "accuracy", {"bt": [0.8, 0.7, 0.9, 0.8, 0.75, 0.85], "random": [0.5] * 6})
    results += rows(
        "verification",
        "eer",
        {"bt": [0.2] * 6, "random": [0.1, 0.12, 0.11, 0.1, 0.13, 0.1]},
        higher_is_better=False,
    )
    outcome = {c.task: c for c in compare(results, "bt", "random")}
    assert outcome["keyword"].wins and outcome["keyword"].advantage == pytest.approx(0.3)
    # a higher EER is worse: the model loses although its number is larger
    assert not outcome["verification"].wins
    assert outcome["verification"].advantage == pytest.approx(-(0.2 - 0.66 / 6))
    # six seeds all on one side: the smallest two-sided Wilcoxon p-value, 2 / 2^6
    assert outcome["keyword"].p_value == pytest.approx(2 / 64)


def test_a_single_seed_has_no_p_value():
    outcome = compare(rows("keyword", "accuracy", {"bt": [0.8], "random": [0.9]}), "bt", "random")
    assert not outcome[0].wins and math.isnan(outcome[0].p_value)


def test_aim_verdict_lines():
    assert (
        aim_verdict(4, 4, None, "random-init")
        == "beats random-init on 4 of 4 tasks (aim: at least 4): **met**"
    )
    assert aim_verdict(3, 4, None, "random-init").endswith("(aim: at least 4): **NOT met**")
    assert aim_verdict(2, 4, 2, "the baseline").endswith("(aim: at least 2): **met**")


def test_compare_command_writes_the_results_page(shared_data, tmp_path, tiny_tasks, tiny_run, capsys):
    checkpoint = tiny_run.checkpoint
    code = main([
        "study", "compare", "--model", str(checkpoint), "--random-init", f"random:{checkpoint / 'encoder.yaml'}",
        "--tasks", "keyword_fsdd,speaker_fsdd", "--seeds", "2", "--data-root", str(shared_data("fsdd").parent),
        "--output", str(tmp_path / "compare"), "--cache-dir", str(tmp_path / "cache"), "--head", "max_epochs=2",
    ])  # fmt: skip
    assert code == 0
    page = (tmp_path / "compare" / "results.md").read_text()
    assert page.strip() in capsys.readouterr().out
    assert "| keyword_fsdd | accuracy |" in page and "| speaker_fsdd | accuracy |" in page
    assert "- pretraining: method `barlow_twins`" in page
    assert page.count("(aim: at least") == 2
    assert "Holm–Bonferroni over the 4 comparisons" in page and "pretrained once" in page
    # 2 seeds: the smallest Wilcoxon p is 2/2^2 = 0.5; 4 · 2/2^n <= 0.05 needs n = 8
    assert "Too few seeds: with 2 seeds the smallest two-sided Wilcoxon p-value is 2/2^2 = 0.5" in page
    assert "8 seeds are needed." in page
    assert (tmp_path / "compare" / "report.md").is_file()
