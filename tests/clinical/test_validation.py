"""Validation lives in the models: each rule refuses bad input with a message naming the field."""
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from registry.clinical.models import AdverseEvent, DoseChange, Patient, TreatmentEpisode, Visit

pytestmark = pytest.mark.django_db


def errors_of(record):
    with pytest.raises(ValidationError) as caught:
        record.full_clean()
    return caught.value.message_dict


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("easi", Decimal("72.1"), "EASI must be between 0 and 72."),
        ("easi", Decimal("-1"), "EASI must be between 0 and 72."),
        ("scorad", Decimal("103.5"), "SCORAD must be between 0 and 103."),
        ("bsa", Decimal("100.1"), "BSA (%) must be between 0 and 100."),
        ("iga", 5, "IGA must be between 0 and 4."),
        ("pruritus_nrs", 11, "Itch NRS must be between 0 and 10."),
        ("sleep_nrs", 11, "Sleep NRS must be between 0 and 10."),
        ("dlqi", 31, "DLQI must be between 0 and 30."),
        ("poem", 29, "POEM must be between 0 and 28."),
    ],
)
def test_it_rejects_a_score_out_of_its_range(patient_a, field, value, message):
    visit = Visit(patient=patient_a, date=date(2024, 2, 1), **{field: value})
    assert errors_of(visit)[field] == [message]


def test_it_rejects_easi_with_two_decimals(patient_a):
    assert "easi" in errors_of(Visit(patient=patient_a, date=date(2024, 2, 1), easi=Decimal("10.25")))


def test_it_accepts_the_range_limits(patient_a):
    Visit(patient=patient_a, date=date(2024, 2, 1), easi=72, scorad=103, bsa=100, iga=4,
          pruritus_nrs=10, dlqi=30, poem=28).full_clean()


def test_it_rejects_a_negative_lab_value(patient_a):
    assert "ldl" in errors_of(Visit(patient=patient_a, date=date(2024, 2, 1), ldl=-0.1))


def test_it_rejects_a_visit_in_the_future(patient_a):
    tomorrow = timezone.localdate() + timedelta(days=1)
    assert "is in the future" in errors_of(Visit(patient=patient_a, date=tomorrow))["date"][0]


def test_it_rejects_a_second_visit_on_the_same_day(patient_a):
    Visit.objects.create(patient=patient_a, date=date(2024, 2, 1))
    errors = errors_of(Visit(patient=patient_a, date=date(2024, 2, 1)))
    assert "already has a visit on that date" in str(errors)


def test_it_requires_a_stop_reason_when_an_episode_ends(episode_a):
    episode_a.end_date = date(2024, 6, 1)
    assert errors_of(episode_a)["end_reason"] == ["Give the reason the treatment was stopped."]


def test_it_rejects_an_episode_ending_before_it_starts(episode_a):
    episode_a.end_date, episode_a.end_reason = date(2023, 12, 31), "patient_choice"
    assert "end_date" in errors_of(episode_a)


def test_it_rejects_an_end_date_before_a_recorded_dose_change(episode_a):
    DoseChange.objects.create(episode=episode_a, date=date(2024, 5, 1), dose_mg=45)
    episode_a.end_date, episode_a.end_reason = date(2024, 4, 1), "adverse_event"
    assert "dose change on 2024-05-01" in errors_of(episode_a)["end_date"][0]


def test_it_rejects_a_dose_change_before_the_episode_starts(episode_a):
    change = DoseChange(episode=episode_a, date=date(2024, 1, 10), dose_mg=45)
    assert "after the episode's start" in errors_of(change)["date"][0]


def test_it_rejects_a_dose_change_equal_to_the_dose_in_force(episode_a):
    change = DoseChange(episode=episode_a, date=date(2024, 3, 1), dose_mg=30)
    assert errors_of(change)["dose_mg"] == ["The dose in force on that day is already 30 mg."]


def test_it_rejects_a_dose_change_after_the_episode_ends(episode_a):
    episode_a.end_date, episode_a.end_reason = date(2024, 3, 1), "disease_control"
    episode_a.save()
    assert "date" in errors_of(DoseChange(episode=episode_a, date=date(2024, 3, 2), dose_mg=15))


