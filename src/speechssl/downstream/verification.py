"""Speaker verification by cosine scoring of utterance embeddings of a frozen upstream.

Two protocols share the trials (:class:`Trial`, the VoxCeleb list format), the cosine
scoring and the metrics (EER and minDCF, :mod:`speechssl.downstream.metrics`):

**Mini protocol, no training** (:func:`evaluate_verification`). The speakers of a corpus are split, disjointly and balanced by gender, into *dev* speakers
(which choose the layer) and *test* speakers (which are scored). Within each part, trials
are every same-speaker pair (targets) plus as many different-speaker pairs (non-targets),
drawn deterministically from the seed and saved in the VoxCeleb list format
``label utterance_a utterance_b``. Embeddings are an upstream layer's mean-pooled features,
centred on the dev speakers' mean, and scored by cosine similarity; EER and minDCF
(p_target 0.01) follow NIST SRE conventions (see :mod:`speechssl.downstream.metrics`).

**SUPERB ASV** (:func:`train_xvector_verification`; Yang et al. 2021, *SUPERB: Speech
processing Universal PERformance Benchmark*, with s3prl's ``downstream/sv_voxceleb1``,
``configs/amsoftmax.yaml`` and ``model.py``, commit 034970b7): VoxCeleb1's ``veri_test.txt``
trials are scored by the cosine of x-vectors (:class:`~speechssl.downstream.heads.XVectorHead`
on the learnable weighted sum of the upstream's layers) trained with the AM-softmax loss
(:class:`~speechssl.downstream.heads.AdditiveMarginSoftmax`, s = 30, m = 0.4) to classify
the dev-set speakers (every speaker not in the trials), with AdamW at 5e-5 and gradients
clipped to norm 1; the checkpoint with the lowest EER on dev trials is scored once on the
test trials. minDCF uses p_target = 0.01, C_miss = C_fa = 1 (the Kaldi VoxCeleb recipe,
``egs/voxceleb/v2/run.sh``: ``compute_min_dcf.py --p-target 0.01``); SUPERB reports EER only.

Each setting of :class:`XVectorTrainingConfig` defaults to s3prl's, and an option names a
departure: training utterances are random 8 s crops (``crop_seconds``, s3prl's
``max_timestep: 128000``; a window of the cached frames, see
:class:`~speechssl.downstream.training.FrameInputs`; ``null``: whole utterances); 200,000
updates as 20 rounds of 10,000 (``max_epochs`` rounds of ``eval_steps``, s3prl's
``total_steps`` and ``save_step``), every round run and the one with the lowest dev EER
kept (``patience=K``: stop after ``K`` rounds without a lower one). Fixed by the frozen,
cached upstream or by the project's conventions: frames are standardised with the training
speakers' statistics (as every speechssl head); dev trials are all same-speaker pairs and as
many different-speaker pairs (:func:`make_trials`) of held-out dev-set speakers (s3prl ships
a fixed ``dev_meta_data.txt``), and the kept checkpoint is the best on them, scored once on
the test trials (s3prl's ``test_expdir.sh`` scores every saved checkpoint on the test trials
and reports the lowest test EER).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from speechssl.data import Manifest, group_disjoint_split
from speechssl.data.corpora.voxceleb1_verification import read_trial_list
from speechssl.downstream.cache import FrameFeatures, PooledFeatures
from speechssl.downstream.featurizer import FixedLayer, WeightedLayerSum
from speechssl.downstream.heads import AdditiveMarginSoftmax, XVectorHead
from speechssl.downstream.metrics import cosine_scores, equal_error_rate, min_dcf
from speechssl.downstream.training import (
    FrameInputs,
    check_crop_seconds,
    check_stopping_settings,
    frame_statistics,
    train_with_early_stopping,
)

PROTOCOL = "SUPERB ASV (Yang et al. 2021), s3prl sv_voxceleb1 configs/amsoftmax.yaml @034970b7"


@dataclass(frozen=True)
class Trial:
    """One verification trial: two utterance ids and whether they share the speaker."""

    target: bool
    a: str
    b: str


def make_trials(manifest: Manifest, seed: int) -> list[Trial]:
    """All same-speaker pairs of ``manifest`` and as many different-speaker pairs (every one when
    there are fewer), sorted.

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
    sizes = [len(utterances) for utterances in by_speaker.values()]
    different_pairs = (sum(sizes) ** 2 - sum(size**2 for size in sizes)) // 2
    if different_pairs <= len(targets):  # no more than the targets: every different-speaker pair
        nontargets = {(a, b) for a, b in itertools.combinations(ids, 2) if speaker_of[a] != speaker_of[b]}
    while len(nontargets) < min(len(targets), different_pairs):
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


