"""Recompute of the cohort endpoints into snapshots, and the bookkeeping that triggers it.

Every committed change to patient data marks its center's scope and the pooled scope as
pending and queues one recompute task per scope; further changes while a task is queued only
raise the pending count (coalescing). A recompute reads the scope's records, computes with the
pure code in ``endpoints.compute`` and replaces the snapshot in one transaction, so a failed or
killed task leaves the previous snapshot whole, and an older computation never overwrites a
newer one.
"""
import dataclasses
import hashlib
import logging
import threading
import time
from collections import Counter
from contextlib import contextmanager
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Max, Sum, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from endpoints.compute import records
from endpoints.compute.completeness import TOTAL as COMPLETENESS_TOTAL
from endpoints.compute.completeness import CompletenessRow, completeness, completeness_dicts
from endpoints.compute.report import aggregate, episode_facts
from endpoints.models import POOLED, RecomputeState, Snapshot, StudySettings
from endpoints.selectors import load_cohort
from registry.centers.models import Center, LabRange
from registry.clinical import models as clinical

logger = logging.getLogger(__name__)

#: Seconds a queued recompute waits, so that a burst of saves is computed once.
COALESCE_SECONDS = getattr(settings, "ENDPOINTS_COALESCE_SECONDS", 2)
#: A queued task not started after this long is considered lost and queued again.
LOST_TASK_SECONDS = 60

#: Each patient-data model and its path to the center, for the input fingerprint.
FINGERPRINTED = (
    (clinical.Patient, "center__code"),
    (clinical.PriorTreatment, "patient__center__code"),
    (clinical.TreatmentEpisode, "patient__center__code"),
    (clinical.DoseChange, "episode__patient__center__code"),
    (clinical.Visit, "patient__center__code"),
    (clinical.AdverseEvent, "patient__center__code"),
)


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
    parts = {scope: [] for scope in scopes}
    for model, path in FINGERPRINTED:
        rows = model.objects.all()
        if codes is not None:
            rows = rows.filter(**{f"{path}__in": codes})
        by_center = {
            center: (n, ids, latest)
            for center, n, ids, latest in rows.order_by().values_list(path).annotate(
                n=Count("pk"), ids=Sum("pk"), latest=Max("updated_at")
            ).values_list(path, "n", "ids", "latest")
        }
        for scope in scopes:
            summaries = (
                by_center.values() if scope == POOLED
                else [by_center[code] for code in center_codes_of(scope) if code in by_center]
            )
            n = sum(summary[0] for summary in summaries)
            ids = sum(summary[1] for summary in summaries) if n else None
            latest = max((summary[2] for summary in summaries if summary[2] is not None), default=None)
            parts[scope].append(f"{model.__name__}:{n}:{ids}:{latest}")
    ranges = LabRange.objects.order_by("center__code", "analyte")
    if codes is not None:
        ranges = ranges.filter(center__code__in=codes)
    ranges = list(ranges.values_list("center__code", "analyte", "lower", "upper"))
    method = StudySettings.current().quantile_method
    fingerprints = {}
    for scope in scopes:
        wanted = center_codes_of(scope)
        scope_ranges = ranges if wanted is None else [r for r in ranges if r[0] in wanted]
        text = "|".join([*parts[scope], repr(scope_ranges), method])
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
        snapshot.rows = [row_as_dict(row) for row in rows]
        snapshot.rows_by_enrolment_year = {
            year: [row_as_dict(row) for row in year_rows]
            for year, year_rows in extras.rows_by_year.items()
        }
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
        return snapshot


def row_as_dict(row):
    return {name: getattr(row, name) for name in row.__slots__}


def cohort_counts(cohort, center_codes=None):
    """(patients, episodes, visits) of some centers (None: all) of the cohort."""
    return scope_counts(counts_by_center(cohort), center_codes)


def counts_by_center(cohort):
    """center code -> (patients, episodes, visits), from one pass over the cohort (the
    nightly run sums any scope's counts from it instead of walking the cohort per scope)."""
    counts = {}
    center_of = {}
    for patient in cohort.patients.values():
        center_of[patient.code] = patient.center_code
        patients, episodes, visits = counts.get(patient.center_code, (0, 0, 0))
        counts[patient.center_code] = (patients + 1, episodes, visits + len(cohort.visits.get(patient.code, ())))
    for episode in cohort.episodes:
        center = center_of.get(episode.patient_code)
        if center is not None:
            patients, episodes, visits = counts[center]
            counts[center] = (patients, episodes + 1, visits)
    return counts


