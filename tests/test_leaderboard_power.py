"""Simulation with synthetic accuracies of known effect (fixed seed, vectorised, 2,000 draws):
the verdict rule (paired t-test, Holm over a family, TOST) keeps false positives at or under 5%,
and the seeds the power analysis asks for give the stated 80% power."""

import numpy as np
import pytest

from benchmark.leaderboard.paired import paired_tests
from benchmark.leaderboard.power import POWER, seeds_for_difference, seeds_for_equivalence
from benchmark.leaderboard.stats import BETTER, EQUIVALENT, WORSE
from benchmark.leaderboard.verdicts import holm, verdict_of

DRAWS = 2000
ALPHA = 0.05
DELTA = 0.5
#: Two Monte Carlo standard errors of a rate of alpha over DRAWS draws (about 1 point).
MONTE_CARLO = 2 * np.sqrt(ALPHA * (1 - ALPHA) / DRAWS)


def simulate(effect, sd, seeds, comparisons=1, seed_effect=0.0, rng_seed=0):
    """Paired accuracies per (draw, comparison, seed): a shared per-seed effect (the same
    initialisation and data order for both sides), the loss's effect and run noise."""
    rng = np.random.default_rng(rng_seed)
    shape = (DRAWS, comparisons, seeds)
    shared = rng.normal(90.0, seed_effect, size=(DRAWS, 1, seeds)) if seed_effect else 90.0
    baseline = shared + rng.normal(0, sd / np.sqrt(2), size=shape)
    candidate = shared + effect + rng.normal(0, sd / np.sqrt(2), size=shape)
    return candidate, baseline


def verdicts(candidate, baseline):
    """The leaderboard's verdict for every (draw, comparison): Holm within each draw."""
    d = candidate - baseline
    p, p_tost = paired_tests(d, DELTA)
    adjusted, adjusted_tost = holm(p), holm(p_tost)
    rule = np.vectorize(lambda diff, a, t: verdict_of(diff, a, t, ALPHA), otypes=[object])
    return rule(d.mean(axis=-1), adjusted, adjusted_tost)


def test_no_effect_false_positive_rate_at_most_5_percent():
    outcome = verdicts(*simulate(effect=0.0, sd=0.3, seeds=5, comparisons=6))
    significant = np.isin(outcome, [BETTER, WORSE])
    family_rate = significant.any(axis=1).mean()  # any false claim among 6 losses x pairs
    assert family_rate <= ALPHA + MONTE_CARLO  # Holm: the family-wise rate is at most alpha
    assert 0.002 < significant.mean() <= ALPHA / 6 * 1.5  # each claim: about alpha / m
    uncorrected = (paired_tests(np.subtract(*simulate(0.0, 0.3, 5, 6)), DELTA)[0] < ALPHA)
    assert uncorrected.any(axis=1).mean() > 0.2  # without Holm: a false claim in >= 1 in 5


def test_equivalence_false_positive_rate_at_and_beyond_the_margin():
    # Exactly at the margin TOST's size is alpha itself, so allow the Monte Carlo error.
    at_margin = (verdicts(*simulate(effect=DELTA, sd=0.3, seeds=5)) == EQUIVALENT).mean()
    assert at_margin <= ALPHA + MONTE_CARLO
    beyond = verdicts(*simulate(effect=-1.2 * DELTA, sd=0.3, seeds=5, rng_seed=4))
    assert (beyond == EQUIVALENT).mean() <= ALPHA


def test_seeds_for_difference_give_the_stated_power():
    effect, sd = 0.3, 0.3
    n = seeds_for_difference(effect, sd, ALPHA)
    assert n == 10
    hits = (verdicts(*simulate(effect, sd, n)) == BETTER).mean()
    fewer = (verdicts(*simulate(effect, sd, n - 3, rng_seed=1)) == BETTER).mean()
    assert POWER - 0.03 <= hits <= POWER + 0.1
    assert fewer < POWER - 0.1  # the count is not padded


def test_seeds_for_equivalence_give_the_stated_power():
    effect, sd = 0.1, 0.4
    n = seeds_for_equivalence(effect, sd, DELTA, ALPHA)
    outcome = verdicts(*simulate(effect, sd, n, rng_seed=2))
    assert POWER - 0.03 <= (outcome == EQUIVALENT).mean() <= POWER + 0.12


def test_pairing_by_seed_beats_welch_when_seeds_vary():
    from scipy import stats

    candidate, baseline = simulate(0.3, 0.3, 5, seed_effect=1.0, rng_seed=3)
    paired = (stats.ttest_rel(candidate, baseline, axis=-1).pvalue < ALPHA).mean()
    welch = (stats.ttest_ind(candidate, baseline, axis=-1, equal_var=False).pvalue
             < ALPHA).mean()
    assert paired > 0.3 and welch < 0.15 and paired > 3 * welch


@pytest.mark.parametrize("effect", [0.2, 0.4])
def test_power_grows_with_seeds(effect):
    counts = [seeds_for_difference(effect, sd, ALPHA) for sd in (0.2, 0.4, 0.8)]
    assert counts == sorted(counts) and counts[0] < counts[-1]