def read_trials(path: str | Path) -> list[Trial]:
    """The trials of a VoxCeleb trial list (``veri_test.txt``), ids without ``.wav``."""
    return [Trial(line.target, line.enrolment, line.test) for line in read_trial_list(path)]


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


@dataclass
class XVectorTrainingConfig:
    """How SUPERB's ASV head is trained (s3prl ``sv_voxceleb1/configs/amsoftmax.yaml``).

    Attributes:
        hidden: connector, TDNN and x-vector width (s3prl ``modelrc.input_dim``: 512).
        pooled_dim: last TDNN layer's width (``XVector.agg_dim``: 1500).
        scale: AM-softmax scale ``s`` (30).
        margin: AM-softmax margin ``m`` (0.4).
        lr: AdamW learning rate (``optimizer.lr``: 5e-5).
        weight_decay: AdamW weight decay (s3prl leaves torch's default, 0.01).
        batch_size: utterances per update (``train_batch_size × gradient_accumulate_steps``: 256 × 2).
        max_epochs: dev evaluations (rounds of ``eval_steps`` updates; epochs without them):
            s3prl's ``total_steps / save_step`` = 200,000 / 10,000.
        eval_steps: updates between two dev evaluations (s3prl's ``save_step``, each saved
            checkpoint scored); ``None``: one epoch.
        patience: rounds without a lower dev EER before training stops; ``None`` (s3prl's
            fixed budget) runs every round and keeps the best.
        max_grad_norm: gradient clipping (``runner.gradient_clipping``: 1); ``None`` does not clip.
        layer: ``weighted`` (SUPERB's learnable weighted sum of layers) or one layer's index.
        valid_fraction: share of the training speakers held out for the dev trials (at least 2).
        crop_seconds: train on random crops of this many seconds of each longer utterance
            (``datarc.max_timestep``: 128,000 samples at 16 kHz), drawn anew every time it is
            batched; dev and test trials read whole utterances. ``None``: whole utterances.
    """

    hidden: int = 512
    pooled_dim: int = 1500
    scale: float = 30.0
    margin: float = 0.4
    lr: float = 5e-5
    weight_decay: float = 0.01
    batch_size: int = 512
    max_epochs: int = 20
    eval_steps: int | None = 10_000
    patience: int | None = None
    max_grad_norm: float | None = 1.0
    layer: Literal["weighted"] | int = "weighted"
    valid_fraction: float = 0.05
    crop_seconds: float | None = 8.0

    def __post_init__(self) -> None:
        for name in ("hidden", "pooled_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected an integer >= 1, found {getattr(self, name)}")
        if not (self.scale > 0 and self.margin >= 0):
            raise ValueError(
                f"scale/margin: expected scale > 0 and margin >= 0, found {self.scale}/{self.margin}"
            )
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr: expected a finite learning rate > 0, found {self.lr}")
        if not 0.0 < self.valid_fraction < 1.0:
            raise ValueError(f"valid_fraction: expected a fraction in (0, 1), found {self.valid_fraction}")
        if self.layer != "weighted" and (isinstance(self.layer, bool) or not isinstance(self.layer, int)):
            raise ValueError(f"layer: expected 'weighted' or a layer index, found {self.layer!r}")
        if self.eval_steps is not None and self.eval_steps < 1:
            raise ValueError(f"eval_steps: expected an integer >= 1 or null, found {self.eval_steps}")
        check_stopping_settings(self)
        check_crop_seconds(self.crop_seconds)


