"""Disentanglement metrics on constructed codes with known answers: one dimension per factor
(disentangled), mixed dimensions (entangled), and noise."""

from __future__ import annotations

import numpy as np
import pytest

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
    scores = disentanglement_scores(_disentangled(factors), factors)
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


def test_noise_code_scores_near_zero():
    factors = _factors()
    scores = disentanglement_scores(_noise(), factors)
    assert scores["mig"] < 0.05 and scores["sap"] < 0.05
    assert scores["dci_informativeness"] < 0.5
    assert scores["explicitness"] == pytest.approx(0.5, abs=0.08), "chance ROC AUC"


def test_dci_importance_matrix_is_diagonal_for_a_disentangled_code():
    factors = _factors(1)
    importance = dci(_disentangled(factors, 1), factors).importance
    assert importance.shape == (3, 3)
    assert np.all(np.argmax(importance, axis=0) == np.arange(3))


def test_mig_of_a_copied_factor_is_one_and_of_a_duplicated_dimension_is_zero():
    factors = {"word": np.repeat(np.arange(4), SAMPLES // 4)}
    exact = factors["word"][:, None].astype(float)
    assert mutual_information_gap(exact, factors) == pytest.approx(1.0)
    assert mutual_information_gap(np.hstack([exact, exact]), factors) == pytest.approx(0.0)
    assert separated_attribute_predictability(np.hstack([exact, exact]), factors) == pytest.approx(0.0)


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


def test_mutual_information_matches_scikit_learn_on_the_binned_codes():
    from sklearn.metrics import mutual_info_score

    from speechssl.analysis.disentanglement import discretize, mutual_information

    factors = _factors(3)
    codes = _entangled(factors, 3)
    binned = discretize(codes)
    expected = [[mutual_info_score(v, binned[:, d]) for v in factors.values()] for d in range(codes.shape[1])]
    np.testing.assert_allclose(mutual_information(codes, factors), expected, atol=1e-12)
