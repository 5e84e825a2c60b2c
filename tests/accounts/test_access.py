"""Access hardening: two-factor authentication, lockout, security headers, deployment checks."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from tests.conftest import PASSWORD, current_token, make_user, totp_device

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def log_in_with_form(client, username, password=PASSWORD, token=None):
    data = {"username": username, "password": password}
    if token is not None:
        data["otp_token"] = token
    return client.post(reverse("login"), data)


def test_an_investigator_logs_in_with_a_password(client, investigator_a):
    response = log_in_with_form(client, "investigator-a")
    assert response.status_code == 302
    assert client.get(reverse("center-home", args=["fr-tls"])).status_code == 200


def test_a_pi_must_set_up_two_factor_before_reaching_patient_data(client, pi_a):
    log_in_with_form(client, "pi-a")
    response = client.get(reverse("center-home", args=["fr-tls"]))
    assert response.status_code == 302 and response["Location"].startswith(reverse("two-factor"))
    page = client.get(response["Location"])
    assert b"<svg" in page.content  # the QR code to scan
    device = page.context["device"]
    assert client.post(response["Location"], {"token": "000000"}).context["form"].errors["token"]
    device.refresh_from_db()
    device.throttle_reset()  # django-otp delays the next try after a wrong code
    done = client.post(response["Location"], {"token": current_token(device)})
    assert done.status_code == 302 and done["Location"] == reverse("center-home", args=["fr-tls"])
    device.refresh_from_db()
    assert device.confirmed
    assert client.get(reverse("center-home", args=["fr-tls"])).status_code == 200


def test_a_coordinator_with_an_authenticator_needs_its_code_to_log_in(client, coordinator):
    device = totp_device(coordinator)
    refused = log_in_with_form(client, "coordinator")
    assert refused.status_code == 200 and "_auth_user_id" not in client.session
    assert log_in_with_form(client, "coordinator", token=current_token(device)).status_code == 302
    assert client.get(reverse("home")).status_code == 200


def test_anyone_may_set_up_two_factor(client, investigator_a):
    client.force_login(investigator_a)
    assert client.get(reverse("two-factor")).status_code == 200


def test_repeated_failures_lock_the_account(client, investigator_a, settings):
    for _attempt in range(settings.AXES_FAILURE_LIMIT):
        log_in_with_form(client, "investigator-a", password="wrong")
    response = log_in_with_form(client, "investigator-a")
    assert response.status_code == 429 or response.status_code == 403
    assert b"Account locked" in response.content
    assert "_auth_user_id" not in client.session


def test_pages_carry_a_content_security_policy_without_inline_scripts(client, investigator_a):
    client.force_login(investigator_a)
    response = client.get(reverse("center-home", args=["fr-tls"]))
    policy = response["Content-Security-Policy"]
    script_src = next(part for part in policy.split(";") if part.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script_src and "'self'" in script_src
    assert "<script>" not in response.content.decode()  # only <script src=...>
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_every_form_is_protected_against_csrf(investigator_a, patient_a):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(investigator_a)
    response = client.post(reverse("visit-create", args=[patient_a.code]), {"date": "2024-02-01"})
    assert response.status_code == 403


def test_sessions_expire_after_inactivity(settings):
    assert settings.SESSION_COOKIE_AGE <= 30 * 60 and settings.SESSION_SAVE_EVERY_REQUEST


def test_weak_passwords_are_refused(client, investigator_a):
    client.force_login(investigator_a)
    response = client.post(reverse("password_change"), {
        "old_password": PASSWORD, "new_password1": "12345678", "new_password2": "12345678",
    })
    assert response.context["form"].errors["new_password2"]


def test_check_deploy_passes_with_production_settings(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
        "DJANGO_DEBUG": "false", "DJANGO_SECURE": "true",
        "DJANGO_SECRET_KEY": "x" * 20 + "-production-secret-" + "y" * 30,
        "DJANGO_ALLOWED_HOSTS": "registry.example.org",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
