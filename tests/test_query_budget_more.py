"""Query budget of the pages tests/test_query_budget.py and tests/dashboards do not pin: the
dashboard's live body, CSV downloads, index and pooled status, and the dataset export pages.
Each costs a bounded number of SQL queries that does not grow with the cohort (nor, for the
export pages, with the number of exports)."""
from datetime import date, timedelta

import pytest
from django.core.cache import cache
from django.urls import reverse

from endpoints import services
from registry.clinical.models import AdverseEvent, DoseChange, Patient, TreatmentEpisode, Visit
from registry.datasets.models import ExportRecord

pytestmark = pytest.mark.django_db

BUDGET = 25


def add_patients(center, count, start=date(2024, 1, 1)):
    for number in range(count):
        enrolled = start + timedelta(days=40 * number)
        patient = Patient.objects.create(center=center, sex="female", birth_year=1980, enrolled_on=enrolled)
        episode = TreatmentEpisode.objects.create(
            patient=patient, drug="upadacitinib", start_date=enrolled, start_dose_mg=30
        )
        DoseChange.objects.create(episode=episode, date=enrolled + timedelta(days=120), dose_mg=45)
        for day in (0, 30, 90, 180):
            Visit.objects.create(patient=patient, date=enrolled + timedelta(days=day), easi=20 - day / 10, iga=3)
        AdverseEvent.objects.create(patient=patient, episode=episode, term="acne", onset_date=enrolled + timedelta(days=20))


def count_queries(client, url, django_assert_max_num_queries):
    cache.clear()  # the dashboard body is rendered, not read from the cache
    with django_assert_max_num_queries(BUDGET) as captured:
        response = client.get(url)
        assert response.status_code == 200, url
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)
            # Not response.close(): it signals the request's end, which closes the test's
            # database connection.
            for close in response._resource_closers:
                close()
    return len(captured)


DASHBOARD_PAGES = [
    ("investigator_a", "center-dashboard-live", True, ""),
    ("investigator_a", "center-dashboard-live", True, "?year=2024&dose=upadacitinib_30"),
    ("investigator_a", "center-dashboard-csv", True, ""),
    ("investigator_a", "center-dashboard-csv", True, "?table=completeness"),
    ("pi_a", "center-dashboard", True, ""),
    ("coordinator", "dashboards", False, ""),
    ("coordinator", "pooled-dashboard-status", False, ""),
    ("coordinator", "pooled-dashboard-live", False, ""),
    ("coordinator", "pooled-dashboard-csv", False, "?table=breakdown"),
]


@pytest.mark.parametrize("persona, name, per_center, query", DASHBOARD_PAGES)
def test_dashboard_pages_cost_the_same_queries_whatever_the_cohort(
    request, client_for, center_a, center_b, persona, name, per_center, query,
    django_assert_max_num_queries,
):
    client = client_for(request.getfixturevalue(persona))
    url = reverse(name, args=[center_a.code] if per_center else []) + query
    add_patients(center_a, 2)
    add_patients(center_b, 2)
    services.recompute_all_scopes()
    small = count_queries(client, url, django_assert_max_num_queries)
    add_patients(center_a, 15, start=date(2023, 1, 5))
    add_patients(center_b, 15, start=date(2023, 2, 5))
    services.recompute_all_scopes()
    assert count_queries(client, url, django_assert_max_num_queries) == small


@pytest.fixture
def export_media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def export(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(reverse("dataset-export"), {}).status_code == 302
    return ExportRecord.objects.order_by("-pk").first()


@pytest.mark.parametrize("name", [
    "dataset-export", "dataset-export-list", "dataset-export-detail", "dataset-export-status",
    "dataset-export-download",
])
def test_export_pages_cost_the_same_queries_whatever_the_data_and_the_exports(
    client_for, coordinator, center_a, center_b, export_media, name,
    django_assert_max_num_queries, django_capture_on_commit_callbacks,
):
    client = client_for(coordinator)
    add_patients(center_a, 2)
    add_patients(center_b, 1)
    record = export(client, django_capture_on_commit_callbacks)
    assert record.status == ExportRecord.Status.DONE

    def url():
        return reverse(name, args=[record.pk]) if name not in ("dataset-export", "dataset-export-list") else reverse(name)

    small = count_queries(client, url(), django_assert_max_num_queries)
    add_patients(center_a, 12, start=date(2023, 3, 1))
    add_patients(center_b, 12, start=date(2023, 4, 1))
    for _ in range(6):
        record = export(client, django_capture_on_commit_callbacks)
    assert record.status == ExportRecord.Status.DONE
    assert count_queries(client, url(), django_assert_max_num_queries) == small
