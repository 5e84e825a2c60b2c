"""Fixtures of the dashboard tests: the hand-worked cohort (dashboard_data.py), one more
persona (PI of B), and a headless Chromium against the live server.

The live server, Chromium and screenshot fixtures are the shared ones of
tests/browser_support.py; ``browser_as`` opens a page already logged in as a persona.
"""

import pytest
from dashboard_data import make_user, tiny_cohort, verify_second_factor

from tests.browser_support import VIEWPORTS


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
