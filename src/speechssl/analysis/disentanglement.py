"""Disentanglement metrics of a representation against known generative factors.

For a corpus whose factors of variation are recorded (speechssl's synthetic corpus:
speaker, gender, word, pitch contour, ...), each metric asks in its own way whether each
factor is captured by few code dimensions and each dimension by few factors:

* :func:`mutual_information_gap` — MIG (Chen et al. 2018, "Isolating Sources of
  Disentanglement in VAEs", eq. 6): per factor, the gap between the two code dimensions
  sharing the most information with it, over the factor's entropy.
* :func:`separated_attribute_predictability` — SAP (Kumar et al. 2018, "Variational
  Inference of Disentangled Latent Concepts from Unlabeled Observations", §3): per factor,
  the gap between the two dimensions that best predict it alone.
* :func:`dci` — disentanglement, completeness and informativeness (Eastwood & Williams
  2018, "A Framework for the Quantitative Evaluation of Disentangled Representations",
  §2): from the feature importances of one predictor per factor.
* :func:`modularity_explicitness` — modularity and explicitness (Ridgeway & Mozer 2018,
  "Learning Deep Disentangled Embeddings with the F-Statistic Loss", §4).

Where the papers leave a choice open, the defaults are those of the reference
implementation of Locatello et al. (2019, "Challenging Common Assumptions in the
Unsupervised Learning of Disentangled Representations", ``disentanglement_lib``), so that
values are comparable with published ones: 20 equal-width bins and the plug-in mutual
information, gradient-boosted trees for DCI, one-dimensional linear SVMs for SAP.

Factors are discrete (class labels); codes are ``(samples, dims)`` real arrays. Estimators
are fitted on a train part and scored on a held-out part where the metric needs one,
both given by ``train_fraction`` and ``seed``. Scores are near 1 for a code whose
dimensions each copy one factor, and near 0 for noise (see the tests' constructed codes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mutual_info_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.svm import LinearSVC

BINS = 20
DCIEstimator = Literal["gradient_boosting", "random_forest"]
SAPEstimator = Literal["linear_svm", "nearest_mean"]
DCI_ESTIMATORS: tuple[str, ...] = get_args(DCIEstimator)
SAP_ESTIMATORS: tuple[str, ...] = get_args(SAPEstimator)


def _check(codes: np.ndarray, factors: Mapping[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2 or codes.shape[0] < 4 or codes.shape[1] < 1:
        raise ValueError(f"codes: expected (samples >= 4, dims >= 1), found shape {codes.shape}")
    if not factors:
        raise ValueError("factors: expected at least one factor, found none")
    encoded = {}
    for name, values in factors.items():
        values = np.asarray(values)
        if values.shape != (codes.shape[0],):
            raise ValueError(
                f"factors[{name!r}]: expected ({codes.shape[0]},) labels, found shape {values.shape}"
            )
        if len(np.unique(values)) < 2:
            raise ValueError(f"factors[{name!r}]: expected at least 2 distinct values, found 1")
        encoded[name] = LabelEncoder().fit_transform(values)
    return codes, encoded


def discretize(codes: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Each code dimension cut into ``bins`` equal-width bins: ``(samples, dims)`` integers."""
    codes = np.asarray(codes, dtype=np.float64)
    out = np.zeros(codes.shape, dtype=np.int64)
    for d in range(codes.shape[1]):
        edges = np.histogram_bin_edges(codes[:, d], bins=bins)
        out[:, d] = np.digitize(codes[:, d], edges[1:-1])
    return out


def mutual_information(codes: np.ndarray, factors: Mapping[str, np.ndarray], bins: int = BINS) -> np.ndarray:
    """``(dims, factors)`` mutual information in nats between each discretised dimension and each factor.

    Plug-in estimate from the joint histogram of (factor value, bin), computed for every
    dimension at once.
    """
    codes, encoded = _check(codes, factors)
    binned = discretize(codes, bins)  # (samples, dims)
    samples, dims = binned.shape
    information = np.zeros((dims, len(encoded)))
    for k, labels in enumerate(encoded.values()):
        values = labels.max() + 1
        cells = (np.arange(dims)[None, :] * values + labels[:, None]) * bins + binned  # (samples, dims)
        joint = (
            np.bincount(cells.ravel(), minlength=dims * values * bins).reshape(dims, values, bins) / samples
        )
        p_label = joint.sum(axis=2, keepdims=True)  # (dims, values, 1)
        p_bin = joint.sum(axis=1, keepdims=True)  # (dims, 1, bins)
        ratio = np.where(joint > 0, joint / np.clip(p_label * p_bin, 1e-300, None), 1.0)
        information[:, k] = (joint * np.log(ratio)).sum(axis=(1, 2))
    return information


