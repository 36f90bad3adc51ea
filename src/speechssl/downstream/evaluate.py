"""Multi-seed evaluation of upstreams on registered utterance tasks, with a report.

For every (upstream, task), frozen features are pooled once through the
:class:`~speechssl.downstream.cache.FeatureCache`; then, for every seed, a head is trained
(initialisation and data order from the seed) on each of the task's folds and its test
accuracy averaged over folds. One JSON file per (upstream, task, seed) is written, and a
report folder gathers the table (mean ± std and 95% confidence interval over seeds),
paired significance tests, box plots and the learned layer weights.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from html import escape
from pathlib import Path

import numpy as np

from speechssl.analysis.results import plot_boxplots, plot_layer_weights
from speechssl.data import Manifest
from speechssl.downstream.asr import CTCTrainingConfig, train_ctc
from speechssl.downstream.cache import FeatureCache, FrameFeatures, PooledFeatures
from speechssl.downstream.query_by_example import evaluate_query_by_example
from speechssl.downstream.statistics import group_by_seed, paired_test, summarize
from speechssl.downstream.tasks import (
    ASRTask,
    QueryByExampleTask,
    Task,
    UtteranceTask,
    VerificationTask,
    get_task,
)
from speechssl.downstream.training import (
    ClassifierResult,
    HeadTrainingConfig,
    train_frame_classifier,
    train_utterance_classifier,
)
from speechssl.downstream.verification import evaluate_verification
from speechssl.storage import atomic_write_json
from speechssl.upstream import build_upstream
from speechssl.upstream.base import Upstream

METRIC_NAMES = {
    "accuracy": "test accuracy",
    "eer": "test EER (lower is better)",
    "map": "test MAP (query-by-example)",
    "wer": "test WER (lower is better)",
}


def safe_name(text: str) -> str:
    """``text`` (e.g. an upstream spec or a path) as a folder name: ``[A-Za-z0-9_.-]``, at most 80 characters."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[-80:]


def fold_rows(fold: Manifest, label: str) -> tuple[dict[str, list[int]], dict[str, list[str]]]:
    """Per-split row indices (manifest order) and labels of one fold."""
    labels = np.asarray(fold.column(label), dtype=object)
    rows = fold.split_rows()
    return rows, {split: [str(v) for v in labels[indices]] for split, indices in rows.items()}


def evaluate_task(
    features: PooledFeatures | FrameFeatures,
    folds: Sequence[Manifest],
    task: UtteranceTask,
    seeds: Sequence[int],
    config: HeadTrainingConfig,
) -> list[dict]:
    """One row per seed: test accuracy averaged over folds, plus validation accuracy and layer weights.

    ``features`` are pooled statistics for ``config.pooling == "mean"`` and frames for
    ``"attentive"``, of the corpus manifest the folds re-split (same row order).
    """
    splits = [fold_rows(fold, task.label) for fold in folds]

    def train(rows: dict[str, list[int]], labels: dict[str, list[str]], seed: int) -> ClassifierResult:
        if isinstance(features, FrameFeatures):
            return train_frame_classifier(features, rows, labels, config, seed)
        pooled = {split: np.asarray(features.mean[:, r, :], dtype=np.float32) for split, r in rows.items()}
        return train_utterance_classifier(pooled, labels, config, seed)

    rows = []
    for seed in seeds:
        started = time.perf_counter()
        results = [train(fold, labels, seed) for fold, labels in splits]
        weights = [r.layer_weights for r in results if r.layer_weights is not None]
        rows.append(
            {
                "task": task.name,
                "seed": seed,
                "metric": "accuracy",
                "value": float(np.mean([r.test_accuracy for r in results])),
                "valid_accuracy": float(np.mean([r.valid_accuracy for r in results])),
                "fold_values": [r.test_accuracy for r in results],
                "learning_rate": results[0].lr,
                "layer_weights": np.mean(weights, axis=0).tolist() if weights else None,
                "train_seconds": time.perf_counter() - started,
            }
        )
    return rows


def evaluate_verification_task(
    pooled: PooledFeatures, manifest: Manifest, task: VerificationTask, seeds: Sequence[int], trials_dir: Path
) -> list[dict]:
    """One row per seed: test-speaker EER (lower is better), with minDCF and the layer chosen on dev."""
    rows = []
    for seed in seeds:
        result = evaluate_verification(pooled, manifest, seed, trials_dir)
        rows.append(
            {
                "task": task.name,
                "seed": seed,
                "metric": "eer",
                "value": result.eer,
                "min_dcf": result.min_dcf,
                "layer": result.layer,
                "dev_eer": result.dev_eer,
                "num_trials": result.num_trials,
                "layer_weights": None,
            }
        )
    return rows


