"""Leaderboard statistics and layout rules: summaries, Welch's t-test (checked against scipy),
verdicts, the wins/ties/losses tally and the published row/column order."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from benchmark.leaderboard.layout import (PUBLISHED_LOSS_ORDER, Pair, display_name, order_pairs,
                                          order_rows)
from benchmark.leaderboard.stats import (BETTER, EQUIVALENT, INCONCLUSIVE, LOSS, NO_TEST,
                                         NO_TEST_FEW_SEEDS, NO_TEST_NO_STD, WORSE,
                                         NO_TEST_ZERO_VARIANCE, TIE, WIN, Summary, summarize,
                                         tally, welch_test, welch_test_from_summary)


def test_summarize_uses_sample_std():
    values = [73.0, 73.4, 73.2, 72.6]
    summary = summarize(values)
    assert summary.mean == pytest.approx(73.05)
    assert summary.std == pytest.approx(np.std(values, ddof=1))
    assert summary.n == 4


def test_summarize_single_and_empty():
    single = summarize([71.5])
    assert (single.mean, single.n) == (71.5, 1) and math.isnan(single.std)
    empty = summarize([])
    assert empty.n == 0 and math.isnan(empty.mean)


def test_welch_matches_scipy_and_gives_verdicts():
    better, baseline = [74.0, 74.5, 74.3], [73.0, 73.4, 73.2]
    expected = scipy_stats.ttest_ind(better, baseline, equal_var=False).pvalue
    win = welch_test(better, baseline)
    assert win.verdict == WIN and win.p_value == pytest.approx(expected, rel=1e-12)
    loss = welch_test(baseline, better)
    assert loss.verdict == LOSS and loss.p_value == pytest.approx(expected, rel=1e-12)
    tie = welch_test([72.2, 72.6, 72.0], [72.1, 72.5, 72.3])
    assert tie.verdict == TIE and tie.p_value > 0.05


def test_welch_refuses_fewer_than_two_seeds_and_zero_variance():
    assert welch_test([72.9], [73.0, 73.4]).verdict == NO_TEST_FEW_SEEDS
    assert welch_test([72.9, 73.1], [73.0]).p_value is None
    assert welch_test([70.0, 70.0], [71.0, 71.0]).verdict == NO_TEST_ZERO_VARIANCE


def test_welch_from_summary_equals_raw_test():
    a, b = [74.0, 74.5, 74.3, 74.1], [73.0, 73.4, 73.2]
    raw = welch_test(a, b)
    from_summary = welch_test_from_summary(summarize(a), summarize(b))
    assert from_summary.verdict == raw.verdict
    assert from_summary.p_value == pytest.approx(raw.p_value, rel=1e-10)
    assert welch_test_from_summary(Summary(73.0, math.nan, None),
                                   Summary(72.0, 0.2, 5)).verdict == NO_TEST_NO_STD


def test_tally_counts_every_no_test_reason():
    counts = tally([BETTER, BETTER, INCONCLUSIVE, WORSE, EQUIVALENT, NO_TEST_FEW_SEEDS,
                    NO_TEST_ZERO_VARIANCE])
    assert counts == {BETTER: 2, INCONCLUSIVE: 1, WORSE: 1, EQUIVALENT: 1, NO_TEST: 2}


def test_rows_follow_the_published_order_then_alphabetical():
    rows = ["zeta", "sp", "crd", "student", "kd", "alpha", "teacher", "sp+kd", "fitnet"]
    assert order_rows(rows) == ["teacher", "student", "kd", "fitnet", "sp", "crd", "sp+kd",
                                "alpha", "zeta"]
    assert PUBLISHED_LOSS_ORDER[:4] == ("kd", "fitnet", "at", "sp")


def test_pairs_follow_the_published_order_then_sorted():
    published = [Pair("wrn_40_2", "wrn_16_2"), Pair("resnet32x4", "resnet8x4")]
    present = [Pair("b", "c"), Pair("resnet32x4", "resnet8x4"), Pair("a", "z"),
               Pair("wrn_40_2", "wrn_16_2")]
    assert order_pairs(present, published) == [*published, Pair("a", "z"), Pair("b", "c")]


def test_display_names_follow_the_papers():
    assert display_name("sp+kd") == "SP+KD"
    assert display_name("fitnet") == "FitNet"
    assert display_name("my_loss") == "my_loss"
