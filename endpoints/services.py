"""Recompute of the cohort endpoints into snapshots, and the bookkeeping that triggers it.

Every committed change to patient data marks its center's scope and the pooled scope as
pending and queues one recompute task per scope; further changes while a task is queued only
raise the pending count (coalescing). A recompute reads the scope's records, computes with the
pure code in ``endpoints.compute`` and replaces the snapshot in one transaction, so a failed or
killed task leaves the previous snapshot whole, and an older computation never overwrites a
newer one.
"""
import dataclasses
import gc
import hashlib
import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import Count, F, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from endpoints.compute import forking
from endpoints.compute.completeness import TOTAL as COMPLETENESS_TOTAL
from endpoints.compute.completeness import CompletenessRow, completeness, completeness_dicts
from endpoints.compute.forking import balanced_parts, can_fork, forked_map, worker_count
from endpoints.compute.report import aggregate, collector_paused, episode_facts
from endpoints.compute.tally import ALL
from endpoints.models import POOLED, RecomputeState, Snapshot, StudySettings
from endpoints.selectors import (
    FINGERPRINTED,
    InputSummaries,
    export_snapshot,
    one_snapshot,
    read_cohort,
)
from registry.centers.models import Center

logger = logging.getLogger(__name__)

#: Seconds a queued recompute waits, so that a burst of saves is computed once.
COALESCE_SECONDS = getattr(settings, "ENDPOINTS_COALESCE_SECONDS", 2)
#: A queued task not started after this long is considered lost and queued again.
LOST_TASK_SECONDS = 60

# Computing ---------------------------------------------------------------------------------


def center_codes_of(scope):
    return None if scope == POOLED else [scope]


def inputs_fingerprint(scope):
    """A digest that changes whenever a record of the scope is added, changed or deleted."""
    return inputs_fingerprints([scope])[scope]


def inputs_fingerprints(scopes):
    """scope -> :func:`inputs_fingerprint`, for many scopes from one grouped query per table
    (the nightly run fingerprints the pool and every center)."""
    scopes = list(scopes)
    codes = None if POOLED in scopes else {code for scope in scopes for code in center_codes_of(scope)}
    return fingerprints_from(InputSummaries.read(codes), scopes, StudySettings.current().quantile_method)


def fingerprints_from(summaries, scopes, method):
    """scope -> digest of the scope's :class:`InputSummaries` and the quartile method."""
    fingerprints = {}
    for scope in scopes:
        wanted = center_codes_of(scope)
        parts = []
        for model, _path in FINGERPRINTED:
            by_center = summaries.tables.get(model.__name__, {})
            picked = by_center.values() if wanted is None else [by_center[code] for code in wanted if code in by_center]
            n = sum(summary[0] for summary in picked)
            ids = sum(summary[1] for summary in picked) if n else None
            latest = max((summary[2] for summary in picked if summary[2] is not None), default=None)
            parts.append(f"{model.__name__}:{n}:{ids}:{latest}")
        # Sorted here: the database's collation must not change a digest.
        scope_ranges = sorted(r for r in summaries.ranges if wanted is None or r[0] in wanted)
        text = "|".join([*parts, repr(scope_ranges), method])
        fingerprints[scope] = hashlib.sha256(text.encode()).hexdigest()
    return fingerprints


def store_snapshot(scope, rows, *, read_at, fingerprint, method, duration_ms, counts,
                   extras=None):
    """Replace the scope's snapshot unless a newer computation already stored one.

    ``extras``: the dashboard's precomputed views (:class:`DashboardExtras`), stored with the
    rows in the same transaction so that a page never shows rows and extras of two runs.
    """
    extras = extras or DashboardExtras()
    with transaction.atomic():
        # Only the field compared: the stored rows (about a megabyte of JSON) are replaced,
        # not read; every field assigned below is saved.
        snapshot = Snapshot.objects.select_for_update().filter(scope=scope).only(
            "scope", "inputs_read_at"
        ).first()
        if snapshot and snapshot.inputs_read_at > read_at:
            return snapshot
        snapshot = snapshot or Snapshot(scope=scope)
        # Result rows as computed: the fields store them packed (endpoints.storage).
        snapshot.rows = rows
        snapshot.rows_by_enrolment_year = extras.rows_by_year
        snapshot.enrolment_years = [
            {"year": year, **dict(zip(("patients", "episodes", "visits"), extras.year_counts.get(year, (0, 0, 0))))}
            for year in extras.rows_by_year
        ]
        snapshot.completeness = extras.completeness
        snapshot.center_breakdown = extras.center_breakdown
        snapshot.computed_at = timezone.now()
        snapshot.inputs_read_at = read_at
        snapshot.fingerprint = fingerprint
        snapshot.quantile_method = method
        snapshot.duration_ms = duration_ms
        snapshot.patients, snapshot.episodes, snapshot.visits = counts
        snapshot.save()
    # The rows are read back from the database (as dicts) only if the caller asks for them:
    # a field missing from the instance's __dict__ is a deferred field to Django. The
    # nightly run stores half a million rows and needs none of them back.
    for name in ("rows", "rows_by_enrolment_year"):
        del snapshot.__dict__[name]
    return snapshot


