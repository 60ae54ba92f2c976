"""Verdicts over a family of comparisons: Holm-Bonferroni, then one of four outcomes.

The family is every (loss, pair) tested against the baseline in one table (or in one
``kdbench validate``). The chosen test's p-values are Holm-adjusted over the family
(:func:`holm`, equal to statsmodels ``multipletests(method="holm")``), and so, separately, are
the equivalence (TOST) p-values. Then, at ``alpha`` (0.05), a comparison is

- **better** / **worse**: the adjusted difference test rejects, by the sign of the difference;
- **equivalent** (within +-delta): otherwise, when the adjusted TOST rejects;
- **inconclusive**: neither; the seeds that would decide it come with it.

Seeds needed are computed at ``alpha / m`` (m comparisons in the family: Holm's strictest
step), so that many seeds decide the comparison whatever the other tests say.
"""

from __future__ import annotations

import math
from typing import Hashable, Mapping

import numpy as np

from benchmark.leaderboard.paired import Evidence
from benchmark.leaderboard.power import seeds_needed
from benchmark.leaderboard.stats import (ALPHA, BETTER, EQUIVALENT, INCONCLUSIVE,
                                         NO_TEST_ZERO_VARIANCE, WORSE, Comparison)


def holm(p_values, alpha: float = ALPHA) -> np.ndarray:
    """Holm-adjusted p-values of each family along the last axis (NaN stays NaN and takes no
    part): ``max over j <= i of (m - j) p_(j)``, clipped at 1, for the i-th smallest p.

    The same numbers as statsmodels ``multipletests(method="holm")`` (tested), vectorised over
    many families (the simulation test runs thousands; ``multipletests`` handles one family per
    call and runs a full garbage collection each time). ``alpha`` is unused: adjusted p-values do
    not depend on it."""
    p = np.asarray(p_values, dtype=float)
    finite = ~np.isnan(p)
    order = np.argsort(np.where(finite, p, np.inf), axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=-1)
    m = finite.sum(axis=-1, keepdims=True)
    scaled = np.where(np.isnan(ranked), 0.0, ranked * (m - np.arange(p.shape[-1])))
    adjusted_sorted = np.minimum(np.maximum.accumulate(scaled, axis=-1), 1.0)
    adjusted = np.empty_like(p)
    np.put_along_axis(adjusted, order, adjusted_sorted, axis=-1)
    return np.where(finite, adjusted, math.nan)


def decide(family: Mapping[Hashable, Evidence | str],
           alpha: float = ALPHA) -> dict[Hashable, Comparison]:
    """A :class:`Comparison` per member of the family (evidence, or a no-test reason)."""
    tested = {key: ev for key, ev in family.items() if isinstance(ev, Evidence)}
    out = {key: Comparison(reason) for key, reason in family.items()
           if not isinstance(reason, Evidence)}
    keys = list(tested)
    adjusted = holm([tested[k].p_value for k in keys], alpha)
    adjusted_tost = holm([tested[k].p_tost for k in keys], alpha)
    family_alpha = alpha / max(len(keys), 1)
    for key, p_adj, p_tost_adj in zip(keys, adjusted, adjusted_tost):
        evidence = tested[key]
        for_difference, for_equivalence = seeds_needed(evidence, family_alpha)
        out[key] = Comparison(
            verdict_of(evidence.difference, p_adj, p_tost_adj, alpha), p_value=_plain(evidence.p_value),
            p_adjusted=_plain(p_adj), p_tost_adjusted=_plain(p_tost_adj),
            seeds_for_difference=for_difference, seeds_for_equivalence=for_equivalence,
            evidence=evidence)
    return out


def verdict_of(difference: float, p_adjusted: float, p_tost_adjusted: float,
               alpha: float = ALPHA) -> str:
    """The outcome from the mean difference and the adjusted p-values (module docstring)."""
    if math.isnan(p_adjusted) and math.isnan(p_tost_adjusted):
        return NO_TEST_ZERO_VARIANCE
    if p_adjusted < alpha:
        return BETTER if difference > 0 else WORSE
    if p_tost_adjusted < alpha:
        return EQUIVALENT
    return INCONCLUSIVE


def _plain(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)