def evaluate_asr_task(
    frames: FrameFeatures,
    manifest: Manifest,
    task: ASRTask,
    seeds: Sequence[int],
    config: CTCTrainingConfig | None = None,
) -> list[dict]:
    """One row per seed: test WER (lower is better) of a CTC head, with CER and example decodings."""
    rows = manifest.split_rows()
    texts = [str(text) for text in manifest.column(task.label)]
    results = []
    for seed in seeds:
        result = train_ctc(frames, rows, texts, config or CTCTrainingConfig(), seed)
        results.append(
            {
                "task": task.name,
                "seed": seed,
                "metric": "wer",
                "value": result.wer,
                "cer": result.cer,
                "valid_cer": result.valid_cer,
                "best_epoch": result.best_epoch,
                "epochs_run": result.epochs_run,
                "examples": result.examples,
                "layer_weights": result.layer_weights,
            }
        )
    return results


def evaluate_query_by_example_task(
    frames: FrameFeatures, manifest: Manifest, task: QueryByExampleTask, seeds: Sequence[int]
) -> list[dict]:
    """One row per seed: test-speaker MAP (higher is better), with MTWV and the layer chosen on dev."""
    rows = []
    for seed in seeds:
        result = evaluate_query_by_example(frames, manifest, task.label, seed)
        rows.append(
            {
                "task": task.name,
                "seed": seed,
                "metric": "map",
                "value": result.map,
                "mtwv": result.mtwv,
                "layer": result.layer,
                "dev_map": result.dev_map,
                "num_queries": result.num_queries,
                "num_documents": result.num_documents,
                "layer_weights": None,
            }
        )
    return rows


def _settings(task: Task, config: HeadTrainingConfig, asr_config: CTCTrainingConfig) -> dict | None:
    """The trained head's settings recorded with a task's rows (``None``: nothing is trained)."""
    if isinstance(task, ASRTask):
        return asdict(asr_config)
    if isinstance(task, UtteranceTask):
        return asdict(config)
    return None


def _finished(path: Path, provenance: dict) -> dict | None:
    """The row saved at ``path`` if it was computed from the same upstream weights, data and settings."""
    if not path.is_file():
        return None
    row = json.loads(path.read_text())
    return row if all(row.get(key) == value for key, value in provenance.items()) else None


def run_evaluation(
    upstreams: Sequence[str],
    tasks: Sequence[str],
    data_root: str | Path,
    seeds: Sequence[int],
    output: str | Path,
    cache: FeatureCache,
    config: HeadTrainingConfig | None = None,
    asr_config: CTCTrainingConfig | None = None,
    labels: Mapping[str, str] | None = None,
    context: Sequence[ReportTable] = (),
) -> list[dict]:
    """Evaluate every upstream spec on every task over ``seeds``; write per-seed JSONs and a report.

    A run is resumable: a seed whose JSON already holds a result of the same upstream weights
    (fingerprint), corpus manifest (digest) and head settings is read back, not recomputed,
    so an interrupted benchmark restarted with the same command only computes what is missing.

    Args:
        upstreams: upstream specs (see :func:`speechssl.upstream.build_upstream`).
        tasks: registered task names.
        data_root: folder holding the corpora.
        seeds: the seeds every task runs with.
        output: report folder; per-seed rows go to ``runs/<upstream>/<task>/seed_<seed>.json``.
        cache: the feature cache.
        config: head training of utterance tasks.
        asr_config: CTC head training of ASR tasks.
        labels: display names of some upstream specs in the report (e.g. a variant's name
            instead of its checkpoint path); rows keep the spec.
        context: tables that describe the upstreams (e.g. how a study pretrained them),
            shown in the report before the results.

    Returns:
        every per-seed row (``upstream``, ``task``, ``seed``, ``value``, …).
    """
    config = config or HeadTrainingConfig()
    asr_config = asr_config or CTCTrainingConfig()
    output = Path(output)
    registry = [get_task(name) for name in tasks]
    manifests = {task.name: task.load(data_root) for task in registry}
    folds = {
        task.name: task.folds(manifests[task.name]) for task in registry if isinstance(task, UtteranceTask)
    }
    rows: list[dict] = []
    for spec in upstreams:
        upstream = build_upstream(spec)
        for task in registry:
            manifest = manifests[task.name]
            provenance = {
                "upstream": spec,
                "upstream_fingerprint": upstream.fingerprint(),
                "data_digest": manifest.digest(),
                "head": _settings(task, config, asr_config),
            }
            folder = output / "runs" / safe_name(spec) / task.name
            done = {seed: _finished(folder / f"seed_{seed}.json", provenance) for seed in seeds}
            todo = [seed for seed in seeds if done[seed] is None]
            task_rows = (
                _evaluate(
                    task, upstream, manifest, folds.get(task.name), todo, cache, config, asr_config, output
                )
                if todo
                else []
            )
            for row in task_rows:
                done[row["seed"]] = row = {**provenance, **row}
                atomic_write_json(folder / f"seed_{row['seed']}.json", row)
            rows += [done[seed] for seed in seeds]
    write_report(rows, registry, upstreams, output, labels, context)
    return rows


