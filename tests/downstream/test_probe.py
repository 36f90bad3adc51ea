"""Linear probing: pooling over valid frames, split handling, honest layer choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechssl.data import Manifest, Utterance, generate_synthetic_corpus
from speechssl.data.synthetic import SyntheticConfig
from speechssl.downstream.cache import FeatureCache, PooledFeatures
from speechssl.downstream.probe import ProbeResult, extract_pooled_features, linear_probe, probe_tasks
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
    ids = [f"u{i}" for i in range(len(labels))]
    pooled = PooledFeatures(ids, layers=(0,), mean=features[None], std=np.ones_like(features[None]))
    manifest = _manifest(labels, splits)
    with pytest.raises(ValueError, match=r"not label columns .* \(available: \['label', 'speaker'\]"):
        probe_tasks(pooled, manifest, ["emotion"], [0])
    with pytest.raises(ValueError, match="layer 1 out of range"):
        probe_tasks(pooled, manifest, ["label"], [1])
    assert probe_tasks(pooled, manifest, ["label"], [-1])[0].layer == 0


def test_probe_tasks_reports_the_upstream_layer_of_a_layer_subset():
    """Pooled features holding upstream layers (3, 7) are indexed 0, 1 but reported as 3, 7."""
    features, labels, splits = _separable(0)
    noise = np.random.default_rng(2).normal(size=features.shape).astype(np.float32)
    stacked = np.stack([noise, features]).astype(np.float16)  # (layers, utterances, dim)
    pooled = PooledFeatures([f"u{i}" for i in range(len(labels))], (3, 7), stacked, np.ones_like(stacked))
    results = probe_tasks(pooled, _manifest(labels, splits), ["label"], [0, -1])
    assert [r.layer for r in results] == [3, 7]
    assert results[1].accuracy == 1.0 > results[0].accuracy


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
    assert together.mean.shape == (upstream.num_layers, 12, upstream.hidden_sizes[0])
    assert together.mean.dtype == np.float16 and together.std.shape == together.mean.shape
    assert together.ids == list(manifest.column("id"))
    for statistic in ("mean", "std"):  # float16: one unit in the last place is ~1e-3 relative
        torch.testing.assert_close(
            torch.from_numpy(getattr(together, statistic).astype(np.float32)),
            torch.from_numpy(getattr(alone, statistic).astype(np.float32)),
            atol=2e-3,
            rtol=2e-3,
        )


def test_probe_upstreams_rows(tmp_path):
    manifest = generate_synthetic_corpus(SyntheticConfig(num_utterances=60, num_speakers=2), tmp_path)
    rows = probe_upstreams(["fbank"], manifest, ["gender"], layer="last")
    assert len(rows) == 1
    assert rows[0]["upstream"] == "fbank" and rows[0]["task"] == "gender"
    assert 0.0 <= rows[0]["accuracy"] <= 1.0


def test_probe_upstreams_reads_features_from_the_cache(tmp_path, monkeypatch):
    """A second probe run (another seed) reuses the stored features: the upstream never runs."""
    manifest = generate_synthetic_corpus(SyntheticConfig(num_utterances=60, num_speakers=2), tmp_path / "c")
    cache = FeatureCache(tmp_path / "cache")
    first = probe_upstreams(["fbank"], manifest, ["gender"], layer="all", cache=cache)
    assert (cache.stats.hits, cache.stats.misses) == (0, 1)

    def no_upstream(self, waveforms, lengths):
        raise AssertionError("the upstream ran although its features are cached")

    monkeypatch.setattr(type(build_upstream("fbank")), "forward", no_upstream)
    again = probe_upstreams(["fbank"], manifest, ["gender"], layer="all", seed=1, cache=cache)
    assert (cache.stats.hits, cache.stats.misses) == (1, 1)
    assert [row["layer"] for row in again] == [row["layer"] for row in first] == [0]
    assert again[0]["accuracy"] == first[0]["accuracy"]