class XVectorVerifier(nn.Module):
    """A featurizer over the upstream's layers, the x-vector network and its AM-softmax loss.

    Args:
        featurizer: frames ``(batch, frames, layers, dim)`` -> ``(batch, frames, dim)``.
        head: the x-vector network.
        loss: AM-softmax over the training speakers.
    """

    def __init__(
        self, featurizer: WeightedLayerSum | FixedLayer, head: XVectorHead, loss: AdditiveMarginSoftmax
    ) -> None:
        super().__init__()
        self.featurizer = featurizer
        self.head = head
        self.loss = loss

    def embed(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """X-vectors ``(batch, hidden)`` of frames ``x (batch, frames, layers, dim)`` with ``lengths (batch,)``."""
        return self.head.embed(self.featurizer(x), lengths)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, speakers: torch.Tensor) -> torch.Tensor:
        """Mean AM-softmax loss of a batch whose utterances are of ``speakers (batch,)`` (class indices)."""
        return self.loss(self.head(self.featurizer(x), lengths), speakers)


@dataclass(frozen=True)
class XVectorVerificationResult:
    """Test-trial EER and minDCF of the x-vector head at its best dev round.

    Attributes:
        eer: test EER.
        min_dcf: test minDCF (p_target 0.01, C_miss = C_fa = 1).
        dev_eer: EER of the dev trials at the kept round.
        best_epoch: 1-based round kept (an epoch when ``eval_steps`` is ``None``).
        epochs_run: rounds trained.
        layer_weights: the featurizer's softmax layer weights, or ``None`` for a fixed layer.
        num_trials: test trials scored.
        num_speakers: speakers the head was trained to classify.
    """

    eer: float
    min_dcf: float
    dev_eer: float
    best_epoch: int
    epochs_run: int
    layer_weights: list[float] | None
    num_trials: int
    num_speakers: int


def held_out_speakers(speakers: Sequence[str], fraction: float) -> set[str]:
    """``max(2, round(fraction · n))`` of ``speakers``, drawn with seed 0 (the same every run).

    Raises:
        ValueError: fewer than 4 speakers (2 to hold out and 2 to train on).
    """
    speakers = sorted(set(speakers))
    if len(speakers) < 4:
        raise ValueError(
            f"training speakers: expected at least 4 (2 held out for dev trials), found {len(speakers)}"
        )
    count = min(len(speakers) - 2, max(2, round(fraction * len(speakers))))
    order = np.random.default_rng(0).permutation(len(speakers))
    return {speakers[i] for i in order[:count]}


@torch.no_grad()
def _embed(model: XVectorVerifier, inputs: FrameInputs, batch_size: int = 64) -> np.ndarray:
    """``(utterances, hidden)`` x-vectors of every utterance of ``inputs``."""
    model.eval()
    return torch.cat(
        [model.embed(*inputs.batch(positions)) for positions in torch.arange(len(inputs)).split(batch_size)]
    ).numpy()


