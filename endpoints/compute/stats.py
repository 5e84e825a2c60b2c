"""Descriptive statistics as the seed papers report them.

Standard library only, and deliberately not ``statistics.quantiles``: its "inclusive" and
"exclusive" methods do match R types 7 and 6, but it refuses fewer than two values and gives no
single quantile, while a registry table routinely has a group of one patient.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from operator import mul, sub

#: Quantile methods a registry setting may choose (endpoints.md, "Responder and change
#: endpoints"). ``type7``: linear interpolation between order statistics (R's default, NumPy and
#: pandas ``linear``, Excel QUARTILE.INC); the French seed table matches it. ``type6``: SPSS's
#: weighted average (Excel QUARTILE.EXC), which some centers' statisticians use.
QUANTILE_METHODS = ("type7", "type6")
DEFAULT_QUANTILE_METHOD = "type7"


def check_quantile_method(method: str) -> str:
    if method not in QUANTILE_METHODS:
        raise ValueError(f"unknown quantile method {method!r}; expected one of {QUANTILE_METHODS}")
    return method


def quantile_of_sorted(ordered: Sequence[float], p: float, method: str = DEFAULT_QUANTILE_METHOD):
    """The p-quantile of values already in ascending order; None for no values.

    Takes sorted input because a report asks for three quantiles of the same values.
    """
    n = len(ordered)
    if n == 0:
        return None
    return _quantile_at(ordered, n - 1, _position(n, p, method))


def _position(n: int, p: float, method: str) -> float:
    """The 0-based position of the p-quantile among n ordered values."""
    if method == "type7":
        return (n - 1) * p
    if method == "type6":
        # 1-based position (n + 1)p, clamped to the extreme order statistics as SPSS does.
        return (n + 1) * p - 1
    check_quantile_method(method)
    raise AssertionError("unreachable")


def _quantile_at(ordered: Sequence[float], top: int, position: float):
    """The quantile at a 0-based ``position`` of ordered values (``top`` = n − 1): clamped
    to the extremes, else interpolated between the two values around it."""
    if position <= 0:
        return ordered[0]
    if position >= top:
        return ordered[-1]
    below = int(position)  # the floor, position being positive
    fraction = position - below
    low = ordered[below]
    if fraction == 0:
        return low
    return low + fraction * (ordered[below + 1] - low)


def quantile(values, p: float, method: str = DEFAULT_QUANTILE_METHOD):
    """The p-quantile (0 ≤ p ≤ 1) of values in any order; None for no values."""
    return quantile_of_sorted(sorted(values), p, method)


def median_q1_q3(values, method: str = DEFAULT_QUANTILE_METHOD):
    """(median, Q1, Q3) as the papers print them; (None, None, None) for no values."""
    ordered = sorted(values)
    return (
        quantile_of_sorted(ordered, 0.5, method),
        quantile_of_sorted(ordered, 0.25, method),
        quantile_of_sorted(ordered, 0.75, method),
    )


def mean(values):
    """Arithmetic mean; None for no values. ``fsum`` so that a million EASI values adding up
    in a different order (pooled versus per center) give the same figure."""
    values = list(values)
    if not values:
        return None
    return math.fsum(values) / len(values)


def sample_sd(values):
    """Sample standard deviation (n − 1), as in "mean ± SD"; None when n < 2, where it is
    undefined rather than 0."""
    values = list(values)
    n = len(values)
    if n < 2:
        return None
    centre = math.fsum(values) / n
    return math.sqrt(math.fsum((x - centre) ** 2 for x in values) / (n - 1))


def percent(count: int, n: int):
    """100 × count / n to one decimal, halves rounded up; None when n is 0 (a missing
    percentage, never 0 %).

    Integer arithmetic, so that 1/8 = 12.5 % and 1/16 = 6.25 % → 6.3 % round the way a reader
    checking by hand expects, not the way binary floating point happens to fall.
    """
    if n == 0:
        return None
    if count < 0 or n < 0:
        raise ValueError("count and n must not be negative")
    tenths = (2000 * count + n) // (2 * n)
    return tenths / 10


@dataclass(frozen=True, slots=True)
class Summary:
    """The continuous columns of a results row."""

    n: int
    median: float | None
    q1: float | None
    q3: float | None
    mean: float | None
    sd: float | None


def summarize(values, method: str = DEFAULT_QUANTILE_METHOD) -> Summary:
    """n, median (Q1; Q3) and mean ± SD of the non-missing values."""
    check_quantile_method(method)
    return summary_of_sorted(sorted(value for value in values if value is not None), method)


def summary_of_sorted(ordered: Sequence[float], method: str = DEFAULT_QUANTILE_METHOD) -> Summary:
    """:func:`summarize` for values already sorted and without missing ones: a report keeps
    each center's values sorted, and a scope merges them (``sorted`` on concatenated sorted
    runs is near-linear), so no list is sorted twice."""
    if not ordered:
        return _EMPTY
    return Summary(*figures_of_sorted(ordered, method))


def figures_of_sorted(ordered: Sequence[float], method: str = DEFAULT_QUANTILE_METHOD) -> tuple:
    """(n, median, Q1, Q3, mean, SD) of :func:`summary_of_sorted`, as a plain tuple, for
    non-empty ``ordered``: a report takes tens of thousands of summaries, and this spares it
    a frozen dataclass (same arithmetic)."""
    n = len(ordered)
    lowest, highest = ordered[0], ordered[-1]
    exact_ints = type(lowest) is int and -_EXACT <= lowest and highest <= _EXACT
    total = sum(ordered) if exact_ints else None
    if type(total) is int:
        # Every value an integer that a float holds exactly: fsum returns their exact sum,
        # rounded once, and so does float() of the integer sum.
        centre = float(total) / n
    else:
        exact_ints = False
        centre = math.fsum(ordered) / n
    if n == 1:
        return 1, lowest, lowest, lowest, centre, None
    if exact_ints and (highest - lowest + 1) * _VALUES_PER_DISTINCT <= n:
        squares = _squared_deviations_by_value(ordered, centre)
    else:
        deviations = list(map(sub, ordered, repeat(centre)))
        squares = map(mul, deviations, deviations)
    sd = math.sqrt(math.fsum(squares) / (n - 1))
    top = n - 1
    return (n, _quantile_at(ordered, top, _position(n, 0.5, method)),
            _quantile_at(ordered, top, _position(n, 0.25, method)),
            _quantile_at(ordered, top, _position(n, 0.75, method)), centre, sd)


#: Integers up to 2**53 are floats exactly.
_EXACT = 2 ** 53
#: Integer values at least this many times as many as the integers between the lowest and
#: the highest (ages, score changes of a large group) repeat enough for their squared
#: deviations to be computed once per distinct value.
_VALUES_PER_DISTINCT = 5


def _squared_deviations_by_value(ordered: Sequence[int], centre: float):
    """``(x − centre)²`` of every value in order, as ``map(mul, deviations, deviations)``
    gives them, but computed once per run of equal values."""
    runs = []
    start, n = 0, len(ordered)
    while start < n:
        value = ordered[start]
        end = bisect_right(ordered, value, start)
        deviation = value - centre
        runs.append(repeat(deviation * deviation, end - start))
        start = end
    return chain.from_iterable(runs)



_EMPTY = Summary(0, None, None, None, None, None)