def scope_counts(by_center, center_codes=None):
    """(patients, episodes, visits) of some centers (None: all) from :func:`counts_by_center`."""
    picked = by_center.values() if center_codes is None else [
        by_center[code] for code in dict.fromkeys(center_codes) if code in by_center
    ]
    return tuple(sum(column) for column in zip((0, 0, 0), *picked))


def recompute_scope(scope, *, force=False):
    """Recompute one scope (a center code or ``POOLED``) into its snapshot."""
    read_at = timezone.now()
    fingerprint = inputs_fingerprint(scope)
    current = Snapshot.objects.filter(scope=scope).only("fingerprint").first()
    if current and current.fingerprint == fingerprint and not force:
        return current
    method = StudySettings.current().quantile_method
    started = time.perf_counter()
    cohort = load_cohort(center_codes_of(scope))
    # One fact pass, keyed by (center, enrolment year), serves the scope's rows, every year's
    # rows and the pooled per-center breakdown.
    by_year = EnrolmentYears(cohort)
    facts = episode_facts(by_year.cohort)
    rows = aggregate(facts, by_year.keys(None), quantile_method=method)
    extras = dashboard_extras(cohort, scope, by_year, facts, quantile_method=method)
    duration_ms = round((time.perf_counter() - started) * 1000)
    return store_snapshot(
        scope, rows, read_at=read_at, fingerprint=fingerprint, method=method,
        duration_ms=duration_ms, counts=cohort_counts(cohort), extras=extras,
    )


def recompute_all_scopes():
    """Every center and the pooled scope from one read of the registry (the nightly run)."""
    read_at = timezone.now()
    method = StudySettings.current().quantile_method
    scopes = [POOLED, *Center.objects.values_list("code", flat=True)]
    fingerprints = inputs_fingerprints(scopes)
    started = time.perf_counter()
    cohort = load_cohort()
    by_year = EnrolmentYears(cohort)
    facts = episode_facts(by_year.cohort)
    checks = completeness_by_center(cohort)
    center_counts = counts_by_center(cohort)
    results = {}
    for scope in scopes:
        codes = center_codes_of(scope)
        rows = aggregate(facts, by_year.keys(codes), quantile_method=method)
        extras = DashboardExtras(
            rows_by_year=by_year.rows_by_year(facts, codes, method),
            year_counts=by_year.counts(cohort, codes),
            completeness=checks.of(codes),
        )
        results[scope] = (rows, extras)
    results[POOLED][1].center_breakdown = center_breakdown(
        {scope: rows for scope, (rows, _extras) in results.items() if scope != POOLED},
        {scope: scope_counts(center_counts, center_codes_of(scope)) for scope in results if scope != POOLED},
    )
    # The records are no longer needed: free them (most of the memory) before storing.
    del cohort, by_year, facts, checks
    snapshots = []
    for scope, (rows, extras) in results.items():
        snapshots.append(store_snapshot(
            scope, rows, read_at=read_at, fingerprint=fingerprints[scope], method=method,
            duration_ms=round((time.perf_counter() - started) * 1000),
            counts=scope_counts(center_counts, center_codes_of(scope)), extras=extras,
        ))
    return snapshots


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


