"""The background recompute: changes reach the snapshots, failures keep the old one."""
from datetime import date

import pytest
from celery.signals import task_prerun
from django.utils import timezone

from endpoints import services
from endpoints.models import POOLED, RecomputeState, Snapshot
from registry.clinical.models import Visit


def snapshot_row(scope, endpoint, timepoint="", group="all", table=None):
    rows = Snapshot.objects.get(scope=scope).rows
    return next(
        row for row in rows
        if row["endpoint"] == endpoint and row["timepoint"] == timepoint and row["group"] == group
        and (table is None or row["table"] == table)
    )


@pytest.fixture
def task_runs():
    """Scopes of the recompute tasks that ran, in order."""
    runs = []

    def record(sender=None, args=None, **kwargs):
        if sender.name.endswith("recompute_scope_task"):
            runs.append(args[0])

    task_prerun.connect(record, weak=False)
    yield runs
    task_prerun.disconnect(record)


def test_a_saved_visit_reaches_the_center_and_pooled_snapshots(
    episode_a, django_capture_on_commit_callbacks, task_runs
):
    with django_capture_on_commit_callbacks(execute=True):
        Visit.objects.create(patient=episode_a.patient, date=date(2024, 1, 10), easi=20, iga=3)
    with django_capture_on_commit_callbacks(execute=True):
        Visit.objects.create(patient=episode_a.patient, date=date(2024, 4, 1), easi=4, iga=1)

    for scope in ("fr-tls", POOLED):
        snapshot = Snapshot.objects.get(scope=scope)
        assert snapshot.visits == 2
        assert RecomputeState.objects.get(scope=scope).pending_changes == 0
    easi75 = snapshot_row("fr-tls", "easi75", "m3", "upadacitinib_30")
    assert (easi75["n"], easi75["count"], easi75["percent"]) == (1, 1, 100.0)


def test_a_burst_of_changes_is_recomputed_once_per_scope(
    episode_a, django_capture_on_commit_callbacks, task_runs
):
    with django_capture_on_commit_callbacks(execute=True):
        with services.recompute_once():
            for day in (10, 20, 30, 40, 50):
                Visit.objects.create(patient=episode_a.patient, date=date(2024, 2, day % 28 + 1), easi=day / 2)
    assert sorted(task_runs) == sorted(["fr-tls", POOLED])
    assert Snapshot.objects.get(scope="fr-tls").visits == 5


def test_changes_while_a_task_is_queued_only_raise_the_pending_count(center_a):
    assert services._add_pending("fr-tls", 1) is True
    assert services._add_pending("fr-tls", 3) is False
    assert RecomputeState.objects.get(scope="fr-tls").pending_changes == 4
    assert services.claim_pending("fr-tls") == 4
    assert services._add_pending("fr-tls", 1) is True  # a change after the start needs a new run


def test_a_failing_recompute_keeps_the_previous_snapshot_and_stays_pending(
    episode_a, monkeypatch, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        Visit.objects.create(patient=episode_a.patient, date=date(2024, 1, 10), easi=20)
    before = Snapshot.objects.get(scope="fr-tls")

    def broken(*args, **kwargs):
        raise RuntimeError("worker lost its database")

    monkeypatch.setattr(services, "episode_facts", broken)
    services._add_pending("fr-tls", 1)
    Visit.objects.create(patient=episode_a.patient, date=date(2024, 3, 1), easi=5)
    with pytest.raises(RuntimeError):
        services.run_recompute("fr-tls")
    after = Snapshot.objects.get(scope="fr-tls")
    assert (after.computed_at, after.rows, after.visits) == (before.computed_at, before.rows, 1)
    state = RecomputeState.objects.get(scope="fr-tls")
    assert state.pending_changes >= 1 and "database" in state.last_error


def test_an_older_computation_never_replaces_a_newer_snapshot(episode_a):
    newer = services.recompute_scope("fr-tls", force=True)
    older_read = newer.inputs_read_at.replace(year=newer.inputs_read_at.year - 1)
    kept = services.store_snapshot(
        "fr-tls", [], read_at=older_read, fingerprint="old", method="type7", duration_ms=1,
        counts=(0, 0, 0),
    )
    assert kept.fingerprint == newer.fingerprint
    assert Snapshot.objects.get(scope="fr-tls").fingerprint == newer.fingerprint


def test_an_unchanged_scope_is_not_recomputed(episode_a):
    first = services.recompute_scope("fr-tls")
    again = services.recompute_scope("fr-tls")
    assert again.computed_at == first.computed_at


def test_a_broker_outage_leaves_the_change_pending_for_the_sweep(center_a, monkeypatch):
    from endpoints import tasks

    def unreachable(*args, **kwargs):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(tasks.recompute_scope_task, "apply_async", unreachable)
    services._mark_pending({center_a.pk: 1})
    state = RecomputeState.objects.get(scope="fr-tls")
    assert (state.pending_changes, state.queued_at) == (1, None)
    assert "Redis is down" in state.last_error
    monkeypatch.undo()
    assert "fr-tls" in services.requeue_pending_scopes()
    assert RecomputeState.objects.get(scope="fr-tls").pending_changes == 0


def test_the_nightly_run_computes_every_scope_from_one_read(episode_a, center_b):
    scopes = set(services.recompute_all_scopes())
    assert scopes == {POOLED, "fr-tls", "es-bcn"}


def test_a_starting_worker_queues_scopes_whose_tasks_were_taken_by_a_dead_one(center_a, monkeypatch):
    from celery.signals import worker_ready

    import endpoints.tasks  # noqa: F401 - connects the handler, as the worker's autodiscovery does

    queued = []
    RecomputeState.objects.create(scope="fr-tls", pending_changes=2, queued_at=timezone.now())
    RecomputeState.objects.create(scope="es-bcn", pending_changes=0)
    monkeypatch.setattr(services, "enqueue_recompute", queued.append)
    assert services.requeue_pending_scopes() == []  # queued a moment ago: not lost yet for the sweep
    worker_ready.send(sender=None)
    assert queued == ["fr-tls"]
