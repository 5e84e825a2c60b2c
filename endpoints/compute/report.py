"""The registry's results: every table of endpoints.md for a scope, and results.csv.

Two steps, so that pooled figures and every center's figures come from one pass over the
records:

1. :func:`episode_facts` walks each patient once and derives what every table needs from each
   episode (baselines, worst values in the windows, AE flags, escalation facts) and from the
   patient (baseline characteristics), tallied per center and group.
2. :func:`aggregate` sums the tallies of the centers in a scope into rows. It is cheap, so
   :func:`compute_reports_by_scope` can produce pooled and per-center reports together.

:func:`compute_report` does both for one scope.
"""
from __future__ import annotations

import csv
import gc
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

from . import adverse_events, baseline, efficacy, escalation, forking, stats
from .forking import balanced_parts, can_fork, forked_map, worker_count
from .records import Cohort, Episode, Patient
from .tally import ALL, RESULT_COLUMNS, Cell, ResultRow, TableSpec, table_rows
from .timeline import course_of, visit_ordinals
from .vocabulary import DRUGS, HIGHEST_APPROVED_DOSE_MG

__all__ = [
    "ResultRow", "CohortFacts", "episode_facts", "aggregate", "compute_report",
    "compute_reports_by_scope", "write_results_csv", "dose_group", "TABLES",
]

#: The tables in results.csv order.
TABLES: tuple[TableSpec, ...] = (
    efficacy.SPEC, adverse_events.SPEC, escalation.SPEC, escalation.COURSE_SPEC, baseline.SPEC,
)


def format_dose(dose_mg: float) -> str:
    """15.0 -> "15", 2.5 -> "2.5": the dose as written on a prescription."""
    return f"{dose_mg:.6f}".rstrip("0").rstrip(".")


def dose_group(episode: Episode) -> str:
    """The start-dose group key, e.g. ``upadacitinib_15``."""
    return f"{episode.drug}_{format_dose(episode.start_dose_mg)}"


def _group_order(group: str):
    """``all`` first, then drugs in vocabulary order and doses in numeric order."""
    if group == ALL:
        return (0, 0, 0.0, group)
    drug, _, dose = group.rpartition("_")
    try:
        rank = DRUGS.index(drug)
    except ValueError:
        rank = len(DRUGS)
    try:
        amount = float(dose)
    except ValueError:
        amount = 0.0
    return (1, rank, amount, group)


@dataclass
class CohortFacts:
    """Per-center tallies of every table, from which any scope's report is summed."""

    #: table name -> center code -> group -> cell
    cells: dict[str, dict[str, dict[str, Cell]]] = field(default_factory=dict)
    #: center code -> start-dose groups that have episodes there
    groups: dict[str, set[str]] = field(default_factory=dict)
    #: every center code seen (from the cohort's centers and its patients)
    centers: set[str] = field(default_factory=set)

    def cell(self, spec: TableSpec, center: str, group: str) -> Cell:
        by_group = self.cells.setdefault(spec.name, {}).setdefault(center, {})
        found = by_group.get(group)
        if found is None:
            found = by_group[group] = Cell()
        return found

    def finish(self) -> None:
        """Do now the per-cell work that the first aggregation would otherwise do (lane sums,
        sorted value columns): a worker process does it for its centers in parallel."""
        for spec in TABLES:
            for by_group in self.cells.get(spec.name, {}).values():
                for cell in by_group.values():
                    cell.finish(spec.n_continuous)

    def merge(self, other: CohortFacts) -> None:
        """Add another part of the cohort's facts (patients split between processes)."""
        self.centers |= other.centers
        for center, groups in other.groups.items():
            self.groups.setdefault(center, set()).update(groups)
        for table, by_center in other.cells.items():
            mine = self.cells.setdefault(table, {})
            for center, by_group in by_center.items():
                mine_by_group = mine.setdefault(center, {})
                for group, cell in by_group.items():
                    if group in mine_by_group:
                        mine_by_group[group].merge(cell)
                    else:
                        mine_by_group[group] = cell


