"""Query-by-example spoken term detection with DTW over frozen frame features (no training).

Per seed, the corpus's speakers are split in halves: *dev* speakers choose the layer,
*test* speakers are scored. In each half, one spoken example of every keyword from a
randomly drawn speaker is a query; its search set is a random sample of utterances of
the half's *other* speakers, so a query is never matched against its own voice. Each
(query, document) pair is scored by the negated subsequence-DTW distance of their frames
(:func:`~speechssl.downstream.metrics.dtw_distance`); MAP and MTWV summarise the ranking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from speechssl.data import Manifest, group_disjoint_split
from speechssl.downstream.cache import FrameFeatures
from speechssl.downstream.metrics import dtw_distance, maximum_term_weighted_value, mean_average_precision


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
