"""Escalation above the highest approved dose (000; endpoints.md, "Dose escalation").

The units are the episodes that reach a dose above their drug's highest approved
atopic-dermatitis dose (upadacitinib 45 mg when 30 mg is the highest approved), grouped by start
dose like the other tables.

Decisions where endpoints.md leaves room (also listed in the report to the lead):

- Scores at the pre-escalation baseline, at the last observation at high dose and in the time
  course are taken per score, like the episode baseline: the last (or nearest) visit that has
  that score. A lab-only visit does not blank the EASI carried forward.
- The last observation at high dose may be the escalation-day visit itself (a value on the
  first high-dose day is both the pre-escalation baseline and at the high dose, as day 0 is for
  the episode): an episode with no later assessment at high dose then carries its baseline
  forward and counts as not improved.
- ``days_at_high_dose``: from the first high-dose day to the earliest of the next dose change
  (whatever the new dose), the end date, and the episode's last visit, counting only a last
  visit on or after the first high-dose day (an earlier one bounds nothing). None, and out of
  N, when none of the three exists (ongoing, no change, no visit since).
- ``deescalated_controlled``: the dose in force at the end (or today, when ongoing) is at or
  below the limit after a stretch above it ("back to a lower dose" and "no return" together),
  and the episode did not stop for primary or secondary failure or partial response. 60 → 45
  mg is not a de-escalation: the patient stays at high dose.
- ``improved``, ``easi50`` and ``easi75`` count observed cases, like the efficacy responders:
  N is the episodes with an EASI both before escalation and at high dose (a zero EASI before
  escalation leaves an episode out of the EASI50/75 N).
- ``escalation_reason_<reason>`` rows cover every reason code; an escalating dose change with
  no reason is in N and in no count.
- The time course uses every visit of the episode up to its end date, also after a
  de-escalation (000's Figure 1 follows the patients, not the dose); a tie for nearest visit
  goes to the earlier one.
- Only groups that hold an episode reaching the high dose are listed (plus ``all``): a
  dupilumab column in an escalation table would be all zeros.
"""
from __future__ import annotations

from functools import partial
from operator import attrgetter, is_not

from .adverse_events import LabRules, adverse_event_days
from .efficacy import relative_reduction_reached
from .records import AdverseEvent
from .tally import BINARY, CONTINUOUS, MEAN_SD, TableSpec
from .timeline import BASELINE_LOOKBACK_DAYS, Course, high_dose_intervals, in_intervals
from .vocabulary import FAILURE_REASONS, REASONS

SCORES = ("easi", "bsa", "iga", "pruritus_nrs", "dlqi")
COURSE_SCORES = ("easi", "bsa", "pruritus_nrs", "dlqi")
COURSE_WEEKS = (0, 4, 8, 12, 16, 24)
#: "the visit nearest to it within ± 2 weeks"
COURSE_TOLERANCE_DAYS = 14
PRE, LOCF = "pre_escalation", "locf_high_dose"

SPEC = TableSpec("escalation", [
    ("escalated", "", BINARY),
    ("started_high", "", BINARY),
    ("deescalated_controlled", "", BINARY),
    ("any_ae_at_high_dose", "", BINARY),
    *((f"escalation_reason_{reason}", "", BINARY, True) for reason in REASONS),
    ("days_to_escalation", "", CONTINUOUS),
    ("days_at_high_dose", "", CONTINUOUS),
    *((score, PRE, CONTINUOUS) for score in SCORES),
    *((score, LOCF, CONTINUOUS) for score in SCORES),
    ("improved", LOCF, BINARY),
    ("easi50", LOCF, BINARY),
    ("easi75", LOCF, BINARY),
], groups_from_units=True, all_is_union=True)

COURSE_SPEC = TableSpec("escalation_course", [
    (score, f"week_{week}", MEAN_SD, True) for week in COURSE_WEEKS for score in COURSE_SCORES
])

_BIT = {endpoint: SPEC.bit(endpoint, timepoint) for endpoint, timepoint in SPEC.binary_index}
#: Every episode that reaches the high dose is in these denominators.
_COMMON = (_BIT["escalated"] | _BIT["started_high"] | _BIT["deescalated_controlled"]
           | _BIT["any_ae_at_high_dose"])
_REASON_BITS = sum(_BIT[f"escalation_reason_{reason}"] for reason in REASONS)
_scores_of = attrgetter(*SCORES)
_course_scores_of = attrgetter(*COURSE_SCORES)
#: Where each course score sits in SCORES: week 0 of the time course is the pre-escalation
#: value.
_COURSE_IN_SCORES = tuple(SCORES.index(score) for score in COURSE_SCORES)
_present = partial(is_not, None)


def escalating_change(course: Course, first_high: int):
    """The dose change that took the episode above the limit (None when it started there)."""
    for change in course.episode.dose_changes:
        if course.day_of(change.date) == first_high:
            return change
    return None


def days_at_high_dose(course: Course, first_high: int) -> int | None:
    """First high-dose day to the first later dose change, the end date or the last visit,
    whichever is first."""
    change_days = (course.day_of(change.date) for change in course.episode.dose_changes)
    next_change = next((day for day in change_days if day > first_high), None)
    bounds = [] if next_change is None else [next_change]
    if course.end is not None:
        bounds.append(course.end)
    if course.days and course.days[-1] >= first_high:
        bounds.append(course.days[-1])
    return min(bounds) - first_high if bounds else None


