"""Downstream metrics against hand-computed values, brute-force definitions and error paths."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.dummy import DummyClassifier

from speechssl.downstream.metrics import (
    accuracy,
    chance_accuracy,
    character_error_rate,
    cosine_scores,
    dtw_align,
    dtw_distance,
    equal_error_rate,
    macro_f1,
    maximum_term_weighted_value,
    mean_average_precision,
    min_dcf,
    word_error_rate,
)

E1, E2, MINUS_E1 = [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]  # cosine distances: same 0, orthogonal 1, opposite 2


def test_accuracy_and_macro_f1_by_hand() -> None:
    predictions, targets = [0, 1, 1, 2], [0, 1, 2, 2]
    assert accuracy(predictions, targets) == pytest.approx(3 / 4)
    # class 0: P = R = 1 -> F1 = 1; class 1: P = 1/2, R = 1 -> F1 = 2/3; class 2: P = 1, R = 1/2 -> 2/3
    assert macro_f1(predictions, targets) == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)


def test_chance_is_the_best_constant_predictor_on_test() -> None:

    # the training majority ("yes") is absent from test: a train-majority chance would say 0.000
    test = ["no", "up", "up", "down", "up", "no"]
    reference = DummyClassifier(strategy="most_frequent").fit([[0]] * len(test), test)
    assert chance_accuracy(test) == reference.score([[0]] * len(test), test) == pytest.approx(3 / 6)
    assert chance_accuracy([3, 3, 1, 2]) == 0.5
    with pytest.raises(ValueError, match="non-empty"):
        chance_accuracy([])


def test_classification_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="3 and 2"):
        accuracy([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="at least one"):
        macro_f1([], [])


def test_eer_of_separated_and_inverted_scores() -> None:
    eer, threshold = equal_error_rate([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0])
    assert eer == 0.0 and threshold == pytest.approx(0.8)
    # targets below every non-target: both rates only meet at 1 (accepting both non-targets)
    assert equal_error_rate([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0])[0] == pytest.approx(1.0)


def test_eer_interpolated_crossing_by_hand() -> None:
    # targets 0.8, 0.6; non-targets 0.7, 0.5, 0.4, 0.3. (P_fa, P_miss) at θ = 0.7: (1/4, 1/2);
    # at θ = 0.6: (1/4, 0). P_miss − P_fa goes 1/4 -> −1/4: halfway, P_miss = P_fa = 1/4,
    # threshold halfway between 0.7 and 0.6.
    eer, threshold = equal_error_rate([0.8, 0.6, 0.7, 0.5, 0.4, 0.3], [1, 1, 0, 0, 0, 0])
    assert eer == pytest.approx(0.25) and threshold == pytest.approx(0.65)


def test_eer_of_uninformative_scores_is_one_half() -> None:
    # one threshold: accept all (P_fa = 1, P_miss = 0) vs accept nothing (0, 1) -> cross at 1/2
    eer, threshold = equal_error_rate([0.5, 0.5, 0.5, 0.5], [1, 0, 1, 0])
    assert eer == pytest.approx(0.5) and threshold == 0.5


@settings(max_examples=40, deadline=None)
@given(
    scores=st.lists(st.integers(0, 20), min_size=2, max_size=30),
    labels=st.lists(st.integers(0, 1), min_size=2, max_size=30),
)
def test_eer_is_a_rate_invariant_to_monotone_rescaling(scores: list[int], labels: list[int]) -> None:
    size = min(len(scores), len(labels))
    scores, labels = scores[:size], labels[:size]
    labels[0], labels[1] = 0, 1
    eer, threshold = equal_error_rate(scores, labels)
    rescaled_eer, rescaled_threshold = equal_error_rate([2 * s + 1 for s in scores], labels)
    assert 0.0 <= eer <= 1.0 and rescaled_eer == pytest.approx(eer)
    assert rescaled_threshold == pytest.approx(2 * threshold + 1)
    dcf = min_dcf(scores, labels, p_target=0.05)
    assert 0.0 <= dcf <= 1.0 + 1e-12


def test_min_dcf_by_hand() -> None:
    scores, labels = [0.9, 0.7, 0.3, 0.8, 0.2], [1, 1, 1, 0, 0]
    # p_t = 0.5, c_miss = 2, c_fa = 1: DCF = 2·P_miss·0.5 + P_fa·0.5, normaliser min(1, 0.5) = 0.5.
    # θ = inf: 1 -> 2; 0.9: 2/3 -> 4/3; 0.8: 2/3 + 1/4 -> 11/6; 0.7: 1/3 + 1/4 -> 7/6;
    # 0.3: 0 + 1/4 -> 1/2; 0.2: 0 + 1/2 -> 1. Minimum 1/2.
    assert min_dcf(scores, labels, p_target=0.5, c_miss=2.0, c_fa=1.0) == pytest.approx(0.5)
    # defaults p_t = 0.01, costs 1: normaliser 0.01; θ = 0.9: P_miss = 2/3 -> (2/3 · 0.01) / 0.01;
    # every threshold accepting a non-target costs >= 0.5 · 0.99 / 0.01 = 49.5.
    assert min_dcf(scores, labels) == pytest.approx(2 / 3)
    assert min_dcf([0.9, 0.8, 0.1], [1, 1, 0]) == 0.0


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        ([0.1, 0.2], [1, 1], "both target"),
        ([0.1, 0.2], [0, 2], "binary labels"),
        ([0.1, math.nan], [0, 1], "finite"),
        ([0.1, 0.2, 0.3], [0, 1], "equal length"),
    ],
)
def test_verification_rejects_bad_trials(scores: list[float], labels: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        equal_error_rate(scores, labels)
    with pytest.raises(ValueError, match=message):
        min_dcf(scores, labels)


def test_min_dcf_rejects_bad_operating_point() -> None:
    with pytest.raises(ValueError, match=r"p_target.*found 1.0"):
        min_dcf([0.1, 0.2], [0, 1], p_target=1.0)
    with pytest.raises(ValueError, match="positive costs"):
        min_dcf([0.1, 0.2], [0, 1], c_fa=0.0)


def test_cosine_scores_by_hand() -> None:
    a = np.array([[1.0, 0.0], [1.0, 1.0], [3.0, 4.0]])
    b = np.array([[0.0, 2.0], [2.0, 2.0], [-3.0, -4.0]])
    # orthogonal, parallel, opposite
    np.testing.assert_allclose(cosine_scores(a, b), [0.0, 1.0, -1.0], atol=1e-12)
    with pytest.raises(ValueError, match=r"\(3, 2\) and \(2, 2\)"):
        cosine_scores(a, b[:2])


def test_error_rates_are_corpus_level_by_hand() -> None:
    references = ["the cat sat on the mat", "hello"]
    hypotheses = ["the cat sat on the mat", "yellow"]
    # one substitution over 6 + 1 reference words (the per-utterance mean would be 1/2)
    assert word_error_rate(references, hypotheses) == pytest.approx(1 / 7)
    # "abcd" -> "abd": one deletion; "xy" -> "xz": one substitution; 4 + 2 reference characters
    assert character_error_rate(["abcd", "xy"], ["abd", "xz"]) == pytest.approx(2 / 6)
    assert word_error_rate(["a b"], ["a b c d"]) == pytest.approx(2 / 2)  # insertions can exceed 1 per word
    with pytest.raises(ValueError, match="2 references and 1 hypotheses"):
        word_error_rate(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="at least one"):
        character_error_rate([], [])


def test_dtw_tiny_case_by_hand() -> None:
    query, document = [E1, E2], [E2, MINUS_E1, E2, E1]
    # cost rows: query E1 -> [1, 2, 1, 0]; query E2 -> [0, 1, 0, 1].
    # subsequence: D0 = [1, 2, 1, 0]; D1 = [1, 2, 1, 1] (e.g. (0,0)->(1,0) = 1 + 0); min 1 -> 1 / 2 query frames
    assert dtw_distance(query, document) == pytest.approx(0.5)
    # global: D0 = cumsum = [1, 3, 4, 4]; D1[0] = 1 + 0, D1[1] = min(1, 3, 1) + 1 = 2,
    # D1[2] = min(3, 4, 2) + 0 = 2, D1[3] = min(4, 4, 2) + 1 = 3 -> 3 / 2
    alignment = dtw_align(query, document, subsequence=False)
    assert alignment.distance == pytest.approx(1.5) and (alignment.start, alignment.end) == (0, 3)


def test_dtw_finds_a_time_warped_occurrence() -> None:
    # query E1 E1 E2 matches document frames 1 (E1, held for two query frames) and 2 (E2) at zero cost
    alignment = dtw_align([E1, E1, E2], [E2, E1, E2, MINUS_E1])
    assert alignment.distance == pytest.approx(0.0, abs=1e-12)
    assert (alignment.start, alignment.end) == (1, 2)


@pytest.mark.parametrize(("offset", "length"), [(0, 5), (17, 8), (33, 7), (20, 1)])
def test_dtw_locates_an_embedded_query(offset: int, length: int) -> None:
    document = np.random.default_rng(offset).normal(size=(40, 6))
    query = 3.0 * document[offset : offset + length]  # cosine distance ignores scale
    alignment = dtw_align(query, document)
    assert alignment.distance == pytest.approx(0.0, abs=1e-9)
    assert (alignment.start, alignment.end) == (offset, offset + length - 1)


def naive_dtw(cost: np.ndarray, subsequence: bool) -> float:
    """Textbook double loop over the accumulated cost, step sizes (1,0), (0,1), (1,1)."""
    rows, columns = cost.shape
    accumulated = np.full((rows, columns), np.inf)
    for n in range(rows):
        for m in range(columns):
            if n == 0:
                accumulated[n, m] = cost[n, m] + (0.0 if subsequence or m == 0 else accumulated[n, m - 1])
                continue
            previous = [accumulated[n - 1, m]]
            if m > 0:
                previous += [accumulated[n - 1, m - 1], accumulated[n, m - 1]]
            accumulated[n, m] = cost[n, m] + min(previous)
    return float((accumulated[-1].min() if subsequence else accumulated[-1, -1]) / rows)


@settings(max_examples=40, deadline=None)
@given(
    query=hnp.arrays(
        np.float64, st.tuples(st.integers(1, 6), st.just(3)), elements=st.floats(-2, 2, width=16)
    ),
    document=hnp.arrays(
        np.float64, st.tuples(st.integers(1, 9), st.just(3)), elements=st.floats(-2, 2, width=16)
    ),
)
def test_dtw_matches_the_double_loop(query: np.ndarray, document: np.ndarray) -> None:
    norms_q = np.linalg.norm(query, axis=1, keepdims=True)
    norms_d = np.linalg.norm(document, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.nan_to_num((query / norms_q) @ (document / norms_d).T)  # zero frames: similarity 0
    cost = np.clip(1.0 - cosine, 0.0, 2.0)
    subsequence = dtw_distance(query, document)
    assert subsequence == pytest.approx(naive_dtw(cost, subsequence=True), abs=1e-9)
    assert dtw_distance(query, document, subsequence=False) == pytest.approx(
        naive_dtw(cost, subsequence=False), abs=1e-9
    )
    assert subsequence <= dtw_distance(query, document, subsequence=False) + 1e-12


def test_dtw_rejects_bad_frames() -> None:
    with pytest.raises(ValueError, match="feature dim, found 2 and 3"):
        dtw_distance(np.ones((2, 2)), np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"query: expected a \(frames, dim\).*\(0, 2\)"):
        dtw_distance(np.ones((0, 2)), np.ones((4, 2)))


def test_mean_average_precision_by_hand() -> None:
    scores = [[0.9, 0.8, 0.7, 0.6], [0.1, 0.4, 0.3, 0.2], [0.5, 0.6, 0.7, 0.8]]
    relevant = [[True, False, True, False], [True, False, False, False], [False] * 4]
    # query 0: relevant at ranks 1 and 3 -> (1/1 + 2/3) / 2 = 5/6
    # query 1: its one relevant document is ranked last of 4 -> 1/4
    # query 2: no relevant document, left out -> (5/6 + 1/4) / 2 = 13/24
    assert mean_average_precision(scores, relevant) == pytest.approx(13 / 24)
    assert mean_average_precision([[3.0, 1.0, 2.0]], [[True, False, True]]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least one query with a relevant document, found none"):
        mean_average_precision([[0.1, 0.2]], [[False, False]])
    with pytest.raises(ValueError, match=r"\(1, 2\) and \(1, 3\)"):
        mean_average_precision([[0.1, 0.2]], [[True, False, False]])


def test_mtwv_by_hand() -> None:
    scores = [[0.9, 0.5, 0.1], [0.8, 0.6, 0.2]]
    relevant = [[True, False, True], [False, True, False]]
    # β = 1. Term 0: N_true = 2, 1 non-target; term 1: N_true = 1, 2 non-targets.
    # θ = 0.6 detects 0.9 (hit, term 0), 0.8 (false alarm, term 1), 0.6 (hit, term 1):
    # term 0: P_miss = 1/2, P_FA = 0; term 1: P_miss = 0, P_FA = 1/2 -> TWV = 1 − (1/2 + 1/2) / 2 = 1/2.
    # Other thresholds: 0.9 -> 1 − (1/2 + 1)/2 = 1/4; 0.8 -> 1 − (1/2 + 1 + 1/2)/2 = 0; 0.5 -> 0; below < 0.
    assert maximum_term_weighted_value(scores, relevant, beta=1.0) == pytest.approx(0.5)
    # β = 999.9: any false alarm costs ~500 per term, so only θ = 0.9 (no false alarm) scores: 1/4
    assert maximum_term_weighted_value(scores, relevant) == pytest.approx(0.25)


def test_mtwv_extremes() -> None:
    relevant = [[True, False, False], [False, False, True]]
    assert maximum_term_weighted_value([[3.0, 1.0, 0.0], [0.0, 1.0, 2.0]], relevant) == pytest.approx(1.0)
    # every target ranked below every non-target: detecting nothing (TWV = 0) is best
    assert maximum_term_weighted_value([[0.0, 1.0, 2.0], [3.0, 1.0, 0.0]], relevant) == 0.0
    with pytest.raises(ValueError, match=r"beta: expected >= 0, found -1"):
        maximum_term_weighted_value([[1.0]], [[True]], beta=-1.0)


@settings(max_examples=40, deadline=None)
@given(
    scores=hnp.arrays(np.int64, st.tuples(st.integers(1, 4), st.integers(1, 6)), elements=st.integers(0, 5)),
    data=st.data(),
    beta=st.floats(0.0, 20.0),
)
def test_mtwv_matches_the_definition(scores: np.ndarray, data: st.DataObject, beta: float) -> None:
    relevant = data.draw(hnp.arrays(np.bool_, scores.shape))
    relevant[0, 0] = True
    best = 0.0
    for threshold in np.unique(scores):
        detected = scores >= threshold
        values = []
        for term in range(scores.shape[0]):
            targets = relevant[term].sum()
            if targets == 0:
                continue
            misses = np.sum(relevant[term] & ~detected[term]) / targets
            non_targets = scores.shape[1] - targets
            false_alarms = np.sum(~relevant[term] & detected[term]) / non_targets if non_targets else 0.0
            values.append(misses + beta * false_alarms)
        best = max(best, 1.0 - float(np.mean(values)))
    assert maximum_term_weighted_value(scores, relevant, beta=beta) == pytest.approx(best, abs=1e-9)
