"""Many-seed reporting: means with Student-t confidence intervals and paired significance tests.

Each (upstream, task) pair is evaluated with several seeds (downstream initialisation and
data order). :func:`summarize` gives the mean and a t interval over seeds;
:func:`paired_test` compares two upstreams evaluated on the *same* seeds, pairing the
runs by seed (Dror et al., "The Hitchhiker's Guide to Testing Statistical Significance in
Natural Language Processing", ACL 2018, for the choice between the two tests). A task
evaluated over several folds (e.g. speaker-disjoint folds, as SUPERB's emotion task over IEMOCAP
sessions) contributes one value per (seed, fold): folds are a dimension of the sample beside
seeds (:func:`group_by_seed`). Intervals are clipped to the metric's range (:func:`summarize`
``bounds``); the tests of a family of comparisons are corrected with Holm's step-down procedure
(:func:`holm_bonferroni`), and :func:`wilcoxon_min_p_value` / :func:`seeds_for_significance`
say when a seed count cannot reach significance at all.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from speechssl.downstream.row import Row

ROW_KEYS = ("upstream", "task", "metric", "seed", "value")
FOLD_VALUES = "fold_values"  # the extras key of a row's per-fold test values


@dataclass(frozen=True)
class Summary:
    """Mean of a metric over seeds with its Student-t confidence interval.

    Attributes:
        mean: sample mean.
        std: sample standard deviation (``ddof=1``); ``nan`` when ``n == 1``.
        n: number of seeds.
        ci_low: lower end of the interval; ``nan`` when ``n == 1``.
        ci_high: upper end of the interval; ``nan`` when ``n == 1``.
        ci_level: coverage of the interval, e.g. 0.95.
        clipped: whether the t interval left the metric's range and was cut to it.
    """

    mean: float
    std: float
    n: int
    ci_low: float
    ci_high: float
    ci_level: float = 0.95
    clipped: bool = False


@dataclass(frozen=True)
class PairedTest:
    """Result of a paired two-sided test of ``a`` against ``b``.

    Attributes:
        statistic: Wilcoxon ``W`` (the smaller of the signed-rank sums) or paired ``t``.
        p_value: two-sided p-value.
        mean_difference: mean of ``a − b`` (positive: ``a`` scores higher).
        n: number of pairs.
        method: ``"wilcoxon"`` or ``"ttest"``.
    """

    statistic: float
    p_value: float
    mean_difference: float
    n: int
    method: str


def _values(values: ArrayLike, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D (seeds,) sequence, found shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name}: expected finite values, found {values.tolist()}")
    return values


def summarize(
    values: ArrayLike, ci_level: float = 0.95, bounds: tuple[float, float] = (-math.inf, math.inf)
) -> Summary:
    """Mean, sample standard deviation and Student-t confidence interval over seeds.

    ``mean ± t_{(1+ci_level)/2, n−1} · s / √n`` with ``s`` the ``ddof=1`` standard deviation
    (Student, "The probable error of a mean", Biometrika 1908), the quantile from
    ``scipy.stats.t``. It assumes the seed results are roughly normal and independent.
    The t interval is symmetric, so near the edge of a bounded metric (an accuracy of
    0.99 over 3 seeds) it can reach values the metric cannot take; it is then cut to
    ``bounds`` and :attr:`Summary.clipped` says so.

    Args:
        values: ``(seeds,)`` metric values, one per seed.
        ci_level: coverage of the interval, in ``(0, 1)``.
        bounds: ``(low, high)`` range of the metric (:attr:`~speechssl.downstream.row.Metric.bounds`,
            ``(0, 1)`` for accuracies and EER); unbounded by default.

    Returns:
        the :class:`Summary`; with a single seed the spread is unknown, so ``std``,
        ``ci_low`` and ``ci_high`` are ``nan`` (an interval of undefined width); seeds that
        all agree give the zero-width interval ``[mean, mean]``.

    Raises:
        ValueError: no values, non-finite values, a non-1-D input, ``ci_level``
            outside ``(0, 1)``, or values outside ``bounds``.
    """
    if not 0.0 < ci_level < 1.0:
        raise ValueError(f"ci_level: expected a coverage in (0, 1), found {ci_level}")
    low, high = bounds
    if not low < high:
        raise ValueError(f"bounds: expected low < high, found {bounds}")
    values = _values(values, "values")
    if np.any(values < low) or np.any(values > high):
        raise ValueError(
            f"values: expected values within the metric's range {bounds}, found {values.tolist()}"
        )
    n = len(values)
    if n == 0:
        raise ValueError("expected at least one value to summarize, found none")
    mean = float(np.mean(values))
    if n == 1:
        return Summary(mean=mean, std=math.nan, n=1, ci_low=math.nan, ci_high=math.nan, ci_level=ci_level)
    std = float(np.std(values, ddof=1))
    # the quantile times the standard error, not stats.t.interval: that returns nan for scale 0
    # (every seed equal), where the interval is the single point ``mean``
    half_width = float(stats.t.ppf((1.0 + ci_level) / 2.0, df=n - 1)) * std / math.sqrt(n)
    ci_low, ci_high = mean - half_width, mean + half_width
    return Summary(
        mean=mean,
        std=std,
        n=n,
        ci_low=max(ci_low, low),
        ci_high=min(ci_high, high),
        ci_level=ci_level,
        clipped=ci_low < low or ci_high > high,
    )


def paired_test(a: ArrayLike, b: ArrayLike, method: Literal["wilcoxon", "ttest"] = "wilcoxon") -> PairedTest:
    """Two-sided paired test of two upstreams evaluated on the same seeds.

    * ``"wilcoxon"``: Wilcoxon signed-rank test (Wilcoxon 1945; ``scipy.stats.wilcoxon``,
      zero differences dropped, exact null distribution for small ``n`` without ties).
      Distribution-free, but coarse with few seeds: the smallest two-sided p-value with
      ``n`` non-zero differences is ``2 / 2ⁿ``, so ``n <= 5`` can never reach 0.05.
    * ``"ttest"``: paired Student t-test on the differences (``scipy.stats.ttest_rel``),
      ``t = mean(d) / (s_d / √n)``; assumes roughly normal differences.

    When every difference is zero the upstreams are indistinguishable on these seeds:
    the result is ``statistic = 0`` and ``p_value = 1.0`` for both methods (scipy would
    return ``nan`` for the t-test). When the differences are all equal and non-zero the
    t statistic is ``±inf`` with ``p_value = 0.0`` (zero variance).

    Args:
        a: ``(seeds,)`` metric values of the first upstream.
        b: ``(seeds,)`` metric values of the second upstream, in the same seed order.
        method: ``"wilcoxon"`` or ``"ttest"``.

    Raises:
        ValueError: unknown method, lengths that differ, fewer than 2 pairs, or
            non-finite values.
    """
    if method not in ("wilcoxon", "ttest"):
        raise ValueError(f"method: expected 'wilcoxon' or 'ttest', found {method!r}")
    a, b = _values(a, "a"), _values(b, "b")
    if len(a) != len(b):
        raise ValueError(f"expected paired values of equal length, found len(a)={len(a)} and len(b)={len(b)}")
    if len(a) < 2:
        raise ValueError(f"expected at least 2 paired values, found {len(a)}")
    differences = a - b
    mean_difference = float(np.mean(differences))
    if not np.any(differences):
        return PairedTest(statistic=0.0, p_value=1.0, mean_difference=0.0, n=len(a), method=method)
    if method == "ttest" and np.all(differences == differences[0]):
        return PairedTest(
            statistic=math.copysign(math.inf, differences[0]),
            p_value=0.0,
            mean_difference=mean_difference,
            n=len(a),
            method=method,
        )
    result = stats.wilcoxon(a, b) if method == "wilcoxon" else stats.ttest_rel(a, b)
    return PairedTest(
        statistic=float(result.statistic),
        p_value=float(result.pvalue),
        mean_difference=mean_difference,
        n=len(a),
        method=method,
    )


def holm_bonferroni(p_values: ArrayLike, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Holm's step-down correction of a family of ``m`` tests (Holm, "A simple sequentially
    rejective multiple test procedure", Scand. J. Statistics 1979).

    With the p-values sorted ascending, ``p_(1) <= … <= p_(m)``, the adjusted value of the
    ``i``-th is ``max_{j <= i} min(1, (m − j + 1) · p_(j))``; a hypothesis is rejected when its
    adjusted p-value is at most ``alpha``, which controls the family-wise error rate at
    ``alpha``. The semantics of ``statsmodels.stats.multitest.multipletests(method="holm")``.

    Args:
        p_values: ``(m,)`` raw p-values in ``[0, 1]``, in any order.
        alpha: family-wise error rate, in ``(0, 1)``.

    Returns:
        ``(adjusted, rejected)``: ``(m,)`` adjusted p-values and booleans, in the input order.

    Raises:
        ValueError: a p-value outside ``[0, 1]`` or non-finite, or ``alpha`` outside ``(0, 1)``.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha: expected a level in (0, 1), found {alpha}")
    p_values = _values(p_values, "p_values")
    if np.any(p_values < 0.0) or np.any(p_values > 1.0):
        raise ValueError(f"p_values: expected probabilities in [0, 1], found {p_values.tolist()}")
    m = len(p_values)
    order = np.argsort(p_values, kind="stable")
    multipliers = m - np.arange(m)  # m, m − 1, …, 1 for the ascending p-values
    adjusted_sorted = np.minimum(np.maximum.accumulate(multipliers * p_values[order]), 1.0)
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted, adjusted <= alpha


def wilcoxon_min_p_value(n: int) -> float:
    """The smallest two-sided p-value the exact Wilcoxon signed-rank test can give with ``n``
    non-zero paired differences: ``2 / 2ⁿ``, reached when every difference has the same sign
    (one of the ``2ⁿ`` equally likely sign patterns at each end of the null distribution)."""
    if n < 1:
        raise ValueError(f"n: expected at least 1 paired difference, found {n}")
    return 2.0 / 2.0**n


def seeds_for_significance(comparisons: int = 1, alpha: float = 0.05) -> int:
    """The fewest seeds with which a Wilcoxon signed-rank test can reach ``alpha`` after Holm's
    correction over ``comparisons`` tests: the smallest ``n`` with ``comparisons · 2 / 2ⁿ <= alpha``
    (the smallest p-value of a family is multiplied by its size). One comparison at 0.05: 6 seeds."""
    if comparisons < 1:
        raise ValueError(f"comparisons: expected at least 1, found {comparisons}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha: expected a level in (0, 1), found {alpha}")
    n = 1
    while comparisons * wilcoxon_min_p_value(n) > alpha:
        n += 1
    return n


def significance_floor_note(seeds: int, comparisons: int = 1, alpha: float = 0.05) -> str | None:
    """A sentence for a report when ``seeds`` paired seeds cannot make any of ``comparisons``
    Holm-corrected Wilcoxon tests reach ``alpha``, whatever the differences (``None`` when they can)."""
    if comparisons * wilcoxon_min_p_value(seeds) <= alpha:
        return None
    holm = f", and Holm multiplies the smallest of {comparisons} by {comparisons}" if comparisons > 1 else ""
    return (
        f"with {seeds} seeds the smallest two-sided Wilcoxon p-value is 2/2^{seeds} = "
        f"{wilcoxon_min_p_value(seeds):.3g}{holm}: no difference can reach p < {alpha} whatever its size; "
        f"{seeds_for_significance(comparisons, alpha)} seeds are needed."
    )


def group_by_seed(
    rows: Iterable[Row | Mapping[str, Any]], metric: str | None = None
) -> dict[str, dict[str, dict[Hashable, float]]]:
    """Per-seed values nested as ``{task: {upstream: {seed: value}}}``; a row of several folds
    (``fold_values``, e.g. speaker-disjoint folds) gives one value per ``(seed, fold)`` instead, so that
    means, confidence intervals and paired tests are taken over folds × seeds, not over the seeds'
    fold averages alone (the folds' test speakers are a source of variance of their own).

    Args:
        rows: :class:`~speechssl.downstream.row.Row` objects, or records with the keys
            ``upstream``, ``task``, ``metric``, ``seed`` and ``value``.
        metric: keep only rows of this metric; ``None`` requires every task to report a
            single metric.

    Raises:
        ValueError: a row lacking a key, a task with several metrics and no ``metric``
            chosen, the same (upstream, task, metric, seed) twice, or no row left.
    """
    grouped: dict[str, dict[str, dict[Hashable, float]]] = {}
    task_metrics: dict[str, str] = {}
    for index, record in enumerate(rows):
        row = record.to_dict() if isinstance(record, Row) else record
        missing = [key for key in ROW_KEYS if key not in row]
        if missing:
            raise ValueError(f"row {index}: expected keys {list(ROW_KEYS)}, found {sorted(row)}")
        if metric is not None and row["metric"] != metric:
            continue
        task = row["task"]
        if task_metrics.setdefault(task, row["metric"]) != row["metric"]:
            raise ValueError(
                f"task {task!r}: expected one metric per task (pass metric=...), found "
                f"{task_metrics[task]!r} and {row['metric']!r}"
            )
        seeds = grouped.setdefault(task, {}).setdefault(row["upstream"], {})
        if row["seed"] in seeds or (row["seed"], 0) in seeds:
            raise ValueError(
                f"row {index}: expected one value per seed, found seed {row['seed']!r} twice for "
                f"upstream {row['upstream']!r}, task {task!r}, metric {row['metric']!r}"
            )
        folds = row.get(FOLD_VALUES) or []
        if len(folds) > 1:
            seeds.update({(row["seed"], fold): float(value) for fold, value in enumerate(folds)})
        else:
            seeds[row["seed"]] = float(row["value"])
    if not grouped:
        raise ValueError(f"expected at least one result row (metric={metric!r}), found none")
    return grouped


def results_table(
    rows: Iterable[Row | Mapping[str, Any]], metric: str | None = None, ci_level: float = 0.95
) -> dict[str, dict[str, Summary]]:
    """Seed summaries nested as ``{task: {upstream: Summary}}`` (see :func:`summarize`).

    Args:
        rows: result records, each with the keys ``upstream``, ``task``, ``metric``,
            ``seed`` and ``value``.
        metric: keep only rows of this metric; ``None`` requires one metric per task.
        ci_level: coverage of the confidence intervals.

    Raises:
        ValueError: as :func:`group_by_seed`.
    """
    return {
        task: {
            upstream: summarize(list(seeds.values()), ci_level=ci_level)
            for upstream, seeds in upstreams.items()
        }
        for task, upstreams in group_by_seed(rows, metric=metric).items()
    }


__all__ = [
    "PairedTest",
    "Summary",
    "group_by_seed",
    "holm_bonferroni",
    "paired_test",
    "results_table",
    "seeds_for_significance",
    "significance_floor_note",
    "summarize",
    "wilcoxon_min_p_value",
]
