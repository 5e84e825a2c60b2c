"""While the database is unreachable, users get a clear 503 page that keeps what they posted
(registry/core/outage.py), never a bare server error, and nothing is half-saved."""
import socket
from unittest import mock

import pytest
from django.db import InterfaceError, OperationalError, connection
from django.urls import reverse

from registry.clinical.models import Visit

VISIT = {"date": "2024-03-01", "easi": "12.5", "iga": "2", "pruritus_nrs": "6", "aesi_acne": "false"}


def assert_outage_page(response, kept=VISIT):
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert response["Cache-Control"] == "no-store"
    page = response.content.decode()
    assert "database is unavailable" in page
    assert "Your entries could not be saved." in page
    for name, value in kept.items():
        # Shown, and kept in a form that posts them again to the same address.
        assert f'<input type="hidden" name="{name}" value="{value}">' in page
        assert f"<td>{value}</td>" in page
    assert 'name="csrfmiddlewaretoken"' in page
    return page


@pytest.mark.django_db
@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
def test_a_save_failing_on_the_database_keeps_the_entries(client_for, investigator_a, patient_a, error):
    client = client_for(investigator_a)
    url = reverse("visit-create", args=[patient_a.code])
    failing = mock.patch("registry.clinical.views.VisitCreateView.form_valid", side_effect=error("server closed the connection"))
    with failing:
        response = client.post(url, VISIT)
    page = assert_outage_page(response)
    assert f'action="{url}"' in page
    assert not Visit.objects.exists()


@pytest.mark.django_db
def test_a_database_error_before_the_view_also_gives_the_page(client_for, investigator_a, patient_a):
    """The session and the user are loaded by middleware: an outage shows there first."""
    client = client_for(investigator_a)
    client.raise_request_exception = False
    url = reverse("visit-create", args=[patient_a.code])
    failing = mock.patch(
        "django.contrib.sessions.backends.db.SessionStore.load",
        side_effect=OperationalError("connection refused"),
    )
    with failing:
        response = client.post(url, VISIT)
    assert_outage_page(response)


@pytest.mark.django_db
def test_passwords_and_codes_are_never_echoed(client):
    with mock.patch("django.contrib.auth.forms.authenticate", side_effect=OperationalError("down")):
        response = client.post(reverse("login"), {
            "username": "investigator-a", "password": "s3cret-pass", "otp_token": "123456",
        })
    assert response.status_code == 503
    page = response.content.decode()
    assert "investigator-a" in page
    assert "s3cret-pass" not in page and "123456" not in page


@pytest.mark.django_db
def test_a_page_read_during_the_outage_says_to_try_again(client_for, investigator_a, center_a):
    client = client_for(investigator_a)
    client.raise_request_exception = False
    url = reverse("center-home", args=[center_a.code])
    with mock.patch("django.contrib.sessions.backends.db.SessionStore.load", side_effect=OperationalError("down")):
        response = client.get(url)
    assert response.status_code == 503
    page = response.content.decode()
    assert "<form" not in page and f'href="{url}"' in page


def session_save_failing(*args, **kwargs):
    """The database goes away after the view, while the session is saved."""
    from django.contrib.sessions.backends.base import UpdateError

    try:
        raise OperationalError("the database system is shutting down")
    except OperationalError:
        raise UpdateError


@pytest.mark.django_db
def test_losing_the_database_while_the_session_is_saved_gives_the_page(client_for, investigator_a, center_a):
    """Django would answer "Bad Request" (SessionInterrupted)."""
    client = client_for(investigator_a)
    url = reverse("center-home", args=[center_a.code])
    with mock.patch("django.contrib.sessions.backends.db.SessionStore.save", session_save_failing):
        response = client.get(url)
    assert response.status_code == 503
    assert f'href="{url}"' in response.content.decode()


@pytest.mark.django_db
def test_a_session_really_ended_elsewhere_stays_a_bad_request(client_for, investigator_a, center_a):
    from django.contrib.sessions.backends.base import UpdateError

    client = client_for(investigator_a)
    with mock.patch("django.contrib.sessions.backends.db.SessionStore.save", side_effect=UpdateError):
        response = client.get(reverse("center-home", args=[center_a.code]))
    assert response.status_code == 400


@pytest.mark.django_db
def test_other_errors_stay_server_errors(client_for, investigator_a, patient_a):
    client = client_for(investigator_a)
    client.raise_request_exception = False
    with mock.patch("registry.clinical.views.VisitCreateView.form_valid", side_effect=ValueError("bug")):
        response = client.post(reverse("visit-create", args=[patient_a.code]), VISIT)
    assert response.status_code == 500


def unused_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.django_db(transaction=True)
def test_a_real_outage_keeps_the_entries_and_saves_nothing(client_for, investigator_a, patient_a, tmp_path):
    """The connection itself fails (a closed port, or an SQLite file that cannot be opened);
    once the database is back the same post saves the visit once."""
    client = client_for(investigator_a)
    client.raise_request_exception = False
    url = reverse("visit-create", args=[patient_a.code])
    broken = (
        {"NAME": str(tmp_path / "missing" / "db.sqlite3")} if connection.vendor == "sqlite"
        else {"HOST": "127.0.0.1", "PORT": unused_port()}
    )
    saved = {key: connection.settings_dict[key] for key in broken}
    connection.close()
    connection.settings_dict.update(broken)
    try:
        response = client.post(url, VISIT)
    finally:
        connection.close()
        connection.settings_dict.update(saved)
    assert_outage_page(response)
    assert not Visit.objects.exists()

    again = client.post(url, VISIT)
    assert again.status_code == 302
    assert Visit.objects.filter(patient=patient_a, date="2024-03-01").count() == 1
