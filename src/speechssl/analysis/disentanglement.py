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

Factors are discrete (class labels); codes are ``(samples, dims)`` real arrays. Estimators
are fitted on a train part and scored on a held-out part where the metric needs one,
both given by ``train_fraction`` and ``seed``. Scores are near 1 for a code whose
dimensions each copy one factor, and near 0 for noise (see the tests' constructed codes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mutual_info_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder, StandardScaler

BINS = 20


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


def separated_attribute_predictability(
    codes: np.ndarray, factors: Mapping[str, np.ndarray], train_fraction: float = 0.7, seed: int = 0
) -> float:
    """SAP (Kumar et al. 2018): ``mean_k (S_(1)k - S_(2)k)`` where ``S_dk`` is how well
    dimension ``d`` alone predicts factor ``k`` on held-out samples.

    For discrete factors the paper scores each dimension with a classifier on that one
    dimension; here it is the nearest class mean (fitted on the train part; in one
    dimension its decision boundaries are thresholds, as a linear classifier's), for all
    dimensions at once. Accuracy is rescaled so that the majority-class rate scores 0 and a
    perfect prediction 1, so that factors with many values and with two are comparable.
    """
    codes, encoded = _check(codes, factors)
    train, test = _split(len(codes), train_fraction, seed)
    scores = np.zeros((codes.shape[1], len(encoded)))
    for k, labels in enumerate(encoded.values()):
        classes = np.unique(labels[train])
        means = np.stack([codes[train][labels[train] == c].mean(axis=0) for c in classes])  # (classes, dims)
        distances = np.abs(codes[test][:, None, :] - means[None, :, :])  # (test, classes, dims)
        predicted = classes[distances.argmin(axis=1)]  # (test, dims)
        accuracy = (predicted == labels[test][:, None]).mean(axis=0)  # (dims,)
        majority = np.mean(labels[test] == np.bincount(labels[train]).argmax())
        scores[:, k] = np.clip((accuracy - majority) / (1 - majority), 0.0, None) if majority < 1 else 0.0
    ranked = np.sort(scores, axis=0)[::-1]  # (dims, factors)
    second = ranked[1] if codes.shape[1] > 1 else np.zeros(ranked.shape[1])
    return float(np.mean(ranked[0] - second))


@dataclass(frozen=True)
class DCIScores:
    """Eastwood & Williams 2018.

    Attributes:
        disentanglement: importance-weighted mean over dimensions of ``1 - H_K(P_d.)``.
        completeness: mean over factors of ``1 - H_D(P~_.k)``.
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
    codes: np.ndarray, factors: Mapping[str, np.ndarray], train_fraction: float = 0.7, seed: int = 0
) -> DCIScores:
    """DCI from random-forest importances (Eastwood & Williams 2018, §2 and their random-forest variant).

    For each factor ``k`` a random forest (50 trees, every dimension considered at each split,
    so that a dimension that does not help is never used) predicts it from the code; its
    impurity importances form column ``k`` of ``R``. With ``P_dk = R_dk / Σ_k R_dk``
    (entropy base K) and ``P~_dk = R_dk / Σ_d R_dk`` (base D):
    ``D = Σ_d ρ_d (1 - H_K(P_d.))`` with ``ρ_d = Σ_k R_dk / Σ R``;
    ``C = mean_k (1 - H_D(P~_.k))``; ``I`` = mean held-out accuracy. With one dimension
    (or one factor) the entropy base is 1 and the score is defined as 1.
    """
    codes, encoded = _check(codes, factors)
    train, test = _split(len(codes), train_fraction, seed)
    importance = np.zeros((codes.shape[1], len(encoded)))
    accuracies = []
    for k, labels in enumerate(encoded.values()):
        forest = RandomForestClassifier(n_estimators=50, max_features=None, random_state=seed, n_jobs=1)
        forest.fit(codes[train], labels[train])
        importance[:, k] = forest.feature_importances_
        accuracies.append(forest.score(codes[test], labels[test]))
    dims, num_factors = importance.shape
    if num_factors > 1:
        per_code = 1.0 - _normalised_entropy(importance, axis=1)  # (dims,)
        weights = importance.sum(axis=1) / max(importance.sum(), 1e-12)
        disentanglement = float((weights * per_code).sum())
    else:
        disentanglement = 1.0
    completeness = float(np.mean(1.0 - _normalised_entropy(importance, axis=0))) if dims > 1 else 1.0
    return DCIScores(disentanglement, completeness, float(np.mean(accuracies)), importance)


@dataclass(frozen=True)
class ModularityExplicitness:
    """Ridgeway & Mozer 2018.

    Attributes:
        modularity: mean over dimensions of ``1 - δ_d``, how much of each dimension's
            information is about a single factor.
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
    ``t_dk = θ_d`` at the argmax and 0 elsewhere, ``δ_d = Σ_k (m_dk - t_dk)² / (θ_d² (K - 1))``
    and modularity is ``mean_d (1 - δ_d)`` (dimensions carrying no information are left out).
    """
    codes, encoded = _check(codes, factors)
    information = mutual_information(codes, factors, bins)  # (dims, factors)
    theta = information.max(axis=1)  # (dims,)
    informative = theta > 1e-12
    if len(encoded) > 1 and informative.any():
        template = np.where(information == theta[:, None], theta[:, None], 0.0)  # (dims, factors)
        deviation = ((information - template) ** 2).sum(axis=1) / (theta**2 * (len(encoded) - 1)).clip(1e-24)
        modularity = float(np.mean(1.0 - deviation[informative]))
    else:
        modularity = 1.0 if informative.any() else 0.0

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
    codes: np.ndarray, factors: Mapping[str, np.ndarray], train_fraction: float = 0.7, seed: int = 0
) -> dict[str, float]:
    """Every metric of this module as one flat dictionary (for tables and JSON)."""
    scores = dci(codes, factors, train_fraction, seed)
    modular = modularity_explicitness(codes, factors, train_fraction, seed)
    return {
        "dci_disentanglement": scores.disentanglement,
        "dci_completeness": scores.completeness,
        "dci_informativeness": scores.informativeness,
        "mig": mutual_information_gap(codes, factors),
        "sap": separated_attribute_predictability(codes, factors, train_fraction, seed),
        "modularity": modular.modularity,
        "explicitness": modular.explicitness,
    }


__all__ = [
    "DCIScores",
    "ModularityExplicitness",
    "dci",
    "discretize",
    "disentanglement_scores",
    "modularity_explicitness",
    "mutual_information",
    "mutual_information_gap",
    "separated_attribute_predictability",
]
