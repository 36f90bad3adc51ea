"""Linear probing: pooling over valid frames, split handling, honest layer choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechssl.data import Manifest, Utterance, generate_synthetic_corpus
from speechssl.data.synthetic import SyntheticConfig
from speechssl.downstream.probe import (
    PooledFeatures,
    ProbeResult,
    extract_pooled_features,
    linear_probe,
    probe_tasks,
)
from speechssl.downstream.runner import probe_upstreams, select_layers
from speechssl.upstream import build_upstream


def _manifest(labels: list[str], splits: list[str]) -> Manifest:
    rows = [
        Utterance(id=f"u{i}", path=f"/none/u{i}.wav", duration=1.0, sample_rate=16000, speaker="s",
                  split=split, labels={"label": label})
        for i, (label, split) in enumerate(zip(labels, splits, strict=True))
    ]  # fmt: skip
    return Manifest(rows)


def _separable(seed: int, n: int = 120) -> tuple[np.ndarray, list[str], list[str]]:
    rng = np.random.default_rng(seed)
    labels = [str(i % 3) for i in range(n)]
    centres = rng.normal(size=(3, 8)) * 5
    features = centres[[int(label) for label in labels]] + rng.normal(size=(n, 8))
    splits = ["train", "train", "train", "valid", "test"] * (n // 5)
    return features.astype(np.float32), labels, splits


def test_linear_probe_separates_separable_classes_and_chance_on_noise():
    features, labels, splits = _separable(0)
    manifest = _manifest(labels, splits)
    result = linear_probe(features, labels, manifest, "label", layer=0)
    assert result.accuracy == 1.0
    assert result.num_classes == 3 and result.num_test == 24 and result.num_train == 72
    assert result.chance == pytest.approx(8 / 24)
    assert result.validation_accuracy is not None

    noise = np.random.default_rng(1).normal(size=features.shape).astype(np.float32)
    assert linear_probe(noise, labels, manifest, "label", layer=0).accuracy < 0.7


def test_linear_probe_refuses_unseen_test_classes_and_missing_splits():
    features, labels, splits = _separable(0)
    labels = [*labels[:-1], "never-in-train"]
    with pytest.raises(ValueError, match="never occur in train"):
        linear_probe(features, labels, _manifest(labels, splits), "label", layer=0)
    with pytest.raises(ValueError, match="needs 'train' and 'test' rows"):
        linear_probe(features, labels, _manifest(labels, ["train"] * len(labels)), "label", layer=0)


def test_probe_tasks_checks_task_names_and_layer_range():
    features, labels, splits = _separable(0)
    pooled = PooledFeatures(ids=[f"u{i}" for i in range(len(labels))], layers=features[None])
    manifest = _manifest(labels, splits)
    with pytest.raises(ValueError, match=r"not label columns .* \(available: \['label', 'speaker'\]"):
        probe_tasks(pooled, manifest, ["emotion"], [0])
    with pytest.raises(ValueError, match="layer 1 out of range"):
        probe_tasks(pooled, manifest, ["label"], [1])
    assert probe_tasks(pooled, manifest, ["label"], [-1])[0].layer == 0


def test_best_layer_is_chosen_on_validation_never_on_test():
    def row(layer, valid, test):
        return ProbeResult("t", layer, test, 0.1, 3, 10, 10, 1.0, validation_accuracy=valid)

    results = [row(0, 0.9, 0.5), row(1, 0.8, 1.0), row(2, 0.9, 0.7)]
    assert [r.layer for r in select_layers(results, "best")] == [0]
    assert select_layers(results, "all") == results


def test_pooled_features_ignore_padding_and_batching(tmp_path):
    """An utterance's pooled features do not depend on what it is batched with."""
    manifest = generate_synthetic_corpus(SyntheticConfig(num_utterances=12, num_speakers=2), tmp_path)
    upstream = build_upstream("random:tiny")
    together = extract_pooled_features(upstream, manifest, max_batch_seconds=60.0)
    alone = extract_pooled_features(upstream, manifest, max_batch_seconds=0.01)
    assert together.layers.shape == (upstream.num_layers, 12, upstream.hidden_sizes[0])
    assert together.ids == list(manifest.column("id"))
    torch.testing.assert_close(
        torch.from_numpy(together.layers), torch.from_numpy(alone.layers), atol=1e-4, rtol=1e-4
    )


def test_probe_upstreams_rows(tmp_path):
    manifest = generate_synthetic_corpus(SyntheticConfig(num_utterances=60, num_speakers=2), tmp_path)
    rows = probe_upstreams(["fbank"], manifest, ["gender"], layer="last")
    assert len(rows) == 1
    assert rows[0]["upstream"] == "fbank" and rows[0]["task"] == "gender"
    assert 0.0 <= rows[0]["accuracy"] <= 1.0
