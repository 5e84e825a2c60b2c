"""Recompute of the cohort endpoints into snapshots, and the bookkeeping that triggers it.

Every committed change to patient data marks its center's scope and the pooled scope as
pending and queues one recompute task per scope; further changes while a task is queued only
raise the pending count (coalescing). A recompute reads the scope's records, computes with the
pure code in ``endpoints.compute`` and replaces the snapshot in one transaction, so a failed or
killed task leaves the previous snapshot whole, and an older computation never overwrites a
newer one.
"""
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

from endpoints.compute.report import aggregate, compute_report, episode_facts
from endpoints.models import POOLED, RecomputeState, Snapshot, StudySettings
from endpoints.selectors import load_cohort
from registry.centers.models import Center, LabRange
from registry.clinical import models as clinical

logger = logging.getLogger(__name__)

#: Seconds a queued recompute waits, so that a burst of saves is computed once.
COALESCE_SECONDS = getattr(settings, "ENDPOINTS_COALESCE_SECONDS", 2)
#: A queued task not started after this long is considered lost and queued again.
LOST_TASK_SECONDS = 300

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
    codes = center_codes_of(scope)
    parts = []
    for model, path in FINGERPRINTED:
        rows = model.objects.all()
        if codes is not None:
            rows = rows.filter(**{f"{path}__in": codes})
        summary = rows.aggregate(n=Count("pk"), ids=Sum("pk"), latest=Max("updated_at"))
        parts.append(f"{model.__name__}:{summary['n']}:{summary['ids']}:{summary['latest']}")
    ranges = LabRange.objects.order_by("center__code", "analyte")
    if codes is not None:
        ranges = ranges.filter(center__code__in=codes)
    parts.append(repr(list(ranges.values_list("center__code", "analyte", "lower", "upper"))))
    parts.append(StudySettings.current().quantile_method)
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def store_snapshot(scope, rows, *, read_at, fingerprint, method, duration_ms, counts):
    """Replace the scope's snapshot unless a newer computation already stored one."""
    with transaction.atomic():
        snapshot = Snapshot.objects.select_for_update().filter(scope=scope).first()
        if snapshot and snapshot.inputs_read_at > read_at:
            return snapshot
        snapshot = snapshot or Snapshot(scope=scope)
        snapshot.rows = [row_as_dict(row) for row in rows]
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
    patients = [p for p in cohort.patients.values() if center_codes is None or p.center_code in center_codes]
    codes = {p.code for p in patients}
    episodes = sum(1 for e in cohort.episodes if e.patient_code in codes)
    visits = sum(len(cohort.visits.get(code, ())) for code in codes)
    return len(patients), episodes, visits


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
    rows = compute_report(cohort, quantile_method=method)
    duration_ms = round((time.perf_counter() - started) * 1000)
    return store_snapshot(
        scope, rows, read_at=read_at, fingerprint=fingerprint, method=method,
        duration_ms=duration_ms, counts=cohort_counts(cohort),
    )


def recompute_all_scopes():
    """Every center and the pooled scope from one read of the registry (the nightly run)."""
    read_at = timezone.now()
    method = StudySettings.current().quantile_method
    scopes = [POOLED, *Center.objects.values_list("code", flat=True)]
    fingerprints = {scope: inputs_fingerprint(scope) for scope in scopes}
    started = time.perf_counter()
    cohort = load_cohort()
    facts = episode_facts(cohort)
    snapshots = []
    for scope in scopes:
        rows = aggregate(facts, center_codes_of(scope), quantile_method=method)
        snapshots.append(store_snapshot(
            scope, rows, read_at=read_at, fingerprint=fingerprints[scope], method=method,
            duration_ms=round((time.perf_counter() - started) * 1000),
            counts=cohort_counts(cohort, center_codes_of(scope)),
        ))
    return snapshots


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
