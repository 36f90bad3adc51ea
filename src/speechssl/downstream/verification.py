"""Speaker verification by cosine scoring of frozen utterance embeddings (no training).

The speakers of a corpus are split, disjointly and balanced by gender, into *dev* speakers
(which choose the layer) and *test* speakers (which are scored). Within each part, trials
are every same-speaker pair (targets) plus as many different-speaker pairs (non-targets),
drawn deterministically from the seed and saved in the VoxCeleb list format
``label utterance_a utterance_b``. Embeddings are an upstream layer's mean-pooled features,
centred on the dev speakers' mean, and scored by cosine similarity; EER and minDCF
(p_target 0.01) follow NIST SRE conventions (see :mod:`speechssl.downstream.metrics`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechssl.data import Manifest, group_disjoint_split
from speechssl.downstream.cache import PooledFeatures
from speechssl.downstream.metrics import cosine_scores, equal_error_rate, min_dcf


@dataclass(frozen=True)
class Trial:
    """One verification trial: two utterance ids and whether they share the speaker."""

    target: bool
    a: str
    b: str


def make_trials(manifest: Manifest, seed: int) -> list[Trial]:
    """All same-speaker pairs of ``manifest`` and as many different-speaker pairs, sorted.

    Raises:
        ValueError: fewer than two speakers, or no speaker with two utterances.
    """
    by_speaker: dict[str, list[str]] = {}
    for row in manifest:
        by_speaker.setdefault(row.speaker, []).append(row.id)
    if len(by_speaker) < 2:
        raise ValueError(f"verification trials: expected at least 2 speakers, found {len(by_speaker)}")
    targets = [
        Trial(True, a, b) for ids in by_speaker.values() for a, b in itertools.combinations(sorted(ids), 2)
    ]
    if not targets:
        raise ValueError("verification trials: expected a speaker with at least 2 utterances, found none")
    speaker_of = {row.id: row.speaker for row in manifest}
    ids = sorted(speaker_of)
    rng = np.random.default_rng(seed)
    nontargets: set[tuple[str, str]] = set()
    while len(nontargets) < len(targets):
        i, j = rng.integers(len(ids), size=2)
        a, b = sorted((ids[i], ids[j]))
        if speaker_of[a] != speaker_of[b]:
            nontargets.add((a, b))
    trials = targets + [Trial(False, a, b) for a, b in nontargets]
    return sorted(trials, key=lambda t: (t.a, t.b))


def save_trials(trials: list[Trial], path: str | Path) -> Path:
    """Write ``trials`` as ``1|0 utterance_a utterance_b`` lines (the VoxCeleb trial-list format)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{int(t.target)} {t.a} {t.b}\n" for t in trials))
    return path


@dataclass(frozen=True)
class VerificationResult:
    """Test-speaker EER and minDCF at the layer that had the lowest EER on dev speakers."""

    eer: float
    min_dcf: float
    layer: int
    dev_eer: float
    num_trials: int


def score_layer(
    embeddings: np.ndarray, row_of: dict[str, int], trials: list[Trial], centre: np.ndarray
) -> tuple:
    """EER and minDCF of ``trials`` scored on ``embeddings`` ``(utterances, dim)`` centred on ``centre`` ``(dim,)``."""
    a = embeddings[[row_of[t.a] for t in trials]] - centre  # (trials, dim)
    b = embeddings[[row_of[t.b] for t in trials]] - centre  # (trials, dim)
    scores = cosine_scores(a, b)
    labels = np.array([t.target for t in trials], dtype=int)
    return equal_error_rate(scores, labels)[0], min_dcf(scores, labels)


def evaluate_verification(
    pooled: PooledFeatures, manifest: Manifest, seed: int, trials_dir: str | Path | None = None
) -> VerificationResult:
    """Cosine-scoring speaker verification of every layer of ``pooled`` (rows in ``manifest`` order).

    ``seed`` draws the dev/test speaker partition (one third dev, gender-balanced) and the
    non-target trials; with ``trials_dir`` both trial lists are saved there.
    """
    stratify = "gender" if "gender" in manifest.label_columns else None
    parts = group_disjoint_split(
        manifest, valid_fraction=1 / 3, test_fraction=0.0, stratify=stratify, seed=seed
    )
    dev, test = parts.filter(split="valid"), parts.filter(split="train")
    dev_trials, test_trials = make_trials(dev, seed), make_trials(test, seed)
    if trials_dir is not None:
        save_trials(dev_trials, Path(trials_dir) / f"dev_seed{seed}.txt")
        save_trials(test_trials, Path(trials_dir) / f"test_seed{seed}.txt")
    row_of = {utt: i for i, utt in enumerate(manifest.ids)}
    dev_rows = [row_of[utt] for utt in dev.ids]
    best = None
    for index, layer in enumerate(pooled.layers):
        embeddings = np.asarray(pooled.mean[index], dtype=np.float64)  # (utterances, dim)
        centre = embeddings[dev_rows].mean(axis=0)  # (dim,)
        dev_eer, _ = score_layer(embeddings, row_of, dev_trials, centre)
        if best is None or dev_eer < best[0]:
            best = (dev_eer, layer, embeddings, centre)
    dev_eer, layer, embeddings, centre = best
    eer, dcf = score_layer(embeddings, row_of, test_trials, centre)
    return VerificationResult(float(eer), float(dcf), int(layer), float(dev_eer), len(test_trials))