class EnrolmentYears:
    """The cohort with every patient moved to a pseudo-center (center code, enrolment year).

    ``episode_facts`` then tallies per center *and* year in its one pass, and ``aggregate``
    over a set of pseudo-centers yields any center's or the pool's figures for one year or
    for all years. Each pseudo-center gets its real center's laboratory ranges, so
    treatment-emergent lab events are judged as before.
    """

    def __init__(self, cohort):
        patients = {}
        #: pseudo-center key -> (center code, year)
        self.parts = {}
        # A copy with another center, field by field (dataclasses.replace is several times
        # slower, which shows at 100,000 patients).
        names = [field.name for field in dataclasses.fields(records.Patient)]
        center_index = names.index("center_code")
        for code, patient in cohort.patients.items():
            year = enrolment_year(patient)
            key = f"{patient.center_code}{YEAR_SEPARATOR}{year}"
            self.parts[key] = (patient.center_code, year)
            values = [getattr(patient, name) for name in names]
            values[center_index] = key
            patients[code] = records.Patient(*values)
        centers = {
            key: records.Center(
                key, cohort.centers[center].lab_ranges if center in cohort.centers else {}
            )
            for key, (center, _year) in self.parts.items()
        }
        self.cohort = records.Cohort(
            centers, patients, cohort.episodes, cohort.visits, cohort.adverse_events
        )

    def keys(self, center_codes=None, year=None):
        """The pseudo-centers of some centers (None: all) and one year (None: all)."""
        return [
            key for key, (center, key_year) in self.parts.items()
            if (center_codes is None or center in center_codes) and (year is None or key_year == year)
        ]

    def years(self, center_codes=None):
        found = {year for center, year in self.parts.values() if center_codes is None or center in center_codes}
        return sorted(found, key=_year_order)

    def counts(self, cohort, center_codes=None):
        """Enrolment year -> (patients, episodes, visits) of some centers (None: all).

        Summed from per-pseudo-center counts made in one pass on the first call: the nightly
        run asks for every scope's."""
        cached = getattr(self, "_counts", None)
        if cached is None or cached[0] is not cohort:
            cached = self._counts = (cohort, counts_by_center(
                records.Cohort(self.cohort.centers, self.cohort.patients, cohort.episodes, cohort.visits, {})
            ))
        counts = {}
        for key, (patients, episodes, visits) in cached[1].items():
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
    """Completeness rows of every center, from one pass; any scope's rows are picked."""

    def __init__(self, cohort, today):
        self.by_center = {row.center: row for row in completeness(cohort, today)[:-1]}

    def of(self, center_codes):
        """The rows of some centers (None: all) and their total, as the snapshot stores them."""
        codes = sorted(self.by_center) if center_codes is None else list(center_codes)
        picked = [self.by_center.get(code) or CompletenessRow(code) for code in codes]
        total = CompletenessRow(COMPLETENESS_TOTAL)
        for row in picked:
            total.add(row)
        return completeness_dicts([*picked, total])


def completeness_by_center(cohort):
    return CompletenessByCenter(cohort, timezone.localdate())


def center_breakdown(rows_by_center, counts_by_center):
    """Headline figures per center (pooled dashboard): patients, episodes and, from each
    center's own rows, the figures of :data:`BREAKDOWN_FIGURES` for the group ``all``."""
    wanted = {(table, endpoint, timepoint): key for key, table, endpoint, timepoint in BREAKDOWN_FIGURES}
    breakdown = []
    for center in sorted(rows_by_center):
        patients, episodes, visits = counts_by_center[center]
        entry = {"center": center, "patients": patients, "episodes": episodes, "visits": visits}
        for row in rows_by_center[center]:
            row = row if isinstance(row, dict) else row_as_dict(row)
            key = wanted.get((row["table"], row["endpoint"], row["timepoint"]))
            if key and row["group"] == "all":
                entry[key] = {"n": row["n"], "count": row["count"], "percent": row["percent"]}
        breakdown.append(entry)
    return breakdown


def dashboard_extras(cohort, scope, by_year, facts, *, quantile_method):
    """The per-year rows, completeness and (pooled) per-center breakdown of one scope, from
    the scope's fact pass keyed by (center, enrolment year)."""
    checks = completeness_by_center(cohort)
    extras = DashboardExtras(
        completeness=checks.of(center_codes_of(scope)), year_counts=by_year.counts(cohort)
    )
    extras.rows_by_year = by_year.rows_by_year(facts, None, quantile_method)
    if scope == POOLED:
        centers = sorted(cohort.centers)
        center_counts = counts_by_center(cohort)
        extras.center_breakdown = center_breakdown(
            {
                code: aggregate(facts, by_year.keys([code]), quantile_method=quantile_method)
                for code in centers
            },
            {code: scope_counts(center_counts, [code]) for code in centers},
        )
    return extras


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


def requeue_pending_scopes():
    """Queue scopes whose changes are pending with no live task (broker was down, a worker
    died before acknowledging, a message was lost)."""
    lost_before = timezone.now() - timedelta(seconds=LOST_TASK_SECONDS)
    stale = RecomputeState.objects.filter(pending_changes__gt=0).exclude(queued_at__gt=lost_before)
    scopes = list(stale.values_list("scope", flat=True))
    for scope in scopes:
        RecomputeState.objects.filter(scope=scope).update(queued_at=timezone.now())
        enqueue_recompute(scope)
    return scopes
