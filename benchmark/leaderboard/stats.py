"""Leaderboard statistics: per-cell summaries over seeds, the verdict names, Welch's t-test.

A cell is the set of final accuracies of one loss on one teacher -> student pair, one value per
seed. Its summary is the mean, the *sample* standard deviation (ddof=1) and the count. The
comparison of a loss with the baseline (paired tests, intervals, equivalence, Holm, power) lives
in :mod:`.paired`, :mod:`.power` and :mod:`.verdicts`; a verdict is one of four outcomes
(better, worse, equivalent, inconclusive) or a reason why there is no test. Published tables
give only mean, std and run count, so Welch's unequal-variance t-test is offered from those
summaries (``scipy.stats.ttest_ind_from_stats``): better / worse / inconclusive, no equivalence.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from scipy import stats as scipy_stats

ALPHA = 0.05

BETTER = "better"
WORSE = "worse"
EQUIVALENT = "equivalent"
INCONCLUSIVE = "inconclusive"
#: The names used before there were four outcomes (a Welch "tie" is inconclusive).
WIN, LOSS, TIE = BETTER, WORSE, INCONCLUSIVE
NO_TEST_FEW_SEEDS = "n<2: no test"
NO_TEST_ZERO_VARIANCE = "zero variance: no test"
NO_TEST_NO_STD = "no std published: no test"
NO_BASELINE = "no baseline"
IS_BASELINE = "baseline"
NO_TEST = "no test"

#: The four outcomes of a test against the baseline.
OUTCOMES = (BETTER, WORSE, EQUIVALENT, INCONCLUSIVE)

#: Verdict columns of the per-loss summary over pairs, in display order.
TALLY_COLUMNS = (*OUTCOMES, NO_TEST)

#: Column headers of that summary.
TALLY_HEADERS = {BETTER: "better", WORSE: "worse", EQUIVALENT: "equivalent",
                 INCONCLUSIVE: "inconclusive", NO_TEST: "no test"}


@dataclass(frozen=True)
class Summary:
    """Mean, sample std (NaN when n < 2 or unknown) and count (None when unknown) of one cell."""

    mean: float
    std: float
    n: int | None


@dataclass(frozen=True)
class Comparison:
    """Result of testing one cell against the baseline cell of the same pair.

    ``p_value`` is the chosen test's raw p-value, ``p_adjusted`` its Holm-adjusted value over
    the table's family, ``p_tost_adjusted`` the same for the equivalence test; the seeds counts
    are what would decide the comparison at the observed difference and variance (None: more
    than :data:`.power.MAX_SEEDS`, or undefined); ``evidence`` holds every raw statistic
    (:class:`.paired.Evidence`)."""

    verdict: str
    p_value: float | None = None
    p_adjusted: float | None = None
    p_tost_adjusted: float | None = None
    seeds_for_difference: int | None = None
    seeds_for_equivalence: int | None = None
    evidence: object | None = None

    @property
    def significant(self) -> bool:
        return self.verdict in (BETTER, WORSE)

    @property
    def seeds_needed(self) -> int | None:
        """Seeds per side that would decide an inconclusive comparison soonest (either way)."""
        counts = [n for n in (self.seeds_for_difference, self.seeds_for_equivalence)
                  if n is not None]
        return min(counts) if counts else None


def summarize(values: Sequence[float]) -> Summary:
    """Mean, sample standard deviation (ddof=1) and count of the per-seed values."""
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return Summary(math.nan, math.nan, 0)
    std = float(array.std(ddof=1)) if array.size > 1 else math.nan
    return Summary(float(array.mean()), std, int(array.size))


def welch_test(values: Sequence[float], baseline_values: Sequence[float],
               alpha: float = ALPHA) -> Comparison:
    """Welch's t-test of ``values`` against ``baseline_values`` (raw per-seed values)."""
    if len(values) < 2 or len(baseline_values) < 2:
        return Comparison(NO_TEST_FEW_SEEDS)
    if np.ptp(values) == 0 and np.ptp(baseline_values) == 0:
        return Comparison(NO_TEST_ZERO_VARIANCE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # near-constant samples
        result = scipy_stats.ttest_ind(values, baseline_values, equal_var=False)
    return _verdict(float(np.mean(values)) - float(np.mean(baseline_values)),
                    float(result.pvalue), alpha)


def welch_test_from_summary(summary: Summary, baseline: Summary,
                            alpha: float = ALPHA) -> Comparison:
    """Welch's t-test from (mean, std, n) summaries, for published numbers without raw seeds."""
    if summary.n is None or baseline.n is None or math.isnan(summary.std) \
            or math.isnan(baseline.std):
        return Comparison(NO_TEST_NO_STD)
    if summary.n < 2 or baseline.n < 2:
        return Comparison(NO_TEST_FEW_SEEDS)
    if summary.std == 0 and baseline.std == 0:
        return Comparison(NO_TEST_ZERO_VARIANCE)
    result = scipy_stats.ttest_ind_from_stats(summary.mean, summary.std, summary.n,
                                              baseline.mean, baseline.std, baseline.n,
                                              equal_var=False)
    return _verdict(summary.mean - baseline.mean, float(result.pvalue), alpha)


def _verdict(mean_difference: float, p_value: float, alpha: float) -> Comparison:
    if math.isnan(p_value):
        return Comparison(NO_TEST_ZERO_VARIANCE)
    if p_value < alpha:
        return Comparison(BETTER if mean_difference > 0 else WORSE, p_value)
    return Comparison(INCONCLUSIVE, p_value)


def tally(verdicts: Iterable[str]) -> dict[str, int]:
    """Count verdicts into the summary columns (every 'no test' reason counts as no test)."""
    counts = Counter(verdicts)
    tallied = {column: counts.get(column, 0) for column in OUTCOMES}
    tallied[NO_TEST] = sum(count for verdict, count in counts.items()
                           if verdict.endswith(NO_TEST))
    return tallied
