"""Adverse events per episode and start dose (003, Table II; endpoints.md, "Adverse events").

For every term an episode either has no data, has data without the event, or has the event;
Table II reports "N patients with data available" and "n (%)" with the event.

Decisions where endpoints.md leaves room (also listed in the report to the lead):

- A logged event also counts as data for its term, biological terms included: otherwise an
  episode whose hand-logged lymphopenia has no lab value behind it would be counted in n but
  not in N, and n could exceed N.
- ``other_biological`` has data when the episode has any on-treatment lab value; it has the
  event only when logged, since no range rule defines it.
- A value is "beyond the range" when strictly above the upper limit (or below the lower one);
  an analyte without that limit at the center cannot make an event. The analyte's baseline is
  "within range" when it is not beyond that same limit (a high baseline lymphocyte count does
  not make a later lymphopenia pre-existing).
- A logged event without ``episode_code`` is attributed to every episode of the patient that
  was on treatment on its onset date (concurrent treatments, e.g. a JAK inhibitor with a
  biologic, were both exposed); an event on no episode counts in no table.
- An event logged on an episode (by code) with onset after the end date (validation allows up
  to 30 days after) is data for the term but not the event: the table counts onsets on
  treatment.
- Terms and analytes outside the vocabulary are ignored (``other_biological`` has data from
  the vocabulary's analytes only).
"""
from __future__ import annotations

from bisect import bisect_left
from itertools import chain, compress
from operator import attrgetter, gt, lt

from .records import AdverseEvent, Episode
from .tally import BINARY, TableSpec
from .timeline import BASELINE_LOOKBACK_DAYS, Course
from .vocabulary import AE_TERMS, BIOLOGICAL_TERMS, CLINICAL_TERMS, LAB_TERMS, LAB_UNITS

TIMEPOINT = "on_treatment"
ANY_ENDPOINTS = ("any_ae", "any_clinical_ae", "any_biological_ae")

SPEC = TableSpec("adverse_events", [
    *((endpoint, TIMEPOINT, BINARY) for endpoint in ANY_ENDPOINTS),
    *((term, TIMEPOINT, BINARY) for term in AE_TERMS),
], all_is_union=True)

TERM_BIT = {term: SPEC.bit(term, TIMEPOINT) for term in AE_TERMS}
CLINICAL_MASK = sum(TERM_BIT[term] for term in CLINICAL_TERMS)
BIOLOGICAL_MASK = sum(TERM_BIT[term] for term in BIOLOGICAL_TERMS)
ANY_AE_BIT = SPEC.bit("any_ae", TIMEPOINT)
ANY_CLINICAL_BIT = SPEC.bit("any_clinical_ae", TIMEPOINT)
ANY_BIOLOGICAL_BIT = SPEC.bit("any_biological_ae", TIMEPOINT)
OTHER_BIOLOGICAL_BIT = TERM_BIT["other_biological"]

#: analyte -> (term it can raise, "upper" or "lower")
ANALYTE_RULE = {
    analyte: (term, limit)
    for term, (analytes, limit) in LAB_TERMS.items()
    for analyte in analytes
}

_CLINICAL_BIT = {term: TERM_BIT[term] for term in CLINICAL_TERMS}
_checklist_of = attrgetter("checklist")
_labs_of = attrgetter("labs")
#: analyte -> the term its values give data for (every analyte also for other_biological)
_ANALYTE_BIT = {analyte: TERM_BIT[term] for analyte, (term, _) in ANALYTE_RULE.items()}
INFINITY = float("inf")


_mask_cache: dict[tuple, int] = {}


def _cached_mask(terms_of, names: set) -> int:
    """``terms_of(names)``, cached by the set of names: episodes share a few sets of
    checklist items and of analytes, and the cache saves a loop over them per episode."""
    key = (terms_of, frozenset(names))
    found = _mask_cache.get(key)
    if found is None:
        found = terms_of(names)
        if len(_mask_cache) >= 4096:
            _mask_cache.clear()
        _mask_cache[key] = found
    return found


def answered_terms(terms) -> int:
    """Bits of the clinical terms among checklist items answered (yes or no)."""
    mask = 0
    for term in terms:
        mask |= _CLINICAL_BIT.get(term, 0)
    return mask


