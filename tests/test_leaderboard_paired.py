"""The comparison statistics on known inputs, checked against scipy and statsmodels: paired
t-test, Wilcoxon, Welch, TOST (paired and unpaired), the bootstrap interval, P(A > B), the
teacher-seed ANOVA, Holm, the four verdicts, the seeds needed, and the across-pairs ranks."""

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower, TTestPower
from statsmodels.stats.weightstats import ttost_ind, ttost_paired

from benchmark.leaderboard.across import across_pairs
from benchmark.leaderboard.paired import (BOOTSTRAP_RESAMPLES, Evidence, gather_evidence,
                                          paired_tests)
from benchmark.leaderboard.power import (seeds_for_difference, seeds_for_equivalence,
                                         tost_power)
from benchmark.leaderboard.stats import (BETTER, EQUIVALENT, INCONCLUSIVE, NO_TEST_FEW_SEEDS,
                                         NO_TEST_ZERO_VARIANCE, WORSE)
from benchmark.leaderboard.verdicts import decide, holm

A = [99.10, 98.80, 99.30, 98.95, 99.20]
B = [98.70, 98.60, 99.00, 98.90, 98.75]


def keyed(values, teacher="0"):
    return {(teacher, str(seed)): value for seed, value in enumerate(values)}


def test_paired_statistics_match_scipy_and_statsmodels():
    ev = gather_evidence(keyed(A), keyed(B), delta=0.5)
    d = np.subtract(A, B)
    assert ev.n == 5 and ev.difference == pytest.approx(d.mean())
    assert ev.sd == pytest.approx(d.std(ddof=1))
    assert ev.p_ttest == pytest.approx(stats.ttest_rel(A, B).pvalue, rel=1e-12)
    assert ev.p_value == ev.p_ttest
    assert ev.p_wilcoxon == pytest.approx(stats.wilcoxon(A, B).pvalue, rel=1e-12)
    assert ev.p_welch == pytest.approx(stats.ttest_ind(A, B, equal_var=False).pvalue)
    assert ev.p_tost == pytest.approx(ttost_paired(np.array(A), np.array(B), -0.5, 0.5)[0],
                                      rel=1e-9)
    expected = stats.bootstrap((d,), np.mean, n_resamples=BOOTSTRAP_RESAMPLES,
                               method="percentile", rng=np.random.default_rng(0))
    assert (ev.ci_low, ev.ci_high) == pytest.approx(tuple(expected.confidence_interval))
    assert ev.ci_low < ev.difference < ev.ci_high
    assert ev.prob_improvement == 1.0  # A beats B on every seed


def test_probability_of_improvement_counts_ties_half():
    ev = gather_evidence(keyed([1.0, 2.0, 3.0, 4.0]), keyed([0.0, 2.0, 4.0, 3.0]))
    assert ev.prob_improvement == pytest.approx((1 + 0.5 + 0 + 1) / 4)


def test_pairing_is_by_key_not_by_order():
    shuffled = dict(reversed(list(keyed(B).items())))
    assert str(gather_evidence(keyed(A), shuffled)) == str(gather_evidence(keyed(A), keyed(B)))
    extra = {**keyed(A), ("0", "9"): 50.0}  # a seed the baseline lacks is not paired
    assert gather_evidence(extra, keyed(B)).n == 5


def test_vectorised_paired_tests_equal_the_scalar_ones():
    rng = np.random.default_rng(3)
    d = rng.normal(0.1, 0.3, size=(4, 6))
    p, p_tost = paired_tests(d, 0.5)
    for row, p_row, tost_row in zip(d, p, p_tost):
        assert p_row == pytest.approx(stats.ttest_1samp(row, 0).pvalue)
        assert tost_row == pytest.approx(ttost_paired(row, np.zeros(6), -0.5, 0.5)[0])


def test_welch_evidence_is_unpaired():
    ev = gather_evidence(keyed(A), keyed(B[:4]), test="welch", delta=0.5)
    assert ev.p_value == pytest.approx(stats.ttest_ind(A, B[:4], equal_var=False).pvalue)
    assert ev.p_tost == pytest.approx(ttost_ind(np.array(A), np.array(B[:4]), -0.5, 0.5,
                                                usevar="unequal")[0])
    assert ev.difference == pytest.approx(np.mean(A) - np.mean(B[:4]))
    assert ev.prob_improvement == pytest.approx(
        stats.mannwhitneyu(A, B[:4]).statistic / 20)


def test_wilcoxon_tost_is_two_one_sided_signed_rank_tests():
    ev = gather_evidence(keyed(A), keyed(B), test="wilcoxon", delta=0.5)
    d = np.subtract(A, B)
    expected = max(stats.wilcoxon(d + 0.5, alternative="greater").pvalue,
                   stats.wilcoxon(d - 0.5, alternative="less").pvalue)
    assert ev.p_value == ev.p_wilcoxon and ev.p_tost == pytest.approx(expected)


def test_no_test_reasons():
    assert gather_evidence(keyed([1.0]), keyed([2.0])) == NO_TEST_FEW_SEEDS
    assert gather_evidence(keyed([1.0, 2.0]), keyed([0.0, 1.0])) == NO_TEST_ZERO_VARIANCE
    assert gather_evidence(keyed([1.0, 2.0]), {("0", "5"): 1.0, ("0", "6"): 2.0}) == \
        NO_TEST_FEW_SEEDS  # no seed in common


