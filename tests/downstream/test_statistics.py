"""Seed statistics: t intervals and paired tests against hand computations, and the results table."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speechssl.downstream.row import Row
from speechssl.downstream.statistics import (
    Summary,
    group_by_seed,
    holm_bonferroni,
    paired_test,
    results_table,
    seeds_for_significance,
    significance_floor_note,
    summarize,
    wilcoxon_min_p_value,
)


def test_summary_interval_by_hand() -> None:
    summary = summarize([1.0, 2.0, 3.0])
    # mean 2, s = sqrt((1 + 0 + 1) / 2) = 1, n = 3. Student t with 2 df has CDF 1/2 + t / (2 sqrt(t² + 2)),
    # so the 0.975 quantile solves t / sqrt(t² + 2) = 0.95: t² = 2 · 0.9025 / 0.0975 -> t ≈ 4.30265.
    t_quantile = math.sqrt(2 * 0.95**2 / (1 - 0.95**2))
    half_width = t_quantile * 1.0 / math.sqrt(3)
    assert (summary.mean, summary.std, summary.n, summary.ci_level) == (2.0, 1.0, 3, 0.95)
    assert summary.ci_low == pytest.approx(2.0 - half_width)
    assert summary.ci_high == pytest.approx(2.0 + half_width)


def test_summary_of_identical_seeds_is_a_point() -> None:
    summary = summarize([0.25, 0.25, 0.25])  # scipy's t.interval would give nan for scale 0
    assert (summary.std, summary.ci_low, summary.ci_high) == (0.0, 0.25, 0.25)


def test_summary_of_one_seed_has_no_interval() -> None:
    summary = summarize([0.7])
    assert summary.mean == 0.7 and summary.n == 1
    assert math.isnan(summary.std) and math.isnan(summary.ci_low) and math.isnan(summary.ci_high)


def test_summary_interval_is_clipped_to_the_metric_range() -> None:
    values = [0.98, 1.0, 1.0]
    free, clipped = summarize(values), summarize(values, bounds=(0.0, 1.0))
    assert free.ci_high > 1.0 and not free.clipped  # the symmetric t interval leaves [0, 1]
    assert clipped.ci_high == 1.0 and clipped.ci_low == free.ci_low and clipped.clipped
    assert (clipped.mean, clipped.std) == (free.mean, free.std)
    inside = summarize([0.5, 0.6, 0.7], bounds=(0.0, 1.0))
    assert not inside.clipped and inside == summarize([0.5, 0.6, 0.7])
    low = summarize([0.0, 0.0, 0.03], bounds=(0.0, math.inf))  # e.g. a WER: no upper bound
    assert low.ci_low == 0.0 and low.clipped
    assert low.ci_high == pytest.approx(summarize([0.0, 0.0, 0.03]).ci_high)


@pytest.mark.parametrize(
    ("values", "kwargs", "message"),
    [
        ([1.2, 0.5], {"bounds": (0.0, 1.0)}, r"within the metric's range \(0.0, 1.0\), found \[1.2, 0.5\]"),
        ([0.5, 0.6], {"bounds": (1.0, 0.0)}, "low < high"),
        ([], {}, "at least one value"),
        ([1.0, math.nan], {}, "finite"),
        ([[1.0, 2.0]], {}, r"1-D \(seeds,\).*\(1, 2\)"),
        ([1.0, 2.0], {"ci_level": 1.0}, r"ci_level.*found 1.0"),
    ],
)
def test_summary_rejects_bad_input(values: list, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        summarize(values, **kwargs)


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.floats(-100, 100), min_size=2, max_size=12))
def test_summary_interval_is_centred_and_grows_with_level(values: list[float]) -> None:
    narrow, wide = summarize(values, ci_level=0.8), summarize(values, ci_level=0.99)
    assert narrow.ci_low <= narrow.mean <= narrow.ci_high
    assert (narrow.ci_low + narrow.ci_high) / 2 == pytest.approx(narrow.mean, abs=1e-9)
    assert wide.ci_low <= narrow.ci_low + 1e-9 and narrow.ci_high <= wide.ci_high + 1e-9


def test_wilcoxon_exact_p_value_by_hand() -> None:
    a, b = [0.80, 0.82, 0.85, 0.79, 0.90], [0.70, 0.71, 0.72, 0.73, 0.74]
    result = paired_test(a, b)
    # all five differences positive: W = min(R+, R−) = 0; exact null: 2 of the 2⁵ sign patterns
    # are as extreme (all + or all −) -> two-sided p = 2 / 32
    assert result.statistic == 0.0 and result.p_value == pytest.approx(2 / 32)
    assert result.mean_difference == pytest.approx((0.10 + 0.11 + 0.13 + 0.06 + 0.16) / 5)
    assert (result.n, result.method) == (5, "wilcoxon")


def test_paired_ttest_by_hand_and_sign() -> None:
    a, b = [2.0, 4.0, 6.0], [1.0, 2.0, 3.0]
    # differences 1, 2, 3: mean 2, s_d = 1, t = 2 / (1 / sqrt 3) = 2 sqrt 3 with 2 df;
    # two-sided p = 1 − t / sqrt(t² + 2) = 1 − 2 sqrt 3 / sqrt 14
    result = paired_test(a, b, method="ttest")
    assert result.statistic == pytest.approx(2 * math.sqrt(3))
    assert result.p_value == pytest.approx(1 - 2 * math.sqrt(3) / math.sqrt(14))
    swapped = paired_test(b, a, method="ttest")
    assert swapped.statistic == pytest.approx(-result.statistic)
    assert swapped.mean_difference == pytest.approx(-2.0) and swapped.p_value == pytest.approx(result.p_value)


@pytest.mark.parametrize("method", ["wilcoxon", "ttest"])
def test_identical_results_are_not_significant(method: str) -> None:
    result = paired_test([0.5, 0.6, 0.7], [0.5, 0.6, 0.7], method=method)
    assert (result.statistic, result.p_value, result.mean_difference) == (0.0, 1.0, 0.0)


def test_constant_difference_ttest_is_infinitely_significant() -> None:
    result = paired_test([1.5, 2.5, 3.5], [1.0, 2.0, 3.0], method="ttest")
    assert result.statistic == math.inf and result.p_value == 0.0 and result.mean_difference == 0.5


def test_paired_test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"len\(a\)=3 and len\(b\)=2"):
        paired_test([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="at least 2 paired values, found 1"):
        paired_test([1.0], [2.0])
    with pytest.raises(ValueError, match="'wilcoxon' or 'ttest', found 'sign'"):
        paired_test([1.0, 2.0], [2.0, 3.0], method="sign")  # type: ignore[arg-type]


def row(upstream: str, task: str, seed: int, value: float, metric: str = "accuracy") -> dict:
    return {"upstream": upstream, "task": task, "metric": metric, "seed": seed, "value": value}


def test_results_table_nests_summaries() -> None:
    rows = [
        row("bt", "ks", 0, 0.90), row("bt", "ks", 1, 0.92), row("bt", "ks", 2, 0.94),
        row("fbank", "ks", 0, 0.50), row("fbank", "ks", 1, 0.60),
        row("bt", "asr", 0, 0.30, metric="wer"), row("bt", "asr", 0, 0.10, metric="cer"),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="task 'asr': expected one metric per task"):
        results_table(rows)
    table = results_table(rows[:5])
    assert set(table) == {"ks"} and set(table["ks"]) == {"bt", "fbank"}
    assert table["ks"]["bt"].mean == pytest.approx(0.92) and table["ks"]["bt"].n == 3
    assert table["ks"]["fbank"] == summarize([0.50, 0.60])
    wer = results_table(rows, metric="wer")
    assert set(wer) == {"asr"} and set(wer["asr"]) == {"bt"}
    assert wer["asr"]["bt"].mean == 0.30 and wer["asr"]["bt"].n == 1 and math.isnan(wer["asr"]["bt"].std)
    assert isinstance(wer["asr"]["bt"], Summary)
    assert group_by_seed(rows[:5])["ks"]["fbank"] == {0: 0.50, 1: 0.60}


def test_results_table_rejects_bad_rows() -> None:
    with pytest.raises(ValueError, match="found seed 0 twice"):
        results_table([row("bt", "ks", 0, 0.9), row("bt", "ks", 0, 0.8)])
    with pytest.raises(ValueError, match=r"row 0: expected keys .*found \['seed', 'task', 'upstream'\]"):
        results_table([{"upstream": "bt", "task": "ks", "seed": 0}])
    with pytest.raises(ValueError, match="metric='eer'"):
        results_table([row("bt", "ks", 0, 0.9)], metric="eer")


def test_folds_are_a_dimension_beside_seeds() -> None:
    rows = [
        Row("er", seed, "accuracy", float(np.mean(folds)), extras={"fold_values": folds}, upstream=upstream)
        for upstream, per_seed in {
            "a": [[0.5, 0.7, 0.6], [0.6, 0.8, 0.7]],
            "b": [[0.4, 0.6, 0.5], [0.4, 0.7, 0.5]],
        }.items()
        for seed, folds in enumerate(per_seed)
    ]
    by_seed = group_by_seed(rows)
    assert by_seed["er"]["a"] == {
        (0, 0): 0.5,
        (0, 1): 0.7,
        (0, 2): 0.6,
        (1, 0): 0.6,
        (1, 1): 0.8,
        (1, 2): 0.7,
    }
    summary = results_table(rows)["er"]["a"]
    # six values, not the two fold means: the interval uses t with 5 degrees of freedom
    assert summary == summarize([0.5, 0.7, 0.6, 0.6, 0.8, 0.7]) and summary.n == 6
    assert summary.ci_high - summary.ci_low < summarize([0.6, 0.7]).ci_high - summarize([0.6, 0.7]).ci_low
    one_fold = Row("ks", 0, "accuracy", 0.9, extras={"fold_values": [0.9]}, upstream="a")
    assert group_by_seed([one_fold])["ks"]["a"] == {0: 0.9}
    with pytest.raises(ValueError, match="found seed 0 twice"):
        group_by_seed([rows[0], rows[0]])


def test_holm_by_hand_with_statsmodels_semantics() -> None:
    # sorted: 0.005, 0.01, 0.03, 0.04 -> ×4, ×3, ×2, ×1 = 0.02, 0.03, 0.06, 0.04 -> running max
    # 0.02, 0.03, 0.06, 0.06 (0.04 may not be rejected after 0.03 was not: step-down stops there)
    adjusted, rejected = holm_bonferroni([0.01, 0.04, 0.03, 0.005], alpha=0.05)
    assert adjusted.tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert rejected.tolist() == [True, False, False, True]
    # statsmodels' step-down rule: reject while p_(i) <= alpha / (m − i + 1): 0.005 <= 0.05 / 4,
    # 0.01 <= 0.05 / 3, then 0.03 > 0.05 / 2 stops, and 0.04 is kept although 0.04 <= 0.05 / 1
    assert (0.005 <= 0.05 / 4, 0.01 <= 0.05 / 3, 0.03 <= 0.05 / 2, 0.04 <= 0.05 / 1) == (
        True,
        True,
        False,
        True,
    )


def test_holm_caps_at_one_keeps_ties_and_one_test_is_unchanged() -> None:
    adjusted, rejected = holm_bonferroni([0.5, 0.6, 0.02, 0.02])
    # sorted 0.02, 0.02, 0.5, 0.6 -> 0.08, 0.06 -> 0.08, 1.0, 0.6 -> 1.0, 1.0
    assert adjusted.tolist() == pytest.approx([1.0, 1.0, 0.08, 0.08]) and not rejected.any()
    single, reject_single = holm_bonferroni([0.049])
    assert single.tolist() == [0.049] and reject_single.tolist() == [True]


@pytest.mark.parametrize(
    ("p_values", "alpha", "message"),
    [([0.2, 1.5], 0.05, r"probabilities in \[0, 1\], found \[0.2, 1.5\]"), ([0.2], 1.0, "alpha")],
)
def test_holm_rejects_bad_input(p_values: list[float], alpha: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        holm_bonferroni(p_values, alpha)


@pytest.mark.parametrize("n", [3, 5, 6, 8])
def test_wilcoxon_floor_is_the_exact_test_of_same_sign_differences(n: int) -> None:
    a = [1.0 + 0.1 * i for i in range(n)]
    b = [0.5 + 0.01 * i for i in range(n)]  # every difference positive, all distinct
    assert paired_test(a, b).p_value == pytest.approx(wilcoxon_min_p_value(n)) == 2 / 2**n


def test_seeds_needed_for_significance() -> None:
    assert seeds_for_significance(1, 0.05) == 6  # 2/2^5 = 0.0625 > 0.05 >= 2/2^6 = 0.03125
    # 20 upstreams against one reference: 19 · 2/2^9 = 0.074 > 0.05 >= 19 · 2/2^10 = 0.037
    assert seeds_for_significance(19, 0.05) == 10
    assert seeds_for_significance(2, 0.01) == 9  # 2 · 2/2^8 = 0.0156 > 0.01 >= 2 · 2/2^9 = 0.0078
    with pytest.raises(ValueError, match="comparisons: expected at least 1, found 0"):
        seeds_for_significance(0)


def test_significance_floor_note_names_the_seeds_needed() -> None:
    assert significance_floor_note(6, 1) is None  # 2/2^6 = 0.03125 <= 0.05
    assert significance_floor_note(5, 1) == (
        "with 5 seeds the smallest two-sided Wilcoxon p-value is 2/2^5 = 0.0625: no difference can "
        "reach p < 0.05 whatever its size; 6 seeds are needed."
    )
    note = significance_floor_note(8, 19)  # 19 · 2/2^8 = 0.148
    assert (
        note is not None
        and "Holm multiplies the smallest of 19 by 19" in note
        and note.endswith("10 seeds are needed.")
    )
    assert significance_floor_note(10, 19) is None
