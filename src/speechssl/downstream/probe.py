"""Frozen linear probing: pooled features of any upstream layer → linear classifier.

The minimal Phase-2 evaluation (the full SUPERB-style harness builds on it): features are
extracted once per utterance for every layer (masked mean over valid frames, float16, read
from a :class:`~speechssl.downstream.cache.FeatureCache` when one is given), then a
standardised multinomial logistic regression is fitted on the ``train`` split, its
inverse regularisation ``C`` picked on ``valid`` when the manifest has one, and accuracy
reported on ``test`` next to the majority-class chance level.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from speechssl.data import Manifest
from speechssl.downstream.cache import FeatureCache, PooledFeatures, compute_pooled
from speechssl.upstream.base import Upstream


@dataclass
class ProbeResult:
    """Accuracy of a linear probe of one label column on one layer."""

    task: str
    layer: int
    accuracy: float
    chance: float
    num_classes: int
    num_train: int
    num_test: int
    regularization: float
    validation_accuracy: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


def extract_pooled_features(
    upstream: Upstream,
    manifest: Manifest,
    max_batch_seconds: float = 60.0,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    cache: FeatureCache | None = None,
) -> PooledFeatures:
    """Masked mean and standard deviation over valid frames of every layer of ``upstream``.

    With ``cache``, read from it, or computed once and stored there; with ``None``, computed
    in memory (the same float16 values). Probes use ``mean`` ``(layers, utterances, dim)``.
    """
    if cache is None:
        return compute_pooled(upstream, manifest, None, max_batch_seconds, num_workers, device)
    return cache.pooled(
        upstream, manifest, max_batch_seconds=max_batch_seconds, num_workers=num_workers, device=device
    )


def _split_rows(manifest: Manifest, split: str) -> np.ndarray:
    return np.flatnonzero(np.asarray(manifest.column("split")) == split)


def _classifier(regularization: float, seed: int):
    return make_pipeline(
        StandardScaler(),
        LogisticRegression(C=regularization, max_iter=2000, random_state=seed),
    )


def linear_probe(
    features: np.ndarray,
    labels: list,
    manifest: Manifest,
    task: str,
    layer: int,
    regularizations: tuple[float, ...] = (0.01, 0.1, 1.0),
    seed: int = 0,
) -> ProbeResult:
    """Fit and score a linear classifier of ``labels`` on ``features`` ``(utterances, dim)``.

    Rows are assigned by the manifest's ``split`` column. ``C`` is chosen on ``valid``
    (the first value when there is no validation split).
    """
    labels = np.asarray(labels, dtype=object).astype(str)
    train, valid, test = (_split_rows(manifest, s) for s in ("train", "valid", "test"))
    if len(train) == 0 or len(test) == 0:
        raise ValueError(
            f"task {task!r}: the manifest needs 'train' and 'test' rows in its split column, "
            f"found {sorted(set(manifest.column('split')))}"
        )
    unseen = set(labels[test]) - set(labels[train])
    if unseen:
        raise ValueError(
            f"task {task!r}: {len(unseen)} test label(s) never occur in train (e.g. {sorted(unseen)[:3]}); "
            "a classification probe needs the same classes in both splits (is the split disjoint by this label?)"
        )

    best_c, best_valid = regularizations[0], None
    if len(valid) and len(regularizations) > 1:
        for c in regularizations:
            score = (
                _classifier(c, seed).fit(features[train], labels[train]).score(features[valid], labels[valid])
            )
            if best_valid is None or score > best_valid:
                best_c, best_valid = c, float(score)

    model = _classifier(best_c, seed).fit(features[train], labels[train])
    accuracy = float(model.score(features[test], labels[test]))
    majority = Counter(labels[train]).most_common(1)[0][0]
    chance = float(np.mean(labels[test] == majority))
    return ProbeResult(
        task=task,
        layer=layer,
        accuracy=accuracy,
        chance=chance,
        num_classes=len(set(labels[train])),
        num_train=len(train),
        num_test=len(test),
        regularization=best_c,
        validation_accuracy=best_valid,
    )


def probe_tasks(
    pooled: PooledFeatures,
    manifest: Manifest,
    tasks: list[str],
    layers: list[int],
    seed: int = 0,
) -> list[ProbeResult]:
    """Linear-probe every label column in ``tasks`` on the pooled means of each layer in ``layers``.

    ``layers`` index ``pooled.layers`` (the upstream's layers when all are stored; negative
    counts from the last); results name the upstream layer.
    """
    available = {"speaker", *manifest.label_columns}
    missing = [t for t in tasks if t not in available]
    if missing:
        raise ValueError(
            f"task(s) {missing} are not label columns of the manifest (available: {sorted(available)})"
        )
    num_layers = len(pooled.layers)
    results = []
    for task in tasks:
        for layer in layers:
            if not -num_layers <= layer < num_layers:
                raise ValueError(f"layer {layer} out of range: the pooled features hold {num_layers} layers")
            index = layer % num_layers
            features = np.asarray(pooled.mean[index], dtype=np.float32)  # (utterances, dim)
            results.append(
                linear_probe(features, manifest.column(task), manifest, task, pooled.layers[index], seed=seed)
            )
    return results