def checklist_yes(checklist: dict[str, bool]) -> int:
    """Bits of the clinical terms answered yes at a visit."""
    mask = 0
    if True in checklist.values():
        for term, answer in checklist.items():
            if answer:
                mask |= _CLINICAL_BIT.get(term, 0)
    return mask


def measured_terms(analytes) -> int:
    """Bits of the biological terms that values of these analytes give data for."""
    mask = 0
    for analyte in analytes:
        if analyte in LAB_UNITS:
            mask |= _ANALYTE_BIT.get(analyte, 0) | OTHER_BIOLOGICAL_BIT
    return mask


class _Limits(dict):
    """analyte -> threshold. Every analyte of the vocabulary is a key (±infinity when the term
    does not use that side or the center has no limit), so the hot path never reaches
    ``__missing__``; an analyte outside the vocabulary compares as ±infinity, never beyond."""

    __slots__ = ("missing",)

    def __init__(self, thresholds, missing: float):
        super().__init__(dict.fromkeys(LAB_UNITS, missing))
        self.update(thresholds)
        self.missing = missing

    def __missing__(self, analyte):
        return self.missing


class LabRules:
    """One center's reference ranges, shaped for the hot loop over visits.

    A visit with nothing abnormal costs two C-level ``any(map(...))`` calls: its values
    against the upper limits of its analytes (+infinity where the analyte's term does not use
    the upper limit or the center has none), then against the lower limits (−infinity
    likewise). A per-combination-of-analytes cache was tried and dropped: it saved little
    with a few lab panels and cost more than it saved when visits measure varied subsets.
    """

    __slots__ = ("ranges", "upper_of", "lower_of", "has_lower")

    def __init__(self, ranges: dict[str, tuple[float | None, float | None]] | None):
        self.ranges = ranges or {}
        uppers, lowers = {}, {}
        for analyte in ANALYTE_RULE:
            found = self.limit(analyte)
            if found is not None:
                _, side, threshold = found
                (uppers if side == "upper" else lowers)[analyte] = threshold
        #: analyte -> its upper limit, as a bound look-up for ``map``
        self.upper_of = _Limits(uppers, INFINITY).__getitem__
        #: analyte -> its lower limit, likewise
        self.lower_of = _Limits(lowers, -INFINITY).__getitem__
        self.has_lower = bool(lowers)

    def limit(self, analyte: str) -> tuple[str, str, float] | None:
        """(term, "upper"/"lower", threshold) that can make an event of this analyte, or None
        when the analyte has no rule or the center has no such limit."""
        rule = ANALYTE_RULE.get(analyte)
        if rule is None:
            return None
        term, side = rule
        lower, upper = self.ranges.get(analyte, (None, None))
        threshold = upper if side == "upper" else lower
        if threshold is None:
            return None
        return term, side, threshold

    def beyond(self, analyte: str, value: float) -> bool:
        """Beyond the center's limit for the analyte's term (strictly)."""
        return value > self.upper_of(analyte) or value < self.lower_of(analyte)

    def any_beyond(self, labs: dict[str, float]) -> bool:
        """Is any of a visit's values beyond the center's limit for its term?"""
        values = labs.values()
        return any(map(gt, values, map(self.upper_of, labs))) or (
            self.has_lower and any(map(lt, values, map(self.lower_of, labs)))
        )


def lab_baseline(course: Course, analyte: str):
    """The analyte's last value in [day −30, day 0] (a day-0 value is its own baseline)."""
    lo, hi = course.span(-BASELINE_LOOKBACK_DAYS, 0)
    for i in range(hi - 1, lo - 1, -1):
        value = course.visits[i].labs.get(analyte)
        if value is not None:
            return value
    return None


def treatment_emergent_terms(course: Course, labs: dict[str, float], rules: LabRules,
                             baselines: dict) -> int:
    """Bits of the terms an on-treatment visit's labs raise: a value beyond the center's
    limit while that analyte's baseline was within it or missing. ``baselines`` caches the
    analyte baselines across the visits of one episode."""
    mask = 0
    for analyte, value in labs.items():
        if not rules.beyond(analyte, value):
            continue
        if analyte not in baselines:
            baselines[analyte] = lab_baseline(course, analyte)
        baseline = baselines[analyte]
        if baseline is None or not rules.beyond(analyte, baseline):
            mask |= TERM_BIT[ANALYTE_RULE[analyte][0]]
    return mask


