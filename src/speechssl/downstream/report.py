"""Rendering results: the evaluation report (Markdown and HTML, figures) and plain-text probe tables.

:func:`write_report` turns the :class:`~speechssl.downstream.row.Row` objects of
:func:`~speechssl.downstream.evaluate.run_evaluation` into ``report.md`` and
``report.html``: where each upstream's weights come from (pretrained once: the seeds vary
the probe only), the table of each task's metric over seeds (mean ± std and 95% confidence
interval clipped to the metric's range, and the chance level; upstreams in rows when there
are many), secondary metrics, paired Wilcoxon tests against the first upstream with
Holm–Bonferroni correction per task and a note where the seed count cannot reach
significance, ASR example decodings, box plots with the chance level and the learned layer
weights as an upstream × layer heatmap.
:func:`format_probe_table` and :func:`format_accuracy_matrix` print ``probe`` results.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from html import escape
from pathlib import Path

import numpy as np

from speechssl.downstream.figures import plot_boxplots, plot_layer_weights
from speechssl.downstream.row import Row
from speechssl.downstream.statistics import (
    Summary,
    group_by_seed,
    holm_bonferroni,
    paired_test,
    significance_floor_note,
    summarize,
)
from speechssl.downstream.tasks import Task, UtteranceTask
from speechssl.upstream import weights_origin

SIGNIFICANCE = 0.05  # family-wise error rate of each task's paired tests
UPSTREAM_COLUMNS = 4  # more upstreams than this (and than tasks) go in rows


def _groups(rows: Sequence[dict]) -> dict[tuple[str, str, str | int], list[dict]]:
    groups: dict[tuple[str, str, str | int], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["upstream"], row["task"], row["layer"]), []).append(row)
    return groups


def format_summary(summary: Summary) -> str:
    """``mean ± std [low, high]``, or just the mean for a single seed."""
    if summary.n == 1 or math.isnan(summary.std):
        return f"{summary.mean:.3f}"
    return f"{summary.mean:.3f} ± {summary.std:.3f} [{summary.ci_low:.3f}, {summary.ci_high:.3f}]"


def format_probe_table(rows: Sequence[dict]) -> str:
    """One line per (upstream, task, layer): test accuracy over seeds (mean ± std [95% CI,
    clipped to [0, 1]]), the number of seeds, chance and classes."""
    header = (
        f"{'upstream':32s} {'task':12s} {'layer':>8s} {'accuracy over seeds':>32s} "
        f"{'seeds':>5s} {'chance':>7s} {'classes':>7s}"
    )
    lines = [header, "-" * len(header)]
    for (upstream, task, layer), group in _groups(rows).items():
        name = upstream if len(upstream) <= 32 else "…" + upstream[-31:]
        summary = summarize([r["value"] for r in group], bounds=UtteranceTask.metric.bounds)
        lines.append(
            f"{name:32s} {task:12s} {layer!s:>8s} {format_summary(summary):>32s} {summary.n:5d} "
            f"{group[0]['chance']:7.3f} {group[0]['num_classes']:7d}"
        )
    return "\n".join(lines)


def format_accuracy_matrix(rows: Sequence[dict], upstreams: Sequence[str], tasks: Sequence[str]) -> str:
    """Upstreams as rows, tasks as columns: mean test accuracy over seeds and the layer
    (``L<index>``, or ``Lw`` for the weighted sum), with a chance-level row."""
    groups = {(upstream, task): group for (upstream, task, _), group in _groups(rows).items()}
    width = max(12, *(len(t) + 2 for t in tasks))
    lines = [f"{'upstream':16s}" + "".join(f"{t:>{width}s}" for t in tasks)]
    lines.append("-" * len(lines[0]))
    for upstream in upstreams:
        cells = []
        for task in tasks:
            group = groups[(upstream, task)]
            layer = "w" if group[0]["layer"] == "weighted" else group[0]["layer"]
            mean = sum(r["value"] for r in group) / len(group)
            cells.append(f"{mean:.3f} (L{layer})".rjust(width))
        lines.append(f"{upstream:16s}" + "".join(cells))
    chance = [groups[(upstreams[0], t)][0]["chance"] for t in tasks]
    lines.append(f"{'chance':16s}" + "".join(f"{c:>{width}.3f}" for c in chance))
    return "\n".join(lines)


@dataclass
class ReportTable:
    """A titled table of strings with notes under it, rendered as Markdown and HTML alike."""

    title: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> list[str]:
        lines = [
            f"## {self.title}",
            "",
            "| " + " | ".join(self.header) + " |",
            "|---" * len(self.header) + "|",
        ]
        notes = [line for note in self.notes for line in (note, "")]
        return [*lines, *("| " + " | ".join(row) + " |" for row in self.rows), "", *notes]

    def html(self) -> list[str]:
        head = "".join(f"<th>{escape(cell)}</th>" for cell in self.header)
        body = ["<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in self.rows]
        notes = [f"<p>{escape(note)}</p>" for note in self.notes]
        return [
            f"<h2>{escape(self.title)}</h2>",
            '<div class="scroll"><table>',
            f"<tr>{head}</tr>",
            *body,
            "</table></div>",
            *notes,
        ]


def upstreams_as_rows(num_upstreams: int, num_tasks: int) -> bool:
    """Whether a task × upstream table puts the upstreams in rows: when there are more than
    :data:`UPSTREAM_COLUMNS` of them and more upstreams than tasks (a few upstreams are easier to
    compare side by side; 20 as columns overflow the page)."""
    return num_upstreams > UPSTREAM_COLUMNS and num_upstreams > num_tasks


def task_upstream_table(
    title: str,
    tasks: Sequence[tuple[str, ...]],
    upstreams: Sequence[str],
    cell: Callable[[str, str], str],
    task_header: Sequence[str] = ("task",),
    references: Sequence[tuple[str, Callable[[str], str]]] = (),
) -> ReportTable:
    """A table of ``cell(task, upstream)``, oriented by :func:`upstreams_as_rows`.

    Args:
        title: the table's heading.
        tasks: one tuple per task, its name first, then what ``task_header`` names
            (e.g. ``(name, metric, split)``); with upstreams as rows the tuple is joined
            into the column heading.
        upstreams: upstream names.
        cell: the text of one (task name, upstream) cell.
        task_header: headings of the tuple's fields.
        references: ``(name, text of a task)`` of each value every upstream is read against
            (the chance level, the ceiling): last rows beside the upstreams, or last columns.
    """
    if upstreams_as_rows(len(upstreams), len(tasks)):
        table = ReportTable(
            title,
            ["upstream", *(" · ".join(task) for task in tasks)],
            [[upstream, *(cell(task[0], upstream) for task in tasks)] for upstream in upstreams],
        )
        for name, text in references:
            table.rows.append([name, *(text(task[0]) for task in tasks)])
        return table
    return ReportTable(
        title,
        [*task_header, *upstreams, *(name for name, _ in references)],
        [
            [
                *task,
                *(cell(task[0], upstream) for upstream in upstreams),
                *(text(task[0]) for _, text in references),
            ]
            for task in tasks
        ],
    )


def task_chance(rows: Sequence[Row], task: Task) -> float | None:
    """The chance level of ``task``: the mean of its rows' ``chance`` extras where the rows carry
    one (it depends on the labels), else the metric's fixed :attr:`~speechssl.downstream.row.Metric.chance`."""
    values = [r.extras["chance"] for r in rows if r.task == task.name and "chance" in r.extras]
    return float(np.mean(values)) if values else task.metric.chance