def row_as_dict(row):
    return {name: getattr(row, name) for name in row.__slots__}


def counts_by_center(cohort, key_of=None):
    """center code -> (patients, episodes, visits), from one pass over the cohort (a scope's
    counts are summed from it). ``key_of``: the key a patient counts under instead of its
    center code (the enrolment-year pseudo-centers)."""
    counts = {}
    key_of_patient = {}
    for code, patient in cohort.patients.items():
        key = key_of_patient[code] = patient.center_code if key_of is None else key_of(patient)
        patients, episodes, visits = counts.get(key, (0, 0, 0))
        counts[key] = (patients + 1, episodes, visits + len(cohort.visits.get(code, ())))
    for episode in cohort.episodes:
        key = key_of_patient.get(episode.patient_code)
        if key is not None:
            patients, episodes, visits = counts[key]
            counts[key] = (patients, episodes + 1, visits)
    return counts


def scope_counts(by_center, center_codes=None):
    """(patients, episodes, visits) of some centers (None: all) from :func:`counts_by_center`."""
    picked = by_center.values() if center_codes is None else [
        by_center[code] for code in dict.fromkeys(center_codes) if code in by_center
    ]
    return tuple(sum(column) for column in zip((0, 0, 0), *picked))


def recompute_scope(scope, *, force=False):
    """Recompute one scope (a center code or ``POOLED``) into its snapshot, unless its inputs
    have not changed since the stored one.

    A center is computed as one part of the nightly run would compute it. The pool is summed
    from every center's facts the way the nightly run sums it (in parallel parts for a large
    registry); the centers' own snapshots are then stored again only where their inputs
    changed.
    """
    read_at = timezone.now()
    method = StudySettings.current().quantile_method
    summaries = InputSummaries.read(center_codes_of(scope))
    fingerprint = fingerprints_from(summaries, [scope], method)[scope]
    current = Snapshot.objects.filter(scope=scope).only("fingerprint").first()
    if current and current.fingerprint == fingerprint and not force:
        return current
    if scope == POOLED:
        recompute_all_scopes(refresh_centers=False)
    else:
        job = CentersJob(read_at, method, timezone.localdate(), time.perf_counter())
        # The fingerprint stored is that of the rows computed (a save since the check above
        # is in both, or in neither).
        compute_centers(*read_cohort([scope]), [scope], job)
    return Snapshot.objects.defer("rows", "rows_by_enrolment_year").get(scope=scope)


@dataclasses.dataclass
class CentersJob:
    """What every part of a nightly run shares."""

    read_at: object
    method: str
    today: object
    started: float
    #: False: a center whose stored snapshot has the same fingerprint is not stored again
    #: (the pooled recompute after a save); the nightly run refreshes every snapshot.
    refresh_centers: bool = True
    #: processes the work is split between
    workers: int = 1


@dataclasses.dataclass
class CentersResult:
    """What one part of a nightly run hands back for the pooled scope, its centers' own
    snapshots being stored: the finished facts and the small per-center summaries."""

    facts: object
    years: "EnrolmentYears"
    completeness: dict
    counts: dict
    breakdown: list
    summaries: InputSummaries
    #: phase -> seconds in this part (read, facts, aggregate, store), for the log and bench
    seconds: Counter = dataclasses.field(default_factory=Counter)


