"""Time on treatment: the episode's own clock (endpoints.md, "Time on treatment").

Every endpoint reads visits by "day since the episode started", so an episode and its visits
are turned once into a :class:`Course` (the visits that belong to the episode and their days)
and every table works on that. Days are plain integers; dates are converted once per visit via
``toordinal`` because date arithmetic in a loop over a million visits is the expensive part.
"""
from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from datetime import date

from .records import Episode, Visit

#: A visit up to 30 days before the start can be the baseline and belongs to the episode.
BASELINE_LOOKBACK_DAYS = 30
#: Mean month length of the Gregorian calendar (365.25 / 12).
DAYS_PER_MONTH = 30.4375
#: Assessment windows by month of treatment: "after either two, three or four months" (003,
#: Table I footnote) and five, six or seven for M6.
WINDOW_MONTHS = {"m3": (2, 4), "m6": (5, 7)}


def day_since_start(episode: Episode, when: date) -> int:
    """Day of ``when`` on the episode's clock: 0 is the start date, −30 a month before."""
    return (when - episode.start_date).days


def month_of(day: int) -> int:
    """Month of treatment of a day: ``round(day / 30.4375)``, halves rounded up.

    (No whole day falls on a half: 30.4375 × (k + ½) is never an integer, so the rounding rule
    never actually decides; it is spelled out to match endpoints.md.)
    """
    return math.floor(day / DAYS_PER_MONTH + 0.5)


def _days_of_months(first_month: int, last_month: int) -> tuple[int, int]:
    first = math.ceil((first_month - 0.5) * DAYS_PER_MONTH)
    last = math.ceil((last_month + 0.5) * DAYS_PER_MONTH) - 1
    assert month_of(first) == first_month and month_of(first - 1) == first_month - 1
    assert month_of(last) == last_month and month_of(last + 1) == last_month + 1
    return first, last


#: Window -> (first day, last day), both included: derived from the month rule so that the
#: hot loops can compare integers, and checked against it at import. M3 = days 46–136,
#: M6 = days 137–228.
WINDOW_DAYS = {name: _days_of_months(*months) for name, months in WINDOW_MONTHS.items()}


def window_of(day: int) -> str | None:
    """``"m3"``, ``"m6"`` or None for a day outside both assessment windows."""
    month = month_of(day)
    for name, (first, last) in WINDOW_MONTHS.items():
        if first <= month <= last:
            return name
    return None


def end_day(episode: Episode) -> int | None:
    """Last day on treatment (the end date, included); None while the episode is ongoing."""
    if episode.end_date is None:
        return None
    return (episode.end_date - episode.start_date).days


def is_on_treatment(episode: Episode, day: int) -> bool:
    """Day 0 to the end date, both included (no end date: any later day)."""
    last = end_day(episode)
    return day >= 0 and (last is None or day <= last)


class Course:
    """One episode and the visits that belong to it, on the episode's clock.

    A visit belongs to the episode when it falls within [start − 30 days, end date]; visits
    after the end date never count. ``ordinals[i]`` is the date ordinal of ``visits[i]``
    (ascending); day numbers are derived from them only where a rule needs them, since
    bisecting ordinals is all the common paths need.
    """

    __slots__ = ("episode", "start", "end", "visits", "ordinals", "_days")

    def __init__(self, episode: Episode, visits: list[Visit], ordinals: list[int]):
        self.episode = episode
        #: start date as an ordinal, for comparing other dates cheaply
        self.start = start = episode.start_date.toordinal()
        #: last day on treatment, or None while ongoing (:func:`end_day`, from ordinals)
        self.end = None if episode.end_date is None else episode.end_date.toordinal() - start
        self.visits = visits
        self.ordinals = ordinals
        self._days = None

    @property
    def days(self) -> list[int]:
        """Day of each visit since the start (day 0), in visit order."""
        if self._days is None:
            start = self.start
            self._days = [ordinal - start for ordinal in self.ordinals]
        return self._days

    def day_of(self, when: date) -> int:
        return when.toordinal() - self.start

    def on_treatment(self, day: int) -> bool:
        return day >= 0 and (self.end is None or day <= self.end)

    def span(self, first_day: int | None, last_day: int | None) -> tuple[int, int]:
        """Index range of the visits whose day is in [first_day, last_day] (None: open)."""
        ordinals = self.ordinals
        lo = 0 if first_day is None else bisect_left(ordinals, self.start + first_day)
        if last_day is None:
            return lo, len(ordinals)
        return lo, max(lo, bisect_right(ordinals, self.start + last_day, lo))

    def values(self, score: str, first_day: int | None = None, last_day: int | None = None):
        """(day, value) of a score at the visits in [first_day, last_day] that have it."""
        lo, hi = self.span(first_day, last_day)
        out = []
        for i in range(lo, hi):
            value = getattr(self.visits[i], score)
            if value is not None:
                out.append((self.ordinals[i] - self.start, value))
        return out

    def last_value(self, score: str, first_day: int | None, last_day: int | None):
        """The score at the last visit in [first_day, last_day] that has it, or None."""
        lo, hi = self.span(first_day, last_day)
        for i in range(hi - 1, lo - 1, -1):
            value = getattr(self.visits[i], score)
            if value is not None:
                return value
        return None

    def baseline(self, score: str):
        """The last value of the score on or before day 0, no earlier than day −30.

        Each score has its own baseline: an IGA from day −20 and an EASI from day 0 are both
        baselines even though no single visit holds both.
        """
        return self.last_value(score, -BASELINE_LOOKBACK_DAYS, 0)

    def worst_in_window(self, score: str, window: str):
        """The highest (worst) value of the score in an assessment window, or None.

        Every score the registry keeps is "higher = worse", so worst is the maximum
        (003, Table I footnote: "the highest (or worst) scores recorded").
        """
        first, last = WINDOW_DAYS[window]
        if self.end is not None:
            last = min(last, self.end)
        found = [value for _, value in self.values(score, first, last)]
        return max(found) if found else None

    def nearest_value(self, score: str, target_day: int, tolerance: int):
        """The score at the visit nearest to ``target_day`` within ± tolerance days that has
        it; a tie goes to the earlier visit (the one a clinician would have called "week k"
        first). None when no visit in reach has the score."""
        best = None
        for day, value in self.values(score, target_day - tolerance, target_day + tolerance):
            distance = abs(day - target_day)
            if best is None or distance < best[0]:
                best = (distance, value)
        return None if best is None else best[1]


