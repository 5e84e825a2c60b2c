from datetime import date

import pytest
from django.urls import reverse

from registry.clinical.models import Visit


def test_center_home_lists_the_centers_patients(client_for, investigator_a, patient_a, episode_a):
    Visit.objects.create(patient=patient_a, date=date(2024, 1, 10), easi=20)
    response = client_for(investigator_a).get(reverse("center-home", args=["fr-tls"]))
    assert response.status_code == 200
    body = response.content.decode()
    assert patient_a.code in body
    assert "30 mg" in body


def test_patient_page_shows_the_timeline(client_for, investigator_a, patient_a, episode_a):
    Visit.objects.create(patient=patient_a, date=date(2024, 1, 10), easi=20, iga=3)
    response = client_for(investigator_a).get(reverse("patient-detail", args=[patient_a.code]))
    assert response.status_code == 200
    assert "Started" in response.content.decode()