def _evaluate(
    task: Task,
    upstream: Upstream,
    manifest: Manifest,
    folds: Sequence[Manifest] | None,
    seeds: Sequence[int],
    cache: FeatureCache,
    config: HeadTrainingConfig,
    asr_config: CTCTrainingConfig,
    output: Path,
) -> Iterator[dict]:
    """The row of each of ``seeds`` for one (upstream, task), as soon as it is computed."""
    if isinstance(task, ASRTask):
        frames = cache.frames(upstream, manifest)
        for seed in seeds:
            yield from evaluate_asr_task(frames, manifest, task, [seed], asr_config)
    elif isinstance(task, QueryByExampleTask):
        frames = cache.frames(upstream, manifest)
        for seed in seeds:
            yield from evaluate_query_by_example_task(frames, manifest, task, [seed])
    elif isinstance(task, VerificationTask):
        pooled = cache.pooled(upstream, manifest)
        for seed in seeds:
            yield from evaluate_verification_task(
                pooled, manifest, task, [seed], output / "trials" / task.name
            )
    else:
        attentive = config.pooling == "attentive"
        features = cache.frames(upstream, manifest) if attentive else cache.pooled(upstream, manifest)
        for seed in seeds:
            yield from evaluate_task(features, folds, task, [seed], config)


SECONDARY_METRICS = {"eer": ("min_dcf", "minDCF"), "map": ("mtwv", "MTWV"), "wer": ("cer", "CER")}
SEED_NOTE = (
    "Classification: the seed sets head initialisation and data order (features are fixed). "
    "Verification: the seed sets the dev/test speaker partition and the non-target trials. "
    "Query-by-example: the seed sets the speaker halves, the queries and the search sets. "
    "ASR: the seed sets head initialisation and batch order."
)


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


def _summary_cell(values: Sequence[float]) -> str:
    s = summarize(values)
    return f"{s.mean:.3f} ± {s.std:.3f} [{s.ci_low:.3f}, {s.ci_high:.3f}]" if s.n > 1 else f"{s.mean:.3f}"


def report_tables(rows: list[dict], tasks: Sequence[Task], upstreams: Sequence[str]) -> list[ReportTable]:
    """The report's tables: main metric per task, secondary metrics, paired tests, example decodings."""
    by_seed = group_by_seed(rows)
    metric_of = {r["task"]: r["metric"] for r in rows}
    tables = [
        ReportTable(
            "Results (mean ± std [95% confidence interval] over seeds)",
            ["task", "metric", "split", *upstreams],
            [
                [task.name, METRIC_NAMES[metric_of[task.name]], task.split_rule]
                + [_summary_cell(list(by_seed[task.name][u].values())) for u in upstreams]
                for task in tasks
            ],
        )
    ]
    secondary = []
    for task in tasks:
        if metric_of[task.name] in SECONDARY_METRICS:
            key, name = SECONDARY_METRICS[metric_of[task.name]]
            cells = [
                _summary_cell([r[key] for r in rows if r["task"] == task.name and r["upstream"] == u])
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
        [r["task"], r["upstream"], reference, hypothesis]
        for r in rows
        if r["metric"] == "wer" and r["seed"] == min(by_seed[r["task"]][r["upstream"]])
        for reference, hypothesis in r["examples"][:2]
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
    rows: list[dict],
    tasks: Sequence[Task],
    upstreams: Sequence[str],
    output: Path,
    labels: Mapping[str, str] | None = None,
    context: Sequence[ReportTable] = (),
) -> Path:
    """``report.md`` and ``report.html`` (the same tables and figures), ``boxplots.png`` and
    ``layer_weights_<task>.png``; upstreams appear under their ``labels`` where given, and
    the ``context`` tables come before the results. Returns the Markdown report's path."""
    labels = labels or {}
    rows = [{**row, "upstream": labels.get(row["upstream"], row["upstream"])} for row in rows]
    upstreams = [labels.get(upstream, upstream) for upstream in upstreams]
    by_seed = group_by_seed(rows)
    plot_boxplots(
        {t.name: {u: list(by_seed[t.name][u].values()) for u in upstreams} for t in tasks},
        output / "boxplots.png",
        {r["task"]: METRIC_NAMES[r["metric"]] for r in rows},
    )
    figures = [("box plots: every seed of every upstream", "boxplots.png")]
    for task in tasks:
        weights = {}
        for upstream in upstreams:
            learned = [
                r["layer_weights"] for r in rows if r["upstream"] == upstream and r["task"] == task.name
            ]
            if learned and all(w is not None and len(w) > 1 for w in learned):
                weights[upstream] = np.mean(learned, axis=0).tolist()
        if weights:
            plot_layer_weights(weights, output / f"layer_weights_{task.name}.png")
            figures.append((f"learnt layer weights, {task.name}", f"layer_weights_{task.name}.png"))

    seeds = len(next(iter(by_seed.values()))[upstreams[0]])
    intro = f"{len(upstreams)} upstreams, {len(tasks)} tasks, {seeds} seeds. {SEED_NOTE}"
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