def visit_ordinals(visits: list[Visit]) -> list[int]:
    """Date ordinals of a patient's visits (in date order): computed once per patient and
    shared by all of the patient's episodes. (A comprehension: faster than mapping
    ``attrgetter("date")`` and ``date.toordinal`` over a patient's handful of visits.)"""
    return [visit.date.toordinal() for visit in visits]


def course_of(episode: Episode, visits: list[Visit], ordinals: list[int] | None = None) -> Course:
    """The episode's course, from the patient's visits in date order.

    ``ordinals`` (from :func:`visit_ordinals`) saves recomputing the visit dates when a patient
    has several episodes.
    """
    if ordinals is None:
        ordinals = visit_ordinals(visits)
    start = episode.start_date.toordinal()
    lo = bisect_left(ordinals, start - BASELINE_LOOKBACK_DAYS)
    if episode.end_date is None:
        hi = len(ordinals)
    else:
        hi = bisect_right(ordinals, episode.end_date.toordinal())
    return Course(episode, visits[lo:hi], ordinals[lo:hi])


# --- Dose -----------------------------------------------------------------------------------

def dose_segments(episode: Episode) -> list[tuple[int, float]]:
    """(first day, daily dose) of each stretch at one dose, in order, from day 0.

    A dose change applies from its date; changes after the end date (which validation refuses
    anyway) are ignored.
    """
    last = end_day(episode)
    segments = [(0, episode.start_dose_mg)]
    for change in episode.dose_changes:
        day = day_since_start(episode, change.date)
        if last is not None and day > last:
            break
        if day <= segments[-1][0]:
            segments[-1] = (segments[-1][0], change.dose_mg)
        else:
            segments.append((day, change.dose_mg))
    return segments


def dose_on(episode: Episode, day: date | int) -> float | None:
    """The daily dose in force on a day (a date, or a day since start); None outside the
    episode (before the start or after the end date)."""
    if isinstance(day, date):
        day = day_since_start(episode, day)
    if not is_on_treatment(episode, day):
        return None
    dose = None
    for first, segment_dose in dose_segments(episode):
        if first > day:
            break
        dose = segment_dose
    return dose


def high_dose_intervals(episode: Episode, limit: float) -> list[tuple[int, int | None]]:
    """(first day, last day) of each stretch at a dose above ``limit``, up to the end date.

    The last day is None for a stretch still running on an ongoing episode. Adjacent stretches
    at two different high doses (45 then 60 mg) are merged: the patient stayed at high dose.
    """
    last = end_day(episode)
    intervals: list[list] = []
    segments = dose_segments(episode)
    for index, (first, dose) in enumerate(segments):
        if dose <= limit:
            continue
        following = segments[index + 1][0] - 1 if index + 1 < len(segments) else last
        if intervals and intervals[-1][1] is not None and intervals[-1][1] == first - 1:
            intervals[-1][1] = following
        else:
            intervals.append([first, following])
    return [(first, final) for first, final in intervals]


def in_intervals(day: int, intervals) -> bool:
    for first, last in intervals:
        if day >= first and (last is None or day <= last):
            return True
    return False