def test_teacher_seed_anova():
    candidate = {**keyed([1.0, 1.2, 0.9], "0"), **keyed([2.0, 2.3, 2.1], "1")}
    baseline = {key: 0.0 for key in candidate}
    ev = gather_evidence(candidate, baseline)
    assert ev.teacher_seeds == 2 and ev.n == 6
    assert ev.p_teacher == pytest.approx(stats.f_oneway([1.0, 1.2, 0.9], [2.0, 2.3, 2.1]).pvalue)
    assert math.isnan(gather_evidence(keyed(A), keyed(B)).p_teacher)


def test_holm_matches_statsmodels_and_skips_nan():
    p = [0.01, 0.04, 0.03, 0.2, math.nan, 0.6]
    adjusted = holm(p)
    finite = [x for x in p if not math.isnan(x)]
    assert list(adjusted[[0, 1, 2, 3, 5]]) == pytest.approx(
        list(multipletests(finite, method="holm")[1]))
    assert math.isnan(adjusted[4])
    rng = np.random.default_rng(1)
    families = rng.uniform(0, 0.2, size=(50, 7))
    for row, expected in zip(holm(families), families):
        assert row == pytest.approx(multipletests(expected, method="holm")[1])


def test_four_verdicts():
    rng = np.random.default_rng(0)
    base = rng.normal(90, 1, size=10)
    noise = rng.normal(0, 0.05, size=10)
    family = {
        "better": gather_evidence(keyed(base + 1 + noise), keyed(base)),
        "worse": gather_evidence(keyed(base - 1 + noise), keyed(base)),
        "equivalent": gather_evidence(keyed(base + noise), keyed(base)),
        "inconclusive": gather_evidence(keyed(base[:3] + [0.4, -0.3, 0.6]), keyed(base[:3])),
        "one seed": gather_evidence(keyed(base[:1]), keyed(base[:1])),
    }
    decided = decide(family)
    assert {k: c.verdict for k, c in decided.items()} == {
        "better": BETTER, "worse": WORSE, "equivalent": EQUIVALENT,
        "inconclusive": INCONCLUSIVE, "one seed": NO_TEST_FEW_SEEDS}
    tested = [k for k, ev in family.items() if isinstance(ev, Evidence)]
    expected = multipletests([family[k].p_value for k in tested], method="holm")[1]
    assert [decided[k].p_adjusted for k in tested] == pytest.approx(list(expected))
    unsure = decided["inconclusive"]
    ev = family["inconclusive"]
    assert unsure.seeds_for_difference == seeds_for_difference(ev.difference, ev.sd, 0.05 / 4)
    assert unsure.seeds_needed is not None and unsure.seeds_needed > 3


def test_seeds_for_difference_match_statsmodels_solve_power():
    for difference, sd in ((0.3, 0.3), (0.2, 0.5), (1.0, 0.4)):
        paired = TTestPower().solve_power(difference / sd, alpha=0.05, power=0.8)
        assert seeds_for_difference(difference, sd, 0.05) == math.ceil(paired)
        unpaired = TTestIndPower().solve_power(difference / sd, alpha=0.05, power=0.8)
        assert seeds_for_difference(-difference, sd, 0.05, test="welch") == math.ceil(unpaired)
    assert seeds_for_difference(0.0, 0.3, 0.05) is None
    assert seeds_for_difference(0.001, 1.0, 0.05) is None  # more than MAX_SEEDS


def test_seeds_for_equivalence():
    n = seeds_for_equivalence(0.1, 0.3, 0.5, 0.05)
    assert tost_power(n, 0.1, 0.3, 0.5, 0.05) >= 0.8 > tost_power(n - 1, 0.1, 0.3, 0.5, 0.05)
    assert seeds_for_equivalence(0.6, 0.3, 0.5, 0.05) is None  # outside the margin
    # Symmetric in the sign of the difference, larger with more noise.
    assert seeds_for_equivalence(-0.1, 0.3, 0.5, 0.05) == n
    assert seeds_for_equivalence(0.1, 0.6, 0.5, 0.05) > n


def test_across_pairs_ranks_and_interquartile_mean():
    values = {("a", "p"): [1.0, 2.0, 3.0], ("b", "p"): [2.0, 3.0, 4.0], ("a", "q"): [5.0, 6.0],
              ("b", "q"): [4.0, 4.5], ("c", "p"): [0.0]}
    across = across_pairs(values, ["a", "b", "c"], ["p", "q"])
    assert across["a"].mean_rank == 1.5 and across["b"].mean_rank == 1.5
    assert across["c"].mean_rank == 3.0 and across["c"].pairs_present == 1
    assert across["a"].iqm == pytest.approx(stats.trim_mean([1, 2, 3, 5, 6], 0.25))
    for row in across.values():
        assert row.mean_rank_low <= row.mean_rank <= row.mean_rank_high
        assert row.iqm_low <= row.iqm <= row.iqm_high
    assert across_pairs(values, ["a", "b", "c"], ["p", "q"]) == across  # fixed seed