def task_ceiling(rows: Sequence[Row], task: Task) -> float | None:
    """The ceiling reference of ``task`` (log-mel means and an MLP head, trained beside each
    upstream's head): the mean of its rows' ``ceiling`` extras, None where no row has one."""
    values = [r.extras["ceiling"] for r in rows if r.task == task.name and "ceiling" in r.extras]
    return float(np.mean(values)) if values else None


def saturated(summaries: Sequence[Summary], ceiling: float) -> bool:
    """Whether ``ceiling`` lies within every upstream's confidence interval: the task cannot
    tell any of them from the log-mel reference (needs an interval, i.e. 2 seeds or more, for
    each). Upstreams clear above a ceiling that a condition shift broke are not saturated."""
    return bool(summaries) and all(summary.ci_low <= ceiling <= summary.ci_high for summary in summaries)


def paired_tests_table(
    tasks: Sequence[Task], upstreams: Sequence[str], by_seed: Mapping[str, Mapping[str, Mapping[int, float]]]
) -> ReportTable:
    """Wilcoxon signed-rank tests of every upstream against the first, Holm-corrected per task,
    with a note where the seed count cannot reach :data:`SIGNIFICANCE` at all."""
    paired, notes = [], []
    for task in tasks:
        reference = by_seed[task.name][upstreams[0]]
        tested, untested = [], []
        for upstream in upstreams[1:]:
            other = by_seed[task.name][upstream]
            common = sorted(set(reference) & set(other))
            if len(common) < 2:
                difference = other[common[0]] - reference[common[0]] if common else float("nan")
                untested.append(
                    [task.name, upstream, f"{difference:+.3f}", str(len(common)), "n/a", "n/a", "n/a"]
                )
                continue
            test = paired_test([other[s] for s in common], [reference[s] for s in common])
            tested.append((upstream, test))
        if tested:
            adjusted, rejected = holm_bonferroni([test.p_value for _, test in tested], SIGNIFICANCE)
            for (upstream, test), holm, significant in zip(tested, adjusted, rejected, strict=True):
                paired.append(
                    [task.name, upstream, f"{test.mean_difference:+.3f}", str(test.n), f"{test.p_value:.3g}",
                     f"{holm:.3g}", "yes" if significant else "no"]
                )  # fmt: skip
            note = significance_floor_note(min(test.n for _, test in tested), len(tested), SIGNIFICANCE)
            if note is not None:
                notes.append(f"{task.name}: {note}")
        paired += untested
    return ReportTable(
        f"Paired tests against {upstreams[0]} (two-sided Wilcoxon signed-rank over seeds; "
        f"Holm–Bonferroni over each task's comparisons, significant: Holm p ≤ {SIGNIFICANCE})",
        ["task", "upstream", "mean difference", "seeds", "p-value", "Holm p-value", "significant"],
        paired,
        list(dict.fromkeys(notes)),
    )


