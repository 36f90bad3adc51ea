"""Multi-seed evaluation of upstreams on registered tasks, resumable, with a report.

For every (upstream, task) of an :class:`~speechssl.downstream.plan.EvaluationPlan`, the
task reads the frozen features it needs from the
:class:`~speechssl.downstream.cache.FeatureCache` once
(:meth:`~speechssl.downstream.tasks.CorpusTask.prepare`) and then runs each seed
(``run(seed) -> Row``). One JSON file per (upstream, task, seed) is written, and the
report (:func:`~speechssl.downstream.report.write_report`) gathers them. The evaluator
never asks which kind of task it runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from speechssl import distributed
from speechssl.data import Manifest
from speechssl.data.audio import BadFileSummary
from speechssl.data.dataset import header_durations
from speechssl.downstream.plan import EvaluationPlan
from speechssl.downstream.rank_extraction import extract_on_every_rank
from speechssl.downstream.report import ReportTable, write_report
from speechssl.downstream.row import Row
from speechssl.downstream.screening import report_bad_files, usable_rows
from speechssl.downstream.tasks import CorpusTask, get_task
from speechssl.progress import Progress
from speechssl.storage import atomic_write_json
from speechssl.upstream import build_upstream
from speechssl.upstream.base import Upstream


def safe_name(text: str) -> str:
    """``text`` (e.g. an upstream spec or a path) as a folder name: ``[A-Za-z0-9_.-]``, at most 80 characters."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[-80:]


def _finished(path: Path, provenance: dict) -> Row | None:
    """The row saved at ``path`` if it was computed from the same upstream weights, data and settings."""
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    return (
        Row.from_dict(record) if all(record.get(key) == value for key, value in provenance.items()) else None
    )


def _provenance(
    spec: str, upstream: Upstream, task: CorpusTask, manifest: Manifest, plan: EvaluationPlan
) -> dict:
    """What a saved row must have been computed from to be reused."""
    return {
        "upstream": spec,
        "upstream_fingerprint": upstream.fingerprint(),
        "data_digest": manifest.digest(),
        "annotation_digest": manifest.annotation_digest(),
        "head": task.head_settings(plan),
    }


def _extract_pending(
    upstreams: Sequence[str],
    tasks: list[CorpusTask],
    manifests: dict[str, Manifest],
    headers: dict[str, tuple[np.ndarray, BadFileSummary]],
    plan: EvaluationPlan,
    output: Path,
) -> None:
    """Request the features of every (upstream, task) with a seed still to run: the extraction
    pass under ``torchrun``. Rank 0 decides which, so every rank makes the same requests."""
    for spec in upstreams:
        upstream = build_upstream(spec)
        pending = []
        usable = {}
        for task in tasks:
            usable[task.name], _ = usable_rows(
                manifests[task.name],
                upstream.sample_rate,
                upstream.min_samples,
                plan.max_bad_fraction,
                headers=headers[task.name],
            )
            provenance = _provenance(spec, upstream, task, usable[task.name], plan)
            folder = output / "runs" / safe_name(spec) / task.name
            if any(_finished(folder / f"seed_{seed}.json", provenance) is None for seed in plan.seeds):
                pending.append(task)
        for index in distributed.broadcast_object([tasks.index(task) for task in pending]):
            tasks[index].prepare(upstream, usable[tasks[index].name], plan, output)


def run_evaluation(
    upstreams: Sequence[str],
    plan: EvaluationPlan,
    output: str | Path,
    labels: Mapping[str, str] | None = None,
    context: Sequence[ReportTable] = (),
) -> list[Row]:
    """Evaluate every upstream spec on every task of ``plan`` over its seeds; write per-seed JSONs and a report.

    A run is resumable: a seed whose JSON already holds a result of the same upstream weights
    (fingerprint), corpus manifest (audio digest, and the digest of its splits and labels) and head settings is read back, not recomputed,
    so an interrupted benchmark restarted with the same command only computes what is missing.
    Each task's bad files (unreadable, or shorter than the upstream reads) are left out, counted
    and listed in ``runs/<upstream>/<task>/bad_files.json``; a split losing more than
    ``plan.max_bad_fraction`` of its rows stops the run (:func:`~speechssl.downstream.screening.usable_rows`).

    Under ``torchrun`` every rank first extracts its share of the features the pending seeds
    need (:func:`~speechssl.downstream.rank_extraction.extract_on_every_rank`); then rank 0
    alone trains the heads, from the cache, and writes the rows and the report, and the other
    ranks return an empty list.

    Args:
        upstreams: upstream specs (see :func:`speechssl.upstream.build_upstream`).
        plan: tasks, seeds, data root, cache and head settings.
        output: report folder; per-seed rows go to ``runs/<upstream>/<task>/seed_<seed>.json``.
        labels: display names of some upstream specs in the report (e.g. a variant's name
            instead of its checkpoint path); rows keep the spec.
        context: tables that describe the upstreams (e.g. how a study pretrained them),
            shown in the report before the results.

    Returns:
        every per-seed row, upstream by upstream, task by task, seed by seed.
    """
    output = Path(output)
    tasks = [get_task(name) for name in plan.tasks]
    manifests = {task.name: task.load(plan.data_root) for task in tasks}
    headers = {name: header_durations(manifest) for name, manifest in manifests.items()}
    if not extract_on_every_rank(
        plan.cache, lambda: _extract_pending(upstreams, tasks, manifests, headers, plan, output)
    ):
        return []
    rows: list[Row] = []
    with Progress(len(upstreams) * len(tasks) * len(plan.seeds), "evaluation", "seeds") as progress:
        for spec in upstreams:
            upstream = build_upstream(spec)
            for task in tasks:
                manifest, bad = usable_rows(
                    manifests[task.name],
                    upstream.sample_rate,
                    upstream.min_samples,
                    plan.max_bad_fraction,
                    headers=headers[task.name],
                )
                report_bad_files(bad, output / "runs" / safe_name(spec) / task.name)
                provenance = _provenance(spec, upstream, task, manifest, plan)
                folder = output / "runs" / safe_name(spec) / task.name
                done = {seed: _finished(folder / f"seed_{seed}.json", provenance) for seed in plan.seeds}
                todo = [seed for seed in plan.seeds if done[seed] is None]
                run = task.prepare(upstream, manifest, plan, output) if todo else None
                progress.update(len(plan.seeds) - len(todo))
                for seed in todo:
                    done[seed] = row = replace(run(seed), **provenance)
                    atomic_write_json(folder / f"seed_{seed}.json", row.to_dict())
                    progress.update()
                rows += [done[seed] for seed in plan.seeds]
    write_report(rows, tasks, upstreams, output, labels, context)
    return rows


__all__ = ["run_evaluation", "safe_name"]
