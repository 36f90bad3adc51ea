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
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from speechssl.analysis.results import plot_boxplots, plot_layer_weights
from speechssl.data import Manifest
from speechssl.downstream.asr import CTCTrainingConfig, train_ctc
from speechssl.downstream.cache import FeatureCache, FrameFeatures, PooledFeatures
from speechssl.downstream.query_by_example import evaluate_query_by_example
from speechssl.downstream.statistics import group_by_seed, paired_test, results_table
from speechssl.downstream.tasks import (
    ASRTask,
    QueryByExampleTask,
    Task,
    UtteranceTask,
    VerificationTask,
    get_task,
)
from speechssl.downstream.training import HeadTrainingConfig, train_utterance_classifier
from speechssl.downstream.verification import evaluate_verification
from speechssl.upstream import build_upstream

METRIC_NAMES = {
    "accuracy": "test accuracy",
    "eer": "test EER (lower is better)",
    "map": "test MAP (query-by-example)",
    "wer": "test WER (lower is better)",
}


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[-80:]


def fold_inputs(
    pooled: PooledFeatures, fold: Manifest, label: str
) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Per-split ``(layers, utterances, dim)`` features and labels of one fold, rows in manifest order."""
    splits = np.asarray(fold.column("split"))
    labels = np.asarray(fold.column(label), dtype=object)
    features, targets = {}, {}
    for split in ("train", "valid", "test"):
        rows = np.flatnonzero(splits == split)
        features[split] = np.asarray(pooled.mean[:, rows, :], dtype=np.float32)
        targets[split] = [str(v) for v in labels[rows]]
    return features, targets


def evaluate_task(
    pooled: PooledFeatures,
    folds: Sequence[Manifest],
    task: UtteranceTask,
    seeds: Sequence[int],
    config: HeadTrainingConfig,
) -> list[dict]:
    """One row per seed: test accuracy averaged over folds, plus validation accuracy and layer weights."""
    inputs = [fold_inputs(pooled, fold, task.label) for fold in folds]
    rows = []
    for seed in seeds:
        started = time.perf_counter()
        results = [train_utterance_classifier(features, labels, config, seed) for features, labels in inputs]
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
    split = np.asarray(manifest.column("split"))
    rows = {name: np.flatnonzero(split == name).tolist() for name in ("train", "valid", "test")}
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


def run_evaluation(
    upstreams: Sequence[str],
    tasks: Sequence[str],
    data_root: str | Path,
    seeds: Sequence[int],
    output: str | Path,
    cache: FeatureCache,
    config: HeadTrainingConfig | None = None,
) -> list[dict]:
    """Evaluate every upstream spec on every task over ``seeds``; write per-seed JSONs and a report.

    Returns:
        every per-seed row (``upstream``, ``task``, ``seed``, ``value``, …).
    """
    config = config or HeadTrainingConfig()
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
            if isinstance(task, ASRTask):
                task_rows = evaluate_asr_task(cache.frames(upstream, manifest), manifest, task, seeds)
            elif isinstance(task, QueryByExampleTask):
                task_rows = evaluate_query_by_example_task(
                    cache.frames(upstream, manifest), manifest, task, seeds
                )
            elif isinstance(task, VerificationTask):
                trials_dir = output / "trials" / task.name
                task_rows = evaluate_verification_task(
                    cache.pooled(upstream, manifest), manifest, task, seeds, trials_dir
                )
            else:
                task_rows = evaluate_task(
                    cache.pooled(upstream, manifest), folds[task.name], task, seeds, config
                )
            for row in task_rows:
                row = {"upstream": spec, **row, "head": asdict(config)}
                rows.append(row)
                path = output / "runs" / _safe_name(spec) / task.name / f"seed_{row['seed']}.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(row, indent=2))
    write_report(rows, registry, upstreams, output)
    return rows


def write_report(rows: list[dict], tasks: Sequence[Task], upstreams: Sequence[str], output: Path) -> Path:
    """``report.md`` with the summary table and paired tests, ``boxplots.png`` and ``layer_weights_<task>.png``."""
    table = results_table(rows)
    by_seed = group_by_seed(rows)
    metric_of = {r["task"]: METRIC_NAMES[r["metric"]] for r in rows}
    plot_boxplots(
        {t.name: {u: list(by_seed[t.name][u].values()) for u in upstreams} for t in tasks},
        output / "boxplots.png",
        metric_of,
    )
    lines = [
        "# Downstream evaluation",
        "",
        f"Over {len(next(iter(by_seed.values()))[upstreams[0]])} seeds: mean ± std [95% confidence interval]. "
        "Classification: the seed sets head initialisation and data order (features are fixed). "
        "Verification: the seed sets the dev/test speaker partition and the non-target trials. "
        "Query-by-example: the seed sets the speaker halves, the queries and the search sets.",
        "",
        "| task | metric | split | " + " | ".join(upstreams) + " |",
        "|---|---|---|" + "---|" * len(upstreams),
    ]
    for task in tasks:
        cells = []
        for upstream in upstreams:
            s = table[task.name][upstream]
            cells.append(f"{s.mean:.3f} ± {s.std:.3f} [{s.ci_low:.3f}, {s.ci_high:.3f}]")
        lines.append(
            f"| {task.name} | {metric_of[task.name]} | {task.split_rule} | " + " | ".join(cells) + " |"
        )
    if len(upstreams) > 1:
        lines += ["", "## Paired tests against the first upstream (Wilcoxon signed-rank over seeds)", ""]
        lines += ["| task | upstream | mean difference | p-value |", "|---|---|---|---|"]
        for task in tasks:
            reference = by_seed[task.name][upstreams[0]]
            for upstream in upstreams[1:]:
                other = by_seed[task.name][upstream]
                common = sorted(set(reference) & set(other))
                test = paired_test([other[s] for s in common], [reference[s] for s in common])
                lines.append(
                    f"| {task.name} | {upstream} | {test.mean_difference:+.3f} | {test.p_value:.3g} |"
                )
    lines += ["", "![box plots](boxplots.png)", ""]
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
            lines.append(f"![layer weights, {task.name}](layer_weights_{task.name}.png)")
    report = output / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report
