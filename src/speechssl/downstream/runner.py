"""Probe several upstreams on several label columns of one manifest, over several seeds."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from speechssl.data import Manifest
from speechssl.downstream.evaluate import safe_name
from speechssl.downstream.plan import EvaluationPlan
from speechssl.downstream.probe import extract_pooled_features, probe_label
from speechssl.downstream.statistics import summarize
from speechssl.downstream.tasks import UtteranceTask
from speechssl.downstream.training import HeadTrainingConfig
from speechssl.upstream import build_upstream

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


def probe_upstreams(
    specs: Sequence[str],
    manifest: Manifest,
    plan: EvaluationPlan,
    layer: str = "weighted",
    max_batch_seconds: float = 60.0,
) -> list[dict]:
    """Probe each upstream spec on each label column ``plan.tasks`` of ``manifest`` over
    ``plan.seeds`` with ``plan.head``; one JSON-able row per (upstream, task, layer, seed).

    Every layer's pooled features are extracted once per upstream, read from (or stored
    in) ``plan.cache``. Random-weight upstreams (``random:...``) are always initialised
    with seed 0, so that the seeds vary the probe, not the representation.
    """
    rows = []
    for spec in specs:
        upstream = build_upstream(spec)
        pooled = extract_pooled_features(
            upstream, manifest, max_batch_seconds=max_batch_seconds, cache=plan.cache
        )
        layers = layer_choices(layer, upstream.num_layers)
        spec_rows = [
            {"upstream": spec, **asdict(run)}
            for task in plan.tasks
            for run in probe_label(pooled, manifest, task, layers, plan.seeds, plan.head)
        ]
        rows += select_best_layer(spec_rows) if layer == "best" else spec_rows
    return rows


def write_probe_results(rows: Sequence[dict], config: HeadTrainingConfig, output: Path) -> Path:
    """One JSON per row at ``runs/<upstream>/<task>/layer_<layer>/seed_<seed>.json`` (with the head
    settings) and ``summary.json``: per (upstream, task, layer), the seeds' mean, std and 95% CI
    (clipped to the accuracy's range)."""
    groups: dict[tuple[str, str, str | int], list[float]] = {}
    for row in rows:
        path = (
            output / "runs" / safe_name(row["upstream"]) / row["task"] / f"layer_{row['layer']}"
            / f"seed_{row['seed']}.json"
        )  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**row, "head": asdict(config)}, indent=2))
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
    path = output / "summary.json"
    path.write_text(json.dumps(summary, indent=2))
    return path
