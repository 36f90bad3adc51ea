"""Query-by-example spoken term detection with DTW over frozen frame features (no training).

Two protocols share the metrics (MTWV, ATWV and MAP of :mod:`speechssl.downstream.metrics`):

**Mini protocol** (:func:`evaluate_query_by_example`). Per seed, the corpus's speakers are split in halves: *dev* speakers choose the layer,
*test* speakers are scored. In each half, one spoken example of every keyword from a
randomly drawn speaker is a query; its search set is a random sample of utterances of
the half's *other* speakers, so a query is never matched against its own voice. Each
(query, document) pair is scored by the negated subsequence-DTW distance of their frames
(:func:`~speechssl.downstream.metrics.dtw_distance`); MAP and MTWV summarise the ranking.

**SUPERB QbE on QUESST 2014** (:func:`evaluate_quesst`; Yang et al. 2021, with s3prl's
``downstream/quesst14_dtw`` ``config.yaml`` and ``dtw_utils.py``, commit 24115f13, and the
QUESST 2014 scoring). Matching as s3prl does it: every feature dimension standardised over
all query and document frames; local cost ``exp(cosine distance) − 1``, min-max normalised
per query frame; subsequence DTW with dtw-python's ``asymmetric`` step pattern (open begin
and end), the path cost divided by the query length; the negated cost is the score, and
queries under 5 frames score 0 everywhere. Scores are then z-normalised per query over its
documents (:func:`normalise_per_query`), and a document is a YES detection when its
normalised score exceeds 2 (s3prl's ``stdlist`` decisions).

What the official scoring (NIST STD 2006 term-weighted value, as QUESST's
``score-TWV-Cnxe`` computes it) does that is followed here: the ground truth is per query
(term) and per document (a query occurring in a document is one target trial, whatever the
number or place of its occurrences; the tool's default ignores the time of a detection);
``P_miss(q) = misses / N_true(q)`` and ``P_FA(q) = false alarms / (documents − N_true(q))``
are averaged over the queries with at least one occurrence;
``β = (C_fa / C_miss)(1 / P_target − 1)`` with ``P_target = 0.0008``, ``C_miss = 100``,
``C_fa = 1`` (β ≈ 12.49, :data:`QUESST_BETA`), the MediaEval SWS 2013 / QUESST 2014 values
as their task descriptions give them (the constants inside the ``MediaEvalQUESST`` jar could
not be read here: check them against the tool before comparing with published MTWV); MTWV
is the maximum over one threshold shared by every query, applied to the per-query
normalised scores (the tool reports it as ``maxTWV``); ATWV is TWV at s3prl's YES
decisions (the tool's ``actTWV`` reads the scores as log-likelihood ratios and may place
its threshold differently). Not followed: the primary QUESST metric Cnxe (calibration) is
not computed. The layer with the best dev MTWV is scored once on the eval queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import cdist

from speechssl.data import Manifest, group_disjoint_split
from speechssl.data.corpora.quesst14 import QuesstGroundTruth
from speechssl.downstream.cache import FrameFeatures
from speechssl.downstream.metrics import (
    dtw_distance,
    maximum_term_weighted_value,
    mean_average_precision,
    term_weighted_value,
)

QUESST_PROTOCOL = (
    "SUPERB QbE (Yang et al. 2021), s3prl quesst14_dtw config.yaml + dtw_utils.py @24115f13; "
    "QUESST 2014 TWV (P_target 0.0008, C_miss 100, C_fa 1)"
)
QUESST_P_TARGET, QUESST_C_MISS, QUESST_C_FA = 0.0008, 100.0, 1.0
QUESST_BETA = QUESST_C_FA / QUESST_C_MISS * (1.0 / QUESST_P_TARGET - 1.0)
DETECTION_THRESHOLD = 2.0  # per-query z-score above which s3prl writes decision="YES"
MIN_QUERY_FRAMES = 5  # s3prl scores shorter queries 0 against every document


@dataclass(frozen=True)
class QueryByExampleResult:
    """Test-speaker MAP and MTWV at the layer with the best MAP on dev speakers."""

    map: float
    mtwv: float
    layer: int
    dev_map: float
    num_queries: int
    num_documents: int


def draw_queries(
    manifest: Manifest, label: str, documents: int, seed: int
) -> tuple[list[int], list[list[int]]]:
    """Row indices of one query per label value and, per query, of its search set.

    Each query is a random utterance of its label; its search set is ``documents`` random
    utterances (fewer if the corpus is smaller) of speakers other than the query's.
    """
    rng = np.random.default_rng(seed)
    values = np.asarray(manifest.column(label), dtype=object)
    speakers = np.asarray(manifest.column("speaker"), dtype=object)
    queries, searches = [], []
    for value in sorted(set(values)):
        query = int(rng.choice(np.flatnonzero(values == value)))
        others = np.flatnonzero(speakers != speakers[query])
        queries.append(query)
        searches.append(sorted(rng.choice(others, size=min(documents, len(others)), replace=False).tolist()))
    return queries, searches


def _scores(frames: FrameFeatures, layer: int, queries: list[int], searches: list[list[int]]) -> np.ndarray:
    """``(queries, documents)`` negated DTW distances at stored layer index ``layer``."""
    return np.array(
        [
            [-dtw_distance(frames.utterance(q)[:, layer], frames.utterance(d)[:, layer]) for d in search]
            for q, search in zip(queries, searches, strict=True)
        ]
    )


def _relevance(manifest: Manifest, label: str, queries: list[int], searches: list[list[int]]) -> np.ndarray:
    values = manifest.column(label)
    return np.array(
        [[values[d] == values[q] for d in search] for q, search in zip(queries, searches, strict=True)]
    )


def evaluate_query_by_example(
    frames: FrameFeatures, manifest: Manifest, label: str, seed: int, documents: int = 100
) -> QueryByExampleResult:
    """MAP and MTWV of DTW query-by-example on ``frames`` (rows in ``manifest`` order)."""
    parts = group_disjoint_split(manifest, valid_fraction=0.5, test_fraction=0.0, seed=seed)
    by_split = parts.split_rows(("valid", "train"))
    halves = {}
    for name, rows in (("dev", by_split["valid"]), ("test", by_split["train"])):
        queries, searches = draw_queries(manifest.select(rows), label, documents, seed)
        queries, searches = [int(rows[q]) for q in queries], [[int(rows[d]) for d in s] for s in searches]
        halves[name] = (queries, searches, _relevance(manifest, label, queries, searches))
    best = None
    for index, layer in enumerate(frames.layers):
        queries, searches, relevant = halves["dev"]
        dev_map = mean_average_precision(_scores(frames, index, queries, searches), relevant)
        if best is None or dev_map > best[0]:
            best = (dev_map, index, layer)
    dev_map, index, layer = best
    queries, searches, relevant = halves["test"]
    scores = _scores(frames, index, queries, searches)
    return QueryByExampleResult(
        map=float(mean_average_precision(scores, relevant)),
        mtwv=float(maximum_term_weighted_value(scores, relevant)),
        layer=int(layer),
        dev_map=float(dev_map),
        num_queries=len(queries),
        num_documents=len(searches[0]),
    )


def quesst_distance(query: np.ndarray, document: np.ndarray) -> float:
    """s3prl's QUESST match cost of standardised frames ``query (q_frames, dim)`` and
    ``document (d_frames, dim)``: ``exp(cosine distance) − 1``, min-max normalised per query
    frame, then subsequence DTW (dtw-python, ``asymmetric``, open begin and end), divided by
    the query length."""
    try:
        from dtw import dtw
    except ImportError as error:
        raise ImportError("QUESST matching needs dtw-python: pip install 'speechssl[superb]'") from error

    cost = np.exp(cdist(query, document, "cosine")) - 1.0  # (q_frames, d_frames)
    low, high = cost.min(axis=1, keepdims=True), cost.max(axis=1, keepdims=True)  # (q_frames, 1)
    cost = (cost - low) / np.clip(high - low, 1e-9, None)
    alignment = dtw(cost, step_pattern="asymmetric", open_begin=True, open_end=True, distance_only=False)
    return float(alignment.normalizedDistance)


def normalise_per_query(scores: np.ndarray) -> np.ndarray:
    """``(queries, documents)`` scores z-normalised over each query's documents (a constant
    row becomes 0), as s3prl writes them for the QUESST scoring."""
    scores = np.asarray(scores, dtype=np.float64)
    mean = scores.mean(axis=1, keepdims=True)  # (queries, 1)
    std = np.clip(scores.std(axis=1, keepdims=True), 1e-9, None)  # (queries, 1)
    return (scores - mean) / std


def quesst_scores(queries: Sequence[np.ndarray], documents: Sequence[np.ndarray]) -> np.ndarray:
    """Per-query normalised ``(queries, documents)`` detection scores of frame sequences
    (each ``(frames, dim)``), matched by :func:`quesst_distance` after standardising every
    dimension over all query and document frames."""
    every = np.concatenate([*queries, *documents]).astype(np.float64)  # (all frames, dim)
    mean, std = every.mean(axis=0), np.clip(every.std(axis=0), 1e-9, None)  # (dim,)
    docs = [(np.asarray(d, dtype=np.float64) - mean) / std for d in documents]
    raw = np.zeros((len(queries), len(documents)))
    for i, query in enumerate(queries):
        if len(query) >= MIN_QUERY_FRAMES:
            query = (np.asarray(query, dtype=np.float64) - mean) / std
            raw[i] = [-quesst_distance(query, document) for document in docs]
    return normalise_per_query(raw)


@dataclass(frozen=True)
class QuesstResult:
    """Eval-query MTWV and ATWV at the layer with the best dev MTWV.

    Attributes:
        mtwv: eval MTWV (β = :data:`QUESST_BETA`).
        atwv: eval ATWV at s3prl's YES decisions (normalised score > 2).
        map: eval MAP of the queries with an occurrence.
        layer: the upstream layer chosen on dev.
        dev_mtwv: dev MTWV at that layer.
        num_queries: eval queries with at least one occurrence.
        num_documents: documents searched.
    """

    mtwv: float
    atwv: float
    map: float
    layer: int
    dev_mtwv: float
    num_queries: int
    num_documents: int


def _quesst_set(
    frames: FrameFeatures, row_of: dict[str, int], truth: QuesstGroundTruth, index: int
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised scores and relevance ``(queries, documents)`` of one query set at stored layer ``index``."""
    for name in (*truth.queries, *truth.documents):
        if name not in row_of:
            raise ValueError(f"QUESST ground truth names {name}, which is not a .wav file of the corpus")
    queries = [frames.utterance(row_of[q])[:, index] for q in truth.queries]
    documents = [frames.utterance(row_of[d])[:, index] for d in truth.documents]
    relevant = np.array([[(q, d) in truth.occurrences for d in truth.documents] for q in truth.queries])
    return quesst_scores(queries, documents), relevant


