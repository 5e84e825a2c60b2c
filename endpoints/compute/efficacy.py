"""Efficacy at M3 and M6 by start dose (003, Table I; endpoints.md, "Responder and change
endpoints").

Observed cases: an episode is in an endpoint's denominator when it has both a baseline value
and a value in the window of the score the endpoint reads. The value in the window is the
worst (highest) one, as in 003's footnote.

Decisions where endpoints.md leaves room (also listed in the report to the lead):

- "Worst" is the highest value for every score (all are "higher = worse").
- ``iga_0_1_2`` and ``iga_0_1`` need a baseline IGA too, although the test itself reads only
  the window value: endpoints.md gives one N rule for every responder endpoint.
- A baseline EASI or SCORAD of 0 makes the relative reduction undefined: the episode is out of
  those responders' N (it still counts for ``easi_change`` / ``scorad_change``).
- Relative reductions are compared with a 1e-9 slack, so that exact halves and quarters of
  one-decimal scores count (10.2 → 5.1 is EASI50).
- ``pruritus_nrs4`` has no floor on the baseline itch (trials often require ≥ 4).
- Changes of EASI, SCORAD and BSA are rounded to 6 decimals to drop floating-point noise (−7.2, not
  −7.200000000000001).
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from functools import partial
from operator import is_not

from .tally import BINARY, CONTINUOUS, TableSpec
from .timeline import BASELINE_LOOKBACK_DAYS, WINDOW_DAYS, Course

TIMEPOINTS = ("m3", "m6")
RESPONDER_ENDPOINTS = (
    "iga_0_1_2", "iga_0_1", "viga_response", "easi50", "easi75", "easi90", "easi100",
    "scorad50", "scorad75", "scorad90", "pruritus_nrs4", "dlqi4",
)
CHANGE_ENDPOINTS = ("pruritus_nrs_change", "dlqi_change", "easi_change", "scorad_change",
                    "bsa_change")

SPEC = TableSpec("efficacy", [
    row
    for timepoint in TIMEPOINTS
    for row in (
        *((endpoint, timepoint, BINARY) for endpoint in RESPONDER_ENDPOINTS),
        *((endpoint, timepoint, CONTINUOUS) for endpoint in CHANGE_ENDPOINTS),
    )
], all_is_union=True)

#: The scores efficacy reads, in one order for the hot loop.
SCORES = ("iga", "easi", "scorad", "bsa", "pruritus_nrs", "dlqi")


def _scores_of(visit) -> tuple:
    """The visit's values of SCORES, in that order: ``attrgetter(*SCORES)`` spelled out,
    which reads slotted attributes about twice as fast (three visits an episode)."""
    return (visit.iga, visit.easi, visit.scorad, visit.bsa, visit.pruritus_nrs, visit.dlqi)

_present = partial(is_not, None)

#: A point reduction that counts as a response for itch NRS and DLQI (endpoints.md).
MINIMAL_IMPORTANT_POINTS = 4

#: timepoint -> endpoint -> bit, so that the loop below does no spec look-ups
_BITS = {
    timepoint: {endpoint: SPEC.bit(endpoint, timepoint) for endpoint in RESPONDER_ENDPOINTS}
    for timepoint in TIMEPOINTS
}


#: Slack on relative reductions: EASI and SCORAD have one decimal, and 10.2 → 5.1 is exactly
#: EASI50 though (10.2 − 5.1) / 10.2 is 0.49999999999999994 in floating point.
RELATIVE_TOLERANCE = 1e-9


def relative_reduction_reached(baseline: float, worst: float, percent: int) -> bool:
    """(baseline − worst) / baseline ≥ percent %, for baseline > 0."""
    return (baseline - worst) / baseline >= percent / 100 - RELATIVE_TOLERANCE


def _levels(score: str, percents: tuple[int, ...], bit: dict) -> tuple[tuple, tuple, int]:
    """(thresholds ascending, bits reached by the number of thresholds met, every level's bit)
    of a relative-reduction responder family: ``bisect_right(thresholds, reduction)`` is the
    number of levels reached, the same comparisons as ``reduction >= threshold`` each."""
    thresholds = tuple(percent / 100 - RELATIVE_TOLERANCE for percent in percents)
    assert list(thresholds) == sorted(thresholds)
    reached = [0]
    for percent in percents:
        reached.append(reached[-1] | bit[f"{score}{percent}"])
    return thresholds, tuple(reached), reached[-1]


def _responder_bits(timepoint: str):
    bit = _BITS[timepoint]
    return (
        bit["iga_0_1_2"] | bit["iga_0_1"] | bit["viga_response"],
        bit["iga_0_1_2"], bit["iga_0_1"], bit["viga_response"],
        *_levels("easi", (50, 75, 90, 100), bit),
        *_levels("scorad", (50, 75, 90), bit),
        bit["pruritus_nrs4"], bit["dlqi4"],
    )


_RESPONDER_BITS = {timepoint: _responder_bits(timepoint) for timepoint in TIMEPOINTS}
#: A window without any assessment: in no denominator.
_NOT_EVALUABLE = (0, 0, (None,) * len(CHANGE_ENDPOINTS))
#: An episode without any baseline value: in no denominator of either window.
_NO_BASELINE = (0, 0, (None,) * (len(CHANGE_ENDPOINTS) * len(TIMEPOINTS)))


def window_endpoints(baseline, worst, timepoint: str) -> tuple[int, int, tuple]:
    """(evaluable bits, achieved bits, change values) of one window.

    ``baseline`` and ``worst`` hold one value or None per score, in the order of SCORES.
    Written out flat (no helper calls) because it runs twice per episode.
    """
    (iga_any, iga_0_1_2, iga_0_1, viga, easi_thresholds, easi_reached, easi_every,
     scorad_thresholds, scorad_reached, scorad_every, itch4, dlqi4) = _RESPONDER_BITS[timepoint]
    b_iga, b_easi, b_scorad, b_bsa, b_itch, b_dlqi = baseline
    w_iga, w_easi, w_scorad, w_bsa, w_itch, w_dlqi = worst
    evaluable = achieved = 0

    if b_iga is not None and w_iga is not None:
        evaluable = iga_any
        if w_iga <= 2:
            achieved = iga_0_1_2
            if w_iga <= 1:
                achieved |= iga_0_1
                if b_iga - w_iga >= 2:
                    achieved |= viga

    # Changes of EASI, SCORAD and BSA are rounded to 6 decimals so that 5.1 − 12.3 is
    # reported as −7.2, not −7.200000000000001 (round(x * 1e6) / 1e6 rather than
    # round(x, 6), which formats the float as a string).
    # Baseline 0 makes a relative reduction undefined: not evaluable, so out of N.
    easi_change = None
    if b_easi is not None and w_easi is not None:
        easi_change = round((w_easi - b_easi) * 1_000_000) / 1_000_000
        if b_easi > 0:
            evaluable |= easi_every
            achieved |= easi_reached[bisect_right(easi_thresholds, (b_easi - w_easi) / b_easi)]
    scorad_change = None
    if b_scorad is not None and w_scorad is not None:
        scorad_change = round((w_scorad - b_scorad) * 1_000_000) / 1_000_000
        if b_scorad > 0:
            evaluable |= scorad_every
            achieved |= scorad_reached[
                bisect_right(scorad_thresholds, (b_scorad - w_scorad) / b_scorad)]

    # No floor on the baseline itch (trials often require baseline NRS ≥ 4): endpoints.md
    # does not, and 003 did not report one.
    itch_change = None
    if b_itch is not None and w_itch is not None:
        itch_change = w_itch - b_itch
        evaluable |= itch4
        if b_itch - w_itch >= MINIMAL_IMPORTANT_POINTS:
            achieved |= itch4
    dlqi_change = None
    if b_dlqi is not None and w_dlqi is not None:
        dlqi_change = w_dlqi - b_dlqi
        evaluable |= dlqi4
        if b_dlqi - w_dlqi >= MINIMAL_IMPORTANT_POINTS:
            achieved |= dlqi4
    bsa_change = None
    if b_bsa is not None and w_bsa is not None:
        bsa_change = round((w_bsa - b_bsa) * 1_000_000) / 1_000_000

    return evaluable, achieved, (itch_change, dlqi_change, easi_change, scorad_change,
                                 bsa_change)


def _latest(rows: list[tuple]) -> list:
    """Per score, the last value that is not missing in rows of score tuples in date order."""
    if len(rows) == 1:
        return list(rows[0])
    return [next(filter(_present, column), None) for column in zip(*reversed(rows))]


def _highest(rows: list[tuple]) -> list:
    """Per score, the highest value that is not missing in rows of score tuples.

    The common case (every visit has every score) is one C-level ``map(max, *rows)``; a
    missing value makes ``max`` raise, and only then are the columns filtered.
    """
    if not rows:
        return [None] * len(SCORES)
    if len(rows) == 1:
        return list(rows[0])
    try:
        return list(map(max, *rows))
    except TypeError:
        return [max(filter(_present, column), default=None) for column in zip(*rows)]


def baselines(course: Course) -> list:
    """The baseline of every score in SCORES: each its own last value in [day −30, day 0]."""
    lo, hi = course.span(-BASELINE_LOOKBACK_DAYS, 0)
    if lo == hi:
        return [None] * len(SCORES)
    return _latest(list(map(_scores_of, course.visits[lo:hi])))


def worst_in_window(course: Course, window: str) -> list:
    """The worst (highest) value of every score in SCORES within a window, up to the end
    date; None for a score not assessed there."""
    first, last = WINDOW_DAYS[window]
    if course.end is not None and course.end < last:
        last = course.end
    if last < first:
        return [None] * len(SCORES)
    lo, hi = course.span(first, last)
    return _highest(list(map(_scores_of, course.visits[lo:hi])))


_M3_FIRST, _M3_LAST = WINDOW_DAYS["m3"]
_M6_FIRST, _M6_LAST = WINDOW_DAYS["m6"]


def episode_efficacy(course: Course) -> tuple[int, int, tuple]:
    """(evaluable bits, achieved bits, change values) of one episode for both timepoints,
    laid out as :data:`SPEC`.

    Groups are by start dose, whatever happens later: 003's 15 mg column keeps the 13 patients
    who went to 30 mg after M3. So dose changes play no part here.

    Same rules as :func:`baselines` and :func:`worst_in_window`, fused into one pass over the
    episode's visits (it runs for every episode): the course already starts at day −30 and
    stops at the end date, so only the window borders need finding. Every endpoint needs a
    baseline, and a window without a visit has no value to compare, so those are decided
    without looking at any score.
    """
    ordinals = course.ordinals
    start = course.start
    baseline_end = bisect_right(ordinals, start)
    if not baseline_end:
        return _NO_BASELINE
    visits = course.visits
    base = (_scores_of(visits[0]) if baseline_end == 1
            else _latest(list(map(_scores_of, visits[:baseline_end]))))
    m3_first = bisect_left(ordinals, start + _M3_FIRST, baseline_end)
    m3_end = bisect_right(ordinals, start + _M3_LAST, m3_first)
    m6_first = bisect_left(ordinals, start + _M6_FIRST, m3_end)
    m6_end = bisect_right(ordinals, start + _M6_LAST, m6_first)
    m3 = m6 = _NOT_EVALUABLE
    if m3_end > m3_first:
        m3 = window_endpoints(base, _worst_of(visits, m3_first, m3_end), "m3")
    if m6_end > m6_first:
        m6 = window_endpoints(base, _worst_of(visits, m6_first, m6_end), "m6")
    return m3[0] | m6[0], m3[1] | m6[1], m3[2] + m6[2]


def _worst_of(visits, first: int, end: int):
    """:func:`_highest` of the scores of ``visits[first:end]`` (one visit, mostly)."""
    if end - first == 1:
        return _scores_of(visits[first])
    return _highest(list(map(_scores_of, visits[first:end])))