def _last_values(course: Course, first_day: int, last_day: int | None) -> tuple:
    """Per score of SCORES, its last value in [first_day, last_day] (``Course.last_value``
    of every score, reading the visits once)."""
    lo, hi = course.span(first_day, last_day)
    if hi - lo == 1:
        return _scores_of(course.visits[lo])
    if lo == hi:
        return (None,) * len(SCORES)
    latest_first = map(_scores_of, reversed(course.visits[lo:hi]))
    return tuple(next(filter(_present, column), None) for column in zip(*latest_first))


def pre_escalation_values(course: Course, first_high: int) -> tuple:
    """Per score of SCORES, its pre-escalation value: the last value on or before the first
    high-dose day, no earlier than 30 days before it; for an episode started at high dose
    this is the episode baseline."""
    return _last_values(course, first_high - BASELINE_LOOKBACK_DAYS, first_high)


def values_at_high_dose(course: Course, intervals) -> tuple:
    """Per score of SCORES, its last observation at high dose: the value at the last visit on
    a high-dose day that has it (``intervals`` already stop at the end date)."""
    found = None
    for first, last in reversed(intervals):
        values = _last_values(course, first, last)
        found = values if found is None else tuple(
            later if later is not None else earlier for later, earlier in zip(found, values)
        )
        if None not in found:
            break
    return (None,) * len(SCORES) if found is None else found


def nearest_course_values(course: Course, target_day: int) -> tuple:
    """``Course.nearest_value`` of every score of COURSE_SCORES within ± the tolerance,
    reading the visits once: nearest first, the earlier of two as near."""
    lo, hi = course.span(target_day - COURSE_TOLERANCE_DAYS, target_day + COURSE_TOLERANCE_DAYS)
    if hi - lo == 1:
        return _course_scores_of(course.visits[lo])
    if lo == hi:
        return (None,) * len(COURSE_SCORES)
    target = course.start + target_day
    ordinals = course.ordinals
    nearest_first = sorted(range(lo, hi), key=lambda i: abs(ordinals[i] - target))  # stable
    rows = [_course_scores_of(course.visits[i]) for i in nearest_first]
    return tuple(next(filter(_present, column), None) for column in zip(*rows))


def deescalated_controlled(course: Course, intervals) -> bool:
    """Back below the limit for good, and not stopped for lack of control."""
    last_high_day = intervals[-1][1]
    if last_high_day is None or (course.end is not None and last_high_day >= course.end):
        return False  # at high dose on the end date, or still now
    return course.episode.end_reason not in FAILURE_REASONS


def episode_escalation(course: Course, events: list[AdverseEvent], rules: LabRules,
                       limit: float | None):
    """((evaluable, achieved, values) for :data:`SPEC`, values for :data:`COURSE_SPEC`), or
    None when the episode never goes above ``limit`` (or its drug has no limit)."""
    if limit is None:
        return None
    episode = course.episode
    if episode.start_dose_mg <= limit and (not episode.dose_changes or all(
        change.dose_mg <= limit for change in episode.dose_changes
    )):
        return None  # the common case, decided without building the dose timeline
    intervals = high_dose_intervals(episode, limit)
    if not intervals:
        return None
    first_high = intervals[0][0]
    started_high = first_high == 0

    evaluable = _COMMON
    achieved = 0
    if started_high:
        achieved |= _BIT["started_high"]
    else:
        achieved |= _BIT["escalated"]
        evaluable |= _REASON_BITS
        change = escalating_change(course, first_high)
        if change is not None and change.reason in REASONS:
            achieved |= _BIT[f"escalation_reason_{change.reason}"]
    if deescalated_controlled(course, intervals):
        achieved |= _BIT["deescalated_controlled"]
    if any(in_intervals(day, intervals) for day in adverse_event_days(course, events, rules)):
        achieved |= _BIT["any_ae_at_high_dose"]

    before = pre_escalation_values(course, first_high)
    carried = values_at_high_dose(course, intervals)
    easi_before, easi_carried = before[0], carried[0]
    if easi_before is not None and easi_carried is not None:
        evaluable |= _BIT["improved"]
        if easi_carried < easi_before:
            achieved |= _BIT["improved"]
        if easi_before > 0:  # a relative reduction of a zero baseline is undefined
            evaluable |= _BIT["easi50"] | _BIT["easi75"]
            if relative_reduction_reached(easi_before, easi_carried, 50):
                achieved |= _BIT["easi50"]
            if relative_reduction_reached(easi_before, easi_carried, 75):
                achieved |= _BIT["easi75"]

    values = (
        None if started_high else first_high,
        days_at_high_dose(course, first_high),
        *before,
        *carried,
    )
    course_values = []
    for week in COURSE_WEEKS:
        if week == 0:
            course_values += [before[index] for index in _COURSE_IN_SCORES]
        else:
            course_values += nearest_course_values(course, first_high + 7 * week)
    return (evaluable, achieved, values), tuple(course_values)