def recompute_all_scopes(*, workers=None, refresh_centers=True):
    """Every center and the pooled scope (the nightly run); returns the scope keys.

    All parts read one snapshot of the registry. A large registry's centers are split
    between ``workers`` processes (default: one per CPU, at most two), each reading,
    computing and storing its own centers; the pooled scope is then summed from their facts
    here. Small registries, and databases other than PostgreSQL (no shared snapshot), are
    done in this process. ``refresh_centers``: see :class:`CentersJob`.
    """
    method = StudySettings.current().quantile_method
    sizes = dict(Center.objects.order_by("code").annotate(n=Count("patients")).values_list("code", "n"))
    scopes = [POOLED, *sizes]
    if workers is None:
        workers = worker_count() if sum(sizes.values()) >= forking.PARALLEL_MIN_PATIENTS else 1
    parallel = workers > 1 and can_fork() and connection.vendor == "postgresql"
    parallel = parallel and not connection.in_atomic_block  # the snapshot must be ours
    job = CentersJob(
        timezone.now(), method, timezone.localdate(), time.perf_counter(), refresh_centers,
        workers if parallel else 1,
    )
    with one_snapshot():
        if parallel:
            # The children import this transaction's snapshot: it stays open until they
            # are done.
            snapshot_id = export_snapshot()
            with collector_paused():  # unpickling the parts' facts: no cycles among them
                results = forked_map(
                    partial(_centers_in_child, job=job, snapshot_id=snapshot_id),
                    balanced_parts(sizes, workers), first_here=False,
                )
        else:
            cohort, summaries = read_cohort()
    if not parallel:
        results = [compute_centers(cohort, summaries, list(sizes), job)]
        del cohort  # most of the memory: free it before the pooled scope is stored
    parts_done = time.perf_counter()
    store_pooled(results, job)
    logger.info(
        "recomputed %d scopes in %.1f s, the pooled scope %.1f s of it (%d parts: %s)", len(scopes),
        time.perf_counter() - job.started, time.perf_counter() - parts_done, len(results),
        "; ".join(", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in result.seconds.items())
                  for result in results),
    )
    return scopes


def _centers_in_child(codes, *, job, snapshot_id):
    """A forked part of the nightly run: its own connection, the parent's snapshot."""
    def read_and_compute():
        # This process ends when its part is done: nothing for the cyclic collector to
        # free, and its passes over millions of records would cost seconds.
        gc.disable()
        started = time.perf_counter()
        with one_snapshot(imported=snapshot_id):
            cohort, summaries = read_cohort(codes)
        read = time.perf_counter()
        result = compute_centers(cohort, summaries, codes, job)
        result.seconds["read"] += read - started
        return result

    # Django keeps one connection per thread: a forked process must not use the one it
    # inherited (its socket is the parent's), and a new thread never sees it.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(with_own_connections, read_and_compute).result()


def with_own_connections(function):
    """``function()``, then this thread's database connections closed: for work handed to a
    thread of its own (Django opens one connection per thread, and nothing else closes
    them)."""
    try:
        return function()
    finally:
        connections.close_all()


def compute_centers(cohort, summaries, codes, job):
    """Compute and store the snapshots of the centers ``codes`` from their ``cohort`` (whose
    input ``summaries`` give their fingerprints); the facts and summaries the pooled scope
    needs are returned."""
    fingerprints = fingerprints_from(summaries, codes, job.method)
    if not job.refresh_centers:
        current = dict(Snapshot.objects.filter(scope__in=codes).values_list("scope", "fingerprint"))
        codes_to_store = {code for code in codes if current.get(code) != fingerprints[code]}
    else:
        codes_to_store = set(codes)
    seconds = Counter()
    clock = time.perf_counter()

    def lap(phase):
        nonlocal clock
        now = time.perf_counter()
        seconds[phase] += now - clock
        clock = now

    with collector_paused():  # the records hold no cycles: nothing for it to find
        years = by_enrolment_year(cohort)
        facts = episode_facts(cohort, workers=1, center_of=years.key_of)
        facts.finish()
        checks = CompletenessByCenter.of_cohort(cohort, job.today)
        counts = years.counts_by_center()
        del cohort
        lap("facts")
        rows_by_center = {}
        for code in codes:
            rows_by_center[code] = rows = aggregate(facts, years.keys([code]), quantile_method=job.method)
            extras = DashboardExtras(
                rows_by_year=years.rows_by_year(facts, [code], job.method),
                year_counts=years.counts([code]),
                completeness=checks.of([code]),
            )
            lap("aggregate")
            if code in codes_to_store:
                store_snapshot(
                    code, rows, read_at=job.read_at, fingerprint=fingerprints[code],
                    method=job.method, duration_ms=round((time.perf_counter() - job.started) * 1000),
                    counts=scope_counts(counts, [code]), extras=extras,
                )
                lap("store")
        breakdown = center_breakdown(rows_by_center, {code: scope_counts(counts, [code]) for code in codes})
    return CentersResult(facts, years, checks.by_center, counts, breakdown, summaries, seconds)


