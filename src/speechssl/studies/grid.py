"""Pretrain one model per named variant of a base config, then evaluate them side by side.

The shared engine of the studies' comparisons (loss-variant ablations, the pretraining-data
study): each variant is a resolved, typed pretraining config; it is pretrained into
``runs/<variant>`` (resuming, so a re-run only finishes what is missing) and its checkpoint
is evaluated with
:func:`~speechssl.downstream.evaluate.run_evaluation` on the same tasks and seeds as the
baselines, into one report.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from speechssl.config import to_dict
from speechssl.downstream.evaluate import run_evaluation
from speechssl.downstream.plan import EvaluationPlan
from speechssl.downstream.report import ReportTable
from speechssl.downstream.row import Row
from speechssl.progress import Progress
from speechssl.train import PretrainConfig, pretrain
from speechssl.train.logging import read_metrics

# logged values that describe the run's pace or schedule, not what it learnt
BOOKKEEPING = {"step", "epoch", "lr", "grad_norm", "audio_seconds_per_second", "elapsed_s"}


@dataclass
class GridResult:
    """What a grid run produced.

    Attributes:
        checkpoints: variant name -> its final checkpoint folder.
        rows: every per-seed evaluation row (``upstream`` is the upstream spec).
        report: the evaluation report (Markdown; ``report.html`` beside it).
    """

    checkpoints: dict[str, Path]
    rows: list[Row]
    report: Path


def run_pretraining_grid(
    variants: Mapping[str, PretrainConfig],
    output: str | Path,
    plan: EvaluationPlan,
    context: Sequence[ReportTable] = (),
) -> GridResult:
    """Pretrain every variant, then evaluate ``plan.baselines`` and the variants with ``plan``.

    Args:
        variants: variant name -> its pretraining config.
        output: study folder: ``runs/<variant>/`` pretraining runs, ``variants.json``, and
            the evaluation report (``report.md``, ``report.html``, per-seed JSONs).
        plan: the evaluation (tasks, seeds, data, cache, head settings, and the baselines
            evaluated beside the variants, e.g. ``fbank``).
        context: extra tables for the report (the grid adds the runs' final training metrics).

    Raises:
        ValueError: no variant, or a variant name that is not a plain folder name.
    """
    if not variants:
        raise ValueError("variants: expected at least one variant, found none")
    for name in variants:
        if not name or any(c in name for c in "/\\ ") or name.startswith("."):
            raise ValueError(
                f"variant name: expected a folder name without '/', '\\\\' or spaces, found {name!r}"
            )
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "variants.json").write_text(
        json.dumps({name: {"config": to_dict(config)} for name, config in variants.items()}, indent=2)
    )
    checkpoints = {}
    with Progress(len(variants), "study: pretraining variants", "variants") as progress:
        for name, config in variants.items():
            print(f"pretraining variant {name} ({config.method})")
            checkpoints[name] = pretrain(config, output / "runs" / name, resume=True).checkpoint
            progress.update()
    specs = [*plan.baselines, *(str(checkpoints[name]) for name in variants)]
    labels = {str(checkpoints[name]): name for name in variants}
    runs = {name: output / "runs" / name for name in variants}
    rows = run_evaluation(specs, plan, output, labels, [*context, final_metrics_table(runs)])
    return GridResult(checkpoints, rows, output / "report.md")


def final_metrics_table(runs: Mapping[str, Path]) -> ReportTable:
    """Each run's last logged training values (loss terms, collapse monitor, ...), one row per run."""
    last = {}
    for name, run_dir in runs.items():
        records = [record for record in read_metrics(run_dir) if "loss" in record]
        last[name] = records[-1] if records else {}
    keys = sorted({key for record in last.values() for key in record} - BOOKKEEPING - {"loss"})
    return ReportTable(
        "Pretraining: last logged training values",
        ["variant", "updates", "loss", *keys],
        [
            [name, str(record.get("step", "")), *(_cell(record.get(key)) for key in ["loss", *keys])]
            for name, record in last.items()
        ],
    )


def _cell(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else "" if value is None else str(value)


__all__ = ["GridResult", "final_metrics_table", "run_pretraining_grid"]
