"""Every page's number of SQL queries is bounded and does not grow with the data."""
from datetime import date, timedelta

import pytest
from django.urls import reverse

from registry.clinical.models import AdverseEvent, DoseChange, Patient, TreatmentEpisode, Visit

pytestmark = pytest.mark.django_db


def add_patients(center, count):
    for _ in range(count):
        patient = Patient.objects.create(center=center, sex="female", enrolled_on=date(2024, 1, 1))
        episode = TreatmentEpisode.objects.create(patient=patient, drug="upadacitinib", start_date=date(2024, 1, 1), start_dose_mg=30)
        DoseChange.objects.create(episode=episode, date=date(2024, 4, 1), dose_mg=45)
        for day in (0, 30, 90):
            Visit.objects.create(patient=patient, date=date(2024, 1, 1) + timedelta(days=day), easi=20 - day / 10, iga=3)
        AdverseEvent.objects.create(patient=patient, episode=episode, term="acne", onset_date=date(2024, 2, 1))
    return patient


def count_queries(client, url, django_assert_max_num_queries, budget):
    with django_assert_max_num_queries(budget) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


@pytest.mark.parametrize("url_name", ["center-home", "patient-detail", "visit-create", "query-list"])
def test_page_queries_do_not_grow_with_the_number_of_records(
    client_for, investigator_a, center_a, django_assert_max_num_queries, url_name
):
    client = client_for(investigator_a)
    patient = add_patients(center_a, 3)

    def url():
        if url_name == "center-home":
            return reverse(url_name, args=[center_a.code])
        if url_name == "query-list":
            return reverse(url_name)
        return reverse(url_name, args=[patient.code])

    small = count_queries(client, url(), django_assert_max_num_queries, 25)
    patient = add_patients(center_a, 20)
    for day in range(100, 400, 30):
        Visit.objects.create(patient=patient, date=date(2024, 1, 1) + timedelta(days=day), easi=5)
    large = count_queries(client, url(), django_assert_max_num_queries, 25)
    assert large == small