def evaluate_quesst(
    frames: FrameFeatures, manifest: Manifest, dev: QuesstGroundTruth, eval_: QuesstGroundTruth
) -> QuesstResult:
    """SUPERB QbE: the layer of ``frames`` with the best MTWV on ``dev`` queries, scored once on
    ``eval_`` queries (rows of ``frames`` in ``manifest`` order)."""
    row_of = {utterance: i for i, utterance in enumerate(manifest.ids)}
    best = None
    for index, layer in enumerate(frames.layers):
        dev_mtwv = maximum_term_weighted_value(*_quesst_set(frames, row_of, dev, index), beta=QUESST_BETA)
        if best is None or dev_mtwv > best[0]:
            best = (dev_mtwv, index, layer)
    dev_mtwv, index, layer = best
    scores, relevant = _quesst_set(frames, row_of, eval_, index)
    return QuesstResult(
        mtwv=maximum_term_weighted_value(scores, relevant, beta=QUESST_BETA),
        atwv=term_weighted_value(scores > DETECTION_THRESHOLD, relevant, beta=QUESST_BETA),
        map=mean_average_precision(scores, relevant),
        layer=int(layer),
        dev_mtwv=float(dev_mtwv),
        num_queries=int(relevant.any(axis=1).sum()),
        num_documents=relevant.shape[1],
    )
