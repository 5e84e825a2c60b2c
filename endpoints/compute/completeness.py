"""Data completeness per center: what a PI chases each week.

Pure Python (records in, rows out), computed during the recompute and stored in the snapshot,
so the dashboard never counts visits in a request.

Definitions (the same as the "Missing" column of a center's patient list, so that the
dashboard and the list name the same episodes):

- **Share of visits with a score**: visits of the center's patients that record the score,
  over all of their visits (lab-only visits included: they are visits a score could have been
  entered at).
- **Episode without a baseline visit**: no visit of the patient in [day −30, day 0] of the
  episode.
- **Episode without an M3 visit**: the episode has been followed past the M3 window (its end
  date, or ``today`` while ongoing, is after day 136) and no visit falls in days 46–136.
  Episodes not yet past the window are not counted, neither as missing nor in the
  denominator (``m3_due``).
- **Patient without an episode**: enrolled, but no treatment episode recorded.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from itertools import chain
from operator import attrgetter, countOf

from .records import Cohort
from .timeline import BASELINE_LOOKBACK_DAYS, WINDOW_DAYS
from .vocabulary import SCORE_CODES

_date_of = attrgetter("date")
#: score code -> the getter of its value on a visit
_SCORE_OF = {score: attrgetter(score) for score in SCORE_CODES}

#: The key of the row that sums every center of the scope.
TOTAL = "*"
M3_FIRST_DAY, M3_LAST_DAY = WINDOW_DAYS["m3"]


@dataclass(slots=True)
class CompletenessRow:
    """One center's completeness (or the scope's total, ``center == TOTAL``)."""

    center: str
    patients: int = 0
    episodes: int = 0
    visits: int = 0
    #: score code -> visits that record it
    visits_with: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SCORE_CODES, 0))
    #: episodes past the M3 window (the denominator of "without an M3 visit")
    m3_due: int = 0
    #: (patient code, episode code) pairs, so that the dashboard can list what to chase
    episodes_without_baseline: list[tuple[str, str]] = field(default_factory=list)
    episodes_without_m3: list[tuple[str, str]] = field(default_factory=list)
    patients_without_episode: list[str] = field(default_factory=list)

    def add(self, other: CompletenessRow) -> None:
        self.patients += other.patients
        self.episodes += other.episodes
        self.visits += other.visits
        for score, count in other.visits_with.items():
            self.visits_with[score] = self.visits_with.get(score, 0) + count
        self.m3_due += other.m3_due
        self.episodes_without_baseline += other.episodes_without_baseline
        self.episodes_without_m3 += other.episodes_without_m3
        self.patients_without_episode += other.patients_without_episode

    def as_dict(self) -> dict:
        return {
            "center": self.center,
            "patients": self.patients,
            "episodes": self.episodes,
            "visits": self.visits,
            "visits_with": dict(self.visits_with),
            "m3_due": self.m3_due,
            "episodes_without_baseline": [list(pair) for pair in sorted(self.episodes_without_baseline)],
            "episodes_without_m3": [list(pair) for pair in sorted(self.episodes_without_m3)],
            "patients_without_episode": sorted(self.patients_without_episode),
        }


def completeness(cohort: Cohort, today: date, center_of=None) -> list[CompletenessRow]:
    """One row per center of the cohort (in code order), then the total row.

    ``center_of``: maps a patient's ``center_code`` to the center to report it under (the
    recompute passes a cohort keyed by center and enrolment year); default: as is.
    Every center of ``cohort.centers`` gets a row, also one without patients.
    """
    center_of = center_of or (lambda code: code)
    rows: dict[str, CompletenessRow] = {}
    for code in cohort.centers:
        key = center_of(code)
        rows.setdefault(key, CompletenessRow(key))
    episodes_of: dict[str, list] = {}
    for episode in cohort.episodes:
        episodes_of.setdefault(episode.patient_code, []).append(episode)
    today_ordinal = today.toordinal()
    visit_lists: dict[str, list] = defaultdict(list)

    for patient_code, patient in cohort.patients.items():
        key = center_of(patient.center_code)
        row = rows.get(key)
        if row is None:
            row = rows[key] = CompletenessRow(key)
        row.patients += 1
        visits = cohort.visits.get(patient_code) or []
        row.visits += len(visits)
        visit_lists[key].append(visits)
        episodes = episodes_of.get(patient_code, ())
        if not episodes:
            row.patients_without_episode.append(patient_code)
            continue
        ordinals = list(map(date.toordinal, map(_date_of, visits)))
        for episode in episodes:
            row.episodes += 1
            start = episode.start_date.toordinal()
            if not _any_between(ordinals, start - BASELINE_LOOKBACK_DAYS, start):
                row.episodes_without_baseline.append((patient_code, episode.code))
            followed_until = (
                episode.end_date.toordinal() if episode.end_date is not None else today_ordinal
            )
            if followed_until - start > M3_LAST_DAY:
                row.m3_due += 1
                if not _any_between(ordinals, start + M3_FIRST_DAY, start + M3_LAST_DAY):
                    row.episodes_without_m3.append((patient_code, episode.code))

    # Each score's visits are counted over all of a center's visits at once, by C-level
    # passes (countOf) rather than a Python step per visit: a million visits at 100,000
    # patients.
    for key, lists in visit_lists.items():
        visits = list(chain.from_iterable(lists))
        counts = rows[key].visits_with
        for score, value_of in _SCORE_OF.items():
            counts[score] += len(visits) - countOf(map(value_of, visits), None)
    ordered = [rows[key] for key in sorted(rows)]
    total = CompletenessRow(TOTAL)
    for row in ordered:
        total.add(row)
    return [*ordered, total]


def _any_between(ordinals: list[int], first: int, last: int) -> bool:
    """Whether a sorted list holds a value in [first, last]."""
    return bisect_right(ordinals, last) > bisect_left(ordinals, first)


def completeness_dicts(rows: Iterable[CompletenessRow]) -> list[dict]:
    """JSON-ready rows, as the snapshot stores them."""
    return [row.as_dict() for row in rows]
