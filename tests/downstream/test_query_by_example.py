"""Query-by-example: query/search-set drawing and the layer choice, on constructed frames."""

from __future__ import annotations

import numpy as np
import pytest

from speechssl.data import Manifest, Utterance
from speechssl.downstream.cache import FrameFeatures
from speechssl.downstream.query_by_example import draw_queries, evaluate_query_by_example


def _manifest(speakers: int = 8, words: int = 4, repeats: int = 3) -> Manifest:
    return Manifest(
        Utterance(
            f"s{s}_w{w}_{r}", f"/none/{s}{w}{r}.wav", 1.0, 16000, f"s{s}", "train", {"keyword": f"w{w}"}
        )
        for s in range(speakers)
        for w in range(words)
        for r in range(repeats)
    )


def test_queries_cover_every_keyword_and_never_search_their_own_speaker():
    manifest = _manifest()
    queries, searches = draw_queries(manifest, "keyword", documents=20, seed=0)
    keywords = manifest.column("keyword")
    speakers = manifest.column("speaker")
    assert sorted(keywords[q] for q in queries) == ["w0", "w1", "w2", "w3"]
    for query, search in zip(queries, searches, strict=True):
        assert len(search) == 20 and len(set(search)) == 20
        assert all(speakers[d] != speakers[query] for d in search)
    assert (queries, searches) == draw_queries(manifest, "keyword", documents=20, seed=0)


def test_informative_layer_is_chosen_and_scores_perfectly():
    manifest = _manifest()
    rng = np.random.default_rng(0)
    patterns = rng.normal(size=(4, 5, 8))  # one 5-frame pattern per keyword
    utterances = []
    for row in manifest:
        word = patterns[int(row.labels["keyword"][1:])] + rng.normal(size=(5, 8)) * 0.05
        noise = rng.normal(size=(5, 8))
        utterances.append(np.stack([noise, word], axis=1))  # (frames, layers, dim)
    frames = FrameFeatures(
        ids=manifest.ids,
        layers=(3, 7),
        frames=np.concatenate(utterances).astype(np.float16),
        offsets=np.arange(len(manifest) + 1) * 5,
        downsample_rate=320,
    )
    result = evaluate_query_by_example(frames, manifest, "keyword", seed=0, documents=30)
    assert result.layer == 7
    assert result.map == 1.0
    assert result.mtwv == pytest.approx(1.0)
    assert result.num_queries == 4
