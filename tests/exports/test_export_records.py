"""Every export is recorded (who, scope, filters, options, rows, checksum, size, expiry); the
task runs it; files expire; filters select patients with all their records."""
import hashlib
import io
from datetime import date, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from registry.clinical.models import TreatmentEpisode
from registry.datasets import exports, tasks
from registry.datasets.exporter import ExportOptions, ExportRefused, export_bundle
from registry.datasets.models import ExportRecord
from tests.conftest import log_in
from tests.exports.helpers import BUNDLE_FILES, Export

pytestmark = pytest.mark.django_db


@pytest.fixture
def requested(client, coordinator, cohort, django_capture_on_commit_callbacks):
    """A web export by the coordinator with filters and options, run by its task in-process."""
    log_in(client, coordinator)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        client.post(reverse("dataset-export"), {
            "centers": ["fr-tls"], "enrolled_from": "2023-01-01", "shift_dates": "on", "excel": "on",
        })
    assert len(callbacks) == 1  # the task is queued once the record is committed
    return ExportRecord.objects.get()


def test_the_record_says_who_what_and_how_and_matches_the_file(requested, coordinator, settings):
    record = requested
    path = exports.file_path(record)
    export = Export(path)
    assert (record.created_by, record.origin, record.status) == (coordinator, "web", "done")
    assert (record.centers, record.all_centers) == (["fr-tls"], False)
    assert record.filters == {"enrolled_from": "2023-01-01"}
    assert record.options == {"shift_dates": True, "free_text": False, "excel": True, "parquet": False}
    assert record.row_counts == {name: len(export.table(name)[1]) for name in BUNDLE_FILES}
    assert record.row_counts["patients.csv"] == 2
    assert record.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record.size_bytes == path.stat().st_size
    assert path.parent == settings.MEDIA_ROOT / "exports" and len(path.stem) == 32
    assert record.started_at <= record.finished_at
    assert abs(record.expires_at - (record.finished_at + settings.EXPORT_EXPIRY)) < timedelta(seconds=1)
    assert not exports.progress_path(record).exists()


def test_the_downloaded_file_is_the_recorded_one(client, requested):
    response = client.get(reverse("dataset-export-download", args=[requested.pk]))
    assert hashlib.sha256(b"".join(response.streaming_content)).hexdigest() == requested.sha256


def test_a_task_delivered_twice_does_not_export_again(requested):
    finished = requested.finished_at
    assert tasks.export_dataset_task.delay(requested.pk).get() == "done"
    requested.refresh_from_db()
    assert requested.finished_at == finished


def test_a_failed_export_is_recorded_as_failed(client, coordinator, cohort, monkeypatch, django_capture_on_commit_callbacks):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(exports, "export_bundle", broken)
    log_in(client, coordinator)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("dataset-export"), {})
    record = ExportRecord.objects.get()
    assert record.status == "failed" and "server log" in record.error
    status = client.get(reverse("dataset-export-status", args=[record.pk])).json()
    assert status["finished"] and status["download_url"] is None and status["status"] == "failed"


