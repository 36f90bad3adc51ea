"""k-means units: clusters recovered, the frame sample bounded and seeded, backends checked."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechssl.data import load_audio
from speechssl.models import kmeans as kmeans_module
from speechssl.models.encoder import UnitFeatureConfig
from speechssl.models.kmeans import KMeansConfig, fit_centroids, fit_units, resolve_backend, sample_frames
from speechssl.models.units import UnitFeatures
from speechssl.units.quality import joint_counts, unit_quality


@pytest.mark.parametrize("backend", ["sklearn", "faiss"])
def test_fit_centroids_recovers_well_separated_clusters(backend):
    if backend == "faiss":
        pytest.importorskip("faiss", reason="the faiss backend needs speechssl[faiss]")
    rng = np.random.default_rng(0)
    means = rng.normal(scale=20.0, size=(5, 8))  # (clusters, dim)
    truth = rng.integers(5, size=2000)
    frames = means[truth] + rng.normal(scale=0.5, size=(2000, 8))
    centroids, used = fit_centroids(frames, KMeansConfig(k=5, max_frames=2000, n_init=3, backend=backend))
    assert used == backend and centroids.shape == (5, 8)
    units = torch.cdist(torch.from_numpy(frames).float(), torch.from_numpy(centroids)).argmin(dim=1).numpy()
    quality = unit_quality(joint_counts(truth, units, 5, 5))
    assert quality.pnmi > 0.99 and quality.label_purity > 0.99


def test_fit_units_on_tones_separates_them_and_respects_max_frames(tone_corpus):
    features = UnitFeatures(UnitFeatureConfig(source="mfcc", deltas=False))
    config = KMeansConfig(k=3, max_frames=120, n_init=5, seed=1, backend="sklearn")
    tokenizer, report = fit_units(features, tone_corpus, config, max_batch_seconds=2.0)
    assert report["frames"] <= 120 and report["frames"] >= 110  # clipped only by decoded-length slack
    assert report["sample_bytes"] == report["frames"] * 13 * 4
    assert report["used_units"] == 3 and report["inertia"] > 0
    counts = np.zeros((3, 3), dtype=np.int64)
    tones = sorted(set(tone_corpus.column("tone")))
    for row in tone_corpus:
        waveform = torch.from_numpy(load_audio(row.path, 16000))[None]  # (1, samples)
        units = tokenizer(waveform, torch.tensor([waveform.shape[1]])).units[0].numpy()
        interior = units[3:-3]  # frames whose analysis window lies inside the tone
        counts += joint_counts(np.full(len(interior), tones.index(row.labels["tone"])), interior, 3, 3)
    assert unit_quality(counts).pnmi > 0.95


def test_frame_sample_is_seeded_and_bounded(tone_corpus):
    features = UnitFeatures(UnitFeatureConfig(source="mfcc"))
    first, utterances = sample_frames(features, tone_corpus, max_frames=40, seed=3)
    again, _ = sample_frames(features, tone_corpus, max_frames=40, seed=3)
    other, _ = sample_frames(features, tone_corpus, max_frames=40, seed=4)
    assert first.shape[0] <= 40 and first.shape[1] == 39 and first.dtype == np.float32
    assert 1 <= utterances <= len(tone_corpus)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    everything, all_rows = sample_frames(features, tone_corpus, max_frames=10**6)
    assert all_rows == len(tone_corpus) and everything.shape[0] > 40


def test_config_and_backend_errors(monkeypatch):
    with pytest.raises(ValueError, match="k: expected a positive integer, found 0"):
        KMeansConfig(k=0)
    with pytest.raises(ValueError, match="max_frames: expected at least k=10 frames, found 5"):
        KMeansConfig(k=10, max_frames=5)
    with pytest.raises(ValueError, match="backend: expected one of auto, sklearn, faiss, found 'gpu'"):
        KMeansConfig(backend="gpu")
    monkeypatch.setattr(kmeans_module, "_import_faiss", lambda: None)
    assert resolve_backend("auto") == "sklearn"
    with pytest.raises(ImportError, match="'faiss' needs the faiss package"):
        resolve_backend("faiss")
    with pytest.raises(ValueError, match=r"n >= k=4 frames to cluster, found shape \(3, 2\)"):
        fit_centroids(np.zeros((3, 2)), KMeansConfig(k=4))
