"""Quality of discrete units against frame-level ground truth (Hsu et al. 2021, §IV-G).

Over ``T`` frames with ground-truth labels ``y_t`` (phones, or an utterance's word) and
units ``z_t``, HuBERT defines the joint distribution

    p_yz(i, j) = Σ_t [y_t = i ∧ z_t = j] / T,   p_y(i) = Σ_j p_yz(i, j),   p_z(j) = Σ_i p_yz(i, j),

and, with ``y*(z) = argmax_i p_yz(i, z)`` and ``z*(y) = argmax_j p_yz(y, j)``:

* phone (label) purity ``E_{p_z(z)}[p_{y|z}(y*(z) | z)] = Σ_z max_y p_yz(y, z)``: how
  often a unit's frames carry its most frequent label;
* cluster purity ``E_{p_y(y)}[p_{z|y}(z*(y) | y)] = Σ_y max_z p_yz(y, z)``: how often a
  label's frames fall in its most frequent unit;
* phone-normalised mutual information ``PNMI = I(y; z) / H(y)``: the fraction of the
  label's uncertainty the units remove (1 when the units determine the label, 0 when
  independent of it).

Codebook usage adds the fraction of the ``num_units`` units that occur and the
perplexity ``exp(H(p_z))`` (nats), the effective number of units used.

Everything is computed from the ``(labels, units)`` count matrix, which
:class:`JointCounter` accumulates utterance by utterance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


def joint_counts(truth: np.ndarray, units: np.ndarray, num_labels: int, num_units: int) -> np.ndarray:
    """The ``(num_labels, num_units)`` int64 count matrix ``n(i, j) = Σ_t [y_t = i ∧ z_t = j]``.

    Args:
        truth: ``(frames,)`` label indices in ``[0, num_labels)``.
        units: ``(frames,)`` unit indices in ``[0, num_units)``.
    """
    truth, units = np.asarray(truth, dtype=np.int64), np.asarray(units, dtype=np.int64)
    if truth.shape != units.shape or truth.ndim != 1:
        raise ValueError(
            f"truth, units: expected two (frames,) arrays of equal length, found {truth.shape} and {units.shape}"
        )
    for name, values, bound in (("truth", truth, num_labels), ("units", units, num_units)):
        if values.size and (values.min() < 0 or values.max() >= bound):
            raise ValueError(
                f"{name}: expected indices in [0, {bound}), found [{values.min()}, {values.max()}]"
            )
    flat = np.bincount(truth * num_units + units, minlength=num_labels * num_units)  # (labels * units,)
    return flat.reshape(num_labels, num_units)  # (labels * units,) -> (labels, units)


def _entropy(p: np.ndarray) -> float:
    """``−Σ p log p`` in nats over the non-zero entries of ``p``."""
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


@dataclass(frozen=True)
class UnitQuality:
    """Unit quality against ground truth; definitions in the module docstring.

    Attributes:
        frames: ``T``, frames counted.
        num_labels: ground-truth labels seen.
        num_units: size of the unit inventory.
        label_purity: phone purity (HuBERT's name when the labels are phones).
        cluster_purity: cluster purity.
        pnmi: ``I(y; z) / H(y)``; NaN when ``H(y) = 0`` (a single label).
        mutual_information: ``I(y; z)`` in nats.
        label_entropy: ``H(y)`` in nats.
        used_units: units occurring at least once.
        usage: ``used_units / num_units``.
        perplexity: ``exp(H(p_z))``.
    """

    frames: int
    num_labels: int
    num_units: int
    label_purity: float
    cluster_purity: float
    pnmi: float
    mutual_information: float
    label_entropy: float
    used_units: int
    usage: float
    perplexity: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def codebook_usage(unit_counts: np.ndarray, num_units: int | None = None) -> tuple[int, float, float]:
    """``(used units, fraction used, perplexity exp(H(p_z)))`` of ``unit_counts (units,)``."""
    unit_counts = np.asarray(unit_counts, dtype=np.float64)
    num_units = len(unit_counts) if num_units is None else num_units
    total = unit_counts.sum()
    if total <= 0:
        raise ValueError("unit_counts: expected at least one counted frame, found none")
    used = int((unit_counts > 0).sum())
    return used, used / num_units, float(np.exp(_entropy(unit_counts / total)))


def unit_quality(counts: np.ndarray) -> UnitQuality:
    """Purities, PNMI and usage of a ``(labels, units)`` count matrix (see :func:`joint_counts`)."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2 or (counts < 0).any():
        raise ValueError(
            f"counts: expected a (labels, units) matrix of counts >= 0, found shape {counts.shape}"
        )
    total = counts.sum()
    if total <= 0:
        raise ValueError("counts: expected at least one counted frame, found none")
    p_yz = counts / total  # (labels, units)
    p_y = p_yz.sum(axis=1)  # (labels,)
    p_z = p_yz.sum(axis=0)  # (units,)
    nonzero = p_yz > 0
    ratio = np.where(nonzero, p_yz, 1.0) / np.where(nonzero, np.outer(p_y, p_z), 1.0)  # (labels, units)
    mutual_information = max(float((p_yz * np.log(ratio)).sum()), 0.0)
    label_entropy = _entropy(p_y)
    pnmi = min(mutual_information / label_entropy, 1.0) if label_entropy > 0 else float("nan")
    used, usage, perplexity = codebook_usage(counts.sum(axis=0))
    return UnitQuality(
        frames=round(float(total)),
        num_labels=int((p_y > 0).sum()),
        num_units=counts.shape[1],
        label_purity=float(p_yz.max(axis=0).sum()),
        cluster_purity=float(p_yz.max(axis=1).sum()),
        pnmi=pnmi,
        mutual_information=mutual_information,
        label_entropy=label_entropy,
        used_units=used,
        usage=usage,
        perplexity=perplexity,
    )


class JointCounter:
    """Accumulates the ``(labels, units)`` count matrix from string labels, utterance by utterance.

    Args:
        num_units: size of the unit inventory.

    Attributes:
        labels: the label of each row, in order of first appearance.
        counts: ``(labels, num_units)`` int64 counts.
    """

    def __init__(self, num_units: int) -> None:
        if num_units < 1:
            raise ValueError(f"num_units: expected a positive integer, found {num_units}")
        self.num_units = num_units
        self.labels: list[str] = []
        self._index: dict[str, int] = {}
        self.counts = np.zeros((0, num_units), dtype=np.int64)

    def update(self, truth: Sequence[str] | np.ndarray, units: np.ndarray) -> None:
        """Count one utterance: ``truth (frames,)`` labels and ``units (frames,)`` unit indices."""
        names, inverse = np.unique(np.asarray(truth, dtype=object).astype(str), return_inverse=True)
        for name in names:
            if name not in self._index:
                self._index[name] = len(self.labels)
                self.labels.append(str(name))
        if len(self.labels) > self.counts.shape[0]:
            self.counts = np.pad(self.counts, ((0, len(self.labels) - self.counts.shape[0]), (0, 0)))
        rows = np.array([self._index[name] for name in names], dtype=np.int64)[inverse]  # (frames,)
        self.counts += joint_counts(rows, units, len(self.labels), self.num_units)

    def quality(self) -> UnitQuality:
        """:func:`unit_quality` of the counts so far."""
        return unit_quality(self.counts)


__all__ = ["JointCounter", "UnitQuality", "codebook_usage", "joint_counts", "unit_quality"]
