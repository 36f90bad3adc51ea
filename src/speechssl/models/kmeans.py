"""k-means units fitted on frames streamed from a corpus, with memory bounded by ``max_frames``.

HuBERT's targets are k-means clusters of frame features: 39-dimensional MFCC with Δ and
ΔΔ at iteration 1 (k = 100), a hidden layer of the previous iteration's model later
(k = 500; Hsu et al. 2021, §II-B and §IV-C). As in the paper, k-means is fitted on a
random subset of the frames: :func:`sample_frames` draws exactly ``min(max_frames, total)``
frames uniformly without replacement (a multivariate hypergeometric draw of how many
frames each utterance gives, then which of its frames), runs the :class:`UnitFeatures`
only on the utterances that give at least one, batch by batch, and copies the chosen
frames into one preallocated ``(max_frames, dim)`` float32 array — the only buffer whose
size grows with the corpus, bounded by ``max_frames``.

The centroids are then fitted on that sample with scikit-learn's ``MiniBatchKMeans``
(Sculley 2010, "Web-scale k-means clustering": k-means++ initialisation, ``n_init``
restarts, mini-batches of ``batch_size`` frames) or, with ``backend="faiss"``, faiss's
k-means (Johnson, Douze, Jégou 2019) on the same sample, seeded by k-means++ as well for each
of the ``n_init`` restarts (faiss's own random seeding merges clusters that k-means++ keeps
apart), keeping the restart of lowest inertia.
"""

from __future__ import annotations

import importlib
import time
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from sklearn.cluster import MiniBatchKMeans, kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning

from speechssl.config import to_dict
from speechssl.data import AudioDataset, DurationBatchSampler, Manifest, build_dataloader
from speechssl.models.encoder import UnitTokenizerConfig
from speechssl.models.units import UnitFeatures, UnitTokenizer
from speechssl.progress import Progress

BACKENDS = ("auto", "sklearn", "faiss")


