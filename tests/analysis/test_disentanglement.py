"""Disentanglement metrics on constructed codes with known answers: one dimension per factor
(disentangled), mixed dimensions (entangled), and noise; and against the reference
implementation's definitions (disentanglement_lib, Locatello et al. 2019), written out here
independently and run on the same inputs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import mutual_info_score
from sklearn.model_selection import train_test_split
from sklearn.svm import LinearSVC

from speechssl.analysis.disentanglement import (
    dci,
    disentanglement_scores,
    modularity_explicitness,
    mutual_information_gap,
    separated_attribute_predictability,
)

SAMPLES = 600


def _factors(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "speaker": rng.integers(0, 4, SAMPLES),
        "word": rng.integers(0, 5, SAMPLES),
        "gender": rng.integers(0, 2, SAMPLES),
    }


def _disentangled(factors: dict[str, np.ndarray], seed: int = 0) -> np.ndarray:
    """Dimension k is factor k plus small noise."""
    rng = np.random.default_rng(seed)
    values = np.stack([v.astype(float) for v in factors.values()], axis=1)  # (samples, factors)
    return values + rng.normal(scale=0.05, size=values.shape)


def _entangled(factors: dict[str, np.ndarray], seed: int = 0) -> np.ndarray:
    """Every dimension a different mix of every factor (an invertible dense mixing)."""
    rng = np.random.default_rng(seed)
    mixing = np.array([[1.0, 1.0, 1.0], [1.0, -1.0, 0.5], [0.5, 1.0, -1.0]])
    return _disentangled(factors, seed) @ mixing + rng.normal(scale=0.01, size=(SAMPLES, 3))


def _noise(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed + 100).normal(size=(SAMPLES, 3))


def test_disentangled_code_scores_high_on_every_metric():
    factors = _factors()
    scores = disentanglement_scores(_disentangled(factors), factors, sap_estimator="nearest_mean")
    assert scores["dci_disentanglement"] > 0.9 and scores["dci_completeness"] > 0.9
    assert scores["dci_informativeness"] > 0.95
    assert scores["mig"] > 0.8 and scores["sap"] > 0.8
    assert scores["modularity"] > 0.95 and scores["explicitness"] > 0.95


def test_entangled_code_is_informative_but_not_disentangled():
    factors = _factors()
    clean = disentanglement_scores(_disentangled(factors), factors)
    mixed = disentanglement_scores(_entangled(factors), factors)
    assert mixed["dci_informativeness"] > 0.8, "the information is all there"
    for metric in ("dci_disentanglement", "dci_completeness", "mig", "sap", "modularity"):
        assert mixed[metric] < clean[metric] - 0.2, metric
    clean_sap, mixed_sap = (
        separated_attribute_predictability(code, factors, estimator="nearest_mean")
        for code in (_disentangled(factors), _entangled(factors))
    )
    assert mixed_sap < clean_sap - 0.2


def test_noise_code_scores_near_zero():
    factors = _factors()
    scores = disentanglement_scores(_noise(), factors, sap_estimator="nearest_mean")
    assert scores["mig"] < 0.05 and scores["sap"] < 0.05
    assert scores["dci_informativeness"] < 0.5
    assert scores["explicitness"] == pytest.approx(0.5, abs=0.08), "chance ROC AUC"


def test_sap_of_the_reference_separates_disentangled_from_noise():
    factors = _factors()
    clean = separated_attribute_predictability(_disentangled(factors), factors)
    noise = separated_attribute_predictability(_noise(), factors)
    assert clean > noise + 0.3 and noise < 0.1


@pytest.mark.parametrize("estimator", ["gradient_boosting", "random_forest"])
def test_dci_importance_matrix_is_diagonal_for_a_disentangled_code(estimator):
    factors = _factors(1)
    importance = dci(_disentangled(factors, 1), factors, estimator=estimator).importance
    assert importance.shape == (3, 3)
    assert np.all(np.argmax(importance, axis=0) == np.arange(3))


def test_mig_of_a_copied_factor_is_one_and_of_a_duplicated_dimension_is_zero():
    factors = {"word": np.repeat(np.arange(4), SAMPLES // 4)}
    exact = factors["word"][:, None].astype(float)
    assert mutual_information_gap(exact, factors) == pytest.approx(1.0)
    assert mutual_information_gap(np.hstack([exact, exact]), factors) == pytest.approx(0.0)
    for estimator in ("linear_svm", "nearest_mean"):
        duplicated = separated_attribute_predictability(
            np.hstack([exact, exact]), factors, estimator=estimator
        )
        assert duplicated == pytest.approx(0.0)


def test_modularity_is_one_when_each_dimension_serves_one_factor():
    factors = _factors(2)
    code = _disentangled(factors, 2)
    clean = modularity_explicitness(code, factors).modularity
    assert clean > 0.95
    shared = np.hstack([code, code[:, :1] + code[:, 1:2]])  # a fourth dimension mixing two factors
    assert modularity_explicitness(shared, factors).modularity < clean - 0.03


@pytest.mark.parametrize(
    ("codes", "factors", "message"),
    [
        (np.zeros((10,)), {"a": np.zeros(10)}, r"codes: expected \(samples >= 4, dims >= 1\)"),
        (np.zeros((10, 2)), {}, "factors: expected at least one factor"),
        (np.zeros((10, 2)), {"a": np.zeros(9)}, r"factors\['a'\]: expected \(10,\) labels"),
        (np.zeros((10, 2)), {"a": np.zeros(10)}, r"factors\['a'\]: expected at least 2 distinct values"),
    ],
)
def test_bad_inputs_say_expected_and_found(codes, factors, message):
    with pytest.raises(ValueError, match=message):
        mutual_information_gap(codes, factors)


def test_unknown_estimators_are_named():
    factors = _factors()
    with pytest.raises(
        ValueError, match="dci_estimator: expected one of 'gradient_boosting', 'random_forest', found 'svm'"
    ):
        dci(_noise(), factors, estimator="svm")
    with pytest.raises(
        ValueError, match="sap_estimator: expected one of 'linear_svm', 'nearest_mean', found 'tree'"
    ):
        disentanglement_scores(_noise(), factors, sap_estimator="tree")


def test_mutual_information_matches_scikit_learn_on_the_binned_codes():
    from sklearn.metrics import mutual_info_score

    from speechssl.analysis.disentanglement import discretize, mutual_information

    factors = _factors(3)
    codes = _entangled(factors, 3)
    binned = discretize(codes)
    expected = [[mutual_info_score(v, binned[:, d]) for v in factors.values()] for d in range(codes.shape[1])]
    np.testing.assert_allclose(mutual_information(codes, factors), expected, atol=1e-12)


# The reference implementation (disentanglement_lib), written out from its definitions: codes
# are cut into 20 equal-width histogram bins per dimension, the mutual information is the
# plug-in estimate of scikit-learn's mutual_info_score, and the estimators are fitted on one
# sample and scored on another (here the same train/test split as speechssl's).


def _reference_split(samples: int) -> tuple[np.ndarray, np.ndarray]:
    return train_test_split(np.arange(samples), train_size=0.7, random_state=0)


def _reference_mutual_information(codes: np.ndarray, factors: dict[str, np.ndarray]) -> np.ndarray:
    binned = [np.digitize(column, np.histogram(column, 20)[1][:-1]) for column in codes.T]
    return np.array([[mutual_info_score(v, b) for v in factors.values()] for b in binned])  # (dims, factors)


def _reference_modularity(information: np.ndarray) -> float:
    squared = information**2
    top = squared.max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = 1.0 - (squared.sum(axis=1) - top) / (top * (squared.shape[1] - 1.0))
    score[top == 0.0] = 0.0
    return float(np.mean(score))


def _reference_sap(codes: np.ndarray, factors: dict[str, np.ndarray]) -> float:
    train, test = _reference_split(len(codes))
    matrix = np.zeros((codes.shape[1], len(factors)))
    for i, mu in enumerate(codes.T):
        for j, y in enumerate(factors.values()):
            classifier = LinearSVC(C=0.01, class_weight="balanced").fit(mu[train, np.newaxis], y[train])
            matrix[i, j] = np.mean(classifier.predict(mu[test, np.newaxis]) == y[test])
    ranked = np.sort(matrix, axis=0)
    return float(np.mean(ranked[-1] - ranked[-2]))


def _reference_dci(codes: np.ndarray, factors: dict[str, np.ndarray]) -> tuple[float, float, float]:
    train, test = _reference_split(len(codes))
    importance = np.zeros((codes.shape[1], len(factors)))
    accuracy = []
    for j, y in enumerate(factors.values()):
        model = GradientBoostingClassifier(random_state=0).fit(codes[train], y[train])
        importance[:, j] = np.abs(model.feature_importances_)
        accuracy.append(np.mean(model.predict(codes[test]) == y[test]))
    per_code = 1.0 - scipy.stats.entropy(importance.T + 1e-11, base=importance.shape[1])
    per_factor = 1.0 - scipy.stats.entropy(importance + 1e-11, base=importance.shape[0])
    disentanglement = np.sum(per_code * importance.sum(axis=1) / importance.sum())
    completeness = np.sum(per_factor * importance.sum(axis=0) / importance.sum())
    return float(disentanglement), float(completeness), float(np.mean(accuracy))


REFERENCE_SAMPLES = 200


def _small_factors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    return {"speaker": rng.integers(0, 3, REFERENCE_SAMPLES), "gender": rng.integers(0, 2, REFERENCE_SAMPLES)}


def _partly_mixed(factors: dict[str, np.ndarray]) -> np.ndarray:
    """Dimension 0 the speaker, 1 a mix of both factors, 2 noise: every metric strictly between its extremes."""
    rng = np.random.default_rng(6)
    speaker, gender = (v.astype(float) for v in factors.values())
    code = np.stack([speaker, speaker + 2 * gender, np.zeros(REFERENCE_SAMPLES)], axis=1)
    return code + rng.normal(scale=0.3, size=code.shape)


def test_modularity_matches_the_reference():
    factors = _small_factors()
    code = _partly_mixed(factors)
    expected = _reference_modularity(_reference_mutual_information(code, factors))
    assert 0.05 < expected < 0.95
    assert modularity_explicitness(code, factors).modularity == pytest.approx(expected, abs=1e-9)


def test_modularity_places_the_template_at_one_of_two_tied_factors():
    word = np.repeat(np.arange(4), SAMPLES // 4)
    factors = {"word": word, "word_again": word.copy()}  # every dimension informs both equally
    code = word[:, None] + np.random.default_rng(7).normal(scale=0.1, size=(SAMPLES, 1))
    assert _reference_modularity(_reference_mutual_information(code, factors)) == 0.0
    assert modularity_explicitness(code, factors).modularity == 0.0


def test_modularity_counts_a_dimension_without_information_as_zero():
    factors = _small_factors()
    informative = factors["speaker"][:, None] + np.random.default_rng(8).normal(
        scale=0.1, size=(REFERENCE_SAMPLES, 1)
    )
    code = np.hstack(
        [informative, np.full((REFERENCE_SAMPLES, 1), 3.0)]
    )  # a constant dimension: zero information
    alone = modularity_explicitness(informative, factors).modularity
    expected = _reference_modularity(_reference_mutual_information(code, factors))
    assert expected == pytest.approx(alone / 2, abs=1e-9) and alone > 0.9
    assert modularity_explicitness(code, factors).modularity == pytest.approx(expected, abs=1e-9)


def test_sap_matches_the_reference():
    factors = _small_factors()
    code = _partly_mixed(factors)
    expected = _reference_sap(code, factors)
    assert 0.05 < expected < 0.95
    assert separated_attribute_predictability(code, factors) == pytest.approx(expected, abs=1e-12)


def test_dci_matches_the_reference_gradient_boosted_trees():
    factors = _small_factors()
    code = _partly_mixed(factors)
    expected = _reference_dci(code, factors)
    assert all(0.05 < value < 0.99 for value in expected)
    scores = dci(code, factors)
    found = (scores.disentanglement, scores.completeness, scores.informativeness)
    assert found == pytest.approx(expected, abs=1e-6)
    forest = dci(code, factors, estimator="random_forest")
    assert forest.disentanglement != pytest.approx(expected[0], abs=1e-6), (
        "the estimator option changes the trees"
    )
