"""What a recompute stores for the dashboards besides the rows: each enrolment year's rows, the
data completeness and, in the pooled snapshot, the per-center breakdown."""
import dataclasses
from datetime import date

import pytest

from endpoints import services
from endpoints.compute.records import Cohort
from endpoints.compute.report import compute_report
from endpoints.models import POOLED, RecomputeState, Snapshot
from endpoints.selectors import load_cohort

from dashboard_data import NON_RESPONDER, RESPONDER, add_patient


@pytest.fixture
def registry(center_a, center_b):
    """fr-tls: two patients enrolled in 2023, one in 2024; es-bcn: one in 2024."""
    add_patient(center_a, start=date(2023, 2, 1), visits=RESPONDER)
    add_patient(center_a, start=date(2023, 6, 1), dose=30, visits=NON_RESPONDER)
    add_patient(center_a, start=date(2024, 3, 1), drug="baricitinib", dose=4, visits=RESPONDER)
    add_patient(center_b, start=date(2024, 4, 1), visits=RESPONDER[:1])
    return center_a, center_b


def as_dicts(rows):
    return [services.row_as_dict(row) for row in rows]


def year_cohort(cohort, year):
    patients = {code: p for code, p in cohort.patients.items() if p.enrolled_on.year == year}
    return Cohort(
        cohort.centers, patients, [e for e in cohort.episodes if e.patient_code in patients],
        {code: v for code, v in cohort.visits.items() if code in patients},
        {code: v for code, v in cohort.adverse_events.items() if code in patients},
    )


def test_each_enrolment_year_has_the_rows_of_its_patients(registry):
    snapshot = services.recompute_scope("fr-tls", force=True)
    cohort = load_cohort(["fr-tls"])
    assert snapshot.enrolment_years == [
        {"year": "2023", "patients": 2, "episodes": 2, "visits": 4},
        {"year": "2024", "patients": 1, "episodes": 1, "visits": 2},
    ]
    for year in (2023, 2024):
        expected = as_dicts(compute_report(year_cohort(cohort, year)))
        assert Snapshot.objects.get(scope="fr-tls").rows_by_enrolment_year[str(year)] == expected


def test_the_pooled_years_cover_every_center(registry):
    snapshot = services.recompute_scope(POOLED, force=True)
    cohort = load_cohort()
    assert [entry["year"] for entry in snapshot.enrolment_years] == ["2023", "2024"]
    stored = Snapshot.objects.get(scope=POOLED).rows_by_enrolment_year
    assert stored["2024"] == as_dicts(compute_report(year_cohort(cohort, 2024)))


def test_a_scope_enrolled_in_one_year_reuses_its_rows(center_a):
    add_patient(center_a, start=date(2024, 3, 1), visits=RESPONDER)
    snapshot = Snapshot.objects.get(pk=services.recompute_scope("fr-tls", force=True).pk)
    assert snapshot.rows_by_enrolment_year == {"2024": snapshot.rows}


def test_the_pooled_snapshot_breaks_headline_figures_down_by_center(registry):
    services.recompute_scope(POOLED, force=True)
    breakdown = {e["center"]: e for e in Snapshot.objects.get(scope=POOLED).center_breakdown}
    assert set(breakdown) == {"fr-tls", "es-bcn"}
    tls = breakdown["fr-tls"]
    assert (tls["patients"], tls["episodes"], tls["visits"]) == (3, 3, 6)
    # two responders and one non-responder at M3 (IGA 3 -> 1: 0/1/2 and EASI 20 -> 4: EASI75)
    assert tls["iga_0_1_2_m3"] == {"n": 3, "count": 2, "percent": 66.7}
    assert tls["easi75_m3"] == {"n": 3, "count": 2, "percent": 66.7}
    assert breakdown["es-bcn"]["iga_0_1_2_m3"] == {"n": 0, "count": 0, "percent": None}
    # the same figures as the center's own snapshot
    own = services.recompute_scope("fr-tls", force=True).rows
    row = next(r for r in own if (r["endpoint"], r["timepoint"], r["group"]) == ("iga_0_1_2", "m3", "all"))
    assert (row["n"], row["count"]) == (3, 2)


def test_completeness_is_stored_with_the_snapshot(registry):
    center = Snapshot.objects.get(pk=services.recompute_scope("fr-tls", force=True).pk)
    assert [row["center"] for row in center.completeness] == ["fr-tls", "*"]
    tls = center.completeness[0]
    assert (tls["patients"], tls["visits"], tls["visits_with"]["easi"]) == (3, 6, 6)
    pooled = Snapshot.objects.get(pk=services.recompute_scope(POOLED, force=True).pk)
    assert [row["center"] for row in pooled.completeness] == ["es-bcn", "fr-tls", "*"]
    # es-bcn's patient has only a baseline visit: past day 136 without an M3 visit
    assert len(pooled.completeness[0]["episodes_without_m3"]) == 1


def test_the_nightly_run_stores_what_each_scope_stores_on_its_own(registry):
    singles = {}
    for scope in (POOLED, "fr-tls", "es-bcn"):
        snapshot = Snapshot.objects.get(pk=services.recompute_scope(scope, force=True).pk)
        singles[scope] = (snapshot.rows, snapshot.rows_by_enrolment_year, snapshot.enrolment_years,
                          snapshot.completeness, snapshot.center_breakdown)
    services.recompute_all_scopes()
    for scope, stored in singles.items():
        snapshot = Snapshot.objects.get(scope=scope)
        assert (snapshot.rows, snapshot.rows_by_enrolment_year, snapshot.enrolment_years,
                snapshot.completeness, snapshot.center_breakdown) == stored, scope


def test_pseudo_centers_keep_their_centers_lab_ranges(registry):
    from endpoints.compute.report import aggregate, episode_facts
    from registry.centers.models import LabRange
    from registry.clinical.models import Visit

    LabRange.objects.filter(center=registry[0], analyte="ldl").update(upper=2.5)
    for visit in Visit.objects.filter(patient__center=registry[0]):
        visit.ldl = 2.0 if visit.date.month in (2, 3, 6) else 3.0  # above 2.5 on treatment
        visit.save()
    cohort = load_cohort()
    years = services.by_enrolment_year(cohort)
    assert years.parts == {"fr-tls|2023": ("fr-tls", "2023"), "fr-tls|2024": ("fr-tls", "2024"),
                           "es-bcn|2024": ("es-bcn", "2024")}
    assert {years.key_of(patient) for patient in cohort.patients.values()} == set(years.parts)
    by_year = episode_facts(cohort, center_of=years.key_of)
    assert by_year.centers == set(years.parts)
    # fr-tls's rows summed over its years are its rows computed by center
    assert aggregate(by_year, years.keys(["fr-tls"])) == aggregate(episode_facts(cohort), ["fr-tls"])
    ldl = [row for row in aggregate(by_year, years.keys(["fr-tls"]))
           if row.endpoint == "cholesterol_increased" and row.group == "all"]
    assert ldl and ldl[0].count > 0


def test_a_dashboard_without_snapshot_queues_one_recompute(center_a, monkeypatch):
    queued = []
    monkeypatch.setattr(services, "enqueue_recompute", queued.append)
    assert services.request_snapshot("fr-tls") is True
    assert services.request_snapshot("fr-tls") is False  # already queued
    assert queued == ["fr-tls"]
    assert RecomputeState.objects.get(scope="fr-tls").queued_at is not None
