"""Shared fixtures for the headless-Chromium tests (pytest-django ``live_server`` + Playwright).

Playwright's own browser download does not work on these machines: the Debian Chromium at
/usr/bin/chromium is launched instead (docs/machine-notes.md). ``DJANGO_ALLOW_ASYNC_UNSAFE``
is set in tests/conftest.py, before any test runs.

Run with ``python manage.py collectstatic --noinput && python -m pytest tests/browser``: the
pages load the collected (hashed) static files.
"""
import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("REGISTRY_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]
#: Screenshots go here (git-ignored); a human or a reviewer looks at them after a run.
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

#: Screen sizes screenshots are taken at: a clinic desktop and a tablet on the ward.
VIEWPORTS = {"desktop": {"width": 1366, "height": 900}, "tablet": {"width": 820, "height": 1180}}

#: Milliseconds Playwright waits for an element or a navigation before failing the test.
TIMEOUT_MS = 15_000


def _no_static_handler(app):
    return app


@pytest.fixture(scope="session")
def live_server(request):
    """pytest-django's live server, but with static files served as in production.

    pytest-django serves ``/static/`` through the staticfiles finders, which do not know the
    hashed names (``bootstrap.min.4bc73c7ba870.css``) that the manifest storage writes into
    the pages: every stylesheet and script would be a 404. Here no static handler wraps the
    application, so WhiteNoise serves the collected files from STATIC_ROOT, as it does in
    production.
    """
    from django.conf import settings
    from pytest_django.live_server_helper import LiveServer

    manifest = Path(settings.STATIC_ROOT) / "staticfiles.json"
    if not manifest.exists():
        pytest.fail(
            f"{manifest} is missing: run `python manage.py collectstatic --noinput` first",
            pytrace=False,
        )
    addr = (
        request.config.getvalue("liveserver")
        or os.environ.get("DJANGO_LIVE_TEST_SERVER_ADDRESS")
        or "localhost"
    )
    server = LiveServer(addr, start=False)
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
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    """A fresh browser context (no cookies) at desktop size, with ``base_url`` the live server.

    Failed static-file requests and JavaScript errors are collected on ``page.problems``:
    a page whose CSS or script did not load looks broken even when its text is right.
    """
    context = browser.new_context(
        viewport=VIEWPORTS["desktop"], base_url=live_server.url, locale="en-GB"
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(f"JS error: {error}"))
    page.on(
        "response",
        lambda response: response.status >= 400
        and "/static/" in response.url
        and page.problems.append(f"{response.status} {response.url}"),
    )
    yield page
    context.close()


@pytest.fixture
def persona_password():
    """The password tests/conftest.py gives every persona."""
    from tests.conftest import PASSWORD

    return PASSWORD


@pytest.fixture
def login(page, persona_password):
    """``login(user)``: log in through the real login form and land on the home page."""

    def log_in(user, password=None):
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill(user.get_username())
        page.get_by_label("Password").fill(password or persona_password)
        if user.requires_two_factor:  # coordinators and PIs type their authenticator's code
            from tests.conftest import current_token, totp_device

            page.get_by_label("Authenticator code").fill(current_token(totp_device(user)))
        with page.expect_navigation():
            page.get_by_role("button", name="Log in").click()
        assert "/accounts/login/" not in page.url, f"login as {user} failed: {page.url}"
        return page

    return log_in


@pytest.fixture
def screenshot():
    """``screenshot(page, name, viewport="tablet")``: a full-page PNG in test-artifacts/
    named ``<name>-<viewport>.png``, taken at that screen size (which the page keeps)."""

    def take(page, name, viewport="desktop"):
        ARTIFACTS.mkdir(exist_ok=True)
        page.set_viewport_size(VIEWPORTS[viewport])
        page.mouse.move(0, 0)  # no row left highlighted under the pointer
        page.wait_for_timeout(300)  # charts redraw at the new width
        path = ARTIFACTS / f"{name}-{viewport}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