@dataclass
class KMeansConfig:
    """k-means on a bounded, seeded sample of a corpus's frames.

    Attributes:
        k: number of clusters (units); HuBERT uses 100 on MFCC, 500 on hidden layers.
        max_frames: most frames sampled (uniformly, without replacement) for fitting; bounds
            the sample buffer to ``max_frames × dim`` float32.
        batch_size: frames per mini-batch of ``MiniBatchKMeans`` (HuBERT's recipe: 10000).
        max_iter: passes over the sample (``MiniBatchKMeans.max_iter``, faiss ``niter``).
        n_init: k-means++ restarts; the best (lowest inertia) is kept (faiss ``nredo``).
        seed: seeds the frame sample and the k-means initialisation.
        backend: ``"sklearn"``, ``"faiss"`` (needs the optional faiss package) or ``"auto"``
            (faiss when importable, else sklearn).
    """

    k: int = 100
    max_frames: int = 1_000_000
    batch_size: int = 10_000
    max_iter: int = 100
    n_init: int = 3
    seed: int = 0
    backend: Literal["auto", "sklearn", "faiss"] = "auto"

    def __post_init__(self) -> None:
        for name in ("k", "max_frames", "batch_size", "max_iter", "n_init"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive integer, found {getattr(self, name)}")
        if self.seed < 0:
            raise ValueError(f"seed: expected an integer >= 0, found {self.seed}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend: expected one of {', '.join(BACKENDS)}, found {self.backend!r}")
        if self.max_frames < self.k:
            raise ValueError(f"max_frames: expected at least k={self.k} frames, found {self.max_frames}")


def _import_faiss() -> Any | None:
    """The faiss module, or ``None`` when it is not installed."""
    try:
        return importlib.import_module("faiss")
    except ImportError:
        return None


def resolve_backend(backend: str) -> str:
    """``"sklearn"`` or ``"faiss"`` for a :attr:`KMeansConfig.backend`.

    Raises:
        ImportError: ``backend="faiss"`` but faiss is not installed.
    """
    if backend == "sklearn":
        return "sklearn"
    available = _import_faiss() is not None
    if backend == "faiss" and not available:
        raise ImportError(
            "backend: 'faiss' needs the faiss package (pip install speechssl[faiss]), found it not installed; "
            "use backend='sklearn'"
        )
    return "faiss" if available else "sklearn"


def frame_counts(features: UnitFeatures, manifest: Manifest) -> np.ndarray:
    """``(utterances,)`` int64 frames of each utterance at the features' rate, from the manifest durations."""
    samples = torch.from_numpy(
        np.round(manifest.durations * features.sample_rate).astype(np.int64)
    )  # (utterances,)
    return features.output_lengths(samples).clamp(min=0).numpy().astype(np.int64)


@torch.no_grad()
def sample_frames(
    features: UnitFeatures,
    manifest: Manifest,
    max_frames: int,
    seed: int = 0,
    max_batch_seconds: float = 60.0,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
) -> tuple[np.ndarray, int]:
    """A uniform sample of ``min(max_frames, total)`` frames of ``manifest`` (see the module docstring).

    Frame counts are planned from the manifest durations; a decoded file a frame shorter
    than its header says gives one frame fewer, so the sample may fall short by that much.

    Returns:
        ``(frames, dim)`` float32 sampled frames, and how many utterances contributed.
    """
    counts = frame_counts(features, manifest)
    total = int(counts.sum())
    if total == 0:
        raise ValueError(
            f"manifest: expected utterances with at least one frame, found {len(manifest)} empty"
        )
    rng = np.random.default_rng(seed)
    size = min(max_frames, total)
    per_utterance = rng.multivariate_hypergeometric(counts, size)  # (utterances,) frames drawn from each
    chosen_rows = np.flatnonzero(per_utterance)
    positions = {
        int(row): np.sort(rng.choice(counts[row], size=per_utterance[row], replace=False))
        for row in chosen_rows
    }
    subset = manifest.select(chosen_rows)
    row_of = {utt_id: int(row) for utt_id, row in zip(subset.ids, chosen_rows, strict=True)}
    buffer = np.empty((size, features.dim), dtype=np.float32)  # the bounded sample
    filled = 0
    features = features.to(device)
    dataset = AudioDataset(subset, sample_rate=features.sample_rate)
    sampler = DurationBatchSampler(subset.durations, max_batch_seconds=max_batch_seconds, shuffle=False)
    with Progress(len(subset), "units fit: sampling frames", "utterances") as progress:
        for batch in build_dataloader(dataset, sampler, num_workers=num_workers):
            frames, lengths = features(
                batch.waveforms.to(device), batch.lengths.to(device)
            )  # (batch, frames, dim)
            for item, utt_id in enumerate(batch.ids):
                wanted = positions[row_of[utt_id]]
                wanted = wanted[wanted < int(lengths[item])]
                picked = (
                    frames[item, torch.from_numpy(wanted).to(frames.device)].cpu().numpy()
                )  # (picked, dim)
                buffer[filled : filled + len(picked)] = picked
                filled += len(picked)
            progress.update(len(batch.ids))
    return buffer[:filled], len(chosen_rows)


def fit_centroids(frames: np.ndarray, config: KMeansConfig) -> tuple[np.ndarray, str]:
    """k-means centroids ``(k, dim)`` float32 of ``frames (n, dim)``, and the backend used.

    Raises:
        ValueError: fewer frames than ``k``.
    """
    if frames.ndim != 2 or frames.shape[0] < config.k:
        raise ValueError(
            f"frames: expected (n, dim) with n >= k={config.k} frames to cluster, found shape {frames.shape}"
        )
    backend = resolve_backend(config.backend)
    frames = np.ascontiguousarray(frames, dtype=np.float32)
    if backend == "faiss":
        faiss = _import_faiss()
        best, best_objective = None, np.inf
        for restart in range(config.n_init):  # k-means++ seeds, as scikit-learn's (faiss draws random frames)
            seeds, _ = kmeans_plusplus(frames, config.k, random_state=config.seed + restart)
            kmeans = faiss.Kmeans(
                frames.shape[1], config.k, niter=config.max_iter, seed=config.seed + restart
            )
            kmeans.train(frames, init_centroids=seeds.astype(np.float32))
            if kmeans.obj[-1] < best_objective:
                best, best_objective = np.asarray(kmeans.centroids, dtype=np.float32), kmeans.obj[-1]
        return best, backend
    kmeans = MiniBatchKMeans(
        n_clusters=config.k,
        batch_size=min(config.batch_size, frames.shape[0]),
        max_iter=config.max_iter,
        n_init=config.n_init,
        random_state=config.seed,
        compute_labels=False,
    )
    with warnings.catch_warnings():
        # fewer distinct frames than k (e.g. digital silence) is reported as used_units instead
        warnings.simplefilter("ignore", ConvergenceWarning)
        kmeans.fit(frames)
    return kmeans.cluster_centers_.astype(np.float32), backend


def assignment_statistics(frames: np.ndarray, centroids: np.ndarray, chunk: int = 65536) -> dict[str, float]:
    """Inertia ``Σ_t min_j ||x_t − c_j||²`` of ``frames (n, dim)``, its per-frame mean and the units used."""
    centres = torch.from_numpy(centroids)  # (k, dim)
    inertia = 0.0
    used = np.zeros(len(centroids), dtype=bool)
    for start in range(0, len(frames), chunk):
        block = torch.from_numpy(frames[start : start + chunk])  # (chunk, dim)
        distances, nearest = torch.cdist(block, centres).min(dim=1)  # (chunk,)
        inertia += float(distances.double().pow(2).sum())
        used[nearest.numpy()] = True
    return {
        "inertia": inertia,
        "mean_squared_distance": inertia / max(len(frames), 1),
        "used_units": int(used.sum()),
    }


def fit_units(
    features: UnitFeatures,
    manifest: Manifest,
    config: KMeansConfig,
    max_batch_seconds: float = 60.0,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
) -> tuple[UnitTokenizer, dict[str, Any]]:
    """Fit k-means units on ``manifest``'s ``features`` frames.

    Args:
        features: the frames to discretise (it becomes the tokenizer's feature extractor).
        manifest: the utterances to sample frames from.
        config: k, the sample bound, the backend.
        max_batch_seconds: padded audio per batch while computing features.
        num_workers: DataLoader worker processes.
        device: where the features are computed (the tokenizer is returned on the CPU).

    Returns:
        a nearest-centroid :class:`UnitTokenizer` and a fit report (backend, sample size,
        inertia on the sample, units used, seconds, the configs).
    """
    start = time.perf_counter()
    frames, utterances = sample_frames(
        features, manifest, config.max_frames, config.seed, max_batch_seconds, num_workers, device
    )
    sampled_seconds = time.perf_counter() - start
    centroids, backend = fit_centroids(frames, config)
    features = features.cpu()
    tokenizer_config = UnitTokenizerConfig(
        features=features.config, num_units=config.k, assignment="nearest", feature_dim=features.dim
    )
    tokenizer = UnitTokenizer(tokenizer_config, features, centroids=torch.from_numpy(centroids))
    report = {
        "backend": backend,
        "k": config.k,
        "frames": len(frames),
        "utterances": utterances,
        "corpus_utterances": len(manifest),
        "feature_dim": features.dim,
        "downsample_rate": features.downsample_rate,
        "sample_bytes": int(frames.nbytes),
        **assignment_statistics(frames, centroids),
        "sample_seconds": round(sampled_seconds, 3),
        "fit_seconds": round(time.perf_counter() - start - sampled_seconds, 3),
        "kmeans": to_dict(config),
        "features": to_dict(features.config),
    }
    return tokenizer, report


__all__ = [
    "KMeansConfig",
    "assignment_statistics",
    "fit_centroids",
    "fit_units",
    "frame_counts",
    "resolve_backend",
    "sample_frames",
]
