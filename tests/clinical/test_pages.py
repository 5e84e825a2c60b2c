"""What the busiest pages show: the patient list's columns and the visit form's field states."""
from datetime import date

import pytest
from django.urls import reverse
from django.utils.formats import date_format
from pytest_django.asserts import assertInHTML

from registry.clinical.models import Patient, Visit

pytestmark = pytest.mark.django_db


def test_the_patient_list_shows_each_patients_last_visit_and_what_is_missing(
    client_for, investigator_a, patient_a, episode_a, center_a
):
    Visit.objects.create(patient=patient_a, date=date(2024, 1, 10), easi=20)
    Visit.objects.create(patient=patient_a, date=date(2024, 1, 31), easi=12)
    untreated = Patient.objects.create(center=center_a, sex="male", enrolled_on=date(2024, 1, 1))

    html = client_for(investigator_a).get(reverse("center-home", args=[center_a.code])).content.decode()

    patient_row = html[html.index(f">{patient_a.code}<"):html.index(f">{untreated.code}<")]
    assert date_format(date(2024, 1, 31)) in patient_row
    assert "Upadacitinib 30 mg" in patient_row
    assert "no month-3 visit (Upadacitinib)" in patient_row
    assert "no baseline visit" not in patient_row
    untreated_row = html[html.index(f">{untreated.code}<"):]
    assert "no treatment episode" in untreated_row


def test_the_patient_list_reads_the_same_visit_dates_as_the_patient_page(patient_a, episode_a):
    Visit.objects.create(patient=patient_a, date=date(2024, 1, 10), easi=20)
    listed = Patient.with_visit_dates(Patient.objects.filter(pk=patient_a.pk))[0]
    prefetched = Patient.objects.prefetch_related("visits", "episodes").get(pk=patient_a.pk)
    assert listed.visit_dates() == prefetched.visit_dates() == [date(2024, 1, 10)]
    assert listed.missing_items() == prefetched.missing_items()


def test_the_visit_form_marks_each_refused_field_with_its_message(client_for, investigator_a, patient_a):
    response = client_for(investigator_a).post(
        reverse("visit-create", args=[patient_a.code]),
        {"date": "2024-02-01", "easi": "80", "aesi_acne": "maybe", "iga": "2"},
    )
    html = response.content.decode()

    assert response.status_code == 200
    assertInHTML(
        '<input type="number" name="easi" value="80" step="0.1" id="id_easi"'
        ' class="numberinput form-control is-invalid" aria-invalid="true"'
        ' aria-describedby="id_easi_helptext id_easi_error">', html,
    )
    assertInHTML('<span id="error_1_id_easi"><strong>EASI must be between 0 and 72.</strong></span>', html)
    assert 'class="yesnoselect form-select is-invalid"' in html
    assert 'id="error_1_id_aesi_acne"' in html
    # The accepted entries come back as typed, labelled, with their help text.
    assertInHTML(
        '<input type="number" name="iga" value="2" min="0" id="id_iga"'
        ' class="numberinput form-control" aria-describedby="id_iga_helptext">', html,
    )
    assertInHTML('<label for="id_iga" class="form-label">IGA</label>', html)
    assertInHTML('<div id="id_iga_helptext" class="form-text">0–4</div>', html)
    assert not Visit.objects.exists()
