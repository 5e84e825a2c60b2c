"""Personas and shared fixtures (architecture.md: investigator at A, read-only at A,
investigator at B, PI at A, coordinator)."""
import os
from datetime import date

import pytest

# Playwright's sync API runs an event loop in this thread; the ORM calls made by tests after
# a browser test would otherwise be refused as "async unsafe".
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

PASSWORD = "a-long-test-password-1"


@pytest.fixture(autouse=True)
def tasks_in_process(request):
    """Celery tasks run in-process unless a test asks for the real worker (``worker`` mark):
    CI sets CELERY_BROKER_URL, and a plain test has no worker to consume it."""
    from registry.celery import app

    eager = request.node.get_closest_marker("worker") is None
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = eager
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def center_a(db):
    from registry.centers.models import Center, LabRange

    center = Center.objects.create(code="fr-tls", name="CHU de Toulouse", country="FR")
    LabRange.objects.create(center=center, analyte="ldl", upper=3.4)
    return center


@pytest.fixture
def center_b(db):
    from registry.centers.models import Center

    return Center.objects.create(code="es-bcn", name="Hospital de Barcelona", country="ES")


def make_user(username, center=None, role=None, **flags):
    from django.contrib.auth import get_user_model

    from registry.centers.models import Membership

    user = get_user_model().objects.create_user(username, password=PASSWORD, **flags)
    if center is not None:
        Membership.objects.create(user=user, center=center, role=role)
    return user


@pytest.fixture
def investigator_a(center_a):
    return make_user("investigator-a", center_a, "investigator")


@pytest.fixture
def readonly_a(center_a):
    return make_user("readonly-a", center_a, "read_only")


@pytest.fixture
def pi_a(center_a):
    return make_user("pi-a", center_a, "pi")


@pytest.fixture
def investigator_b(center_b):
    return make_user("investigator-b", center_b, "investigator")


@pytest.fixture
def coordinator(db):
    return make_user("coordinator", is_coordinator=True)


@pytest.fixture
def patient_a(center_a):
    from registry.clinical.models import Patient

    return Patient.objects.create(center=center_a, sex="female", birth_year=1990, enrolled_on=date(2024, 1, 10))


@pytest.fixture
def episode_a(patient_a):
    from registry.clinical.models import TreatmentEpisode

    return TreatmentEpisode.objects.create(
        patient=patient_a, drug="upadacitinib", start_date=date(2024, 1, 10), start_dose_mg=30
    )


@pytest.fixture
def client_for(client):
    """``client_for(user)``: the test client logged in as ``user``."""

    def login(user):
        client.force_login(user)
        return client

    return login
