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
from functools import reduce
from itertools import chain, compress, cycle
from operator import attrgetter, gt, itemgetter, lt, or_

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
#: Every analyte of the vocabulary, as a keys view so that ``<=`` against a panel's keys
#: runs in C without building a set.
_VOCABULARY_PANEL = dict.fromkeys(LAB_UNITS).keys()
INFINITY = float("inf")


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


#: What a panel with the whole vocabulary gives data for: the most any panels can give.
_FULL_PANEL_TERMS = measured_terms(LAB_UNITS)


def panels_measured_terms(panels: list[dict[str, float]]) -> int:
    """Bits of the biological terms that an episode's lab panels give data for.

    Nearly every panel measures the whole vocabulary, which settles it without taking the
    union of the panels' analytes."""
    if _VOCABULARY_PANEL <= panels[0].keys() or any(
        map(_VOCABULARY_PANEL.__le__, map(dict.keys, panels))
    ):
        return _FULL_PANEL_TERMS
    return measured_terms(set().union(*panels))


#: A checklist's yes bits sit above its answered bits in one integer (see ChecklistBits).
_YES_SHIFT = CLINICAL_MASK.bit_length()


class ChecklistBits:
    """Answered and yes bits of the checklists seen in one pass over a cohort.

    The DB reader shares one checklist dict between all visits with the same answers (a few
    hundred in a registry, one empty dict for all visits without answers), so looking their
    bits up by ``id`` replaces building sets of terms per episode. Each checklist is kept
    referenced here, so no id is reused while it is a key; an instance is meant to live for
    one pass only, since records that do not share dicts cost one entry per visit.
    """

    __slots__ = ("_bits", "_kept")

    def __init__(self):
        #: id(checklist) -> answered bits | yes bits << _YES_SHIFT
        self._bits: dict[int, int] = {}
        self._kept: list[dict] = []

    def of_episode(self, visits: list, first_on_treatment: int) -> tuple[int, int]:
        """(answered bits, yes bits) of an episode's visits: answers count as data from day −30,
        a ``yes`` counts as an event only from ``visits[first_on_treatment]`` on."""
        try:
            return self._of_episode(visits, first_on_treatment)
        except KeyError:  # a checklist not seen yet in this pass
            self._learn(visits)
            return self._of_episode(visits, first_on_treatment)

    def _of_episode(self, visits: list, first_on_treatment: int) -> tuple[int, int]:
        bits_of = self._bits.__getitem__
        on = reduce(or_, map(bits_of, map(id, map(_checklist_of, visits[first_on_treatment:]))), 0)
        answered = on
        # Usually a single visit before day 0 (the baseline): a plain loop is cheaper there.
        for i in range(first_on_treatment):
            answered |= bits_of(id(visits[i].checklist))
        return answered & CLINICAL_MASK, on >> _YES_SHIFT

    def _learn(self, visits: list) -> None:
        bits = self._bits
        for checklist in map(_checklist_of, visits):
            if id(checklist) not in bits:
                self._kept.append(checklist)
                bits[id(checklist)] = (
                    answered_terms(checklist) | checklist_yes(checklist) << _YES_SHIFT
                )


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


class _LimitedSide:
    """The analytes a center limits on one side (upper or lower), read from whole panels in C.

    ``itemgetter`` reads them from every panel in one fixed order, so the values of all an
    episode's panels line up with ``cycle(limits)`` and no per-value look-up of the limit is
    needed. A panel lacking one of these analytes raises KeyError (the caller falls back).
    """

    __slots__ = ("analytes", "limits", "values_of", "beyond")

    def __init__(self, limits: dict[str, float], beyond):
        analytes = tuple(limits)
        if len(analytes) == 1:
            # itemgetter of a single key returns the bare value; asking twice keeps a tuple.
            analytes *= 2
        self.analytes = analytes
        self.limits = tuple(limits[analyte] for analyte in analytes)
        self.values_of = itemgetter(*analytes)
        #: operator.gt for upper limits, operator.lt for lower ones: (value, limit) -> beyond
        self.beyond = beyond

    def flags(self, panels: list[dict[str, float]]):
        """Is each limited value of the panels beyond its limit? In panel order, each panel's
        values in the order of :attr:`analytes`."""
        values = chain.from_iterable(map(self.values_of, panels))
        return map(self.beyond, values, cycle(self.limits))