def _entropy(labels: np.ndarray) -> float:
    return float(mutual_info_score(labels, labels))


def mutual_information_gap(codes: np.ndarray, factors: Mapping[str, np.ndarray], bins: int = BINS) -> float:
    """MIG (Chen et al. 2018, eq. 6): ``mean_k (I_(1)k - I_(2)k) / H(v_k)``, with ``I_(1)k >=
    I_(2)k`` the two largest informations between factor ``k`` and one code dimension.
    A single-dimension code has no second dimension: its gap is ``I_(1)k / H(v_k)``."""
    codes, encoded = _check(codes, factors)
    information = mutual_information(codes, factors, bins)  # (dims, factors)
    ranked = np.sort(information, axis=0)[::-1]  # (dims, factors), descending
    second = ranked[1] if codes.shape[1] > 1 else np.zeros(ranked.shape[1])
    entropies = np.array([_entropy(labels) for labels in encoded.values()])
    return float(np.mean((ranked[0] - second) / entropies))


def _split(samples: int, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction: expected a fraction in (0, 1), found {train_fraction}")
    return train_test_split(np.arange(samples), train_size=train_fraction, random_state=seed)


def _check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{option}: expected one of {', '.join(map(repr, choices))}, found {value!r}")


def separated_attribute_predictability(
    codes: np.ndarray,
    factors: Mapping[str, np.ndarray],
    train_fraction: float = 0.7,
    seed: int = 0,
    estimator: SAPEstimator = "linear_svm",
) -> float:
    """SAP (Kumar et al. 2018, §3): ``mean_k (S_(1)k - S_(2)k)`` where ``S_dk`` is how well
    dimension ``d`` alone predicts factor ``k`` on held-out samples, ``S_(1)k >= S_(2)k``
    the two best dimensions.

    For discrete factors the paper scores each dimension with a classifier on that one
    dimension. ``estimator`` chooses it:

    * ``"linear_svm"`` (default, the reference's): ``LinearSVC(C=0.01,
      class_weight="balanced")`` fitted on the train part, ``S_dk`` its held-out accuracy.
      Values are comparable with published SAP numbers; note that a binary factor's
      second-best dimension scores about chance (0.5), so SAP stays well below 1 even for
      a perfectly disentangled code.
    * ``"nearest_mean"``: the nearest class mean in one dimension (fitted on the train
      part), its accuracy rescaled so that the majority-class rate scores 0 and a perfect
      prediction 1, so that factors with many values and with two are comparable; not
      comparable with published numbers.

    Raises:
        ValueError: ``estimator`` is not one of :data:`SAP_ESTIMATORS`.
    """
    _check_choice("sap_estimator", estimator, SAP_ESTIMATORS)
    codes, encoded = _check(codes, factors)
    train, test = _split(len(codes), train_fraction, seed)
    score = _svm_accuracy if estimator == "linear_svm" else _nearest_mean_skill
    scores = np.stack(
        [score(codes[train], labels[train], codes[test], labels[test]) for labels in encoded.values()], axis=1
    )  # (dims, factors)
    ranked = np.sort(scores, axis=0)[::-1]  # (dims, factors)
    second = ranked[1] if codes.shape[1] > 1 else np.zeros(ranked.shape[1])
    return float(np.mean(ranked[0] - second))


def _svm_accuracy(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> np.ndarray:
    """``(dims,)`` held-out accuracy of a linear SVM on each single dimension (SAP's reference scorer)."""
    accuracies = []
    for d in range(x_train.shape[1]):
        classifier = LinearSVC(C=0.01, class_weight="balanced").fit(x_train[:, d : d + 1], y_train)
        accuracies.append(np.mean(classifier.predict(x_test[:, d : d + 1]) == y_test))
    return np.array(accuracies)


def _nearest_mean_skill(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> np.ndarray:
    """``(dims,)`` nearest-class-mean accuracy of each single dimension, rescaled from the majority rate to 1."""
    classes = np.unique(y_train)
    means = np.stack([x_train[y_train == c].mean(axis=0) for c in classes])  # (classes, dims)
    distances = np.abs(x_test[:, None, :] - means[None, :, :])  # (test, classes, dims)
    predicted = classes[distances.argmin(axis=1)]  # (test, dims)
    accuracy = (predicted == y_test[:, None]).mean(axis=0)  # (dims,)
    majority = np.mean(y_test == np.bincount(y_train).argmax())
    if majority == 1:
        return np.zeros(x_train.shape[1])
    return np.clip((accuracy - majority) / (1 - majority), 0.0, None)


@dataclass(frozen=True)
class DCIScores:
    """Eastwood & Williams 2018.

    Attributes:
        disentanglement: importance-weighted mean over dimensions of ``1 - H_K(P_d.)``.
        completeness: importance-weighted mean over factors of ``1 - H_D(P~_.k)``.
        informativeness: mean over factors of the predictors' held-out accuracy.
        importance: ``(dims, factors)`` the relative importances ``R``.
    """

    disentanglement: float
    completeness: float
    informativeness: float
    importance: np.ndarray


def _normalised_entropy(p: np.ndarray, axis: int) -> np.ndarray:
    """Entropy of the distributions along ``axis`` of non-negative ``p``, in base ``p.shape[axis]``."""
    p = p / np.clip(p.sum(axis=axis, keepdims=True), 1e-12, None)
    logs = np.log(np.where(p > 0, p, 1.0)) / np.log(p.shape[axis])
    return -(p * logs).sum(axis=axis)


def dci(
    codes: np.ndarray,
    factors: Mapping[str, np.ndarray],
    train_fraction: float = 0.7,
    seed: int = 0,
    estimator: DCIEstimator = "gradient_boosting",
) -> DCIScores:
    """DCI from the feature importances of one tree ensemble per factor (Eastwood & Williams 2018, §2).

    For each factor ``k`` a classifier predicts it from the whole code; its impurity
    importances form column ``k`` of ``R``. ``estimator`` chooses it:

    * ``"gradient_boosting"`` (default, the reference's): scikit-learn's
      ``GradientBoostingClassifier`` with its defaults (100 stages of depth-3 trees);
      ``seed`` fixes its tie-breaking. Its cost grows with the number of classes times the
      number of dimensions.
    * ``"random_forest"``: 50 trees, every dimension considered at each split (so that a
      dimension that does not help is never used); the paper's random-forest variant,
      faster on wide codes with many classes.

    With ``P_dk = R_dk / Σ_k R_dk`` (entropy base K) and ``P~_dk = R_dk / Σ_d R_dk`` (base D):
    ``D = Σ_d ρ_d (1 - H_K(P_d.))`` with ``ρ_d = Σ_k R_dk / Σ R``;
    ``C = Σ_k ρ~_k (1 - H_D(P~_.k))`` with ``ρ~_k = Σ_d R_dk / Σ R`` (as the reference
    weights it; the importances of each predictor sum to 1, so this is the plain mean
    unless a predictor uses no dimension at all); ``I`` = mean held-out accuracy. With one
    dimension (or one factor) the entropy base is 1 and the score is defined as 1.

    Raises:
        ValueError: ``estimator`` is not one of :data:`DCI_ESTIMATORS`.
    """
    _check_choice("dci_estimator", estimator, DCI_ESTIMATORS)
    codes, encoded = _check(codes, factors)
    train, test = _split(len(codes), train_fraction, seed)
    importance = np.zeros((codes.shape[1], len(encoded)))
    accuracies = []
    for k, labels in enumerate(encoded.values()):
        if estimator == "gradient_boosting":
            model = GradientBoostingClassifier(random_state=seed)
        else:
            model = RandomForestClassifier(n_estimators=50, max_features=None, random_state=seed, n_jobs=1)
        model.fit(codes[train], labels[train])
        importance[:, k] = model.feature_importances_
        accuracies.append(model.score(codes[test], labels[test]))
    dims, num_factors = importance.shape
    total = max(importance.sum(), 1e-12)
    if num_factors > 1:
        per_code = 1.0 - _normalised_entropy(importance, axis=1)  # (dims,)
        disentanglement = float((importance.sum(axis=1) / total * per_code).sum())
    else:
        disentanglement = 1.0
    if dims > 1:
        per_factor = 1.0 - _normalised_entropy(importance, axis=0)  # (factors,)
        completeness = float((importance.sum(axis=0) / total * per_factor).sum())
    else:
        completeness = 1.0
    return DCIScores(disentanglement, completeness, float(np.mean(accuracies)), importance)


@dataclass(frozen=True)
class ModularityExplicitness:
    """Ridgeway & Mozer 2018.

    Attributes:
        modularity: mean over dimensions of ``1 - δ_d``, how much of each dimension's
            information is about a single factor (0 for a dimension with no information).
        explicitness: mean over factors (and their values, one-vs-rest) of the held-out
            ROC AUC of a logistic regression on the whole code.
    """

    modularity: float
    explicitness: float


def modularity_explicitness(
    codes: np.ndarray,
    factors: Mapping[str, np.ndarray],
    train_fraction: float = 0.7,
    seed: int = 0,
    bins: int = BINS,
) -> ModularityExplicitness:
    """Modularity (Ridgeway & Mozer 2018, eq. 4) and explicitness (§4).

    Modularity: with ``m_dk`` the mutual information, ``θ_d = max_k m_dk`` and the template
    ``t_dk = θ_d`` at one argmax factor and 0 at every other, ``δ_d = Σ_k (m_dk - t_dk)² /
    (θ_d² (K - 1)) = (Σ_k m_dk² - θ_d²) / (θ_d² (K - 1))`` and modularity is
    ``mean_d (1 - δ_d)``. As in the reference implementation, the template keeps a single
    factor even when several tie (a dimension shared equally by two of two factors scores
    0), and a dimension with no information (``θ_d`` below 1e-12 nats) scores 0 and stays
    in the mean. With one factor ``δ_d`` is 0 for every informative dimension.
    """
    codes, encoded = _check(codes, factors)
    information = mutual_information(codes, factors, bins)  # (dims, factors)
    squared = information**2  # (dims, factors)
    theta_squared = squared.max(axis=1)  # (dims,)
    informative = information.max(axis=1) > 1e-12
    if len(encoded) > 1:
        deviation = (squared.sum(axis=1) - theta_squared) / (theta_squared * (len(encoded) - 1)).clip(1e-300)
    else:
        deviation = np.zeros(len(theta_squared))
    modularity = float(np.mean(np.where(informative, 1.0 - deviation, 0.0)))

    train, test = _split(len(codes), train_fraction, seed)
    scaler = StandardScaler().fit(codes[train])
    x_train, x_test = scaler.transform(codes[train]), scaler.transform(codes[test])
    factor_aucs = []
    for labels in encoded.values():
        model = LogisticRegression(max_iter=1000).fit(x_train, labels[train])
        probabilities = model.predict_proba(x_test)  # (test, classes seen in train)
        aucs = [
            roc_auc_score(labels[test] == value, probabilities[:, column])
            for column, value in enumerate(model.classes_)
            if 0 < np.sum(labels[test] == value) < len(test)
        ]
        factor_aucs.append(np.mean(aucs))
    return ModularityExplicitness(modularity, float(np.mean(factor_aucs)))


def disentanglement_scores(
    codes: np.ndarray,
    factors: Mapping[str, np.ndarray],
    train_fraction: float = 0.7,
    seed: int = 0,
    dci_estimator: DCIEstimator = "gradient_boosting",
    sap_estimator: SAPEstimator = "linear_svm",
) -> dict[str, float]:
    """Every metric of this module as one flat dictionary (for tables and JSON).

    ``dci_estimator`` and ``sap_estimator`` are the ``estimator`` of :func:`dci` and of
    :func:`separated_attribute_predictability`.
    """
    _check_choice("dci_estimator", dci_estimator, DCI_ESTIMATORS)
    _check_choice("sap_estimator", sap_estimator, SAP_ESTIMATORS)
    scores = dci(codes, factors, train_fraction, seed, dci_estimator)
    modular = modularity_explicitness(codes, factors, train_fraction, seed)
    return {
        "dci_disentanglement": scores.disentanglement,
        "dci_completeness": scores.completeness,
        "dci_informativeness": scores.informativeness,
        "mig": mutual_information_gap(codes, factors),
        "sap": separated_attribute_predictability(codes, factors, train_fraction, seed, sap_estimator),
        "modularity": modular.modularity,
        "explicitness": modular.explicitness,
    }


__all__ = [
    "DCI_ESTIMATORS",
    "SAP_ESTIMATORS",
    "DCIEstimator",
    "DCIScores",
    "ModularityExplicitness",
    "SAPEstimator",
    "dci",
    "discretize",
    "disentanglement_scores",
    "modularity_explicitness",
    "mutual_information",
    "mutual_information_gap",
    "separated_attribute_predictability",
]
