"""Power analysis: how many seeds would decide a comparison at the observed difference and
variance.

- To show a difference: the smallest n whose two-sided t-test reaches :data:`POWER` at the
  observed standardised effect ``|difference| / sd`` (statsmodels ``TTestPower`` for paired
  differences, ``TTestIndPower`` with n seeds per side for Welch). The Wilcoxon signed-rank
  test needs n / (3 / pi) (its asymptotic relative efficiency to the t-test under normality).
- To show equivalence within +-delta (only when the observed ``|difference| < delta``): the
  smallest n whose two one-sided tests reach :data:`POWER`, from the noncentral t:
  ``power = T(-t_c; df, (mu - delta)/se) - T(t_c; df, (mu + delta)/se)`` (clipped at 0), the
  standard lower bound (the "nct" method of R's PowerTOST), with ``se = sd / sqrt(n)`` and
  ``df = n - 1`` paired, ``se = sd sqrt(2 / n)`` and ``df = 2n - 2`` for Welch.

Counts are seeds per side (paired: matched seeds). None means "more than :data:`MAX_SEEDS`"
or no finite number (a zero observed difference cannot be shown). The simulation test
(tests/test_leaderboard_power.py) checks that these counts give the stated power.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
from scipy import stats

from benchmark.leaderboard.paired import WELCH, WILCOXON, Evidence

POWER = 0.8
MAX_SEEDS = 1000
WILCOXON_EFFICIENCY = 3 / math.pi
_CANDIDATES = np.arange(2, MAX_SEEDS + 1)


def seeds_for_difference(difference: float, sd: float, alpha: float, *, test: str = "paired",
                         power: float = POWER) -> Optional[int]:
    """Seeds per side for a two-sided test at ``alpha`` to detect ``difference`` with
    ``power``, at standard deviation ``sd`` (of the differences; Welch: of the runs)."""
    from statsmodels.stats.power import TTestIndPower, TTestPower

    if not sd > 0 or difference == 0 or not math.isfinite(difference):
        return None
    effect = abs(difference) / sd
    if test == WELCH:
        curve = TTestIndPower().power(effect, _CANDIDATES, alpha, ratio=1.0)
    else:
        curve = TTestPower().power(effect, _CANDIDATES, alpha)
    n = _first(curve, power)
    if n is not None and test == WILCOXON:
        n = math.ceil(n / WILCOXON_EFFICIENCY)
    return n if n is not None and n <= MAX_SEEDS else None


def tost_power(n, difference: float, sd: float, delta: float, alpha: float, *,
               test: str = "paired") -> np.ndarray:
    """Power of the two one-sided tests at ``alpha`` with ``n`` seeds per side (vectorised)."""
    n = np.asarray(n, dtype=float)
    if test == WELCH:
        se, df = sd * np.sqrt(2 / n), 2 * n - 2
    else:
        se, df = sd / np.sqrt(n), n - 1
    critical = stats.t.ppf(1 - alpha, df)
    upper = stats.nct.cdf(-critical, df, (difference - delta) / se)
    lower = stats.nct.cdf(critical, df, (difference + delta) / se)
    return np.clip(upper - lower, 0.0, 1.0)


def seeds_for_equivalence(difference: float, sd: float, delta: float, alpha: float, *,
                          test: str = "paired", power: float = POWER) -> Optional[int]:
    """Seeds per side for TOST at ``alpha`` to show equivalence within +-``delta`` with
    ``power``; None when ``|difference| >= delta`` (it would not) or beyond :data:`MAX_SEEDS`."""
    if not sd > 0 or not abs(difference) < delta:
        return None
    n = _first(tost_power(_CANDIDATES, difference, sd, delta, alpha, test=test), power)
    if n is not None and test == WILCOXON:
        n = math.ceil(n / WILCOXON_EFFICIENCY)
    return n if n is not None and n <= MAX_SEEDS else None


def seeds_needed(evidence: Evidence, alpha: float) -> tuple[Optional[int], Optional[int]]:
    """(seeds to show the difference, seeds to show equivalence) for one comparison."""
    return (seeds_for_difference(evidence.difference, evidence.sd, alpha, test=evidence.test),
            seeds_for_equivalence(evidence.difference, evidence.sd, evidence.delta, alpha,
                                  test=evidence.test))


def _first(curve: np.ndarray, power: float) -> Optional[int]:
    reached = np.flatnonzero(np.nan_to_num(curve) >= power)
    return int(_CANDIDATES[reached[0]]) if reached.size else None