def store_pooled(results, job):
    """The pooled snapshot, summed from the parts' facts and summaries."""
    with collector_paused():
        first = results[0]
        facts, years, summaries = first.facts, first.years, first.summaries
        checks, counts, breakdown = {}, {}, []
        for result in results:
            if result is not first:
                facts.merge(result.facts)
                years.merge(result.years)
                summaries.merge(result.summaries)
            checks.update(result.completeness)
            counts.update(result.counts)
            breakdown += result.breakdown
        year_list = years.years(None)
        key_sets = [years.keys(None), *(years.keys(None, year) for year in year_list)]
        if job.workers > 1:
            # The rows of every year cost about what each year's rows cost together: the
            # two halves side by side (a forked child has the facts without a copy).
            halves = forked_map(partial(_aggregates, facts, job.method), [key_sets[:1], key_sets[1:]])
            scope_rows = [*halves[0], *halves[1]]
        else:
            scope_rows = _aggregates(facts, job.method, key_sets)
        rows = scope_rows[0]
        extras = DashboardExtras(
            rows_by_year=dict(zip(year_list, scope_rows[1:])),
            year_counts=years.counts(None),
            completeness=CompletenessByCenter(checks).of(None),
            center_breakdown=sorted(breakdown, key=lambda entry: entry["center"]),
        )
        return store_snapshot(
            POOLED, rows, read_at=job.read_at,
            fingerprint=fingerprints_from(summaries, [POOLED], job.method)[POOLED],
            method=job.method, duration_ms=round((time.perf_counter() - job.started) * 1000),
            counts=scope_counts(counts), extras=extras,
        )


def _aggregates(facts, method, key_sets):
    return [aggregate(facts, keys, quantile_method=method) for keys in key_sets]


# The dashboard's precomputed views ------------------------------------------------------------

#: The enrolment-year key of a patient without an enrolment date (the registry requires one;
#: a bundle might not).
UNKNOWN_YEAR = "unknown"
#: Separates the center code and the year in a pseudo-center key ("fr-tls|2024"); a center
#: code never contains it.
YEAR_SEPARATOR = "|"
#: Headline figures of the pooled dashboard's per-center breakdown: (key, table, endpoint,
#: timepoint), read from the group ``all``.
BREAKDOWN_FIGURES = (
    ("iga_0_1_2_m3", "efficacy", "iga_0_1_2", "m3"),
    ("easi75_m3", "efficacy", "easi75", "m3"),
    ("any_ae", "adverse_events", "any_ae", "on_treatment"),
)


@dataclasses.dataclass
class DashboardExtras:
    """What a snapshot stores besides its rows, for the dashboard's filters and tables."""

    #: enrolment year -> result rows of the patients enrolled that year, years in order
    rows_by_year: dict = dataclasses.field(default_factory=dict)
    #: enrolment year -> (patients, episodes, visits) of the scope enrolled that year
    year_counts: dict = dataclasses.field(default_factory=dict)
    #: ``endpoints.compute.completeness`` rows as dicts
    completeness: list = dataclasses.field(default_factory=list)
    #: pooled scope: headline figures per center
    center_breakdown: list = dataclasses.field(default_factory=list)


def enrolment_year(patient):
    return str(patient.enrolled_on.year) if patient.enrolled_on else UNKNOWN_YEAR


def _year_order(year):
    return (year == UNKNOWN_YEAR, year)


def by_enrolment_year(cohort):
    """The :class:`EnrolmentYears` of the cohort: every patient's pseudo-center
    "center|year", and the pseudo-centers' counts.

    ``episode_facts(cohort, center_of=years.key_of)`` then tallies per center *and* year in
    its one pass, and ``aggregate`` over a set of pseudo-centers yields any center's or the
    pool's figures for one year or for all years.
    """
    keys = {}
    parts = {}
    for code, patient in cohort.patients.items():
        year = enrolment_year(patient)
        keys[code] = key = f"{patient.center_code}{YEAR_SEPARATOR}{year}"
        parts[key] = (patient.center_code, year)
    years = EnrolmentYears(parts, {}, keys)
    years.key_counts = counts_by_center(cohort, key_of=years.key_of)
    return years


