"""Descriptive statistics, checked against values NumPy, R and SPSS/Excel give."""
import math

import pytest

from endpoints.compute import stats

SIX = [7, 15, 36, 39, 40, 41]


def test_it_interpolates_quartiles_like_numpy_linear_by_default():
    # numpy.percentile([1, 2, 3, 4], [25, 50, 75]) -> [1.75, 2.5, 3.25]
    assert stats.median_q1_q3([4, 1, 3, 2]) == (2.5, 1.75, 3.25)
    # numpy.percentile([7, 15, 36, 39, 40, 41], [25, 75]) -> [20.25, 39.75]
    assert stats.quantile(SIX, 0.25) == 20.25
    assert stats.quantile(SIX, 0.75) == 39.75
    # numpy.percentile(range(1, 11), 25) -> 3.25
    assert stats.quantile(range(1, 11), 0.25) == 3.25


def test_it_uses_the_spss_weighted_average_for_type6():
    # Excel QUARTILE.EXC / R quantile(type = 6) of 7, 15, 36, 39, 40, 41 -> 13 and 40.25
    assert stats.quantile(SIX, 0.25, "type6") == 13
    assert stats.quantile(SIX, 0.75, "type6") == 40.25
    # R: quantile(1:4, c(.25, .5, .75), type = 6) -> 1.25 2.5 3.75
    assert stats.median_q1_q3([1, 2, 3, 4], "type6") == (2.5, 1.25, 3.75)


def test_it_gives_type6_and_type7_the_same_median():
    for values in ([3, 1, 2], [5, 1, 9, 2], list(range(17))):
        assert stats.quantile(values, 0.5, "type6") == stats.quantile(values, 0.5, "type7")


def test_type6_clamps_to_the_extreme_values_in_small_samples():
    # (n + 1) p = 0.75 and 2.25 fall outside 1..n for n = 2
    assert stats.quantile([1, 2], 0.25, "type6") == 1
    assert stats.quantile([1, 2], 0.75, "type6") == 2


def test_it_interpolates_between_negative_changes():
    # R: quantile(c(-7, -5, -5, -3, -1, 0), type = 7) -> Q1 -5, median -4, Q3 -1.5
    assert stats.median_q1_q3([-7, -5, -5, -3, -1, 0]) == (-4, -5, -1.5)


def test_it_returns_none_for_quantiles_of_nothing_and_the_value_of_one():
    assert stats.median_q1_q3([]) == (None, None, None)
    assert stats.median_q1_q3([4.2]) == (4.2, 4.2, 4.2)
    assert stats.median_q1_q3([4.2], "type6") == (4.2, 4.2, 4.2)


def test_it_refuses_an_unknown_quantile_method():
    with pytest.raises(ValueError, match="type5"):
        stats.quantile([1, 2], 0.5, "type5")
    with pytest.raises(ValueError):
        stats.summarize([1, 2], "sas")


def test_it_computes_the_sample_sd_with_n_minus_1():
    values = [2, 4, 4, 4, 5, 5, 7, 9]  # population SD 2
    assert stats.mean(values) == 5
    assert math.isclose(stats.sample_sd(values), math.sqrt(32 / 7))


def test_sd_is_none_below_two_values_and_mean_none_for_none():
    assert stats.sample_sd([3]) is None
    assert stats.sample_sd([]) is None
    assert stats.mean([]) is None


def test_percent_rounds_to_one_decimal_with_halves_up():
    assert stats.percent(33, 54) == 61.1
    assert stats.percent(11, 12) == 91.7
    assert stats.percent(1, 8) == 12.5
    assert stats.percent(1, 16) == 6.3  # 6.25 -> 6.3, not banker's 6.2
    assert stats.percent(1, 32) == 3.1  # 3.125 -> 3.1
    assert stats.percent(2, 3) == 66.7
    assert stats.percent(0, 5) == 0.0
    assert stats.percent(7, 7) == 100.0


def test_percent_with_n_0_is_none_not_zero():
    assert stats.percent(0, 0) is None


def test_summarize_ignores_missing_values():
    summary = stats.summarize([3, None, 1, 2])
    assert (summary.n, summary.median, summary.q1, summary.q3) == (3, 2, 1.5, 2.5)
    assert summary.mean == 2 and summary.sd == 1


def test_summarize_of_nothing_has_n_0_and_no_figures():
    assert stats.summarize([]) == stats.Summary(0, None, None, None, None, None)
