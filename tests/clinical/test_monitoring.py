"""Audit trail, signatures, data queries and concurrent editing."""
from datetime import date

import pytest
from django.urls import reverse

from registry.clinical.models import DataQuery, Signature, Visit
from tests.conftest import log_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def visit_a(episode_a):
    return Visit.objects.create(patient=episode_a.patient, date=date(2024, 1, 10), easi=20, iga=3)


def edit_visit(client, visit, **changes):
    data = {"date": visit.date.isoformat(), "easi": visit.easi, "iga": visit.iga, "version": visit.version}
    data.update(changes)
    data = {key: value for key, value in data.items() if value is not None}
    return client.post(reverse("visit-update", args=[visit.pk]), data)


def test_the_history_page_shows_who_changed_which_field_from_what_to_what(client_for, investigator_a, visit_a):
    client = client_for(investigator_a)
    edit_visit(client, visit_a, easi="25.5")
    response = client.get(reverse("record-history", args=["visit", visit_a.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    assert "EASI" in body and "20.0 → 25.5" in body
    assert "investigator-a" in body


def test_a_pi_signs_and_a_later_edit_needs_a_reason_and_removes_the_signature(
    client_for, pi_a, investigator_a, visit_a
):
    client_for(pi_a).post(reverse("patient-sign", args=[visit_a.patient.code]), {"signed_up_to": "2024-06-30"})
    signature = Signature.objects.get()
    assert signature.signed_by == pi_a and signature.revoked_at is None

    client = client_for(investigator_a)
    response = edit_visit(client, visit_a, easi="30")
    assert "reason_for_change" in response.context["form"].errors
    visit_a.refresh_from_db()
    assert visit_a.easi == 20

    edit_visit(client, visit_a, easi="30", reason_for_change="Transcription error in the source")
    visit_a.refresh_from_db()
    signature.refresh_from_db()
    assert visit_a.easi == 30
    assert signature.revoked_at is not None
    assert visit_a.history.first().history_change_reason == "Transcription error in the source"


def test_records_after_the_signed_date_stay_editable(client_for, pi_a, investigator_a, episode_a):
    later = Visit.objects.create(patient=episode_a.patient, date=date(2024, 9, 1), easi=5)
    Signature.objects.create(patient=episode_a.patient, signed_up_to=date(2024, 6, 30), signed_by=pi_a)
    edit_visit(client_for(investigator_a), later, easi="6")
    later.refresh_from_db()
    assert later.easi == 6


def test_only_a_center_pi_may_sign(client_for, investigator_a, patient_a):
    response = client_for(investigator_a).post(reverse("patient-sign", args=[patient_a.code]), {"signed_up_to": "2024-06-30"})
    assert response.status_code == 403
    assert not Signature.objects.exists()


def test_a_query_goes_from_coordinator_to_center_and_back(client_for, coordinator, investigator_a, visit_a):
    client_for(coordinator).post(
        reverse("query-create", args=["visit", visit_a.pk]), {"field_name": "easi", "text": "EASI 20 with IGA 3?"}
    )
    query = DataQuery.objects.get()
    assert (query.status, query.field_name, query.raised_by) == ("open", "easi", coordinator)

    client = client_for(investigator_a)
    home = client.get(reverse("center-home", args=["fr-tls"])).content.decode()
    assert "EASI 20 with IGA 3?" in home
    assert client.post(reverse("query-detail", args=[query.pk]), {"close": "1"}).status_code == 403
    client.post(reverse("query-detail", args=[query.pk]), {"answer": "Confirmed in the source file."})
    query.refresh_from_db()
    assert (query.status, query.answered_by) == ("answered", investigator_a)

    client_for(coordinator).post(reverse("query-detail", args=[query.pk]), {"close": "1"})
    query.refresh_from_db()
    assert query.status == "closed"


def test_read_only_staff_cannot_answer_a_query(client_for, readonly_a, visit_a):
    query = DataQuery.objects.create(patient=visit_a.patient, text="?")
    assert client_for(readonly_a).post(reverse("query-detail", args=[query.pk]), {"answer": "x"}).status_code == 403


@pytest.mark.parametrize(
    "values, rule",
    [
        ({"iga": 0, "easi": 12}, "iga0_easi_above_7"),
        ({"easi": 55, "bsa": 8}, "easi_above_50_bsa_below_10"),
        ({}, "visit_without_score"),
    ],
)
def test_an_implausible_visit_raises_an_automatic_query(patient_a, values, rule):
    visit = Visit.objects.create(patient=patient_a, date=date(2024, 2, 1), **values)
    query = DataQuery.objects.get(object_id=visit.pk)
    assert (query.rule, query.status, query.raised_by) == (rule, "open", None)


def test_an_automatic_query_closes_itself_once_corrected_and_is_not_duplicated(patient_a):
    visit = Visit.objects.create(patient=patient_a, date=date(2024, 2, 1), iga=0, easi=12)
    visit.dlqi = 4
    visit.save()
    assert DataQuery.objects.filter(status="open").count() == 1
    visit.easi = 2
    visit.save()
    assert DataQuery.objects.get().status == "closed"


def test_a_45_mg_dose_outside_upadacitinib_raises_a_query(patient_a):
    from registry.clinical.models import TreatmentEpisode

    TreatmentEpisode.objects.create(patient=patient_a, drug="baricitinib", start_date=date(2024, 1, 1), start_dose_mg=45)
    assert DataQuery.objects.get().rule == "high_dose_outside_upadacitinib"


def test_the_second_of_two_concurrent_edits_is_refused_and_shows_the_first(client_for, investigator_a, pi_a, visit_a):
    first, second = client_for(investigator_a), None
    from django.test import Client

    second = log_in(Client(), pi_a)
    edit_visit(first, visit_a, easi="22")
    response = edit_visit(second, visit_a, easi="40")  # started from the same version
    visit_a.refresh_from_db()
    assert visit_a.easi == 22
    errors = " ".join(response.context["form"].non_field_errors())
    assert "Nothing was saved" in errors and "investigator-a" in errors and "22" in errors
    # The form now carries the current version: saving again replaces knowingly.
    second.post(reverse("visit-update", args=[visit_a.pk]), {"date": "2024-01-10", "easi": "40", "iga": 3, "version": visit_a.version})
    visit_a.refresh_from_db()
    assert visit_a.easi == 40


def test_history_cannot_be_reverted_in_the_admin(settings):
    assert settings.SIMPLE_HISTORY_REVERT_DISABLED is True


def test_moving_a_signed_record_out_of_the_signed_period_still_needs_a_reason(pi_a, visit_a):
    from django.core.exceptions import ValidationError

    Signature.objects.create(patient=visit_a.patient, signed_up_to=date(2024, 6, 30), signed_by=pi_a)
    visit_a.date = date(2024, 9, 1)
    with pytest.raises(ValidationError) as caught:
        visit_a.full_clean()
    assert "reason_for_change" in caught.value.message_dict
