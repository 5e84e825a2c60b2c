"""With a real Celery worker and broker (Redis; PostgreSQL in CI), a saved visit reaches the
snapshot without anyone asking."""
import time
from datetime import date

import pytest

from endpoints.models import POOLED, RecomputeState, Snapshot
from registry.centers.models import Center
from registry.clinical.models import Patient, TreatmentEpisode, Visit


def wait_for(condition, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_saved_visit_reaches_the_snapshot_through_the_worker(celery_worker_process):
    center = Center.objects.create(code="fr-tls", name="CHU de Toulouse")
    patient = Patient.objects.create(center=center, sex="female", enrolled_on=date(2024, 1, 1))
    TreatmentEpisode.objects.create(patient=patient, drug="upadacitinib", start_date=date(2024, 1, 1), start_dose_mg=15)
    Visit.objects.create(patient=patient, date=date(2024, 1, 1), easi=30, iga=4)
    started = time.monotonic()
    Visit.objects.create(patient=patient, date=date(2024, 3, 20), easi=6, iga=2)

    def reached(scope):
        snapshot = Snapshot.objects.filter(scope=scope).first()
        return snapshot is not None and snapshot.visits == 2

    assert wait_for(lambda: reached("fr-tls") and reached(POOLED)), celery_worker_process["log"].read_text()[-3000:]
    elapsed = time.monotonic() - started
    assert elapsed < 30
    assert wait_for(lambda: not RecomputeState.objects.filter(pending_changes__gt=0).exists())
    row = next(r for r in Snapshot.objects.get(scope="fr-tls").rows if r["endpoint"] == "easi75" and r["timepoint"] == "m3" and r["group"] == "all")
    assert (row["n"], row["count"]) == (1, 1)
    assert "recompute_scope_task" in celery_worker_process["log"].read_text()
