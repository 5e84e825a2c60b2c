"""Nothing of the registry's users in the zip (not even who exported), free text only on
request."""
import io
import zipfile
from datetime import date
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.urls import reverse

from registry.clinical.models import AdverseEvent, DataQuery, Signature, Visit
from registry.datasets import exporter
from registry.datasets.exporter import ExportOptions, export_bundle
from registry.datasets.models import ExportRecord
from tests.conftest import log_in, make_user
from tests.exports.conftest import FORMULA
from tests.exports.helpers import Export

pytestmark = pytest.mark.django_db


def user_strings(user):
    strings = {user.username, user.first_name, user.last_name, user.email}
    local, _at, domain = user.email.partition("@")
    strings |= {local, domain}
    return {text.lower() for text in strings if text}


def every_text_of(export: Export):
    """(where, lower-cased bytes) for every member, and for every member of the workbook and
    every value and metadata of the Parquet files, decoded."""
    import pyarrow.parquet as pq

    for name, raw in export.data.items():
        yield name, raw.lower()
        if name.endswith(".xlsx"):
            with zipfile.ZipFile(io.BytesIO(raw)) as workbook:
                for inner in workbook.namelist():
                    yield f"{name}!{inner}", workbook.read(inner).lower()
        if name.endswith(".parquet"):
            table = pq.read_table(io.BytesIO(raw))
            metadata = pq.read_metadata(io.BytesIO(raw))
            decoded = repr(table.to_pylist()) + repr(table.schema) + repr(metadata.metadata) + str(metadata.created_by)
            yield f"{name} (values)", decoded.lower().encode("utf-8")


@pytest.fixture
def staff(center_a):
    """Users with names found nowhere else, who enter, sign and query the data."""
    def person(username, first, last, **flags):
        user = make_user(username, **flags)
        user.first_name, user.last_name = first, last
        user.email = f"{first}.{last}@hopital-zyxwv.example".lower()
        user.save()
        return user

    investigator = person("quetzal-vandersnoot", "Quetzalia", "Vandersnoot")
    pi = person("xanthippe-oyelaran", "Xanthippe", "Oyelaran")
    coordinator = person("bartholomew-quillfeather", "Bartholomew", "Quillfeather", is_coordinator=True)
    from registry.centers.models import Membership

    Membership.objects.create(user=investigator, center=center_a, role="investigator")
    Membership.objects.create(user=pi, center=center_a, role="pi")
    return {"investigator": investigator, "pi": pi, "coordinator": coordinator}


def test_no_name_or_e_mail_of_any_user_is_anywhere_in_the_zip(
    staff, cohort, client, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(exporter, "PARQUET_COMPRESSION", "none")  # raw bytes searchable too
    patient = cohort["a1"]
    # Data entered through the pages by the investigator (the audit trail names them) ...
    log_in(client, staff["investigator"])
    response = client.post(reverse("visit-create", args=[patient.code]), {"date": "2024-05-20", "easi": "12.5", "iga": "2"})
    assert response.status_code == 302, response.content[:500]
    visit = Visit.objects.get(patient=patient, date=date(2024, 5, 20))
    assert visit.history.first().history_user == staff["investigator"]
    event = AdverseEvent(patient=patient, term="headache", onset_date=date(2024, 5, 21), description="Mild, resolved")
    event._history_user = staff["investigator"]
    event.full_clean()
    event.save()
    # ... signed by the PI, queried by the coordinator ...
    Signature.objects.create(patient=patient, signed_up_to=date(2024, 6, 30), signed_by=staff["pi"])
    DataQuery.objects.create(patient=patient, text="EASI 12.5 with IGA 2?", raised_by=staff["coordinator"])
    # ... and exported by the coordinator from the export page, with everything.
    log_in(client, staff["coordinator"])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("dataset-export"), {"free_text": "on", "excel": "on", "parquet": "on"})
    record = ExportRecord.objects.get()
    assert record.status == ExportRecord.Status.DONE and record.created_by == staff["coordinator"]
    download = client.get(reverse("dataset-export-download", args=[record.pk]))
    saved = Path(settings.MEDIA_ROOT) / "downloaded.zip"
    saved.write_bytes(b"".join(download.streaming_content))
    export = Export(saved)
    assert any(name.endswith(".xlsx") for name in export.names)
    assert any(name.endswith(".parquet") for name in export.names)
    assert any(b"mild, resolved" in text for _where, text in every_text_of(export))  # searched, decoded
    needles = set()
    for user in get_user_model().objects.all():
        needles |= user_strings(user)
    assert len(needles) >= 12
    found = [
        (where, needle) for where, text in every_text_of(export) for needle in needles
        if needle.encode("utf-8") in text
    ]
    assert found == []


def test_free_text_is_left_out_unless_asked_for(cohort, tmp_path):
    plain = Export(export_bundle(tmp_path / "plain.zip", ExportOptions(excel=True, parquet=True)).path)
    header, _rows = plain.table("adverse_events.csv")
    assert "description" not in header
    assert not any(FORMULA.lower().encode() in raw.lower() for raw in plain.data.values())
    assert "description" not in {row["column"] for row in plain.dicts("data_dictionary.csv")}
    fields = next(r for r in plain.package()["resources"] if r["name"] == "adverse_events")["schema"]["fields"]
    assert "description" not in {field["name"] for field in fields}

    with_text = Export(export_bundle(tmp_path / "text.zip", ExportOptions(free_text=True)).path)
    header, _rows = with_text.table("adverse_events.csv")
    assert header[-1] == "description"
    assert FORMULA in {row["description"] for row in with_text.dicts("adverse_events.csv")}
