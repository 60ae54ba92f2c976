"""The evidence on one pair: a loss against the baseline over matched seeds.

Runs of one (teacher seed, student seed) share the student's initialisation, the data order and
augmentation, and the teacher (see docs/DESIGN.md, "Statistics"), so a loss and the baseline are
*paired* by that key and compared through their per-key differences ``d = candidate - baseline``:

- the paired t-test (``scipy.stats.ttest_rel``) and the Wilcoxon signed-rank test
  (``scipy.stats.wilcoxon``) over the differences; Welch's unpaired t-test
  (``scipy.stats.ttest_ind(equal_var=False)``) over all runs of each side stays available;
- a 95% percentile bootstrap interval of the mean difference (``scipy.stats.bootstrap``, fixed
  seed; matched keys resampled together, or each side on its own for Welch);
- P(A > B), the probability of improvement: the share of matched keys where the loss beats the
  baseline, ties counting half (Welch: over all run pairs, the Mann-Whitney U / (n m));
- two one-sided tests of equivalence within +-delta (statsmodels ``ttost_paired`` /
  ``ttost_ind``; with Wilcoxon, two one-sided signed-rank tests of ``d -+ delta``);
- with several teacher seeds, a one-way ANOVA of the differences by teacher seed
  (``scipy.stats.f_oneway``): a small p says the loss's gain depends on the teacher, so the
  keys are not exchangeable and more teacher seeds are needed.

Multiple-comparison control and the verdict are in :mod:`.verdicts`; seeds needed in
:mod:`.power`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Hashable, Mapping

import numpy as np
from scipy import stats

from benchmark.leaderboard.stats import NO_TEST_FEW_SEEDS, NO_TEST_ZERO_VARIANCE

PAIRED, WILCOXON, WELCH = "paired", "wilcoxon", "welch"
TESTS = (PAIRED, WILCOXON, WELCH)
DEFAULT_TEST = PAIRED
DEFAULT_DELTA = 0.5  # accuracy points
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0

TEST_NAMES = {PAIRED: "paired t-test", WILCOXON: "Wilcoxon signed-rank test",
              WELCH: "Welch's t-test"}

#: A run's pairing key: (teacher seed, student seed).
Key = Hashable


@dataclass(frozen=True)
class Evidence:
    """Every statistic of one comparison (accuracies in points; p-values raw, NaN = not run)."""

    test: str
    n: int  # matched keys (paired tests); the smaller side's runs (Welch)
    difference: float  # mean of candidate - baseline
    sd: float  # std of the differences (paired tests); pooled std of the runs (Welch)
    ci_low: float
    ci_high: float
    prob_improvement: float
    p_ttest: float
    p_wilcoxon: float
    p_welch: float
    p_tost: float
    delta: float
    teacher_seeds: int
    p_teacher: float

    @property
    def p_value(self) -> float:
        """The chosen test's p-value."""
        return {PAIRED: self.p_ttest, WILCOXON: self.p_wilcoxon, WELCH: self.p_welch}[self.test]

    @property
    def paired(self) -> bool:
        return self.test != WELCH


def gather_evidence(candidate: Mapping[Key, float], baseline: Mapping[Key, float], *,
                    test: str = DEFAULT_TEST, delta: float = DEFAULT_DELTA) -> Evidence | str:
    """The evidence for ``candidate`` against ``baseline`` (key -> accuracy), or the reason why
    there is no test (fewer than 2 seeds, no variance)."""
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; use one of {', '.join(TESTS)}")
    keys = sorted(set(candidate) & set(baseline), key=str)
    a = np.array([candidate[k] for k in keys], dtype=float)
    b = np.array([baseline[k] for k in keys], dtype=float)
    every_a = np.array([candidate[k] for k in sorted(candidate, key=str)], dtype=float)
    every_b = np.array([baseline[k] for k in sorted(baseline, key=str)], dtype=float)
    reason = _untestable(a - b, every_a, every_b, test)
    if reason:
        return reason
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # near-constant samples
        return _evidence(keys, a, b, every_a, every_b, test, delta)


def _untestable(d: np.ndarray, every_a: np.ndarray, every_b: np.ndarray,
                test: str) -> str | None:
    if test == WELCH:
        if len(every_a) < 2 or len(every_b) < 2:
            return NO_TEST_FEW_SEEDS
        if np.ptp(every_a) == 0 and np.ptp(every_b) == 0:
            return NO_TEST_ZERO_VARIANCE
        return None
    if len(d) < 2:
        return NO_TEST_FEW_SEEDS
    if np.ptp(d) == 0:
        return NO_TEST_ZERO_VARIANCE
    return None


