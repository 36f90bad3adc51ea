"""Probe several upstreams on several label columns of one manifest, over several seeds."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from speechssl import distributed
from speechssl.data import BadFileSummary, Manifest
from speechssl.data.dataset import header_durations
from speechssl.downstream.evaluate import safe_name
from speechssl.downstream.plan import EvaluationPlan
from speechssl.downstream.probe import extract_pooled_features, probe_label
from speechssl.downstream.rank_extraction import extract_on_every_rank
from speechssl.downstream.screening import report_bad_files, usable_rows
from speechssl.downstream.statistics import summarize
from speechssl.downstream.tasks import UtteranceTask
from speechssl.downstream.training import HeadTrainingConfig
from speechssl.storage import atomic_write_json
from speechssl.upstream import build_upstream
from speechssl.upstream.base import Upstream

LAYER_CHOICES = "'weighted', 'last', 'all', 'best' (chosen on the validation split) or a layer index"


def layer_choices(layer: str, num_layers: int) -> list[str | int]:
    """The layers to probe for the ``layer`` choice ``layer`` of an upstream with ``num_layers``."""
    if layer == "weighted":
        return ["weighted"]
    if layer in ("all", "best"):
        return list(range(num_layers))
    if layer == "last":
        return [num_layers - 1]
    try:
        index = int(layer)
    except ValueError:
        raise ValueError(f"layer: expected {LAYER_CHOICES}, found {layer!r}") from None
    if not -num_layers <= index < num_layers:
        raise ValueError(f"layer: expected an index in [{-num_layers}, {num_layers}), found {index}")
    return [index % num_layers]


def select_best_layer(rows: list[dict]) -> list[dict]:
    """Per (upstream, task), keep the rows of the layer with the highest mean validation
    accuracy over seeds (ties: the lower layer); test accuracy never takes part."""
    chosen = []
    for key in dict.fromkeys((r["upstream"], r["task"]) for r in rows):
        candidates = [r for r in rows if (r["upstream"], r["task"]) == key]
        layers = list(dict.fromkeys(r["layer"] for r in candidates))
        valid = {
            layer: np.mean([r["valid_accuracy"] for r in candidates if r["layer"] == layer])
            for layer in layers
        }
        best = max(layers, key=lambda layer: (valid[layer], -layers.index(layer)))
        chosen += [r for r in candidates if r["layer"] == best]
    return chosen


def probe_row_path(output: Path, upstream: str, task: str, layer: str | int, seed: int) -> Path:
    """Where the row of (upstream spec, label column, layer, seed) is kept under ``output``."""
    return output / "runs" / safe_name(upstream) / task / f"layer_{layer}" / f"seed_{seed}.json"


def _finished_row(path: Path, provenance: dict) -> dict | None:
    """The row saved at ``path`` if it came from the same upstream weights, manifest and head settings."""
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    return record if all(record.get(key) == value for key, value in provenance.items()) else None


def _saved_rows(
    spec: str, upstream: Upstream, manifest: Manifest, plan: EvaluationPlan, layer: str, output: Path | None
) -> tuple[dict, list[tuple[str, str | int, int]], dict[tuple[str, str | int, int], dict | None]]:
    """The provenance of ``spec``'s probe rows, their keys (task, layer choice, seed) and the
    rows already saved under ``output`` from that provenance (``None`` where missing)."""
    provenance = {
        "upstream_fingerprint": upstream.fingerprint(),
        "data_digest": manifest.digest(),
        "head": asdict(plan.head),
    }
    layers = layer_choices(layer, upstream.num_layers)
    keys = [(task, choice, seed) for task in plan.tasks for choice in layers for seed in plan.seeds]
    done = {
        key: _finished_row(probe_row_path(output, spec, *key), provenance) if output else None for key in keys
    }
    return provenance, keys, done


def probe_upstreams(
    specs: Sequence[str],
    manifest: Manifest,
    plan: EvaluationPlan,
    layer: str = "weighted",
    max_batch_seconds: float = 60.0,
    output: Path | None = None,
    bad_files: BadFileSummary | None = None,
) -> list[dict]:
    """Probe each upstream spec on each label column ``plan.tasks`` of ``manifest`` over
    ``plan.seeds`` with ``plan.head``; one JSON-able row per (upstream, task, layer, seed).

    Every layer's pooled features are extracted once per upstream, read from (or stored
    in) ``plan.cache``. Random-weight upstreams (``random:...``) are always initialised
    with seed 0, so that the seeds vary the probe, not the representation.

    With ``output``, a probe is resumable as ``benchmark`` is: each new row is written at
    :func:`probe_row_path` as soon as it is trained, and a row already there from the same
    upstream weights (fingerprint), manifest (digest) and head settings is read back, not
    retrained; an upstream whose rows are all there is not run at all.

    Bad files (missing, unreadable, empty, or shorter than the upstream reads) are left out,
    counted and listed, with those in ``bad_files`` (found while the manifest was built): a
    warning, and ``output/bad_files.json``. A split losing more than ``plan.max_bad_fraction``
    of its rows stops the probe (:func:`~speechssl.downstream.screening.usable_rows`).

    Under ``torchrun`` every rank first extracts its share of the pending upstreams' features
    (:func:`~speechssl.downstream.rank_extraction.extract_on_every_rank`); then rank 0 alone
    trains the probes, from the cache, and the other ranks return an empty list.
    """
    corpus = manifest
    headers = header_durations(corpus)  # read once: they do not depend on the upstream

    def usable(upstream: Upstream) -> tuple[Manifest, BadFileSummary]:
        return usable_rows(
            corpus, upstream.sample_rate, upstream.min_samples, plan.max_bad_fraction, bad_files, headers
        )

    def extract_pending() -> None:
        for spec in specs:
            upstream = build_upstream(spec)
            manifest, _ = usable(upstream)
            _, _, done = _saved_rows(spec, upstream, manifest, plan, layer, output)
            if distributed.broadcast_object(any(row is None for row in done.values())):
                extract_pooled_features(
                    upstream, manifest, max_batch_seconds=max_batch_seconds, cache=plan.cache
                )

    if not extract_on_every_rank(plan.cache, extract_pending):
        return []
    rows = []
    for spec in specs:
        upstream = build_upstream(spec)
        manifest, bad = usable(upstream)
        report_bad_files(bad, output)
        provenance, keys, done = _saved_rows(spec, upstream, manifest, plan, layer, output)
        if any(row is None for row in done.values()):
            pooled = extract_pooled_features(
                upstream, manifest, max_batch_seconds=max_batch_seconds, cache=plan.cache
            )
            for task, choice in dict.fromkeys((task, choice) for task, choice, _ in keys):
                seeds = [seed for seed in plan.seeds if done[(task, choice, seed)] is None]
                for run in probe_label(pooled, manifest, task, [choice], seeds, plan.head) if seeds else []:
                    done[(task, choice, run.seed)] = row = {"upstream": spec, **asdict(run), **provenance}
                    if output is not None:
                        atomic_write_json(probe_row_path(output, spec, task, choice, run.seed), row)
        spec_rows = [done[key] for key in keys]
        rows += select_best_layer(spec_rows) if layer == "best" else spec_rows
    return rows


def write_probe_results(rows: Sequence[dict], config: HeadTrainingConfig, output: Path) -> Path:
    """One JSON per row at ``runs/<upstream>/<task>/layer_<layer>/seed_<seed>.json`` (with the head
    settings) and ``summary.json``: per (upstream, task, layer), the seeds' mean, std and 95% CI
    (clipped to the accuracy's range)."""
    groups: dict[tuple[str, str, str | int], list[float]] = {}
    for row in rows:
        path = probe_row_path(output, row["upstream"], row["task"], row["layer"], row["seed"])
        atomic_write_json(path, {**row, "head": asdict(config)})
        groups.setdefault((row["upstream"], row["task"], row["layer"]), []).append(row["value"])
    summary = [
        {
            "upstream": upstream,
            "task": task,
            "layer": layer,
            "metric": UtteranceTask.metric.name,
            # a single seed has no spread: null, not the non-standard JSON NaN
            **{
                k: None if v != v else v
                for k, v in asdict(summarize(values, bounds=UtteranceTask.metric.bounds)).items()
            },
        }
        for (upstream, task, layer), values in groups.items()
    ]
    return atomic_write_json(output / "summary.json", summary)