@contextmanager
def collector_paused():
    """Pause the cyclic garbage collector while computing.

    The computation allocates many small objects and creates no reference cycles. Left on,
    the collector would repeatedly traverse the whole cohort (millions of visit objects held
    by the caller) while it runs: about a third of the time at 100,000 patients.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def episode_facts(cohort: Cohort, *, high_dose_limits: Mapping[str, float] | None = None,
                  workers: int | None = None,
                  center_of: Callable[[Patient], str] | None = None) -> CohortFacts:
    """Derive every table's per-episode and per-patient facts in one pass over the cohort.

    ``high_dose_limits``: drug -> highest approved dose (mg), above which a dose is "high";
    defaults to the vocabulary's setting. Drugs absent from it have no escalation analysis.

    ``center_of``: the key a patient's facts are tallied under instead of its center code
    (the recompute tallies per center *and* enrolment year, to sum either); lab results are
    still judged against the patient's own center's ranges. With it, only keys that have
    patients are in ``facts.centers``.

    ``workers``: processes to split the patients between, whole centers to each (the result
    does not depend on it).
    None: one per CPU, at most two, for cohorts of ``forking.PARALLEL_MIN_PATIENTS`` or more where
    ``os.fork`` exists; a pooled recompute of the whole registry is the case this is for.
    The children are forked, so they share the cohort without copying it, and they leave with
    ``os._exit``: no atexit handler or inherited database connection is touched. A caller
    running other threads that hold locks (a threaded web server) should pass ``workers=1``.
    """
    limits = HIGHEST_APPROVED_DOSE_MG if high_dose_limits is None else high_dose_limits
    if workers is None:
        workers = 1
        if len(cohort.patients) >= forking.PARALLEL_MIN_PATIENTS and can_fork():
            workers = worker_count()
    with collector_paused():
        if workers <= 1 or len(cohort.patients) < 2:
            return _episode_facts(cohort, limits, cohort.patients.items(), center_of)
        return _episode_facts_forked(cohort, limits, workers, center_of)


def _parts_by_center(cohort: Cohort, workers: int) -> list[list]:
    """The patients split into ``workers`` parts of about equal size, each center whole, so
    that every cell is complete in one process and can be finished (sorted) there."""
    by_center: dict[str, list] = defaultdict(list)
    for item in cohort.patients.items():
        by_center[item[1].center_code].append(item)
    parts = balanced_parts({center: len(items) for center, items in by_center.items()}, workers)
    return [[item for center in part for item in by_center[center]] for part in parts]


def _finished_facts(cohort: Cohort, limits, center_of, patients) -> CohortFacts:
    facts = _episode_facts(cohort, limits, patients, center_of)
    facts.finish()
    return facts


def _episode_facts_forked(cohort: Cohort, limits, workers: int, center_of) -> CohortFacts:
    parts = _parts_by_center(cohort, workers)
    finished = forked_map(partial(_finished_facts, cohort, limits, center_of), parts)
    facts = finished[0]
    for other in finished[1:]:
        facts.merge(other)
    return facts


def _episode_facts(cohort: Cohort, limits: Mapping[str, float], patients,
                   center_of=None) -> CohortFacts:
    """The facts of the given (patient code, patient) pairs of the cohort."""
    facts = CohortFacts()
    if center_of is None:
        facts.centers.update(cohort.centers)
    rules = {
        code: adverse_events.LabRules(center.lab_ranges) for code, center in cohort.centers.items()
    }
    checklists = adverse_events.ChecklistBits()
    episodes_of: dict[str, list[Episode]] = defaultdict(list)
    for episode in cohort.episodes:
        if episode.patient_code not in cohort.patients:
            raise ValueError(
                f"episode {episode.code}: patient {episode.patient_code} is not in the cohort"
            )
        episodes_of[episode.patient_code].append(episode)

    efficacy_spec, ae_spec = efficacy.SPEC, adverse_events.SPEC
    baseline_cells = _CellsOf(facts, baseline.SPEC)
    escalation_cells = _CellsOf(facts, escalation.SPEC)
    course_cells = _CellsOf(facts, escalation.COURSE_SPEC)
    no_events: list = []
    group_of: dict[tuple[str, float], str] = {}
    # The efficacy and AE cells of each (center, group), fetched once.
    pairs: dict[tuple[str, str], tuple] = {}

    for patient_code, patient in patients:
        center = patient.center_code
        center_rules = rules.get(center)
        if center_rules is None:
            center_rules = rules[center] = adverse_events.LabRules({})
        if center_of is not None:
            center = center_of(patient)
        facts.centers.add(center)
        episodes = episodes_of.get(patient_code, ())
        patient_groups = set()
        if episodes:
            visits = cohort.visits.get(patient_code) or []
            ordinals = visit_ordinals(visits)
            logged = cohort.adverse_events.get(patient_code)
            events_of = adverse_events.events_by_episode(episodes, logged) if logged else {}
            for episode in episodes:
                group = group_of.get((episode.drug, episode.start_dose_mg))
                if group is None:
                    group = group_of[(episode.drug, episode.start_dose_mg)] = dose_group(episode)
                patient_groups.add(group)
                cells = pairs.get((center, group))
                if cells is None:
                    facts.groups.setdefault(center, set()).add(group)
                    cells = pairs[(center, group)] = (
                        facts.cell(efficacy_spec, center, group), facts.cell(ae_spec, center, group)
                    )
                efficacy_cell, ae_cell = cells
                course = course_of(episode, visits, ordinals)

                efficacy_cell.add(*efficacy.episode_efficacy(course))

                events = events_of.get(episode.code, no_events)
                ae_cell.add(*adverse_events.episode_adverse_events(
                    course, events, center_rules, checklists
                ))

                found = escalation.episode_escalation(
                    course, events, center_rules, limits.get(episode.drug)
                )
                if found is not None:
                    table_facts, course_values = found
                    escalation_cells[center, group].add(*table_facts)
                    course_cells[center, ALL].add(0, 0, course_values)

        evaluable, present, values = baseline.patient_baseline(patient)
        baseline_cells[center, ALL].add(evaluable, present, values)
        for group in patient_groups:
            baseline_cells[center, group].add(evaluable, present, values)
    return facts


class _CellsOf(dict):
    """(center, group) -> a table's cell in the facts, looked up there once: a plain
    dictionary hit per unit instead of :meth:`CohortFacts.cell`'s nested look-ups."""

    def __init__(self, facts: CohortFacts, spec: TableSpec):
        super().__init__()
        self.facts = facts
        self.spec = spec

    def __missing__(self, key: tuple[str, str]) -> Cell:
        found = self[key] = self.facts.cell(self.spec, *key)
        return found