def events_by_episode(episodes: list[Episode], events: list[AdverseEvent]) -> dict[str, list]:
    """A patient's logged events, by the code of the episode(s) they count on."""
    attributed: dict[str, list] = {episode.code: [] for episode in episodes}
    for event in events:
        if event.episode_code is not None:
            if event.episode_code in attributed:
                attributed[event.episode_code].append(event)
            continue
        for episode in episodes:
            if episode.start_date <= event.onset_date and (
                episode.end_date is None or event.onset_date <= episode.end_date
            ):
                attributed[episode.code].append(event)
    return attributed


def with_any(mask: int) -> int:
    """Add the any_ae / any_clinical_ae / any_biological_ae bits a term mask implies."""
    if mask & CLINICAL_MASK:
        mask |= ANY_CLINICAL_BIT | ANY_AE_BIT
    if mask & BIOLOGICAL_MASK:
        mask |= ANY_BIOLOGICAL_BIT | ANY_AE_BIT
    return mask


def episode_adverse_events(course: Course, events: list[AdverseEvent],
                           rules: LabRules) -> tuple[int, int]:
    """(has-data bits, has-event bits) of one episode, laid out as :data:`SPEC`.

    Checklist answers count as data from day −30 (a visit of the episode), but only an
    on-treatment ``yes`` is an event; labs count only on treatment.
    """
    visits = course.visits
    first_on_treatment = bisect_left(course.ordinals, course.start)
    on_treatment = visits[first_on_treatment:]
    # Whole-episode C-level passes (map/chain over the visits' dicts) instead of a Python
    # loop per visit; single visits are looked at only when a "yes" or an abnormal value
    # shows up somewhere in the episode.
    event = 0
    checklists = list(filter(None, map(_checklist_of, on_treatment)))
    answered = set().union(*checklists)
    if first_on_treatment:
        answered.update(*filter(None, map(_checklist_of, visits[:first_on_treatment])))
    if checklists and True in chain.from_iterable(map(dict.values, checklists)):
        # The items answered yes, still without a Python loop: compress(keys, values).
        yes = set(chain.from_iterable(map(compress, checklists, map(dict.values, checklists))))
        event |= _cached_mask(answered_terms, yes)
    panels = list(filter(None, map(_labs_of, on_treatment)))
    measured = set().union(*panels)
    if panels:
        keys = chain.from_iterable(panels)
        values = chain.from_iterable(map(dict.values, panels))
        abnormal = any(map(gt, values, map(rules.upper_of, keys)))
        if not abnormal and rules.has_lower:
            keys = chain.from_iterable(panels)
            values = chain.from_iterable(map(dict.values, panels))
            abnormal = any(map(lt, values, map(rules.lower_of, keys)))
        if abnormal:
            lab_baselines: dict = {}
            for labs in panels:
                if rules.any_beyond(labs):
                    event |= treatment_emergent_terms(course, labs, rules, lab_baselines)
    data = 0
    if answered:
        data |= _cached_mask(answered_terms, answered)
    if measured:
        data |= _cached_mask(measured_terms, measured)
    start = course.start
    end = course.end
    for logged in events:
        bit = TERM_BIT.get(logged.term, 0)
        data |= bit
        day = logged.onset_date.toordinal() - start
        if day >= 0 and (end is None or day <= end):
            event |= bit
    return with_any(data), with_any(event)


def adverse_event_days(course: Course, events: list[AdverseEvent], rules: LabRules) -> list[int]:
    """Days on treatment on which an adverse event is dated, by the same rules as the table:
    a logged onset, a checklist ``yes`` or a treatment-emergent lab value. For the escalation
    table's "AE at the high dose"."""
    found = []
    lab_baselines: dict = {}
    for day, visit in zip(course.days, course.visits):
        if not course.on_treatment(day):
            continue
        if visit.checklist and checklist_yes(visit.checklist):
            found.append(day)
        elif visit.labs and rules.any_beyond(visit.labs) and treatment_emergent_terms(
            course, visit.labs, rules, lab_baselines
        ):
            found.append(day)
    for logged in events:
        if logged.term not in TERM_BIT:
            continue
        day = course.day_of(logged.onset_date)
        if course.on_treatment(day):
            found.append(day)
    return sorted(found)