def test_the_dose_on_any_day_follows_the_dose_changes(episode_a):
    DoseChange.objects.create(episode=episode_a, date=date(2024, 5, 1), dose_mg=45)
    DoseChange.objects.create(episode=episode_a, date=date(2024, 8, 1), dose_mg=30)
    assert episode_a.dose_on(date(2024, 1, 9)) is None
    assert episode_a.dose_on(date(2024, 4, 30)) == 30
    assert episode_a.dose_on(date(2024, 5, 1)) == 45
    assert episode_a.dose_on(date(2024, 9, 1)) == 30
    escalation, deescalation = episode_a.dose_changes.order_by("date")
    assert escalation.is_escalation and not deescalation.is_escalation


def test_it_rejects_an_adverse_event_outside_its_episode(episode_a):
    event = AdverseEvent(patient=episode_a.patient, episode=episode_a, term="acne", onset_date=date(2023, 12, 1))
    assert "onset_date" in errors_of(event)


def test_it_derives_the_episode_of_an_adverse_event_from_its_onset(episode_a):
    event = AdverseEvent(patient=episode_a.patient, term="herpes_simplex", onset_date=date(2024, 3, 1))
    event.full_clean()
    assert event.episode == episode_a


def test_it_rejects_an_unknown_comorbidity_code(center_a):
    patient = Patient(center=center_a, sex="male", atopic_comorbidities=["asthma", "gout"])
    assert "gout" in errors_of(patient)["atopic_comorbidities"][0]


def test_it_rejects_a_birth_year_after_enrolment(center_a):
    patient = Patient(center=center_a, sex="male", birth_year=2025, enrolled_on=date(2024, 1, 1))
    assert "birth_year" in errors_of(patient)


def test_patient_codes_are_generated_per_center(center_a, center_b):
    first = Patient.objects.create(center=center_a, sex="male")
    second = Patient.objects.create(center=center_a, sex="female")
    other = Patient.objects.create(center=center_b, sex="female")
    assert (first.code, second.code, other.code) == ("fr-tls-0001", "fr-tls-0002", "es-bcn-0001")


def test_the_visit_form_names_the_field_and_saves_nothing(client_for, investigator_a, patient_a):
    response = client_for(investigator_a).post(
        reverse("visit-create", args=[patient_a.code]), {"date": "2024-02-01", "easi": "80"}
    )
    assert response.status_code == 200
    assert response.context["form"].errors["easi"] == ["EASI must be between 0 and 72."]
    assert not Visit.objects.exists()


def test_escalate_refuses_a_lower_dose(client_for, investigator_a, episode_a):
    response = client_for(investigator_a).post(
        reverse("episode-escalate", args=[episode_a.pk]), {"date": "2024-04-01", "dose_mg": "15"}
    )
    assert "An escalation needs a dose above the 30 mg in force." in response.context["form"].errors["dose_mg"]
    assert not DoseChange.objects.exists()


def test_stop_treatment_requires_a_reason(client_for, investigator_a, episode_a):
    url = reverse("episode-stop", args=[episode_a.pk])
    response = client_for(investigator_a).post(url, {"end_date": "2024-06-01"})
    assert "end_reason" in response.context["form"].errors
    client_for(investigator_a).post(
        url, {"end_date": "2024-06-01", "end_reason": "disease_control", "version": episode_a.version}
    )
    episode_a.refresh_from_db()
    assert (episode_a.end_date, episode_a.end_reason) == (date(2024, 6, 1), "disease_control")


def test_a_forged_episode_of_another_patient_is_refused(client_for, investigator_a, patient_a, center_a):
    other = Patient.objects.create(center=center_a, sex="male")
    foreign = TreatmentEpisode.objects.create(patient=other, drug="dupilumab", start_date=date(2024, 1, 1), start_dose_mg=300)
    response = client_for(investigator_a).post(
        reverse("adverse-event-create", args=[patient_a.code]),
        {"term": "acne", "onset_date": "2024-02-01", "episode": foreign.pk, "serious": "unknown"},
    )
    assert "episode" in response.context["form"].errors
    assert not AdverseEvent.objects.exists()