@dataclasses.dataclass
class EnrolmentYears:
    """The pseudo-centers of :func:`by_enrolment_year`: which center and year each is, and
    its (patients, episodes, visits). Small, so parts of a nightly run hand it back."""

    #: pseudo-center key -> (center code, year)
    parts: dict
    #: pseudo-center key -> (patients, episodes, visits)
    key_counts: dict
    #: patient code -> pseudo-center key (not handed back by a part: only its own use)
    key_by_patient: dict = dataclasses.field(default_factory=dict, repr=False)

    def key_of(self, patient):
        return self.key_by_patient[patient.code]

    def __getstate__(self):
        return {"parts": self.parts, "key_counts": self.key_counts, "key_by_patient": {}}

    def merge(self, other):
        self.parts.update(other.parts)
        self.key_counts.update(other.key_counts)

    def keys(self, center_codes=None, year=None):
        """The pseudo-centers of some centers (None: all) and one year (None: all)."""
        return [
            key for key, (center, key_year) in self.parts.items()
            if (center_codes is None or center in center_codes) and (year is None or key_year == year)
        ]

    def years(self, center_codes=None):
        found = {year for center, year in self.parts.values() if center_codes is None or center in center_codes}
        return sorted(found, key=_year_order)

    def counts_by_center(self):
        """Center code -> (patients, episodes, visits), summed over its enrolment years (what
        :func:`counts_by_center` gives, without another pass over the cohort)."""
        counts = {}
        for key, (patients, episodes, visits) in self.key_counts.items():
            center = self.parts[key][0]
            before = counts.get(center, (0, 0, 0))
            counts[center] = (before[0] + patients, before[1] + episodes, before[2] + visits)
        return counts

    def counts(self, center_codes=None):
        """Enrolment year -> (patients, episodes, visits) of some centers (None: all)."""
        counts = {}
        for key, (patients, episodes, visits) in self.key_counts.items():
            center, year = self.parts[key]
            if center_codes is not None and center not in center_codes:
                continue
            before = counts.get(year, (0, 0, 0))
            counts[year] = (before[0] + patients, before[1] + episodes, before[2] + visits)
        return counts

    def rows_by_year(self, facts, center_codes, method):
        return {
            year: aggregate(facts, self.keys(center_codes, year), quantile_method=method)
            for year in self.years(center_codes)
        }


class CompletenessByCenter:
    """Completeness rows of every center; any scope's rows are picked."""

    def __init__(self, by_center):
        #: center code -> its CompletenessRow
        self.by_center = dict(by_center)

    @classmethod
    def of_cohort(cls, cohort, today):
        """Every center's row of the cohort, from one pass."""
        return cls({row.center: row for row in completeness(cohort, today)[:-1]})

    def of(self, center_codes):
        """The rows of some centers (None: all) and their total, as the snapshot stores them."""
        codes = sorted(self.by_center) if center_codes is None else list(center_codes)
        picked = [self.by_center.get(code) or CompletenessRow(code) for code in codes]
        total = CompletenessRow(COMPLETENESS_TOTAL)
        for row in picked:
            total.add(row)
        return completeness_dicts([*picked, total])


def center_breakdown(rows_by_center, counts_by_center):
    """Headline figures per center (pooled dashboard): patients, episodes and, from each
    center's own rows, the figures of :data:`BREAKDOWN_FIGURES` for the group ``all``."""
    wanted = {(table, endpoint, timepoint): key for key, table, endpoint, timepoint in BREAKDOWN_FIGURES}
    breakdown = []
    for center in sorted(rows_by_center):
        patients, episodes, visits = counts_by_center[center]
        entry = {"center": center, "patients": patients, "episodes": episodes, "visits": visits}
        for row in rows_by_center[center]:
            if row.group != ALL:  # a center's rows are ResultRows: no dict made per row
                continue
            key = wanted.get((row.table, row.endpoint, row.timepoint))
            if key:
                entry[key] = {"n": row.n, "count": row.count, "percent": row.percent}
        breakdown.append(entry)
    return breakdown


# Triggering ---------------------------------------------------------------------------------

_batch = threading.local()


def note_change(center_id):
    """Called for every saved or deleted patient record (see ``endpoints.signals``)."""
    pending = getattr(_batch, "changes", None)
    if pending is not None:
        pending[center_id] += 1
    else:
        request_recompute(Counter({center_id: 1}))


