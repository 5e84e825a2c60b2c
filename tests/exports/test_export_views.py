"""Who may export what: coordinators any centers, a PI their own centers only, investigators
and read-only staff nothing (403, and no menu link), anonymous users go to the login page.
Export records: coordinators see all, others their own."""
from pathlib import Path

import pytest
from django.urls import reverse

from registry.centers.models import Membership
from registry.datasets.exports import command_export
from registry.datasets.exporter import ExportOptions
from registry.datasets.models import ExportRecord
from tests.conftest import log_in
from tests.exports.helpers import Export

pytestmark = pytest.mark.django_db

PAGES = ["dataset-export", "dataset-export-list"]
RECORD_PAGES = ["dataset-export-detail", "dataset-export-status", "dataset-export-download"]


@pytest.fixture
def start(client, django_capture_on_commit_callbacks):
    """``start(user, **data)``: POST the export form as ``user`` (the task runs in-process)."""

    def post(user, **data):
        log_in(client, user)
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(reverse("dataset-export"), data)

    return post


def downloaded(client, record, tmp_path):
    response = client.get(reverse("dataset-export-download", args=[record.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith("attachment;")
    path = tmp_path / f"download-{record.pk}.zip"
    path.write_bytes(b"".join(response.streaming_content))
    return Export(path)


@pytest.mark.parametrize("name", PAGES)
def test_investigators_and_read_only_staff_get_403(client, investigator_a, readonly_a, investigator_b, name):
    for user in (investigator_a, readonly_a, investigator_b):
        log_in(client, user)
        assert client.get(reverse(name)).status_code == 403
        assert client.post(reverse("dataset-export"), {}).status_code == 403
    assert ExportRecord.objects.count() == 0


def test_investigators_get_403_on_export_records_too(client, coordinator, investigator_a, start, cohort):
    start(coordinator)
    record = ExportRecord.objects.get()
    log_in(client, investigator_a)
    for name in RECORD_PAGES:
        assert client.get(reverse(name, args=[record.pk])).status_code == 403


@pytest.mark.parametrize("name", PAGES)
def test_anonymous_users_go_to_the_login_page(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_anonymous_users_go_to_the_login_page_for_records(client, coordinator, start, cohort):
    start(coordinator)
    record = ExportRecord.objects.get()
    client.logout()
    for name in RECORD_PAGES:
        response = client.get(reverse(name, args=[record.pk]))
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_menu_shows_export_to_coordinators_and_pis_only(client, coordinator, pi_a, investigator_a, readonly_a):
    link = f'href="{reverse("dataset-export")}"'
    for user, shown in ((coordinator, True), (pi_a, True), (investigator_a, False), (readonly_a, False)):
        log_in(client, user)
        assert (link in client.get(reverse("query-list")).content.decode()) is shown, user


def test_a_coordinator_exports_every_center_pooled(client, coordinator, start, cohort, tmp_path):
    response = start(coordinator)
    record = ExportRecord.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("dataset-export-detail", args=[record.pk])
    assert record.all_centers and record.centers == ["es-bcn", "fr-tls"]
    export = downloaded(client, record, tmp_path)
    assert {row["center_code"] for row in export.dicts("patients.csv")} == {"es-bcn", "fr-tls"}


def test_a_coordinator_exports_a_chosen_center(client, coordinator, start, cohort, tmp_path):
    start(coordinator, centers=["es-bcn"])
    record = ExportRecord.objects.get()
    assert not record.all_centers and record.centers == ["es-bcn"]
    export = downloaded(client, record, tmp_path)
    assert [row["center_code"] for row in export.dicts("centers.csv")] == ["es-bcn"]
    assert {row["patient_code"] for row in export.dicts("visits.csv")} == {cohort["b1"].code}


def test_a_pi_is_offered_and_exports_only_their_own_center(client, pi_a, center_b, start, cohort, tmp_path):
    # Investigator at B as well: B is still not theirs to export.
    Membership.objects.create(user=pi_a, center=center_b, role="investigator")
    log_in(client, pi_a)
    form = client.get(reverse("dataset-export")).context["form"]
    assert [code for code, _label in form.fields["centers"].choices] == ["fr-tls"]
    start(pi_a)
    record = ExportRecord.objects.get()
    assert record.centers == ["fr-tls"]
    export = downloaded(client, record, tmp_path)
    assert [row["center_code"] for row in export.dicts("centers.csv")] == ["fr-tls"]
    codes = {row["patient_code"] for row in export.dicts("patients.csv")}
    assert codes == {cohort["a1"].code, cohort["a2"].code}
    assert not any(b"es-bcn" in raw for raw in export.data.values())


def test_a_forged_center_parameter_is_refused(client, pi_a, center_b, start, cohort):
    Membership.objects.create(user=pi_a, center=center_b, role="investigator")
    assert start(pi_a, centers=["es-bcn"]).status_code == 403
    assert start(pi_a, centers=["fr-tls", "es-bcn"]).status_code == 403
    assert start(pi_a, centers=["no-such-center"]).status_code == 403
    assert ExportRecord.objects.count() == 0


def test_the_form_refuses_an_enrolment_period_that_ends_before_it_starts(client, coordinator, start):
    response = start(coordinator, enrolled_from="2024-06-01", enrolled_to="2024-01-01")
    assert response.status_code == 200 and "enrolled_to" in response.context["form"].errors
    assert ExportRecord.objects.count() == 0


def test_pis_see_their_own_export_records_and_coordinators_see_all(
    client, coordinator, pi_a, start, cohort, tmp_path
):
    start(coordinator)
    start(pi_a)
    command_export(tmp_path / "cli.zip", ExportOptions())
    mine = ExportRecord.objects.get(created_by=pi_a)
    theirs = ExportRecord.objects.get(created_by=coordinator)

    log_in(client, pi_a)
    listed = list(client.get(reverse("dataset-export-list")).context["records"])
    assert listed == [mine]
    for name in RECORD_PAGES:
        assert client.get(reverse(name, args=[theirs.pk])).status_code == 404
        assert client.get(reverse(name, args=[mine.pk])).status_code == 200

    log_in(client, coordinator)
    page = client.get(reverse("dataset-export-list"))
    assert {record.origin for record in page.context["records"]} == {"web", "command"}
    assert len(page.context["records"]) == 3
    body = page.content.decode()
    assert "pi-a" in body and "command line" in body and mine.sha256[:12] in body
    assert client.get(reverse("dataset-export-detail", args=[mine.pk])).status_code == 200
    assert client.get(reverse("dataset-export-download", args=[mine.pk])).status_code == 200


def test_a_pi_who_lost_the_role_cannot_download_their_export_any_more(client, pi_a, start, cohort):
    start(pi_a)
    record = ExportRecord.objects.get()
    Membership.objects.filter(user=pi_a).update(role="investigator")
    log_in(client, pi_a)
    assert client.get(reverse("dataset-export-download", args=[record.pk])).status_code == 403


def test_the_status_view_says_how_far_the_export_is(client, coordinator, start, cohort):
    start(coordinator)
    record = ExportRecord.objects.get()
    status = client.get(reverse("dataset-export-status", args=[record.pk])).json()
    assert status["status"] == "done" and status["finished"] and status["percent"] == 100
    assert status["download_url"] == reverse("dataset-export-download", args=[record.pk])
    assert status["row_counts"] == record.row_counts and status["sha256"] == record.sha256
    page = client.get(reverse("dataset-export-detail", args=[record.pk])).content.decode()
    assert 'data-status-url="%s"' % reverse("dataset-export-status", args=[record.pk]) in page
    assert "datasets/export" in page and "<script>" not in page  # the script is a static file


def test_a_pending_export_shows_progress_from_its_progress_file(client, coordinator, cohort):
    from registry.datasets import exports

    record = ExportRecord.objects.create(created_by=coordinator, centers=["fr-tls"], status="running",
                                         file_name="exports/x.zip")
    log_in(client, coordinator)
    assert client.get(reverse("dataset-export-status", args=[record.pk])).json()["percent"] == 0
    progress = exports._ProgressFile(record)
    progress(250, 1000, "visits.csv")
    status = client.get(reverse("dataset-export-status", args=[record.pk])).json()
    assert (status["percent"], status["stage"], status["finished"], status["download_url"]) == (25, "visits.csv", False, None)
    assert "250" in status["message"] and "1,000" in status["message"]
    response = client.get(reverse("dataset-export-download", args=[record.pk]))
    assert response.status_code == 302  # not ready: back to the progress page
    Path(progress.path).unlink()
