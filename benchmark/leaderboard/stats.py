"""Leaderboard statistics: per-cell summaries over seeds, Welch's t-test against a baseline.

A cell is the set of final accuracies of one loss on one teacher -> student pair, one value per
seed. Its summary is the mean, the *sample* standard deviation (ddof=1) and the count. A loss is
compared with the baseline loss of the same pair by Welch's unequal-variance t-test
(``scipy.stats.ttest_ind(equal_var=False)``); a difference is significant at ``alpha`` (0.05).
Published tables give only mean, std and run count, so the same test is also offered from those
summaries (``scipy.stats.ttest_ind_from_stats``).
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

WIN = "win"
LOSS = "loss"
TIE = "tie"
NO_TEST_FEW_SEEDS = "n<2: no test"
NO_TEST_ZERO_VARIANCE = "zero variance: no test"
NO_TEST_NO_STD = "no std published: no test"
NO_BASELINE = "no baseline"
IS_BASELINE = "baseline"
NO_TEST = "no test"

#: Verdict columns of the wins/ties/losses summary, in display order.
TALLY_COLUMNS = (WIN, TIE, LOSS, NO_TEST)

#: Column headers of the wins/ties/losses summary.
TALLY_HEADERS = {WIN: "wins", TIE: "ties", LOSS: "losses", NO_TEST: "no test"}


@dataclass(frozen=True)
class Summary:
    """Mean, sample std (NaN when n < 2 or unknown) and count (None when unknown) of one cell."""

    mean: float
    std: float
    n: int | None


@dataclass(frozen=True)
class Comparison:
    """Result of testing one cell against the baseline cell of the same pair."""

    verdict: str
    p_value: float | None = None

    @property
    def significant(self) -> bool:
        return self.verdict in (WIN, LOSS)


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
        return Comparison(WIN if mean_difference > 0 else LOSS, p_value)
    return Comparison(TIE, p_value)


def tally(verdicts: Iterable[str]) -> dict[str, int]:
    """Count verdicts into the summary columns (every 'no test' reason counts as no test)."""
    counts = Counter(verdicts)
    tallied = {column: counts.get(column, 0) for column in (WIN, TIE, LOSS)}
    tallied[NO_TEST] = sum(count for verdict, count in counts.items()
                           if verdict.endswith(NO_TEST))
    return tallied