def report_tables(rows: Sequence[Row], tasks: Sequence[Task], upstreams: Sequence[str]) -> list[ReportTable]:
    """The report's tables: main metric per task, secondary metrics, paired tests, example decodings."""
    by_seed = group_by_seed(rows)
    bounds = {task.name: task.metric.bounds for task in tasks}
    chance = {task.name: task_chance(rows, task) for task in tasks}
    ceiling = {task.name: task_ceiling(rows, task) for task in tasks}
    summaries = {
        task.name: {
            u: summarize(list(by_seed[task.name][u].values()), bounds=bounds[task.name]) for u in upstreams
        }
        for task in tasks
    }
    references = [("chance", lambda task: "n/a" if chance[task] is None else f"{chance[task]:.3f}")]
    if any(level is not None for level in ceiling.values()):
        references.append(
            ("ceiling", lambda task: "n/a" if ceiling[task] is None else f"{ceiling[task]:.3f}")
        )
    results = task_upstream_table(
        "Results (mean ± std [95% confidence interval, clipped to the metric's range] over seeds, × folds where a task has folds)",
        [(task.name, task.metric.title, task.split_rule) for task in tasks],
        upstreams,
        lambda task, upstream: format_summary(summaries[task][upstream]),
        ("task", "metric", "split"),
        references,
    )
    if len(references) > 1:
        results.notes.append("ceiling: 80 log-mel means and an MLP head on the same folds and seeds.")
    results.notes += [
        f"{name}: saturated, the ceiling {level:.3f} lies within every upstream's 95% CI; it cannot tell them apart."
        for name, level in ceiling.items()
        if level is not None and saturated(list(summaries[name].values()), level)
    ]
    tables = [results]
    secondary = {task.name: task.metric for task in tasks if task.metric.secondary is not None}
    if secondary:
        tables.append(
            task_upstream_table(
                "Secondary metrics",
                [(name, metric.secondary[1]) for name, metric in secondary.items()],
                upstreams,
                lambda task, upstream: format_summary(
                    summarize(
                        [
                            r.extras[secondary[task].secondary[0]]
                            for r in rows
                            if r.task == task and r.upstream == upstream
                        ],
                        bounds=secondary[task].secondary_bounds,
                    )
                ),
                ("task", "metric"),
            )
        )
    if len(upstreams) > 1:
        tables.append(paired_tests_table(tasks, upstreams, by_seed))
    examples = [
        [r.task, r.upstream, reference, hypothesis]
        for r in rows
        if r.seed == min(by_seed[r.task][r.upstream])
        for reference, hypothesis in r.extras.get("examples", [])[:2]
    ]
    if examples:
        tables.append(
            ReportTable(
                "ASR example decodings (first seed)",
                ["task", "upstream", "reference", "greedy CTC"],
                examples,
            )
        )
    return tables


