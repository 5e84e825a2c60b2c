"""Personas and shared fixtures (architecture.md: investigator at A, read-only at A,
investigator at B, PI at A, coordinator)."""
import os
from datetime import date

import pytest

# Playwright's sync API runs an event loop in this thread; the ORM calls made by tests after
# a browser test would otherwise be refused as "async unsafe".
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

#: Browser fixtures (live server, Chromium, page, login, screenshot) for every test folder.
pytest_plugins = ["tests.browser_support"]

PASSWORD = "a-long-test-password-1"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Personas are created in most tests: PBKDF2 would cost much of the run."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


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


def totp_device(user):
    """The user's confirmed authenticator (created on first use)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    return device or TOTPDevice.objects.create(user=user, name="test", confirmed=True)


def current_token(device):
    from django_otp.oath import totp

    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"


def log_in(client, user):
    """Log ``client`` in as ``user``, with a verified second factor when the role needs one."""
    from django_otp import DEVICE_ID_SESSION_KEY

    client.force_login(user)
    if user.requires_two_factor:
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = totp_device(user).persistent_id
        session.save()
    return client


@pytest.fixture
def client_for(client):
    """``client_for(user)``: the test client logged in as ``user`` (2FA verified if needed)."""
    return lambda user: log_in(client, user)


def database_url(settings_dict):
    """A DATABASE_URL naming the test database, for a subprocess (Celery worker, gunicorn)."""
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    user = settings_dict.get("USER") or ""
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{settings_dict['NAME']}"


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, tmp_path_factory):
    """A real ``celery worker`` on a private queue, pointed at the test database.

    Tests that use it mark themselves ``worker`` (tasks are then sent, not run in-process) and
    ``django_db(transaction=True)``, since the worker cannot see uncommitted test data.
    """
    import subprocess
    import sys
    import time
    import uuid

    import redis
    from django.conf import settings
    from django.db import connection

    from registry.celery import app

    broker = os.environ.get("CELERY_BROKER_URL") or "redis://127.0.0.1:6379/15"
    try:
        redis.Redis.from_url(broker, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        pytest.skip(f"no Redis broker at {broker}: {error}")
    queue = f"test-{uuid.uuid4().hex[:8]}"
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict),
        "CELERY_BROKER_URL": broker,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "ENDPOINTS_COALESCE_SECONDS": "0.5",
    }
    with open(log, "w") as output:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "registry", "worker", "--pool=solo",
             "-Q", queue, "--without-gossip", "--without-mingle", "--without-heartbeat",
             "-l", "info"],
            cwd=settings.BASE_DIR, env=env, stdout=output, stderr=subprocess.STDOUT,
        )
    app.conf.broker_url = broker
    app.conf.task_default_queue = queue
    # In-process tests may already have opened pools on the default broker: start afresh.
    app._pool = None
    app.amqp._producer_pool = None
    deadline = time.monotonic() + 30
    while "ready." not in log.read_text() and time.monotonic() < deadline:
        if worker.poll() is not None:
            pytest.fail(f"the Celery worker exited:\n{log.read_text()}")
        time.sleep(0.2)
    yield {"process": worker, "log": log, "queue": queue}
    worker.terminate()
    try:
        worker.wait(timeout=10)
    except subprocess.TimeoutExpired:
        worker.kill()
