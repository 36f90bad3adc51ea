"""The Barlow Twins study's headline comparison: a pretrained model against its own
architecture with random weights and against a hand-crafted baseline.

Brima et al. (2024) judge a self-supervised speech model by whether it beats (1) the same
encoder left at its random initialisation, which isolates what pretraining taught it, and
(2) log-mel features, the classic input. ``speechssl study compare`` evaluates the three
upstreams on the same tasks and seeds with the downstream harness (its full report, box
plots and per-seed JSONs land in the same folder) and writes ``results.md``: each task's
mean with its 95% confidence interval (clipped to the metric's range), the paired differences
with Wilcoxon p-values and their Holm–Bonferroni correction over every comparison of the page,
and whether the model beats each reference on how many tasks, against a stated aim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from speechssl.downstream.evaluate import run_evaluation
from speechssl.downstream.plan import EvaluationPlan
from speechssl.downstream.row import Row
from speechssl.downstream.statistics import (
    group_by_seed,
    holm_bonferroni,
    paired_test,
    significance_floor_note,
    summarize,
)
from speechssl.downstream.tasks import get_task

SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class Aim:
    """What the model should achieve: beat ``random_init`` on at least ``over_random`` tasks
    and ``baseline`` on at least ``over_baseline`` (None: every task)."""

    over_random: int | None = None
    over_baseline: int | None = 2


@dataclass(frozen=True)
class Comparison:
    """One task's outcome: the model's advantage over a reference (positive: the model is
    better, whatever the metric's direction) and its paired-test p-value."""

    task: str
    reference: str
    advantage: float
    p_value: float

    @property
    def wins(self) -> bool:
        return self.advantage > 0


def compare(rows: list[Row], model: str, reference: str) -> list[Comparison]:
    """Paired comparison of ``model`` against ``reference`` on every task of ``rows`` (same seeds);
    each row's ``higher_is_better`` says which way is better."""
    by_seed = group_by_seed(rows)
    higher_is_better = {row.task: row.higher_is_better for row in rows}
    comparisons = []
    for task, upstreams in by_seed.items():
        ours, theirs = upstreams[model], upstreams[reference]
        seeds = sorted(set(ours) & set(theirs))
        sign = 1.0 if higher_is_better[task] else -1.0
        if len(seeds) > 1:
            test = paired_test([ours[s] for s in seeds], [theirs[s] for s in seeds])
            difference, p_value = test.mean_difference, test.p_value
        else:
            difference, p_value = ours[seeds[0]] - theirs[seeds[0]], float("nan")
        comparisons.append(Comparison(task, reference, sign * difference, p_value))
    return comparisons


def aim_verdict(wins: int, tasks: int, needed: int | None, reference: str) -> str:
    """One line: how many tasks the model wins against ``reference`` and whether that meets ``needed``."""
    needed = tasks if needed is None else needed
    met = "met" if wins >= needed else "NOT met"
    return f"beats {reference} on {wins} of {tasks} tasks (aim: at least {needed}): **{met}**"


def _pretraining_summary(spec: str) -> list[str]:
    """What a speechssl run or checkpoint was pretrained with, read from its ``config.yaml``."""
    path = Path(spec)
    configs = [path / "config.yaml", path.parent / "config.yaml"] if path.exists() else []
    config_file = next((c for c in configs if c.is_file()), None)
    if config_file is None:
        return []
    config = yaml.safe_load(config_file.read_text())
    data, train, encoder = config.get("data", {}), config.get("train", {}), config.get("encoder")
    if isinstance(encoder, dict):  # resolved configs hold the encoder's fields, not its preset name
        encoder = f"{encoder.get('frontend')}, dim {encoder.get('dim')}, {encoder.get('layers')} layers"
    return [
        f"- pretraining: method `{config.get('method')}`, encoder `{encoder}`, "
        f"data `{data.get('corpus')}` (`{data.get('root')}`), {train.get('max_steps')} updates "
        f"of at most {data.get('max_batch_seconds')} s of audio ({config_file})",
    ]


def run_comparison(
    model: str,
    random_init: str,
    baseline: str,
    output: str | Path,
    plan: EvaluationPlan,
    aim: Aim | None = None,
) -> Path:
    """Evaluate ``model``, ``random_init`` and ``baseline`` and write the results page.

    Args:
        model: the pretrained upstream (a run folder or checkpoint).
        random_init: the same architecture with random weights (``random:<preset|encoder.yaml>``).
        baseline: the hand-crafted features to beat (``fbank``).
        output: folder of ``results.md`` and the harness's full report.
        plan: tasks (the study's four: speaker, gender, emotion, keyword), seeds (at least 6
            for a Wilcoxon test to reach p < 0.05), data, cache and head settings.
        aim: what counts as success (default: beat random on every task, the baseline on 2).

    Returns:
        The path of ``results.md``.
    """
    aim = aim or Aim()
    output = Path(output)
    upstreams = [model, random_init, baseline]
    rows = run_evaluation(upstreams, plan, output)
    by_seed = group_by_seed(rows)
    metric = {row.task: row.metric for row in rows}
    versus = {reference: compare(rows, model, reference) for reference in (random_init, baseline)}
    tested = [c for outcomes in versus.values() for c in outcomes if not math.isnan(c.p_value)]
    holm = (
        dict(zip(tested, holm_bonferroni([c.p_value for c in tested], SIGNIFICANCE)[0], strict=True))
        if tested
        else {}
    )
    floor = significance_floor_note(len(plan.seeds), len(tested), SIGNIFICANCE) if tested else None

    lines = [
        "# Pretrained vs random-init vs baseline",
        "",
        f"- model: `{model}`",
        *_pretraining_summary(model),
        f"- random-init, same architecture: `{random_init}`",
        f"- baseline: `{baseline}`",
        f"- {len(plan.seeds)} seeds per task (head initialisation and data order; features fixed); "
        "mean ± std [95% confidence interval]",
        "",
        "| task | metric | model | random-init | baseline | model vs random-init (p, Holm p) "
        "| model vs baseline (p, Holm p) |",
        "|---|---|---|---|---|---|---|",
    ]
    for task in by_seed:
        cells = []
        for upstream in upstreams:
            s = summarize(list(by_seed[task][upstream].values()), bounds=get_task(task).metric.bounds)
            cells.append(f"{s.mean:.3f} ± {s.std:.3f} [{s.ci_low:.3f}, {s.ci_high:.3f}]")
        outcomes = [next(c for c in versus[reference] if c.task == task) for reference in versus]
        cells += [
            f"{'better' if c.wins else 'worse'} by {abs(c.advantage):.3f} "
            f"({c.p_value:.2g}, {holm.get(c, math.nan):.2g})"
            for c in outcomes
        ]
        lines.append(f"| {task} | {metric[task]} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"p: two-sided Wilcoxon signed-rank test over paired seeds (× folds where a task has folds); Holm p: corrected with Holm–Bonferroni "
        f"over the {len(tested)} comparisons of this page; differences with Holm p ≤ {SIGNIFICANCE} are "
        "unlikely to be seed noise. The model was pretrained once: the seeds vary the probe only, "
        "not the pretraining.",
        *([f"Too few seeds: {floor}"] if floor else []),
        "",
        "## Aim",
        "",
        "- the model "
        + aim_verdict(sum(c.wins for c in versus[random_init]), len(by_seed), aim.over_random, "random-init"),
        "- the model "
        + aim_verdict(sum(c.wins for c in versus[baseline]), len(by_seed), aim.over_baseline, "the baseline"),
        "",
        "Box plots of every seed, layer weights and the per-seed results: [report.md](report.md).",
        "",
    ]
    page = output / "results.md"
    page.write_text("\n".join(lines))
    return page


__all__ = ["Aim", "Comparison", "aim_verdict", "compare", "run_comparison"]