def _score(
    embeddings: np.ndarray, position: dict[str, int], trials: Sequence[Trial]
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine scores and labels ``(trials,)`` of ``trials`` on ``embeddings (utterances, hidden)``."""
    a = embeddings[[position[t.a] for t in trials]]  # (trials, hidden)
    b = embeddings[[position[t.b] for t in trials]]  # (trials, hidden)
    return cosine_scores(a, b), np.array([t.target for t in trials], dtype=int)


def train_xvector_verification(
    frames: FrameFeatures,
    manifest: Manifest,
    trials: Sequence[Trial],
    config: XVectorTrainingConfig,
    seed: int,
) -> XVectorVerificationResult:
    """SUPERB ASV: train the x-vector head on the ``train`` speakers of ``manifest`` (random
    crops of ``config.crop_seconds``), keep the round with the lowest EER on dev trials of
    held-out training speakers, score ``trials``.

    Training and dev utterances shorter than the x-vector's receptive field (15 frames) are
    left out, as s3prl leaves out utterances under 2 s.

    Args:
        frames: cached ``(frames, layers, dim)`` features of every utterance of ``manifest``.
        manifest: ``train`` rows (dev-set speakers) and the utterances ``trials`` name.
        trials: the test trials (e.g. :func:`read_trials` of ``veri_test.txt``).
        config: head and training settings.
        seed: seed of initialisation and data order.

    Raises:
        ValueError: a trial naming an utterance not in ``manifest`` or one too short for the
            head, a crop shorter than the head reads, a layer index out of range, or too few
            training speakers.
    """
    position = {utterance: i for i, utterance in enumerate(manifest.ids)}
    lengths = frames.lengths
    long_enough = lengths >= XVectorHead.receptive_field
    for trial in trials:
        for utterance in (trial.a, trial.b):
            if utterance not in position:
                raise ValueError(f"trials: {utterance} is not in the corpus manifest")
            if not long_enough[position[utterance]]:
                raise ValueError(
                    f"trials: {utterance} has {lengths[position[utterance]]} frames, the x-vector head reads "
                    f"{XVectorHead.receptive_field}"
                )
    if (
        config.crop_seconds is not None
        and frames.frames_in(config.crop_seconds) < XVectorHead.receptive_field
    ):
        raise ValueError(
            f"crop_seconds: expected crops of at least {XVectorHead.receptive_field} frames (the x-vector "
            f"head's receptive field), found {config.crop_seconds} s = {frames.frames_in(config.crop_seconds)}"
        )
    train_rows = [i for i in manifest.split_rows(("train",))["train"] if long_enough[i]]
    speakers = manifest.column("speaker")
    held_out = held_out_speakers([speakers[i] for i in train_rows], config.valid_fraction)
    fit_rows = [i for i in train_rows if speakers[i] not in held_out]
    valid_rows = [i for i in train_rows if speakers[i] in held_out]
    valid_trials = make_trials(manifest.select(valid_rows), seed=0)
    test_rows = sorted({position[u] for t in trials for u in (t.a, t.b)})
    num_layers = frames.frames.shape[1]
    if config.layer != "weighted" and not -num_layers <= config.layer < num_layers:
        raise ValueError(f"layer: expected an index in [{-num_layers}, {num_layers}), found {config.layer}")
    classes = sorted({speakers[i] for i in fit_rows})
    targets = torch.tensor([classes.index(speakers[i]) for i in fit_rows])  # (fit utterances,)
    mean, std = frame_statistics(frames, fit_rows)
    fit = FrameInputs(frames, fit_rows, mean, std, config.crop_seconds)
    valid, test = (FrameInputs(frames, rows, mean, std) for rows in (valid_rows, test_rows))
    valid_position = {manifest.ids[row]: i for i, row in enumerate(valid_rows)}
    test_position = {manifest.ids[row]: i for i, row in enumerate(test_rows)}

    def build() -> XVectorVerifier:
        featurizer = WeightedLayerSum(num_layers) if config.layer == "weighted" else FixedLayer(config.layer)
        head = XVectorHead(frames.frames.shape[2], config.hidden, config.pooled_dim)
        return XVectorVerifier(
            featurizer, head, AdditiveMarginSoftmax(config.hidden, len(classes), config.scale, config.margin)
        )

    def batch_loss(model: XVectorVerifier, positions: torch.Tensor) -> torch.Tensor:
        return model(*fit.batch(positions), targets[positions])

    def validate(model: XVectorVerifier) -> float:
        return equal_error_rate(*_score(_embed(model, valid), valid_position, valid_trials))[0]

    run = train_with_early_stopping(
        build,
        batch_loss,
        len(fit),
        validate,
        lambda eer: -eer,
        config,
        config.lr,
        seed,
        eval_steps=config.eval_steps,
    )
    scores, labels = _score(_embed(run.model, test), test_position, trials)
    featurizer = run.model.featurizer
    return XVectorVerificationResult(
        eer=equal_error_rate(scores, labels)[0],
        min_dcf=min_dcf(scores, labels, p_target=0.01, c_miss=1.0, c_fa=1.0),
        dev_eer=float(run.scores[run.best_epoch - 1]),
        best_epoch=run.best_epoch,
        epochs_run=run.epochs_run,
        layer_weights=featurizer.layer_weights() if isinstance(featurizer, WeightedLayerSum) else None,
        num_trials=len(trials),
        num_speakers=len(classes),
    )