def _evidence(keys, a, b, every_a, every_b, test, delta) -> Evidence:
    d = a - b
    paired = test != WELCH
    n = len(d) if paired else min(len(every_a), len(every_b))
    difference = float(d.mean()) if paired else float(every_a.mean() - every_b.mean())
    sd = (float(d.std(ddof=1)) if paired
          else math.sqrt((every_a.var(ddof=1) + every_b.var(ddof=1)) / 2))
    low, high = bootstrap_interval(d) if paired else bootstrap_interval_unpaired(every_a,
                                                                                 every_b)
    teacher_groups = _by_teacher(keys, d)
    return Evidence(
        test=test, n=n, difference=difference, sd=sd, ci_low=low, ci_high=high,
        prob_improvement=(prob_improvement_paired(d) if paired
                          else prob_improvement_unpaired(every_a, every_b)),
        p_ttest=_p(lambda: paired_tests(d, delta)[0], len(d) >= 2 and np.ptp(d) > 0),
        p_wilcoxon=_p(lambda: stats.wilcoxon(d).pvalue, np.any(d != 0)),
        p_welch=_p(lambda: stats.ttest_ind(every_a, every_b, equal_var=False).pvalue,
                   len(every_a) >= 2 and len(every_b) >= 2),
        p_tost=tost(a, b, every_a, every_b, test, delta), delta=delta,
        teacher_seeds=len(teacher_groups), p_teacher=teacher_interaction(teacher_groups))


def _p(compute, possible: bool) -> float:
    if not possible:
        return math.nan
    try:
        return float(compute())
    except ValueError:  # e.g. Wilcoxon with every difference zero
        return math.nan


def bootstrap_interval(d: np.ndarray) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of the paired differences."""
    result = stats.bootstrap((d,), np.mean, n_resamples=BOOTSTRAP_RESAMPLES,
                             confidence_level=CONFIDENCE, method="percentile",
                             rng=np.random.default_rng(BOOTSTRAP_SEED))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def bootstrap_interval_unpaired(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """95% percentile bootstrap interval of mean(a) - mean(b), each side resampled alone."""
    def mean_difference(x, y, axis=-1):
        return np.mean(x, axis=axis) - np.mean(y, axis=axis)

    result = stats.bootstrap((a, b), mean_difference, n_resamples=BOOTSTRAP_RESAMPLES,
                             confidence_level=CONFIDENCE, method="percentile",
                             rng=np.random.default_rng(BOOTSTRAP_SEED))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def prob_improvement_paired(d: np.ndarray) -> float:
    """Share of matched keys where the loss beats the baseline (ties count half)."""
    return float(np.mean((d > 0) + 0.5 * (d == 0)))


def prob_improvement_unpaired(a: np.ndarray, b: np.ndarray) -> float:
    """P(A > B) over all run pairs (ties half): the Mann-Whitney U of ``a`` over n m."""
    return float(stats.mannwhitneyu(a, b).statistic / (len(a) * len(b)))


def paired_tests(d: np.ndarray, delta: float, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """(paired t-test p, TOST p within +-delta) of the differences along ``axis``, vectorised
    (``scipy.stats.ttest_1samp``: the paired t-test is the one-sample test of ``d``; TOST is
    the larger p of the one-sided tests against -delta and +delta, as statsmodels'
    ``ttost_paired``)."""
    p = stats.ttest_1samp(d, 0.0, axis=axis).pvalue
    lower = stats.ttest_1samp(d, -delta, axis=axis, alternative="greater").pvalue
    upper = stats.ttest_1samp(d, delta, axis=axis, alternative="less").pvalue
    return p, np.maximum(lower, upper)


def tost(a, b, every_a, every_b, test: str, delta: float) -> float:
    """p-value of the two one-sided tests that the mean difference lies within +-delta."""
    from statsmodels.stats.weightstats import ttost_ind

    if test == PAIRED:
        return float(paired_tests(a - b, delta)[1])
    if test == WELCH:
        return float(ttost_ind(every_a, every_b, -delta, delta, usevar="unequal")[0])
    d = a - b
    lower = _p(lambda: stats.wilcoxon(d + delta, alternative="greater").pvalue,
               np.any(d + delta != 0))
    upper = _p(lambda: stats.wilcoxon(d - delta, alternative="less").pvalue,
               np.any(d - delta != 0))
    return max(lower, upper)


def _by_teacher(keys, d: np.ndarray) -> dict:
    groups: dict = {}
    for key, value in zip(keys, d):
        teacher = key[0] if isinstance(key, tuple) else 0
        groups.setdefault(teacher, []).append(value)
    return groups


def teacher_interaction(groups: Mapping) -> float:
    """One-way ANOVA p of the differences by teacher seed (NaN unless >= 2 teacher seeds each
    with >= 2 student seeds)."""
    usable = [np.asarray(g) for g in groups.values() if len(g) >= 2]
    if len(usable) < 2 or all(np.ptp(g) == 0 for g in usable):
        return math.nan
    return float(stats.f_oneway(*usable).pvalue)
