"""Rendering results: the evaluation report (Markdown and HTML, figures) and plain-text probe tables.

:func:`write_report` turns the :class:`~speechssl.downstream.row.Row` objects of
:func:`~speechssl.downstream.evaluate.run_evaluation` into ``report.md`` and
``report.html``: the table of each task's metric over seeds (mean ± std and 95%
confidence interval), secondary metrics, paired significance tests against the first
upstream, ASR example decodings, box plots and the learned layer weights.
:func:`format_probe_table` and :func:`format_accuracy_matrix` print ``probe`` results.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from html import escape
from pathlib import Path

import numpy as np

from speechssl.downstream.figures import plot_boxplots, plot_layer_weights
from speechssl.downstream.row import Row
from speechssl.downstream.statistics import Summary, group_by_seed, paired_test, summarize
from speechssl.downstream.tasks import Task


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
    """One line per (upstream, task, layer): test accuracy over seeds (mean ± std [95% CI]),
    the number of seeds, chance and classes."""
    header = (
        f"{'upstream':32s} {'task':12s} {'layer':>8s} {'accuracy over seeds':>32s} "
        f"{'seeds':>5s} {'chance':>7s} {'classes':>7s}"
    )
    lines = [header, "-" * len(header)]
    for (upstream, task, layer), group in _groups(rows).items():
        name = upstream if len(upstream) <= 32 else "…" + upstream[-31:]
        summary = summarize([r["value"] for r in group])
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
    """A titled table of strings, rendered as Markdown and HTML alike."""

    title: str
    header: list[str]
    rows: list[list[str]]

    def markdown(self) -> list[str]:
        lines = [
            f"## {self.title}",
            "",
            "| " + " | ".join(self.header) + " |",
            "|---" * len(self.header) + "|",
        ]
        return [*lines, *("| " + " | ".join(row) + " |" for row in self.rows), ""]

    def html(self) -> list[str]:
        head = "".join(f"<th>{escape(cell)}</th>" for cell in self.header)
        body = ["<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in self.rows]
        return [f"<h2>{escape(self.title)}</h2>", "<table>", f"<tr>{head}</tr>", *body, "</table>"]


def report_tables(rows: Sequence[Row], tasks: Sequence[Task], upstreams: Sequence[str]) -> list[ReportTable]:
    """The report's tables: main metric per task, secondary metrics, paired tests, example decodings."""
    by_seed = group_by_seed(rows)
    tables = [
        ReportTable(
            "Results (mean ± std [95% confidence interval] over seeds, × folds where a task has folds)",
            ["task", "metric", "split", *upstreams],
            [
                [task.name, task.metric.title, task.split_rule]
                + [format_summary(summarize(list(by_seed[task.name][u].values()))) for u in upstreams]
                for task in tasks
            ],
        )
    ]
    secondary = []
    for task in tasks:
        if task.metric.secondary is not None:
            key, name = task.metric.secondary
            cells = [
                format_summary(
                    summarize([r.extras[key] for r in rows if r.task == task.name and r.upstream == u])
                )
                for u in upstreams
            ]
            secondary.append([task.name, name, *cells])
    if secondary:
        tables.append(ReportTable("Secondary metrics", ["task", "metric", *upstreams], secondary))
    if len(upstreams) > 1:
        paired = []
        for task in tasks:
            reference = by_seed[task.name][upstreams[0]]
            for upstream in upstreams[1:]:
                other = by_seed[task.name][upstream]
                common = sorted(set(reference) & set(other))
                if len(common) < 2:
                    difference = other[common[0]] - reference[common[0]] if common else float("nan")
                    paired.append([task.name, upstream, f"{difference:+.3f}", "n/a (one seed)"])
                    continue
                test = paired_test([other[s] for s in common], [reference[s] for s in common])
                paired.append([task.name, upstream, f"{test.mean_difference:+.3f}", f"{test.p_value:.3g}"])
        tables.append(
            ReportTable(
                f"Paired tests against {upstreams[0]} (Wilcoxon signed-rank over seeds)",
                ["task", "upstream", "mean difference", "p-value"],
                paired,
            )
        )
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
    rows = [replace(row, upstream=labels.get(row.upstream, row.upstream)) for row in rows]
    upstreams = [labels.get(upstream, upstream) for upstream in upstreams]
    by_seed = group_by_seed(rows)
    plot_boxplots(
        {t.name: {u: list(by_seed[t.name][u].values()) for u in upstreams} for t in tasks},
        output / "boxplots.png",
        {t.name: t.metric.title for t in tasks},
    )
    figures = [("box plots: every seed of every upstream", "boxplots.png")]
    for task in tasks:
        weights = {}
        for upstream in upstreams:
            learned = [r.layer_weights for r in rows if r.upstream == upstream and r.task == task.name]
            if learned and all(w is not None and len(w) > 1 for w in learned):
                weights[upstream] = np.mean(learned, axis=0).tolist()
        if weights:
            plot_layer_weights(weights, output / f"layer_weights_{task.name}.png")
            figures.append((f"learnt layer weights, {task.name}", f"layer_weights_{task.name}.png"))

    seeds = len({row.seed for row in rows})
    seed_note = " ".join(dict.fromkeys(type(task).seed_meaning for task in tasks))
    intro = f"{len(upstreams)} upstreams, {len(tasks)} tasks, {seeds} seeds. {seed_note}"
    tables = [*context, *report_tables(rows, tasks, upstreams)]
    markdown = ["# Downstream evaluation", "", intro, ""]
    html = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8"><title>speechssl downstream evaluation</title>',
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}"
        "table{border-collapse:collapse;margin-bottom:1em}"
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
