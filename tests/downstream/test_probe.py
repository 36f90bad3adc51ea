"""Linear probing: pooling over valid frames, split handling, honest layer choice."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from speechssl.data import Manifest, Utterance, generate_synthetic_corpus
from speechssl.data.synthetic import SyntheticConfig
from speechssl.downstream import runner
from speechssl.downstream.cache import FeatureCache, PooledFeatures
from speechssl.downstream.plan import EvaluationPlan
from speechssl.downstream.probe import extract_pooled_features, probe_label
from speechssl.downstream.runner import layer_choices, probe_upstreams, select_best_layer, write_probe_results
from speechssl.downstream.training import HeadTrainingConfig
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


def _pooled(features: np.ndarray, layers: tuple[int, ...] = (0,)) -> PooledFeatures:
    """``features`` ``(layers, utterances, dim)`` as stored pooled means."""
    ids = [f"u{i}" for i in range(features.shape[1])]
    return PooledFeatures(ids, layers, features.astype(np.float16), np.ones_like(features, dtype=np.float16))


def test_probe_separates_separable_classes_and_stays_near_chance_on_noise():
    features, labels, splits = _separable(0)
    manifest = _manifest(labels, splits)
    runs = probe_label(_pooled(features[None]), manifest, "label", ["weighted", 0], seeds=[0, 1])
    assert [(r.layer, r.seed) for r in runs] == [("weighted", 0), ("weighted", 1), (0, 0), (0, 1)]
    assert all(r.value == 1.0 and r.metric == "accuracy" for r in runs)
    first = runs[0]
    assert (first.num_classes, first.num_train, first.num_valid, first.num_test) == (3, 72, 24, 24)
    assert first.chance == pytest.approx(8 / 24)
    assert first.layer_weights == [1.0] and runs[2].layer_weights is None

    noise = np.random.default_rng(1).normal(size=features.shape).astype(np.float32)
    noisy = probe_label(_pooled(noise[None]), manifest, "label", [0], seeds=[0, 1, 2])
    assert np.mean([r.value for r in noisy]) < 0.6


def test_probe_refuses_unknown_columns_missing_splits_unseen_classes_and_unstored_layers():
    features, labels, splits = _separable(0)
    pooled = _pooled(features[None])
    manifest = _manifest(labels, splits)
    with pytest.raises(
        ValueError, match=r"task 'emotion': expected a label column .* \['label', 'speaker'\]"
    ):
        probe_label(pooled, manifest, "emotion", [0], [0])
    no_valid = ["test" if s == "test" else "train" for s in splits]
    with pytest.raises(ValueError, match=r"needs train, valid and test rows .* found \['test', 'train'\]"):
        probe_label(pooled, _manifest(labels, no_valid), "label", [0], [0])
    with pytest.raises(ValueError, match=r"layer: expected 'weighted' or one of \[0\], found 1"):
        probe_label(pooled, manifest, "label", [1], [0])
    unseen = [*labels[:-1], "never-in-train"]
    with pytest.raises(ValueError, match="expected only classes seen in train"):
        probe_label(pooled, _manifest(unseen, splits), "label", [0], [0])


def test_probe_reports_the_upstream_layer_of_a_layer_subset():
    """Pooled features holding upstream layers (3, 7) are probed and reported as 3 and 7."""
    features, labels, splits = _separable(0)
    noise = np.random.default_rng(2).normal(size=features.shape).astype(np.float32)
    pooled = _pooled(np.stack([noise, features]), layers=(3, 7))  # (layers, utterances, dim)
    runs = probe_label(pooled, _manifest(labels, splits), "label", [3, 7], seeds=[0])
    assert [r.layer for r in runs] == [3, 7]
    assert runs[1].value == 1.0 > runs[0].value


def test_layer_choices_and_their_errors():
    assert layer_choices("weighted", 4) == ["weighted"]
    assert layer_choices("all", 3) == layer_choices("best", 3) == [0, 1, 2]
    assert layer_choices("last", 3) == [2] and layer_choices("-1", 3) == [2]
    with pytest.raises(ValueError, match=r"^layer: expected 'weighted', 'last'.* found 'top'"):
        layer_choices("top", 3)
    with pytest.raises(ValueError, match=r"^layer: expected an index in \[-3, 3\), found 3"):
        layer_choices("3", 3)


def test_best_layer_is_chosen_on_mean_validation_accuracy_never_on_test():
    def row(layer, seed, valid, test):
        return {
            "upstream": "u",
            "task": "t",
            "layer": layer,
            "seed": seed,
            "valid_accuracy": valid,
            "value": test,
        }

    rows = [
        row(0, 0, 0.9, 0.5), row(0, 1, 0.7, 0.5),  # mean valid 0.8
        row(1, 0, 0.8, 1.0), row(1, 1, 0.8, 1.0),  # mean valid 0.8, best test
        row(2, 0, 0.85, 0.7), row(2, 1, 0.85, 0.7),  # mean valid 0.85
    ]  # fmt: skip
    assert [(r["layer"], r["seed"]) for r in select_best_layer(rows)] == [(2, 0), (2, 1)]
    tie = [r for r in rows if r["layer"] != 2]
    assert {r["layer"] for r in select_best_layer(tie)} == {0}, "ties go to the lower layer"


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
    plan = EvaluationPlan(["gender"], [0, 1], FeatureCache(enabled=False))
    rows = probe_upstreams(["fbank"], manifest, plan, layer="last")
    assert [(r["upstream"], r["task"], r["layer"], r["seed"]) for r in rows] == [
        ("fbank", "gender", 0, 0),
        ("fbank", "gender", 0, 1),
    ]
    assert all(0.0 <= r["value"] <= 1.0 for r in rows)
    summary_path = write_probe_results(rows, HeadTrainingConfig(), tmp_path / "out")
    saved = json.loads(
        (tmp_path / "out" / "runs" / "fbank" / "gender" / "layer_0" / "seed_1.json").read_text()
    )
    assert saved["value"] == rows[1]["value"] and saved["head"]["head"] == "linear"
    (summary,) = json.loads(summary_path.read_text())
    assert summary["n"] == 2 and summary["mean"] == pytest.approx(np.mean([r["value"] for r in rows]))


def test_probe_upstreams_reads_features_from_the_cache(tmp_path, monkeypatch):
    """A second probe run (another seed) reuses the stored features: the upstream never runs."""
    manifest = generate_synthetic_corpus(SyntheticConfig(num_utterances=60, num_speakers=2), tmp_path / "c")
    cache = FeatureCache(tmp_path / "cache")
    first = probe_upstreams(["fbank"], manifest, EvaluationPlan(["gender"], [0], cache), layer="all")
    assert (cache.stats.hits, cache.stats.misses) == (0, 1)

    def no_upstream(self, waveforms, lengths):
        raise AssertionError("the upstream ran although its features are cached")

    monkeypatch.setattr(type(build_upstream("fbank")), "forward", no_upstream)
    again = probe_upstreams(["fbank"], manifest, EvaluationPlan(["gender"], [0, 1], cache), layer="all")
    assert (cache.stats.hits, cache.stats.misses) == (1, 1)
    assert [row["layer"] for row in again] == [0, 0] and [row["layer"] for row in first] == [0]
    assert again[0]["value"] == first[0]["value"], "same seed, same cached features, same result"


def test_probe_resumes_finished_seeds_and_retrains_when_the_head_changes(tmp_path, monkeypatch):
    manifest = generate_synthetic_corpus(SyntheticConfig(num_utterances=60, num_speakers=2), tmp_path / "c")
    plan = EvaluationPlan(
        ["gender"], [0, 1], FeatureCache(tmp_path / "cache"), head=HeadTrainingConfig(max_epochs=3)
    )
    first = probe_upstreams(["fbank"], manifest, plan, layer="last", output=tmp_path / "out")
    saved = json.loads(
        (tmp_path / "out" / "runs" / "fbank" / "gender" / "layer_0" / "seed_1.json").read_text()
    )
    assert saved["value"] == first[1]["value"] and saved["head"]["max_epochs"] == 3

    trained = []
    original = runner.probe_label

    def counting(pooled, manifest, task, layers, seeds, config):
        trained.extend(seeds)
        return original(pooled, manifest, task, layers, seeds, config)

    monkeypatch.setattr(runner, "probe_label", counting)
    plan.seeds = [0, 1, 2]
    again = probe_upstreams(["fbank"], manifest, plan, layer="last", output=tmp_path / "out")
    assert trained == [2], "seeds 0 and 1 are read back, only seed 2 is trained"
    assert again[:2] == first
    plan.head = HeadTrainingConfig(max_epochs=4)
    probe_upstreams(["fbank"], manifest, plan, layer="last", output=tmp_path / "out")
    assert trained == [2, 0, 1, 2], "other head settings: every seed is trained again"
