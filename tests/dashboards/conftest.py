"""Fixtures of the dashboard tests: the hand-worked cohort (dashboard_data.py), one more
persona (PI of B), and a headless Chromium against the live server.

The browser fixtures are the dashboard tests' own (tests/browser/conftest.py is another
suite's and its fixtures are not visible from here); they follow the same recipe: Debian's
Chromium with the flags of docs/machine-notes.md, and a live server that serves the collected
static files through WhiteNoise as production does.
"""
import os
from pathlib import Path

import pytest
from dashboard_data import make_user, tiny_cohort, verify_second_factor

CHROMIUM = os.environ.get("REGISTRY_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
    "--disable-dev-shm-usage",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
VIEWPORTS = {"desktop": {"width": 1366, "height": 900}, "tablet": {"width": 820, "height": 1180}}


@pytest.fixture
def cohort():
    return tiny_cohort()


# --- Personas --------------------------------------------------------------------------------

@pytest.fixture
def pi_b(center_b):
    return make_user("pi-b", center_b, "pi")


@pytest.fixture
def as_user(client):
    """``as_user(user)``: the test client logged in as ``user`` (None: logged out)."""

    def login(user):
        client.logout()
        if user is not None:
            client.force_login(user)
            verify_second_factor(client, user)
        return client

    return login


@pytest.fixture
def study_settings(db):
    from endpoints.models import StudySettings

    return StudySettings.current()


# --- Browser -----------------------------------------------------------------------------------

def _no_static_handler(app):
    return app


@pytest.fixture(scope="session")
def live_server(request):
    """pytest-django's live server, with static files served from STATIC_ROOT by WhiteNoise
    (the manifest's hashed names), as in production."""
    from django.conf import settings
    from pytest_django.live_server_helper import LiveServer

    manifest = Path(settings.STATIC_ROOT) / "staticfiles.json"
    if not manifest.exists():
        pytest.fail(f"{manifest} is missing: run `python manage.py collectstatic --noinput`",
                    pytrace=False)
    server = LiveServer("localhost", start=False)
    server.thread.static_handler = _no_static_handler
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def browser_as(browser, live_server):
    """``browser_as(user)``: a page in a fresh browser context whose session is ``user``'s
    (logged in server-side, second factor verified), at desktop size. JavaScript errors and
    failed static files are collected on ``page.problems``."""
    from django.conf import settings
    from django.test import Client

    contexts = []

    def open_page(user):
        client = Client()
        client.force_login(user)
        verify_second_factor(client, user)
        context = browser.new_context(
            viewport=VIEWPORTS["desktop"], base_url=live_server.url, locale="en-GB",
            accept_downloads=True,
        )
        context.set_default_timeout(15_000)
        context.add_cookies([{
            "name": settings.SESSION_COOKIE_NAME,
            "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
            "url": live_server.url,
        }])
        contexts.append(context)
        page = context.new_page()
        page.problems = []
        page.on("pageerror", lambda error: page.problems.append(f"JS error: {error}"))
        page.on("console", lambda message: message.type == "error"
                and page.problems.append(f"console: {message.text}"))
        page.on("response", lambda response: response.status >= 400 and "/static/" in response.url
                and page.problems.append(f"{response.status} {response.url}"))
        return page

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def screenshot():
    """``screenshot(page, name, viewport)``: a full-page PNG in test-artifacts/."""

    def take(page, name, viewport="desktop"):
        ARTIFACTS.mkdir(exist_ok=True)
        page.set_viewport_size(VIEWPORTS[viewport])
        page.mouse.move(0, 0)  # no row left highlighted under the pointer
        page.wait_for_timeout(300)  # charts redraw at the new width
        path = ARTIFACTS / f"{name}-{viewport}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def worker(celery_worker_process):
    """The real worker, with this process's broker connections made afresh.

    Earlier in-process tests may have opened Celery's connection and producer pools on the
    default broker (before ``celery_worker_process`` pointed the app at Redis); tasks sent
    through those pools would never reach the worker.
    """
    from registry.celery import app

    app._pool = None
    app.amqp._producer_pool = None
    for name in ("queues", "default_queue", "router"):
        app.amqp.__dict__.pop(name, None)
    return celery_worker_process