class LabRules:
    """One center's reference ranges, shaped for the hot loop over visits.

    An episode's panels are tested together, one C-level pass per side of the range over the
    analytes the center limits on that side (see :class:`_LimitedSide`); most episodes have
    nothing beyond a limit and stop there, the others take a second pass to tell which
    analytes. Panels lacking some of those analytes (other data sources than the DB reader's
    full panels) take a slower pass that looks each value's limit up by its analyte. A
    per-combination-of-analytes cache was tried and dropped: it saved little with a few lab
    panels and cost more than it saved when visits measure varied subsets.
    """

    __slots__ = ("ranges", "upper_of", "lower_of", "has_lower", "sides")

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
        #: the sides of the range on which the center limits some analyte
        self.sides = tuple(
            _LimitedSide(limits, beyond) for limits, beyond in ((uppers, gt), (lowers, lt))
            if limits
        )

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

    def analytes_beyond(self, panels: list[dict[str, float]]) -> set[str]:
        """The analytes with a value beyond the center's limit in any of these panels."""
        found = set()
        try:
            for side in self.sides:
                # A first pass stops at the first value beyond the limit; most episodes have
                # none, and only the others take a second pass to name the analytes.
                if any(side.flags(panels)):
                    found.update(compress(cycle(side.analytes), side.flags(panels)))
        except KeyError:  # a panel without some limited analyte
            return self._analytes_beyond_by_key(panels)
        return found

    def _analytes_beyond_by_key(self, panels: list[dict[str, float]]) -> set[str]:
        keys = list(chain.from_iterable(panels))
        values = list(chain.from_iterable(map(dict.values, panels)))
        found = set(compress(keys, map(gt, values, map(self.upper_of, keys))))
        if self.has_lower:
            found.update(compress(keys, map(lt, values, map(self.lower_of, keys))))
        return found


def lab_baseline(course: Course, analyte: str):
    """The analyte's last value in [day −30, day 0] (a day-0 value is its own baseline)."""
    lo, hi = course.span(-BASELINE_LOOKBACK_DAYS, 0)
    for i in range(hi - 1, lo - 1, -1):
        value = course.visits[i].labs.get(analyte)
        if value is not None:
            return value
    return None


def treatment_emergent_terms(course: Course, analytes_beyond, rules: LabRules,
                             baselines: dict) -> int:
    """Bits of the terms raised by analytes with an on-treatment value beyond the center's
    limit: those whose baseline was within that limit or missing. ``baselines`` caches the
    analyte baselines across the visits of one episode."""
    mask = 0
    for analyte in analytes_beyond:
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


def episode_adverse_events(course: Course, events: list[AdverseEvent], rules: LabRules,
                           checklists: ChecklistBits) -> tuple[int, int]:
    """(has-data bits, has-event bits) of one episode, laid out as :data:`SPEC`.

    Checklist answers count as data from day −30 (a visit of the episode), but only an
    on-treatment ``yes`` is an event; labs count only on treatment. ``checklists`` is shared
    by the episodes of one pass over a cohort.
    """
    visits = course.visits
    first_on_treatment = bisect_left(course.ordinals, course.start)
    on_treatment = visits[first_on_treatment:]
    # Whole-episode C-level passes over the visits' dicts instead of a Python loop per
    # visit; single analytes are looked at only when a value beyond a limit shows up.
    data, event = checklists.of_episode(visits, first_on_treatment)
    panels = list(filter(None, map(_labs_of, on_treatment)))
    if panels:
        data |= panels_measured_terms(panels)
        beyond = rules.analytes_beyond(panels)
        if beyond:
            event |= treatment_emergent_terms(course, beyond, rules, {})
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
        elif visit.labs and treatment_emergent_terms(
            course, rules.analytes_beyond([visit.labs]), rules, lab_baselines
        ):
            found.append(day)
    for logged in events:
        if logged.term not in TERM_BIT:
            continue
        day = course.day_of(logged.onset_date)
        if course.on_treatment(day):
            found.append(day)
    return sorted(found)
