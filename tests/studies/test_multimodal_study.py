"""Issue 17: the multi-modal study's variants and its per-task answer to the review's question."""

from __future__ import annotations

import math

import pytest

from speechssl.downstream.row import Row
from speechssl.studies.multimodal import answers, answers_table, study_variants, task_role


def _rows(upstream: str, task: str, values: list[float]) -> list[Row]:
    return [Row(task, seed, "accuracy", value, upstream=upstream) for seed, value in enumerate(values)]


def test_tasks_are_read_as_content_speaker_or_other():
    assert task_role("keyword_fsdd_digit_pairs") == "content"
    assert task_role("intent_fsc") == "content"
    assert task_role("speaker_fsdd") == "speaker"
    assert task_role("verification_ravdess") == "speaker"
    assert task_role("emotion_ravdess") == "other"


def test_the_answer_per_task_follows_the_paired_differences():
    rows = [
        *_rows("bt", "keyword_x", [0.50, 0.52, 0.51, 0.50, 0.53, 0.49, 0.50]),
        *_rows("mm", "keyword_x", [0.60, 0.63, 0.61, 0.62, 0.60, 0.61, 0.64]),
        *_rows("bt", "speaker_x", [0.80, 0.81, 0.82, 0.80, 0.79, 0.81, 0.80]),
        *_rows("mm", "speaker_x", [0.85, 0.80, 0.84, 0.83, 0.80, 0.83, 0.82]),
    ]
    found = {a.task: a for a in answers(rows, {"speech_only": "bt", "joint_text": "mm"})}
    content, speaker = found["keyword_x"], found["speaker_x"]
    assert content.advantage == pytest.approx(
        0.76 / 7, abs=1e-9
    )  # mean of the seven paired differences and content.variant == "joint_text"
    assert content.p_value == pytest.approx(2 / 2**7)  # every difference positive: the exact Wilcoxon floor
    assert content.p_holm == pytest.approx(min(1.0, 2 * content.p_value))  # two tests in the family
    assert content.verdict() == "toward content (significant)"
    assert speaker.advantage > 0 and speaker.verdict().startswith("NOT away from speaker")
    table = answers_table(list(found.values()), seeds=7)
    assert table.rows[0][-1] == "toward content (significant)" and not any("Note" in n for n in table.notes)
    assert any("no difference can reach" in n for n in answers_table(list(found.values()), seeds=3).notes)


def test_one_seed_gives_no_p_value():
    rows = [*_rows("bt", "keyword_x", [0.5]), *_rows("mm", "keyword_x", [0.4])]
    (answer,) = answers(rows, {"speech_only": "bt", "joint_image": "mm"})
    assert math.isnan(answer.p_value) and answer.verdict() == "NOT toward content (not significant)"


def test_variants_share_encoder_updates_and_base_objective(tmp_path):
    pairs = tmp_path / "pairs.csv"
    configs = study_variants(
        ["speech_only", "joint_text", "joint_image", "speech_text"],
        pairs,
        alpha=3.0,
        overrides=["train.max_steps=7"],
    )
    assert {name: c.method for name, c in configs.items()} == {
        "speech_only": "barlow_twins",
        "joint_text": "joint",
        "joint_image": "joint",
        "speech_text": "speech_text",
    }
    first = configs["speech_only"]
    assert all(
        (c.encoder, c.train, c.optim) == (first.encoder, first.train, first.optim) for c in configs.values()
    )
    assert first.train.max_steps == 7
    assert configs["joint_text"].objective.base_config() == configs["speech_only"].objective
    assert (
        configs["joint_text"].objective.alpha == 3.0
        and configs["joint_image"].objective.term == "visually_grounded"
    )
    assert (
        configs["joint_text"].data.text_column == "word"
        and configs["joint_image"].data.image_column == "image"
    )
    assert configs["speech_only"].data.text_column is None and configs["speech_only"].data.root == str(
        pairs.resolve()
    )
    with pytest.raises(ValueError, match="variants: expected names from"):
        study_variants(["clip"], pairs, alpha=1.0)
