"""Issue 17: cross-modal retrieval (recall@k, median rank) and its task kind on a multi-modal run."""

from __future__ import annotations

import argparse
import dataclasses
import math

import numpy as np
import pytest
from methods.test_multimodal import TINY, TINY_OBJECTIVES, _paired_corpus

from speechssl.cli import _task_names
from speechssl.data import Manifest
from speechssl.downstream.retrieval import PairEmbeddings, retrieval_ranks, retrieve, score_retrieval
from speechssl.downstream.tasks import RetrievalTask, available_tasks
from speechssl.train import load_pretrain_config, pretrain
from speechssl.upstream import build_upstream


def test_ranks_recall_and_median_rank_by_hand():
    similarity = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8], [0.4, 0.4, 0.1]])
    relevant = np.array([[True, False, False], [True, False, False], [False, True, False]])
    ranks = retrieval_ranks(similarity, relevant)
    assert ranks.tolist() == [1, 3, 2]  # row 2: the irrelevant tie at 0.4 counts against the query
    result = score_retrieval(similarity, relevant, ks=(1, 2))
    assert result.recall == {1: pytest.approx(1 / 3), 2: pytest.approx(2 / 3)}
    assert result.median_rank == 2.0 and result.chance == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="at least one relevant candidate"):
        retrieval_ranks(similarity, np.zeros((3, 3), dtype=bool))


def _embeddings() -> PairEmbeddings:
    """Four utterances, two of 'one' and two of 'two'; each utterance's text embedding equals its own."""
    speech = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [0.6, 0.8]])
    texts = np.array(["one", "one", "two", "two"], dtype=object)
    other = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    return PairEmbeddings(speech, other, texts, texts, "word")


def test_a_repeated_text_is_one_candidate_and_relevant_to_every_utterance_of_it():
    gallery = np.arange(4)
    to_text = retrieve(_embeddings(), "speech_to_text", gallery)
    assert to_text.num_candidates == 2 and to_text.num_queries == 4
    assert to_text.ranks.tolist() == [1, 1, 1, 1]  # 0.6 vs 0.8: every utterance is nearer its own text
    to_speech = retrieve(_embeddings(), "text_to_speech", gallery)
    assert to_speech.num_queries == 2 and to_speech.num_candidates == 4
    assert to_speech.ranks.tolist() == [1, 1] and to_speech.chance == pytest.approx(0.5)
    with pytest.raises(ValueError, match="direction: expected one of"):
        retrieve(_embeddings(), "text_to_text", gallery)


def test_retrieval_tasks_are_registered_and_need_a_multimodal_run():
    names = {name for name, task in available_tasks().items() if isinstance(task, RetrievalTask)}
    assert names == {
        f"retrieval_{corpus}_{direction}"
        for corpus, directions in [
            ("fsdd", ("speech_to_text", "text_to_speech", "speech_to_image", "image_to_speech")),
            ("librispeech", ("speech_to_text", "text_to_speech")),
        ]
        for direction in directions
    }
    task = available_tasks()["retrieval_fsdd_speech_to_text"]
    assert task.requires is not None
    with pytest.raises(
        ValueError, match=r"retrieval_fsdd_speech_to_text: expected a multi-modal run .* found 'fbank'"
    ):
        task.prepare(build_upstream("fbank"), Manifest([]), None, None)


@pytest.mark.parametrize(
    "config_name, direction",
    [("speech_text_tiny", "text_to_speech"), ("visually_grounded_tiny", "speech_to_image")],
)
def test_a_tiny_run_retrieves_its_held_out_pairs(tmp_path, config_name, direction):
    manifest_path = _paired_corpus(tmp_path / "corpus", utterances=16)
    rows = list(Manifest.load(manifest_path))
    held_out = Manifest(
        row if i < 12 else dataclasses.replace(row, split="test") for i, row in enumerate(rows)
    )
    held_out.save(manifest_path)
    overrides = [*TINY, *TINY_OBJECTIVES[config_name], f"data.root={manifest_path}", "train.max_steps=2"]
    run = pretrain(load_pretrain_config(config_name, overrides), tmp_path / "run")
    column, match = ("word", None) if direction.startswith("text") else ("image", "keyword")
    task = RetrievalTask(
        "retrieval_tiny", "manifest", str(manifest_path), column, "rule", direction, match, 3
    )
    seed_run = task.prepare(build_upstream(str(run.checkpoint)), held_out, None, tmp_path)
    first, again, other = seed_run(0), seed_run(0), seed_run(1)
    assert first.value == again.value and first.metric == "recall_at_1"
    assert 0.0 <= first.value <= first.extras["recall_at_5"] <= first.extras["recall_at_10"] == 1.0
    assert first.extras["gallery_pairs"] == 3 and math.isfinite(other.extras["median_rank"])
    if direction == "text_to_speech":
        assert first.extras["text_column"] == "word" and first.extras["num_candidates"] == 3
    else:
        assert first.extras["num_queries"] == 3  # 3 utterances of 4 digits, 3 distinct images


def test_tasks_all_leaves_out_the_tasks_that_need_a_multimodal_run(tmp_path, capsys):
    (tmp_path / "fsdd").mkdir()
    names = _task_names(argparse.Namespace(tasks="all", suite=None, data_root=str(tmp_path)))
    assert "keyword_fsdd" in names and not any(name.startswith("retrieval_") for name in names)
    assert "retrieval_fsdd_speech_to_text (a multi-modal run" in capsys.readouterr().out