@contextmanager
def recompute_once():
    """Inside this block (an import, a bulk edit) changes are collected and one recompute per
    affected scope is requested at the end, instead of one bookkeeping update per record."""
    if getattr(_batch, "changes", None) is not None:
        yield
        return
    _batch.changes = Counter()
    try:
        yield
        changes = _batch.changes
    finally:
        _batch.changes = None
    if changes:
        request_recompute(changes)


def request_recompute(changes_by_center):
    """After the current transaction commits, mark the scopes pending and queue their tasks."""
    transaction.on_commit(partial(_mark_pending, dict(changes_by_center)))


def _mark_pending(changes_by_center):
    codes = dict(Center.objects.filter(pk__in=changes_by_center).values_list("pk", "code"))
    changes = Counter()
    for center_id, count in changes_by_center.items():
        if center_id in codes:
            changes[codes[center_id]] += count
            changes[POOLED] += count
    for scope, count in changes.items():
        if _add_pending(scope, count):
            enqueue_recompute(scope)


def _add_pending(scope, count):
    """Add to the scope's pending changes; True when no task is queued for it yet."""
    with transaction.atomic():
        state, _created = RecomputeState.objects.select_for_update().get_or_create(scope=scope)
        state.pending_changes = F("pending_changes") + count
        needs_task = state.queued_at is None
        if needs_task:
            state.queued_at = timezone.now()
        state.save(update_fields=["pending_changes", "queued_at"])
    return needs_task


def enqueue_recompute(scope):
    """Queue the scope's recompute. A broker outage must not fail the investigator's save:
    the change stays pending and the periodic sweep queues it once the broker is back."""
    from endpoints.tasks import recompute_scope_task

    try:
        recompute_scope_task.apply_async(args=[scope], countdown=COALESCE_SECONDS)
    except Exception as error:  # noqa: BLE001 - any broker failure, logged and retried later
        logger.warning("could not queue the recompute of scope %s: %s", scope, error)
        RecomputeState.objects.filter(scope=scope).update(queued_at=None, last_error=str(error)[:500])


def request_snapshot(scope):
    """A dashboard found no snapshot for ``scope``: queue its first recompute, unless one is
    queued already. True when a task was queued (with no broker it has run by the return)."""
    lost_before = timezone.now() - timedelta(seconds=LOST_TASK_SECONDS)
    with transaction.atomic():
        state, _created = RecomputeState.objects.select_for_update().get_or_create(scope=scope)
        if state.queued_at is not None and state.queued_at > lost_before:
            return False
        state.queued_at = timezone.now()
        state.save(update_fields=["queued_at"])
    enqueue_recompute(scope)
    return True


def claim_pending(scope):
    """At a task's start: the changes it will cover, and clear the queued flag so that any
    change from now on queues a further task."""
    with transaction.atomic():
        state, _created = RecomputeState.objects.select_for_update().get_or_create(scope=scope)
        seen = state.pending_changes
        state.queued_at = None
        state.save(update_fields=["queued_at"])
    return seen


def settle_pending(scope, seen, error=""):
    """After a successful recompute: the changes it covered are no longer pending."""
    RecomputeState.objects.filter(scope=scope).update(
        pending_changes=Greatest(F("pending_changes") - seen, Value(0)), last_error=error
    )


def run_recompute(scope):
    """What the task does: claim, compute, settle. Exceptions propagate for Celery's retry."""
    seen = claim_pending(scope)
    try:
        snapshot = recompute_scope(scope)
    except Exception as error:
        # Still pending: mark it queued again so the retry is not doubled by new saves.
        RecomputeState.objects.filter(scope=scope).update(
            queued_at=timezone.now(), last_error=str(error)[:500]
        )
        raise
    settle_pending(scope, seen)
    return snapshot


def requeue_pending_scopes(lost_after=LOST_TASK_SECONDS):
    """Queue scopes whose changes are pending with no live task (broker was down, a worker
    died before acknowledging, a message was lost): those queued more than ``lost_after``
    seconds ago, or not queued at all."""
    lost_before = timezone.now() - timedelta(seconds=lost_after)
    stale = RecomputeState.objects.filter(pending_changes__gt=0).exclude(queued_at__gt=lost_before)
    scopes = list(stale.values_list("scope", flat=True))
    for scope in scopes:
        RecomputeState.objects.filter(scope=scope).update(queued_at=timezone.now())
        enqueue_recompute(scope)
    return scopes
