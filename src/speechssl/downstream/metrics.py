"""Downstream task metrics of the SUPERB benchmark (Yang et al., "SUPERB: Speech processing
Universal PERformance Benchmark", Interspeech 2021).

* Classification (keyword spotting, speaker identification, gender, emotion):
  accuracy and macro-averaged F1, beside the chance level of the test labels.
* Speaker verification: equal error rate and the normalised minimum detection cost of
  the NIST SRE / VoxCeleb evaluations, from trial scores and binary target labels.
* ASR: corpus-level word and character error rates (jiwer).
* Query-by-example spoken term detection: subsequence dynamic time warping over
  cosine frame distances, mean average precision, and the maximum term-weighted value
  of the NIST STD 2006 / OpenKWS evaluations.

Higher scores mean "more likely a target / more relevant" everywhere; pass negated
DTW distances as query-by-example scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jiwer
import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    roc_curve,
)
from sklearn.metrics.pairwise import cosine_distances, paired_cosine_distances


def _paired_labels(predictions: ArrayLike, targets: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    predictions, targets = np.asarray(predictions), np.asarray(targets)
    if predictions.ndim != 1 or targets.ndim != 1:
        raise ValueError(
            f"expected 1-D (utterances,) predictions and targets, found shapes "
            f"{predictions.shape} and {targets.shape}"
        )
    if len(predictions) != len(targets):
        raise ValueError(
            f"expected as many predictions as targets, found {len(predictions)} and {len(targets)}"
        )
    if len(targets) == 0:
        raise ValueError("expected at least one utterance, found none")
    return predictions, targets


def accuracy(predictions: ArrayLike, targets: ArrayLike) -> float:
    """Fraction of utterances whose predicted class equals the target class.

    Args:
        predictions: ``(utterances,)`` predicted class labels.
        targets: ``(utterances,)`` reference class labels.

    Raises:
        ValueError: if the two are not 1-D of the same, non-zero length.
    """
    predictions, targets = _paired_labels(predictions, targets)
    return float(accuracy_score(targets, predictions))


def chance_accuracy(targets: ArrayLike) -> float:
    """The chance level of a classification test set: the accuracy of the best constant predictor,
    i.e. the share of its most frequent class (scikit-learn's ``DummyClassifier("most_frequent")``
    fitted and scored on ``targets``).

    It depends on the test labels alone, so it never drops to 0 when the training set's most
    frequent class is absent from test, and it is the floor any head can reach by ignoring
    its input.

    Args:
        targets: ``(utterances,)`` reference class labels of the test set.

    Raises:
        ValueError: if ``targets`` is not 1-D or is empty.
    """
    targets = np.asarray(targets)
    if targets.ndim != 1 or len(targets) == 0:
        raise ValueError(f"expected non-empty 1-D (utterances,) targets, found shape {targets.shape}")
    _, counts = np.unique(targets, return_counts=True)
    return float(counts.max() / len(targets))


def macro_f1(predictions: ArrayLike, targets: ArrayLike) -> float:
    """Unweighted mean over classes of the per-class F1 score (sklearn ``average="macro"``).

    Every class present in either ``predictions`` or ``targets`` counts once, so rare
    classes weigh as much as frequent ones (useful for unbalanced emotion corpora); a
    class never predicted has F1 = 0.

    Args:
        predictions: ``(utterances,)`` predicted class labels.
        targets: ``(utterances,)`` reference class labels.

    Raises:
        ValueError: if the two are not 1-D of the same, non-zero length.
    """
    predictions, targets = _paired_labels(predictions, targets)
    return float(f1_score(targets, predictions, average="macro", zero_division=0.0))


def _verification_trials(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    if scores.ndim != 1 or labels.ndim != 1 or len(scores) != len(labels):
        raise ValueError(
            f"expected 1-D (trials,) scores and labels of equal length, found shapes "
            f"{scores.shape} and {labels.shape}"
        )
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"expected finite scores, found {int(np.sum(~np.isfinite(scores)))} non-finite")
    found = set(np.unique(labels).tolist())
    if not found <= {0, 1}:
        raise ValueError(f"expected binary labels (1 = target trial, 0 = non-target), found values {found}")
    if found != {0, 1}:
        raise ValueError(
            f"expected both target (1) and non-target (0) trials, found only {sorted(found) or 'no trials'}"
        )
    return scores, labels.astype(np.int64)


def equal_error_rate(scores: ArrayLike, labels: ArrayLike) -> tuple[float, float]:
    """Equal error rate: the operating point where the miss and false-alarm rates are equal.

    A trial is accepted when ``score >= threshold``. The miss rate ``P_miss = FNR = 1 − TPR``
    and the false-alarm rate ``P_fa = FPR`` are evaluated at every distinct score
    (``sklearn.metrics.roc_curve``); between the last point with ``P_miss > P_fa`` and
    the first with ``P_miss <= P_fa`` both rates are interpolated linearly and the EER is
    their common value at the crossing (the piecewise-linear ROC, Fawcett, "An introduction
    to ROC analysis", 2006, intersected with the ``P_miss = P_fa`` line).

    Args:
        scores: ``(trials,)`` similarity scores, higher = more likely the same speaker.
        labels: ``(trials,)`` ``1`` for target (same-speaker) trials, ``0`` otherwise.

    Returns:
        ``(eer, threshold)``: the EER in ``[0, 1]`` and the score threshold interpolated
        the same way between the two bracketing thresholds (when the crossing lies
        before the highest score, the bracketing "accept nothing" threshold is ``+inf``
        and the highest score is returned).

    Raises:
        ValueError: on shapes that differ or are not 1-D, non-finite scores, labels other
            than 0/1, or trials of only one class.
    """
    scores, labels = _verification_trials(scores, labels)
    false_alarm, hit, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    miss = 1.0 - hit
    gap = miss - false_alarm  # non-increasing from +1 ("accept nothing") to −1 ("accept all")
    after = int(np.argmax(gap <= 0.0))
    if gap[after] == 0.0:
        return float(false_alarm[after]), float(thresholds[after])
    before = after - 1
    weight = gap[before] / (gap[before] - gap[after])
    eer = false_alarm[before] + weight * (false_alarm[after] - false_alarm[before])
    if np.isinf(thresholds[before]):
        return float(eer), float(thresholds[after])
    threshold = thresholds[before] + weight * (thresholds[after] - thresholds[before])
    return float(eer), float(threshold)


def min_dcf(
    scores: ArrayLike, labels: ArrayLike, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0
) -> float:
    """Normalised minimum detection cost function (NIST Speaker Recognition Evaluation plans;
    VoxCeleb Speaker Recognition Challenge convention).

    ``DCF(θ) = c_miss · P_miss(θ) · p_target + c_fa · P_fa(θ) · (1 − p_target)``, divided
    by the cost of the better trivial system, ``min(c_miss · p_target, c_fa · (1 − p_target))``
    (always reject or always accept), and minimised over the thresholds θ at every
    distinct score plus "accept nothing"; hence ``0 <= minDCF <= 1``.

    Args:
        scores: ``(trials,)`` similarity scores, higher = more likely the same speaker.
        labels: ``(trials,)`` ``1`` for target trials, ``0`` otherwise.
        p_target: prior probability of a target trial, in ``(0, 1)`` (VoxSRC: 0.05;
            NIST SRE 2008: 0.01 with ``c_miss = 10``).
        c_miss: cost of a miss, ``> 0``.
        c_fa: cost of a false alarm, ``> 0``.

    Raises:
        ValueError: invalid trials (see :func:`equal_error_rate`), ``p_target`` outside
            ``(0, 1)`` or a non-positive cost.
    """
    if not 0.0 < p_target < 1.0:
        raise ValueError(f"p_target: expected a probability in (0, 1), found {p_target}")
    if c_miss <= 0.0 or c_fa <= 0.0:
        raise ValueError(f"expected positive costs, found c_miss={c_miss}, c_fa={c_fa}")
    scores, labels = _verification_trials(scores, labels)
    false_alarm, hit, _ = roc_curve(labels, scores, drop_intermediate=False)
    cost = c_miss * (1.0 - hit) * p_target + c_fa * false_alarm * (1.0 - p_target)
    return float(np.min(cost) / min(c_miss * p_target, c_fa * (1.0 - p_target)))


def cosine_scores(embeddings_a: ArrayLike, embeddings_b: ArrayLike) -> np.ndarray:
    """Cosine similarity of each trial's two embeddings, the usual speaker-verification
    back-end for SUPERB-style frozen-feature evaluation.

    Args:
        embeddings_a: ``(trials, dim)`` enrolment embeddings.
        embeddings_b: ``(trials, dim)`` test embeddings.

    Returns:
        ``(trials,)`` similarities in ``[−1, 1]`` (a zero-norm embedding scores 0 with any).

    Raises:
        ValueError: if the two are not 2-D arrays of the same shape.
    """
    embeddings_a, embeddings_b = np.asarray(embeddings_a), np.asarray(embeddings_b)
    if embeddings_a.ndim != 2 or embeddings_a.shape != embeddings_b.shape:
        raise ValueError(
            f"expected two (trials, dim) arrays of equal shape, found {embeddings_a.shape} "
            f"and {embeddings_b.shape}"
        )
    return 1.0 - paired_cosine_distances(embeddings_a, embeddings_b)


def _transcripts(references: Sequence[str], hypotheses: Sequence[str]) -> tuple[list[str], list[str]]:
    references, hypotheses = list(references), list(hypotheses)
    if len(references) != len(hypotheses):
        raise ValueError(
            f"expected one hypothesis per reference, found {len(references)} references and "
            f"{len(hypotheses)} hypotheses"
        )
    if not references:
        raise ValueError("expected at least one reference transcript, found none")
    return references, hypotheses


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus-level word error rate ``(S + D + I) / N`` (jiwer).

    Substitutions, deletions and insertions of the minimum-edit (Levenshtein) alignment
    are summed over all utterances and divided by the total number ``N`` of reference
    words (not averaged per utterance). Transcripts are only split on whitespace: case
    and punctuation normalisation is the caller's job.

    Args:
        references: ``(utterances,)`` reference transcripts.
        hypotheses: ``(utterances,)`` recognised transcripts, in the same order.

    Raises:
        ValueError: if the counts differ or there are no utterances.
    """
    references, hypotheses = _transcripts(references, hypotheses)
    return float(jiwer.wer(references, hypotheses))


def character_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus-level character error rate ``(S + D + I) / N`` over characters (jiwer).

    As :func:`word_error_rate`, with characters (spaces included, leading/trailing and
    repeated whitespace removed) as tokens.

    Args:
        references: ``(utterances,)`` reference transcripts.
        hypotheses: ``(utterances,)`` recognised transcripts, in the same order.

    Raises:
        ValueError: if the counts differ or there are no utterances.
    """
    references, hypotheses = _transcripts(references, hypotheses)
    return float(jiwer.cer(references, hypotheses))


def phone_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus-level phone error rate ``(S + D + I) / N`` over phones (jiwer).

    SUPERB PR's PER (s3prl's ``per``, its word error rate on phone strings): each
    transcript is a space-separated phone sequence (``"HH AH0 L OW1"``), and
    :func:`word_error_rate` of these strings is the edit distance over phones divided by
    the number of reference phones.

    Args:
        references: ``(utterances,)`` reference phone strings.
        hypotheses: ``(utterances,)`` recognised phone strings, in the same order.

    Raises:
        ValueError: if the counts differ or there are no utterances.
    """
    return word_error_rate(references, hypotheses)


class DTWAlignment(NamedTuple):
    """Best warping path of a query against a document.

    Attributes:
        distance: accumulated cosine distance along the path divided by the number of
            query frames.
        start: first document frame of the path.
        end: last document frame of the path (inclusive).
    """

    distance: float
    start: int
    end: int


def _frames(frames: ArrayLike, name: str) -> np.ndarray:
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim != 2 or frames.shape[0] == 0:
        raise ValueError(
            f"{name}: expected a (frames, dim) array with >= 1 frame, found shape {frames.shape}"
        )
    if not np.all(np.isfinite(frames)):
        raise ValueError(f"{name}: expected finite features, found non-finite values")
    return frames


def dtw_align(query: ArrayLike, document: ArrayLike, subsequence: bool = True) -> DTWAlignment:
    """Dynamic time warping of a spoken query against a document over cosine frame distances.

    Local cost ``C(n, m) = 1 − cos(query_n, document_m)`` in ``[0, 2]`` (a zero-norm frame is
    at distance 1 from every frame). With the step sizes
    ``{(1, 0), (0, 1), (1, 1)}`` the accumulated cost is
    ``D(n, m) = C(n, m) + min(D(n−1, m−1), D(n−1, m), D(n, m−1))``. For subsequence DTW
    (Müller, "Fundamentals of Music Processing", 2015, Sec. 7.2, subsequence DTW) the
    first row is not accumulated, ``D(0, m) = C(0, m)``, so the query may start at any
    document frame, and the path ends at ``b* = argmin_m D(N−1, m)``; for global DTW
    (ibid., Sec. 3.2) ``D(0, m) = Σ_{k≤m} C(0, k)`` and the path ends at the last frame.

    The returned distance is ``D`` at the end of the path divided by the query length
    ``N``: a constant per query, so it leaves the optimal path and end point unchanged,
    and it makes distances of queries of different lengths comparable for a threshold
    shared across queries (MTWV). It is 0 for an exact (possibly time-warped) occurrence.

    The recursion is vectorised over document frames: with ``E(m)`` the best entry into
    row ``n`` from row ``n−1`` and ``S`` the running sum of row ``n``'s costs,
    ``D(n, m) = min_{k≤m} E(k) + S(m) − S(k)``, a running minimum (``np.minimum.accumulate``).

    Args:
        query: ``(q_frames, dim)`` query features.
        document: ``(d_frames, dim)`` document features.
        subsequence: free start and end on the document axis (query-by-example); ``False``
            aligns both sequences from first to last frame.

    Raises:
        ValueError: non-2-D or empty inputs, differing ``dim`` or non-finite features.
    """
    query, document = _frames(query, "query"), _frames(document, "document")
    if query.shape[1] != document.shape[1]:
        raise ValueError(
            f"expected query and document of the same feature dim, found {query.shape[1]} and "
            f"{document.shape[1]}"
        )
    cost = cosine_distances(query, document)  # (q_frames, d_frames)
    positions = np.arange(cost.shape[1])
    if subsequence:
        accumulated, start = cost[0].copy(), positions.copy()
    else:
        accumulated, start = np.cumsum(cost[0]), np.zeros_like(positions)
    for row in cost[1:]:
        diagonal = np.concatenate(([np.inf], accumulated[:-1]))
        diagonal_start = np.concatenate(([0], start[:-1]))
        take_diagonal = diagonal <= accumulated
        entry = row + np.where(take_diagonal, diagonal, accumulated)
        entry_start = np.where(take_diagonal, diagonal_start, start)
        running = np.cumsum(row)
        offset = entry - running
        best_entry = np.maximum.accumulate(np.where(offset == np.minimum.accumulate(offset), positions, 0))
        accumulated = entry[best_entry] + (running - running[best_entry])
        start = entry_start[best_entry]
    end = int(np.argmin(accumulated)) if subsequence else len(positions) - 1
    return DTWAlignment(distance=float(accumulated[end] / len(query)), start=int(start[end]), end=end)


def dtw_distance(query: ArrayLike, document: ArrayLike, subsequence: bool = True) -> float:
    """Query-length-normalised DTW distance of :func:`dtw_align` (lower = better match).

    Args:
        query: ``(q_frames, dim)`` query features.
        document: ``(d_frames, dim)`` document features.
        subsequence: free start and end on the document axis.
    """
    return dtw_align(query, document, subsequence=subsequence).distance


def _retrieval_trials(scores: ArrayLike, relevant: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    scores, relevant = np.asarray(scores, dtype=np.float64), np.asarray(relevant)
    if scores.ndim != 2 or scores.shape != relevant.shape or scores.size == 0:
        raise ValueError(
            f"expected non-empty (queries, documents) scores and relevance of equal shape, found "
            f"{scores.shape} and {relevant.shape}"
        )
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"expected finite scores, found {int(np.sum(~np.isfinite(scores)))} non-finite")
    if not set(np.unique(relevant).tolist()) <= {0, 1}:
        raise ValueError(f"expected boolean relevance, found values {sorted(np.unique(relevant).tolist())}")
    relevant = relevant.astype(bool)
    if not relevant.any():
        raise ValueError("expected at least one query with a relevant document, found none")
    return scores, relevant


def mean_average_precision(scores: ArrayLike, relevant: ArrayLike) -> float:
    """Mean over queries of the average precision of each query's ranked documents.

    ``AP = Σ_k (R_k − R_{k−1}) · P_k`` over decreasing score thresholds
    (``sklearn.metrics.average_precision_score``: precision at each recall step, tied
    scores forming one step; Manning et al., "Introduction to Information Retrieval", 2008,
    Sec. 8.4). Queries with no relevant document have no defined AP (recall is 0/0) and
    are left out of the mean.

    Args:
        scores: ``(queries, documents)`` detection scores, higher = more relevant
            (e.g. negated :func:`dtw_distance`).
        relevant: ``(queries, documents)`` bool, whether the document contains the query.

    Raises:
        ValueError: shapes that differ or are not 2-D, non-finite scores, non-boolean
            relevance, or no query with a relevant document.
    """
    scores, relevant = _retrieval_trials(scores, relevant)
    answered = relevant.any(axis=1)
    return float(
        np.mean(
            [
                average_precision_score(truth, score)
                for truth, score in zip(relevant[answered], scores[answered], strict=True)
            ]
        )
    )


def maximum_term_weighted_value(scores: ArrayLike, relevant: ArrayLike, beta: float = 999.9) -> float:
    """Maximum term-weighted value (NIST 2006 Spoken Term Detection evaluation plan; OpenKWS).

    Every (query, document) pair is one trial, detected when ``score >= θ``. For a term
    (query) ``t`` with ``N_true(t) > 0`` relevant documents among ``N`` documents:
    ``P_miss(t, θ) = misses / N_true(t)`` and ``P_FA(t, θ) = false alarms / (N − N_true(t))``
    (0 when every document is relevant). ``TWV(θ) = 1 − mean_t [P_miss(t, θ) + β · P_FA(t, θ)]``
    over the terms with ``N_true > 0`` (NIST excludes terms without occurrences), and
    ``MTWV = max_θ TWV(θ)`` over θ at every distinct score and "detect nothing"
    (TWV = 0), so ``0 <= MTWV <= 1``.

    Computed exactly in one pass: lowering θ past a trial adds ``1 / (T · N_true(t))`` to
    TWV for a relevant trial and ``−β / (T · (N − N_true(t)))`` for a false alarm
    (``T`` = number of scored terms), so TWV at each threshold is a cumulative sum over
    trials sorted by decreasing score.

    Args:
        scores: ``(queries, documents)`` detection scores, higher = more relevant.
        relevant: ``(queries, documents)`` bool, whether the document contains the query.
        beta: false-alarm weight ``β = (C/V) · (1/P_term − 1)``; 999.9 for
            ``C/V = 0.1``, ``P_term = 10⁻⁴`` (NIST STD 2006).

    Raises:
        ValueError: as :func:`mean_average_precision`, or ``beta < 0``.
    """
    if beta < 0.0:
        raise ValueError(f"beta: expected >= 0, found {beta}")
    scores, relevant = _retrieval_trials(scores, relevant)
    targets = relevant.sum(axis=1, keepdims=True)
    non_targets = relevant.shape[1] - targets
    scored = np.broadcast_to(targets > 0, relevant.shape)
    terms = int(np.count_nonzero(targets))
    hit_gain = 1.0 / (terms * np.maximum(targets, 1))
    false_alarm_loss = beta / (terms * np.maximum(non_targets, 1))
    gain = np.where(relevant, hit_gain, -false_alarm_loss) * scored
    order = np.argsort(-scores, axis=None, kind="stable")
    sorted_scores = scores.ravel()[order]
    twv = np.cumsum(gain.ravel()[order])
    last_of_tie = np.append(sorted_scores[1:] != sorted_scores[:-1], True)
    return float(max(0.0, np.max(twv[last_of_tie])))


def term_weighted_value(detected: ArrayLike, relevant: ArrayLike, beta: float = 999.9) -> float:
    """Term-weighted value of fixed yes/no decisions (NIST 2006 STD evaluation plan); the
    *actual* TWV (ATWV) when the decisions are the system's own.

    ``TWV = 1 − mean_t [P_miss(t) + β · P_FA(t)]`` over the terms with ``N_true(t) > 0``,
    with ``P_miss`` and ``P_FA`` as in :func:`maximum_term_weighted_value`; unlike MTWV it
    can be negative (down to ``−β``).

    Args:
        detected: ``(queries, documents)`` bool, the system said YES.
        relevant: ``(queries, documents)`` bool, whether the document contains the query.
        beta: false-alarm weight (see :func:`maximum_term_weighted_value`).

    Raises:
        ValueError: as :func:`maximum_term_weighted_value`, or non-boolean decisions.
    """
    if beta < 0.0:
        raise ValueError(f"beta: expected >= 0, found {beta}")
    detected = np.asarray(detected)
    if not set(np.unique(detected).tolist()) <= {0, 1}:
        raise ValueError(f"expected boolean decisions, found values {sorted(np.unique(detected).tolist())}")
    _, relevant = _retrieval_trials(detected.astype(np.float64), relevant)
    detected = detected.astype(bool)
    scored = relevant.any(axis=1)
    targets = relevant[scored].sum(axis=1)
    non_targets = relevant.shape[1] - targets
    misses = (relevant & ~detected)[scored].sum(axis=1) / targets
    false_alarms = (~relevant & detected)[scored].sum(axis=1) / np.maximum(non_targets, 1)
    return float(1.0 - np.mean(misses + beta * false_alarms))


__all__ = [
    "DTWAlignment",
    "accuracy",
    "chance_accuracy",
    "character_error_rate",
    "cosine_scores",
    "dtw_align",
    "dtw_distance",
    "equal_error_rate",
    "macro_f1",
    "maximum_term_weighted_value",
    "mean_average_precision",
    "min_dcf",
    "phone_error_rate",
    "term_weighted_value",
    "word_error_rate",
]
