"""Unit quality metrics (HuBERT §IV-G) on hand-computed cases and their invariances."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from speechssl.units.quality import JointCounter, codebook_usage, joint_counts, unit_quality


def test_perfect_clustering_has_purity_and_pnmi_one():
    truth = np.array([0, 0, 1, 1, 2, 2])
    units = np.array([3, 3, 0, 0, 1, 1])  # a relabelling of the truth
    quality = unit_quality(joint_counts(truth, units, 3, 4))
    assert quality.label_purity == pytest.approx(1.0)
    assert quality.cluster_purity == pytest.approx(1.0)
    assert quality.pnmi == pytest.approx(1.0)
    assert quality.used_units == 3 and quality.usage == pytest.approx(0.75)
    assert quality.perplexity == pytest.approx(3.0)


def test_independent_units_have_pnmi_zero():
    # every (label, unit) pair equally often: p_yz = p_y p_z
    counts = np.full((2, 3), 5)
    quality = unit_quality(counts)
    assert quality.pnmi == pytest.approx(0.0, abs=1e-12)
    assert quality.label_purity == pytest.approx(0.5)  # every unit: half its frames are either label
    assert quality.cluster_purity == pytest.approx(1 / 3)


def test_hand_worked_two_by_three_case():
    # labels y in {a, b}, units z in {0, 1, 2}; T = 10 frames
    counts = np.array([[3, 1, 0], [1, 2, 3]])
    quality = unit_quality(counts)
    # phone purity: max over y per unit = 3 + 2 + 3 = 8 of 10
    assert quality.label_purity == pytest.approx(0.8)
    # cluster purity: max over z per label = 3 + 3 = 6 of 10
    assert quality.cluster_purity == pytest.approx(0.6)
    p = counts / 10
    p_y, p_z = np.array([0.4, 0.6]), np.array([0.4, 0.3, 0.3])
    mi = sum(p[i, j] * math.log(p[i, j] / (p_y[i] * p_z[j])) for i in range(2) for j in range(3) if p[i, j])
    h_y = -(0.4 * math.log(0.4) + 0.6 * math.log(0.6))
    assert quality.mutual_information == pytest.approx(mi)
    assert quality.label_entropy == pytest.approx(h_y)
    assert quality.pnmi == pytest.approx(mi / h_y)
    assert 0.3 < quality.pnmi < 0.4  # 0.2173 / 0.6730 = 0.3229
    assert quality.frames == 10 and quality.num_labels == 2 and quality.num_units == 3


def test_single_label_pnmi_is_nan_and_errors_are_checked():
    assert math.isnan(unit_quality(np.array([[2, 3]])).pnmi)
    with pytest.raises(ValueError, match="expected at least one counted frame"):
        unit_quality(np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"units: expected indices in \[0, 2\), found \[0, 2\]"):
        joint_counts(np.array([0, 1]), np.array([0, 2]), 2, 2)
    with pytest.raises(ValueError, match="expected two \\(frames,\\) arrays of equal length"):
        joint_counts(np.array([0]), np.array([0, 1]), 2, 2)


def test_codebook_usage():
    used, fraction, perplexity = codebook_usage(np.array([2, 2, 0, 0]))
    assert (used, fraction) == (2, 0.5) and perplexity == pytest.approx(2.0)


def test_joint_counter_accumulates_string_labels():
    counter = JointCounter(num_units=3)
    counter.update(["a", "a", "b"], np.array([0, 0, 1]))
    counter.update(np.array(["c", "b"], dtype=object), np.array([2, 1]))
    assert counter.labels == ["a", "b", "c"]
    np.testing.assert_array_equal(counter.counts, [[2, 0, 0], [0, 2, 0], [0, 0, 1]])
    assert counter.quality().pnmi == pytest.approx(1.0)


count_matrices = arrays(
    np.int64, st.tuples(st.integers(2, 5), st.integers(1, 6)), elements=st.integers(0, 20)
).filter(lambda m: (m.sum(axis=1) > 0).sum() >= 2)


@settings(max_examples=60, deadline=None)
@given(count_matrices, st.randoms(use_true_random=False))
def test_pnmi_in_unit_interval_and_invariant_to_unit_permutation(counts, random):
    quality = unit_quality(counts)
    assert 0.0 <= quality.pnmi <= 1.0
    assert 0.0 < quality.label_purity <= 1.0 + 1e-12 and 0.0 < quality.cluster_purity <= 1.0 + 1e-12
    order = list(range(counts.shape[1]))
    random.shuffle(order)
    permuted = unit_quality(counts[:, order])
    assert permuted.pnmi == pytest.approx(quality.pnmi, abs=1e-12)
    assert permuted.label_purity == pytest.approx(quality.label_purity)
    assert permuted.cluster_purity == pytest.approx(quality.cluster_purity)
    assert permuted.perplexity == pytest.approx(quality.perplexity)