def weights_table(specs: Sequence[str], labels: Mapping[str, str]) -> ReportTable:
    """Where each upstream's weights come from (:func:`~speechssl.upstream.weights_origin`), with
    the note that the seeds vary the probe only."""
    return ReportTable(
        "Upstreams",
        ["upstream", "weights"],
        [[labels.get(spec, spec), weights_origin(spec)] for spec in specs],
        [
            "Every upstream's weights are the same in every seed: a model pretrained once is one "
            "pretraining run, and the seeds vary the probe only (see the seed meaning above), so the "
            "intervals and tests measure the probe's variance, not the pretraining's."
        ],
    )


def write_report(
    rows: Sequence[Row],
    tasks: Sequence[Task],
    upstreams: Sequence[str],
    output: Path,
    labels: Mapping[str, str] | None = None,
    context: Sequence[ReportTable] = (),
) -> Path:
    """``report.md`` and ``report.html`` (the same tables and figures), ``boxplots.png`` and
    ``layer_weights_<task>.png`` in ``output``; upstreams appear under their ``labels`` where given, and
    the ``context`` tables come before the results. Returns the Markdown report's path."""
    labels = labels or {}
    origins = weights_table(upstreams, labels)
    rows = [replace(row, upstream=labels.get(row.upstream, row.upstream)) for row in rows]
    upstreams = [labels.get(upstream, upstream) for upstream in upstreams]
    by_seed = group_by_seed(rows)
    chance = {task.name: task_chance(rows, task) for task in tasks}
    plot_boxplots(
        {t.name: {u: list(by_seed[t.name][u].values()) for u in upstreams} for t in tasks},
        output / "boxplots.png",
        {t.name: t.metric.title for t in tasks},
        {name: level for name, level in chance.items() if level is not None},
    )
    figures = [("box plots: every seed of every upstream, chance level dashed", "boxplots.png")]
    for task in tasks:
        weights = {}
        for upstream in upstreams:
            learned = [r.layer_weights for r in rows if r.upstream == upstream and r.task == task.name]
            if learned and all(w is not None and len(w) > 1 for w in learned):
                weights[upstream] = np.mean(learned, axis=0).tolist()
        if weights:
            plot_layer_weights(weights, output / f"layer_weights_{task.name}.png", task.name)
            figures.append((f"learnt layer weights, {task.name}", f"layer_weights_{task.name}.png"))

    seeds = len({row.seed for row in rows})
    seed_note = " ".join(dict.fromkeys(type(task).seed_meaning for task in tasks))
    intro = f"{len(upstreams)} upstreams, {len(tasks)} tasks, {seeds} seeds. {seed_note}"
    tables = [*context, origins, *report_tables(rows, tasks, upstreams)]
    markdown = ["# Downstream evaluation", "", intro, ""]
    html = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8"><title>speechssl downstream evaluation</title>',
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}"
        ".scroll{overflow-x:auto;margin-bottom:1em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}img{max-width:100%}</style>",
        "</head><body>",
        "<h1>Downstream evaluation</h1>",
        f"<p>{escape(intro)}</p>",
    ]
    for table in tables:
        markdown += table.markdown()
        html += table.html()
    markdown += ["## Figures", ""]
    html.append("<h2>Figures</h2>")
    for caption, file in figures:
        markdown += [f"![{caption}]({file})", ""]
        html.append(
            f'<figure><img src="{escape(file)}" alt="{escape(caption)}"><figcaption>{escape(caption)}</figcaption></figure>'
        )
    html.append("</body></html>")
    (output / "report.html").write_text("\n".join(html) + "\n")
    report = output / "report.md"
    report.write_text("\n".join(markdown))
    return report
