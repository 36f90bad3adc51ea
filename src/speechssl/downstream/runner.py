"""Probe several upstreams on several label columns of one manifest."""

from __future__ import annotations

from dataclasses import asdict

from speechssl.data import Manifest
from speechssl.downstream.cache import FeatureCache
from speechssl.downstream.probe import ProbeResult, extract_pooled_features, probe_tasks
from speechssl.upstream import build_upstream


def select_layers(results: list[ProbeResult], layer: str) -> list[ProbeResult]:
    """Keep the results of the requested layer choice for each task.

    ``layer`` is ``all``, ``last``, an integer index, or ``best``: per task, the layer with the
    highest validation accuracy (test accuracy is never used to choose).
    """
    if layer != "best":
        return results
    chosen = []
    for task in dict.fromkeys(r.task for r in results):
        candidates = [r for r in results if r.task == task]
        if any(r.validation_accuracy is None for r in candidates):
            raise ValueError(f"--layer best needs a 'valid' split to choose on (task {task!r})")
        chosen.append(max(candidates, key=lambda r: (r.validation_accuracy, -r.layer)))
    return chosen


def _layer_indices(layer: str, num_layers: int) -> list[int]:
    if layer in ("all", "best"):
        return list(range(num_layers))
    if layer == "last":
        return [num_layers - 1]
    try:
        return [int(layer)]
    except ValueError:
        raise ValueError(f"--layer: expected 'last', 'all', 'best' or an integer, found {layer!r}") from None


def probe_upstreams(
    specs: list[str],
    manifest: Manifest,
    tasks: list[str],
    layer: str = "last",
    max_batch_seconds: float = 60.0,
    seed: int = 0,
    cache: FeatureCache | None = None,
) -> list[dict]:
    """Probe each upstream spec on each task; one JSON-able row per (upstream, task, layer).

    Every layer's pooled features are extracted once per upstream, read from (or stored
    in) ``cache`` when given; ``None`` computes them without storing.
    """
    rows = []
    for spec in specs:
        upstream = build_upstream(spec, seed=seed)
        pooled = extract_pooled_features(upstream, manifest, max_batch_seconds=max_batch_seconds, cache=cache)
        results = probe_tasks(pooled, manifest, tasks, _layer_indices(layer, upstream.num_layers), seed=seed)
        for result in select_layers(results, layer):
            rows.append({"upstream": spec, **asdict(result)})
    return rows
