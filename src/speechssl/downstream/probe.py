"""Probing the frozen features of one labelled manifest: any label column, any layer, several seeds.

The quick question "what does this representation encode?" asked of a user's own manifest
(the registered benchmark tasks in :mod:`speechssl.downstream.evaluate` ask it of the
shared corpora, with their own splits). Every layer's pooled features come from a
:class:`~speechssl.downstream.cache.FeatureCache` (or are computed in memory); each label
column is then classified on ``train`` with the toolkit's one head trainer,
:func:`~speechssl.downstream.training.train_utterance_classifier` (early stopping and
learning rate on ``valid``, ``test`` scored once), on SUPERB's weighted sum of layers or
on single layers, once per seed, beside the chance level of the test labels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from speechssl.data import Manifest
from speechssl.data.splits import labelled_rows, require_label, require_splits
from speechssl.downstream.cache import FeatureCache, PooledFeatures, compute_pooled
from speechssl.downstream.metrics import chance_accuracy
from speechssl.downstream.training import HeadTrainingConfig, train_utterance_classifier
from speechssl.upstream.base import Upstream


@dataclass
class ProbeRun:
    """One probe of one label column on one layer choice with one seed.

    Attributes:
        task: the label column.
        layer: ``"weighted"`` (SUPERB's learnt layer mix) or the upstream layer index.
        seed: seed of head initialisation and data order.
        value: test accuracy.
        valid_accuracy: validation accuracy of the chosen epoch (and learning rate).
        chance: the chance level: the share of the most frequent ``test`` class, the accuracy of
            the best constant predictor (:func:`~speechssl.downstream.metrics.chance_accuracy`).
        num_classes: classes seen in ``train``.
        num_train: ``train`` utterances (``num_valid`` and ``num_test`` likewise).
        best_epoch: epoch whose weights were kept.
        lr: learning rate of the kept model.
        layer_weights: the learnt softmax layer weights (``layer="weighted"`` only).
        metric: always ``"accuracy"``.
    """

    task: str
    layer: str | int
    seed: int
    value: float
    valid_accuracy: float
    chance: float
    num_classes: int
    num_train: int
    num_valid: int
    num_test: int
    best_epoch: int
    lr: float
    layer_weights: list[float] | None
    metric: str = "accuracy"


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


def probe_label(
    pooled: PooledFeatures,
    manifest: Manifest,
    task: str,
    layers: Sequence[str | int],
    seeds: Sequence[int],
    config: HeadTrainingConfig | None = None,
) -> list[ProbeRun]:
    """Classify the label column ``task`` from ``pooled`` means; one run per (layer, seed).

    Args:
        pooled: pooled features of ``manifest`` (same row order).
        manifest: the utterances, with ``split`` and the ``task`` column.
        task: the label column (or ``speaker``).
        layers: ``"weighted"`` and/or upstream layer indices (among ``pooled.layers``).
        seeds: one run per seed (head initialisation and data order).
        config: head training settings; its ``layer`` is replaced by each of ``layers``.

    Raises:
        ValueError: the column does not exist, a split is empty, a layer is not stored, or
            ``valid``/``test`` hold a class that ``train`` lacks. Rows whose label is empty
            (missing) are left out, with a warning counting them
            (:func:`~speechssl.data.splits.labelled_rows`).
    """
    config = config or HeadTrainingConfig()
    require_label(manifest, task, f"task {task!r}")
    column = np.asarray(manifest.column(task), dtype=object).astype(str)
    rows = labelled_rows(require_splits(manifest, f"task {task!r}"), column, task, f"task {task!r}")
    labels = {split: column[indices].tolist() for split, indices in rows.items()}
    features = {
        split: np.asarray(pooled.mean[:, indices, :], dtype=np.float32) for split, indices in rows.items()
    }
    chance = chance_accuracy(labels["test"])

    runs = []
    for layer in layers:
        if layer != "weighted" and layer not in pooled.layers:
            raise ValueError(f"layer: expected 'weighted' or one of {list(pooled.layers)}, found {layer!r}")
        layer_config = dataclasses.replace(
            config, layer="weighted" if layer == "weighted" else pooled.layers.index(layer)
        )
        for seed in seeds:
            result = train_utterance_classifier(features, labels, layer_config, seed)
            runs.append(
                ProbeRun(
                    task=task,
                    layer=layer,
                    seed=seed,
                    value=result.test_accuracy,
                    valid_accuracy=result.valid_accuracy,
                    chance=chance,
                    num_classes=len(set(labels["train"])),
                    num_train=len(rows["train"]),
                    num_valid=len(rows["valid"]),
                    num_test=len(rows["test"]),
                    best_epoch=result.best_epoch,
                    lr=result.lr,
                    layer_weights=result.layer_weights,
                )
            )
    return runs