def aggregate(facts: CohortFacts, center_codes: Iterable[str] | None = None, *,
              quantile_method: str = stats.DEFAULT_QUANTILE_METHOD) -> list[ResultRow]:
    """The report of one scope: the centers in ``center_codes`` (None: all pooled).

    Every group that has episodes in the scope is reported, and ``all`` always is (with zero
    denominators for an empty scope), so a dashboard can tell "no data" from "no row".
    """
    stats.check_quantile_method(quantile_method)
    with collector_paused():
        return _aggregate(facts, center_codes, quantile_method)


def _aggregate(facts: CohortFacts, center_codes, quantile_method: str) -> list[ResultRow]:
    centers = facts.centers if center_codes is None else set(center_codes)
    groups = set()
    for center in centers:
        groups |= facts.groups.get(center, set())
    rows: list[ResultRow] = []
    for spec in TABLES:
        table = facts.cells.get(spec.name, {})
        cells_by_group: dict[str, list[Cell]] = defaultdict(list)
        for center in centers:
            for group, cell in table.get(center, {}).items():
                cells_by_group[group].append(cell)
        if spec.groups_from_units:
            table_groups = {
                group for group, cells in cells_by_group.items()
                if any(cell.units for cell in cells)
            }
        else:
            table_groups = set(groups)
        table_groups.add(ALL)
        rows.extend(table_rows(
            spec, cells_by_group, sorted(table_groups, key=_group_order), quantile_method
        ))
    return rows


def compute_report(cohort: Cohort, *, quantile_method: str = stats.DEFAULT_QUANTILE_METHOD,
                   high_dose_limits: Mapping[str, float] | None = None,
                   workers: int | None = None) -> list[ResultRow]:
    """Every row of results.csv for the whole cohort as one scope."""
    stats.check_quantile_method(quantile_method)
    with collector_paused():
        facts = episode_facts(cohort, high_dose_limits=high_dose_limits, workers=workers)
        return aggregate(facts, quantile_method=quantile_method)


def compute_reports_by_scope(
    cohort: Cohort,
    scopes: Mapping[str, Iterable[str] | None] | None = None,
    *,
    quantile_method: str = stats.DEFAULT_QUANTILE_METHOD,
    high_dose_limits: Mapping[str, float] | None = None,
    workers: int | None = None,
) -> dict:
    """Reports of several scopes from one pass over the cohort.

    ``scopes``: name -> center codes (None: all pooled). Without it: the pooled report under
    the key None and one report per center under its code.
    """
    stats.check_quantile_method(quantile_method)
    with collector_paused():  # one pause for all scopes, not one per scope
        facts = episode_facts(cohort, high_dose_limits=high_dose_limits, workers=workers)
        if scopes is None:
            scopes = {None: None, **{code: (code,) for code in sorted(facts.centers)}}
        return {
            name: aggregate(facts, centers, quantile_method=quantile_method)
            for name, centers in scopes.items()
        }


def format_number(value) -> str:
    """A figure for results.csv: empty for None, integers as integers, anything else rounded
    to 4 decimals without trailing zeros (so no 0.30000000000000004)."""
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def format_percent(value) -> str:
    """A percentage keeps its one decimal (40.0), as the papers print it."""
    return "" if value is None else f"{value:.1f}"


def write_results_csv(rows: Iterable[ResultRow], file) -> None:
    """Write results.csv (long format, one row per figure) to a text file object.

    Lines end with ``\n`` (diff- and git-friendly); open the file with ``newline=""`` so that
    the platform does not translate them.
    """
    writer = csv.writer(file, lineterminator="\n")
    writer.writerow(RESULT_COLUMNS)
    for row in rows:
        writer.writerow((
            row.table, row.endpoint, row.timepoint, row.group, row.n,
            "" if row.count is None else row.count,
            format_percent(row.percent),
            *(format_number(value) for value in (row.median, row.q1, row.q3, row.mean, row.sd)),
        ))
