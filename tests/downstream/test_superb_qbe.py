"""SUPERB QbE on QUESST 2014's native layout: the NIST STD ground truth, s3prl's DTW matching and
per-query normalisation, MTWV/ATWV with QUESST's β on a constructed detection list, and the task
end to end through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from superb_fixtures import write_quesst14

from speechssl.cli import main
from speechssl.data import load_corpus
from speechssl.data.corpora.quesst14 import read_ground_truth
from speechssl.downstream.metrics import maximum_term_weighted_value, term_weighted_value
from speechssl.downstream.query_by_example import (
    DETECTION_THRESHOLD,
    QUESST_BETA,
    normalise_per_query,
    quesst_distance,
    quesst_scores,
)

# Two queries, five documents. Query A occurs in d0 and d1 (3 non-targets), query B in d2 (4 non-targets).
SCORES = np.array([[3.0, 1.0, 0.5, -1.0, -2.0], [0.0, -1.0, 2.5, 2.2, -3.0]])
RELEVANT = np.array([[True, True, False, False, False], [False, False, True, False, False]])


def test_quesst_beta():
    # β = (C_fa / C_miss)(1 / P_target − 1) = (1 / 100)(1250 − 1)
    assert pytest.approx(12.49) == QUESST_BETA


def test_mtwv_and_atwv_of_a_constructed_detection_list_by_hand():
    # One threshold for both queries. θ = 3.0: A misses 1/2, B misses 1 -> 1 − (1/2 + 1)/2 = 0.25;
    # θ = 2.5: A 1/2, B 0 -> 0.75; θ = 2.2 adds B's false alarm (β/4 = 3.1225) -> 1 − (0.5 + 3.1225)/2;
    # lower thresholds keep that false alarm and add more: MTWV = 0.75.
    assert maximum_term_weighted_value(SCORES, RELEVANT, beta=QUESST_BETA) == pytest.approx(0.75)
    # ATWV at the YES decisions (score > 2): A says YES to d0 only, B to d2 and d3 -> θ = 2.2's value.
    detected = SCORES > DETECTION_THRESHOLD
    expected = 1 - (0.5 + QUESST_BETA / 4) / 2
    assert term_weighted_value(detected, RELEVANT, beta=QUESST_BETA) == pytest.approx(expected)
    assert expected == pytest.approx(-0.81125)
    # a query without occurrences is not scored, whatever it detects
    with_empty = np.vstack([RELEVANT, [False] * 5])
    assert term_weighted_value(np.vstack([detected, [True] * 5]), with_empty, QUESST_BETA) == pytest.approx(
        expected
    )
    assert term_weighted_value(RELEVANT, RELEVANT, QUESST_BETA) == 1.0
    assert term_weighted_value(~RELEVANT, RELEVANT, beta=0.0) == 0.0
    with pytest.raises(ValueError, match="boolean decisions"):
        term_weighted_value(SCORES, RELEVANT)


def test_per_query_normalisation_by_hand():
    normalised = normalise_per_query([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]])
    np.testing.assert_allclose(normalised[0], np.array([-1.0, 0.0, 1.0]) / np.sqrt(2 / 3))
    np.testing.assert_array_equal(normalised[1], [0.0, 0.0, 0.0])
    # a global threshold on normalised scores differs from one on raw scores: query 1's raw
    # scores are all above query 0's, its normalised ones are not
    raw = np.array([[0.1, 0.2, 0.9], [10.0, 10.5, 11.0]])
    relevant = np.array([[False, False, True], [True, False, False]])
    assert maximum_term_weighted_value(normalise_per_query(raw), relevant, beta=1.0) == pytest.approx(0.5)


def test_quesst_distance_finds_an_embedded_query():
    rng = np.random.default_rng(0)
    query = rng.normal(size=(6, 4))
    document = np.vstack([rng.normal(size=(5, 4)), np.repeat(query, 2, axis=0), rng.normal(size=(4, 4))])
    assert quesst_distance(query, document) == pytest.approx(0.0, abs=1e-12)
    assert quesst_distance(query, rng.normal(size=(20, 4))) > 0.01
    scores = quesst_scores([query, query[:4]], [document, rng.normal(size=(20, 4)), rng.normal(size=(18, 4))])
    assert scores.shape == (2, 3) and int(np.argmax(scores[0])) == 0
    np.testing.assert_array_equal(scores[1], 0.0)  # under 5 frames: scored 0, as s3prl does


def test_ground_truth_and_manifest_of_the_native_layout(tmp_path):
    root = write_quesst14(tmp_path / "quesst14Database")
    manifest = load_corpus("quesst14", root)
    assert manifest.counts("split") == {"train": 12, "valid": 2, "test": 2}
    assert manifest.counts("role") == {"document": 12, "query": 4}
    truth = read_ground_truth(root, "eval")
    assert truth.queries == ["quesst14_eval_0001", "quesst14_eval_0002"] and len(truth.documents) == 12
    assert ("quesst14_eval_0001", "quesst14_00003") in truth.occurrences and len(truth.occurrences) == 4
    rttm = root / "scoring" / "groundtruth_quesst14_eval" / "quesst14_eval.rttm"
    rttm.write_text(rttm.read_text() + "LEXEME quesst14_00001 1 0.10 0.30 quesst14_eval_0099 lex <NA> <NA>\n")
    with pytest.raises(ValueError, match=r"quesst14_eval.rttm, line 5: expected 'LEXEME"):
        read_ground_truth(root, "eval")
    with pytest.raises(ValueError, match=r"query_set: expected one of \['dev', 'eval'\], found 'test'"):
        read_ground_truth(root, "test")


def test_superb_qbe_through_the_benchmark_command(tmp_path, capsys):
    write_quesst14(tmp_path / "data" / "quesst14Database")
    argv = ["benchmark", "--upstreams", "fbank", "--tasks", "superb_qbe", "--seeds", "1"]
    argv += [
        "--data-root",
        str(tmp_path / "data"),
        "--output",
        str(tmp_path / "out"),
        "--cache-dir",
        str(tmp_path / "c"),
    ]
    assert main(argv) == 0
    assert "| superb_qbe |" in capsys.readouterr().out
    row = json.loads((tmp_path / "out" / "runs" / "fbank" / "superb_qbe" / "seed_0.json").read_text())
    assert row["metric"] == "mtwv" and row["value"] == pytest.approx(1.0), (
        "the fixture's words are easy to find"
    )
    assert -QUESST_BETA <= row["atwv"] <= 1.0 and row["num_documents"] == 12
    assert "quesst14_dtw" in row["protocol"] and "C_miss 100" in row["protocol"]