def test_expired_files_are_deleted_by_the_beat_task_and_downloads_say_so(client, requested, settings):
    assert "registry.datasets.tasks.delete_expired_exports" in {
        entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()
    }
    path = exports.file_path(requested)
    assert tasks.delete_expired_exports.delay().get() == 0  # not yet
    assert path.exists()
    ExportRecord.objects.filter(pk=requested.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert tasks.delete_expired_exports.delay().get() == 1
    assert not path.exists()
    requested.refresh_from_db()
    assert requested.status == "expired" and requested.sha256  # the record stays
    response = client.get(reverse("dataset-export-download", args=[requested.pk]))
    assert response.status_code == 410
    assert "expired" in response.content.decode()
    status = client.get(reverse("dataset-export-status", args=[requested.pk])).json()
    assert status["status"] == "expired" and status["download_url"] is None


def test_a_download_after_the_expiry_says_expired_before_the_beat_task_runs(client, requested):
    ExportRecord.objects.filter(pk=requested.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.get(reverse("dataset-export-download", args=[requested.pk]))
    assert response.status_code == 410
    assert not exports.file_path(requested).exists()
    requested.refresh_from_db()
    assert requested.status == "expired"


def test_the_expiry_is_a_setting(client, coordinator, cohort, settings, django_capture_on_commit_callbacks):
    settings.EXPORT_EXPIRY = timedelta(hours=2)
    log_in(client, coordinator)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("dataset-export"), {})
    record = ExportRecord.objects.get()
    assert abs(record.expires_at - record.finished_at - timedelta(hours=2)) < timedelta(seconds=1)


def test_the_command_exports_and_records_a_command_line_export(cohort, tmp_path):
    output = tmp_path / "out" / "registry.zip"
    out = io.StringIO()
    call_command("export_dataset", "--output", str(output), "--center", "fr-tls", "--drug", "dupilumab",
                 "--enrolled-to", "2023-12-31", "--shift-dates", "--excel", "--parquet", stdout=out)
    record = ExportRecord.objects.get()
    assert (record.origin, record.created_by, record.expires_at) == ("command", None, None)
    assert record.file_name == str(output.resolve())
    assert record.filters == {"drug": "dupilumab", "enrolled_to": "2023-12-31"}
    assert record.options == {"shift_dates": True, "free_text": False, "excel": True, "parquet": True}
    assert record.sha256 == hashlib.sha256(output.read_bytes()).hexdigest()
    assert record.row_counts["patients.csv"] == 1
    assert record.sha256 in out.getvalue() and "visits.csv" in out.getvalue()
    export = Export(output)
    assert "dataset.xlsx" in export.files and "parquet/visits.parquet" in export.files


def test_the_command_refuses_an_unknown_center(cohort, tmp_path):
    with pytest.raises(CommandError, match="nowhere"):
        call_command("export_dataset", "--output", str(tmp_path / "x.zip"), "--center", "nowhere")
    assert ExportRecord.objects.get().status == "failed"
    assert not (tmp_path / "x.zip").exists()


def test_a_drug_filter_keeps_the_patients_with_that_drug_and_all_their_records(cohort, tmp_path):
    a2 = cohort["a2"]
    TreatmentEpisode.objects.create(patient=a2, drug="abrocitinib", start_date=date(2024, 2, 1), start_dose_mg=100)
    export = Export(export_bundle(tmp_path / "d.zip", ExportOptions(drug="dupilumab")).path)
    assert [row["patient_code"] for row in export.dicts("patients.csv")] == [a2.code]
    assert sorted(row["drug"] for row in export.dicts("episodes.csv")) == ["abrocitinib", "dupilumab"]
    assert len(export.dicts("visits.csv")) == a2.visits.count() == 2
    assert len(export.dicts("prior_treatments.csv")) == 1
    assert [row["term"] for row in export.dicts("adverse_events.csv")] == ["conjunctivitis"]
    assert export.dicts("dose_changes.csv") == []  # a1's upadacitinib change stays out


def test_an_enrolment_period_keeps_the_patients_enrolled_in_it(cohort, tmp_path):
    export = Export(export_bundle(
        tmp_path / "e.zip", ExportOptions(enrolled_from=date(2024, 1, 2), enrolled_to=date(2024, 1, 10)),
    ).path)
    assert {row["patient_code"] for row in export.dicts("patients.csv")} == {cohort["a1"].code, cohort["b1"].code}
    assert {row["patient_code"] for row in export.dicts("visits.csv")} == {cohort["a1"].code, cohort["b1"].code}
    assert len(export.dicts("dose_changes.csv")) == 1


def test_an_export_for_a_user_is_bounded_by_their_scope(cohort, pi_a, investigator_a, coordinator, tmp_path):
    with pytest.raises(ExportRefused):
        export_bundle(tmp_path / "x.zip", ExportOptions(centers=("es-bcn",)), user=pi_a)
    assert not (tmp_path / "x.zip").exists()
    own = Export(export_bundle(tmp_path / "pi.zip", ExportOptions(), user=pi_a).path)
    assert [row["center_code"] for row in own.dicts("centers.csv")] == ["fr-tls"]
    nothing = Export(export_bundle(tmp_path / "inv.zip", ExportOptions(), user=investigator_a).path)
    assert nothing.dicts("centers.csv") == [] and nothing.dicts("patients.csv") == []
    everything = Export(export_bundle(tmp_path / "all.zip", ExportOptions(), user=coordinator).path)
    assert len(everything.dicts("patients.csv")) == 3


def test_progress_is_reported_up_to_every_row(cohort, tmp_path):
    seen = []
    export_bundle(tmp_path / "p.zip", ExportOptions(parquet=True), progress=lambda done, total, stage: seen.append((done, total)))
    total = seen[-1][1]
    assert seen[-1][0] == total > 0
    assert [done for done, _total in seen] == sorted(done for done, _total in seen)
