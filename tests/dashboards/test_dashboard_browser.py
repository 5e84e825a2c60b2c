"""The live dashboard in a real headless Chromium, with a real Celery worker.

The PI of center A opens A's dashboard before anything was computed: the page says so and
the figures arrive by themselves. An investigator at A then records the month-3 visit in a
second browser; the PI's open page shows the new figures without a reload. Charts are
drawn from our static Chart.js and download as PNG; the PI gets a 404 on center B's
dashboard. Screenshots at desktop and tablet width go to test-artifacts/.
"""
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from endpoints import services
from endpoints.models import RecomputeState, Snapshot
from registry.clinical.models import DoseChange, Visit

from dashboard_data import add_patient

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def wait_for(condition, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def settled():
    """No recompute queued or pending."""
    return not RecomputeState.objects.exclude(queued_at=None).exists() and not (
        RecomputeState.objects.filter(pending_changes__gt=0).exists()
    )


def efficacy_cell(page, label, index):
    """The text of a cell of the efficacy table's row ``label`` (0: first N column)."""
    row = page.locator("#table-efficacy tbody tr").filter(
        has=page.locator("th", has_text=label)
    ).first
    return row.locator("td").nth(index).inner_text().strip()


def test_the_pi_watches_a_new_visit_arrive(
    browser_as, screenshot, worker, center_a, center_b, pi_a, investigator_a
):
    # Creating the centers queued a recompute: let it pass before writing (SQLite).
    assert wait_for(settled), worker["log"].read_text()[-3000:]
    today = timezone.localdate()
    start = today - timedelta(days=120)
    # A responder still missing the month-3 visit, and an escalation for the charts; one
    # recompute request for the lot (SQLite takes one writer at a time).
    with services.recompute_once():
        patient, _episode = add_patient(center_a, start=start, visits=[(0, {"iga": 4, "easi": 24.5, "bsa": 30, "pruritus_nrs": 8, "dlqi": 14})])
        escalated_start = today - timedelta(days=300)
        _other, escalated = add_patient(
            center_a, start=escalated_start, dose=30,
            visits=[(0, {"iga": 3, "easi": 22, "bsa": 35, "pruritus_nrs": 7, "dlqi": 12}),
                    (95, {"iga": 2, "easi": 12, "bsa": 20, "pruritus_nrs": 5, "dlqi": 8}),
                    (150, {"iga": 3, "easi": 18, "bsa": 28, "pruritus_nrs": 7, "dlqi": 11}),
                    (178, {"iga": 2, "easi": 9, "bsa": 14, "pruritus_nrs": 4, "dlqi": 6}),
                    (206, {"iga": 1, "easi": 5, "bsa": 8, "pruritus_nrs": 2, "dlqi": 3})],
        )
        DoseChange.objects.create(episode=escalated, date=escalated_start + timedelta(days=150),
                                  dose_mg=45, reason="secondary_failure")
        add_patient(center_b, start=start, visits=[(0, {"iga": 3, "easi": 15})])
    # Those saves queued recomputes; let the worker finish them, then forget every result:
    # the page must find nothing computed and ask for it.
    assert wait_for(settled), worker["log"].read_text()[-3000:]
    Snapshot.objects.all().delete()
    RecomputeState.objects.all().delete()

    page = browser_as(pi_a)
    navigations = []
    page.on("framenavigated", lambda frame: frame == page.main_frame and navigations.append(frame.url))
    response = page.goto("/dashboards/centers/fr-tls/")
    assert response.status == 200
    # No snapshot: the page says so, asked the worker, and fills itself in.
    page.get_by_text("The figures are being computed").wait_for()
    page.locator("#table-efficacy").wait_for(timeout=30_000)
    # Only the escalated patient has an M3 visit yet (IGA 3 -> 2).
    before = efficacy_cell(page, "IGA 0, 1 or 2", 0), efficacy_cell(page, "IGA 0, 1 or 2", 1)
    assert before == ("1", "1 (100.0%)")
    computed_before = page.locator("#computed-at").inner_text()

    # Tables and charts, from our own static files.
    for table in ("efficacy", "adverse_events", "escalation", "escalation_course", "baseline",
                  "completeness"):
        assert page.locator(f"#table-{table}").is_visible(), table
    page.get_by_role("heading", name="Definitions").wait_for()
    page.wait_for_function("() => window.Chart && Chart.getChart('chart-figure1') && Chart.getChart('chart-figure2')")
    assert page.evaluate("Chart.getChart('chart-figure1').data.datasets.map(d => d.label)") == ["EASI", "BSA (%)"]
    with page.expect_download() as download:
        page.locator("[data-chart-download='figure1']").click()
    png = download.value
    assert png.suggested_filename == "fr-tls-figure1.png"
    with open(png.path(), "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"
    scripts = page.evaluate("[...document.scripts].map(s => s.src || 'INLINE:' + s.type)")
    assert all("/static/" in src or src == "INLINE:application/json" for src in scripts), scripts

    screenshot(page, "dashboard-pi", "desktop")
    screenshot(page, "dashboard-pi", "tablet")
    page.set_viewport_size({"width": 1366, "height": 900})

    # An investigator records the month-3 visit in another browser.
    page.evaluate("window.__sameDocument = 'still here'")
    navigations.clear()
    investigator = browser_as(investigator_a)
    investigator.goto(f"/patients/{patient.code}/visits/new/")
    investigator.get_by_label("Visit date").fill((start + timedelta(days=90)).isoformat())
    investigator.get_by_label("IGA").fill("1")
    investigator.get_by_label("EASI").fill("3.5")
    saved = time.monotonic()
    with investigator.expect_navigation():
        investigator.get_by_role("button", name="Save", exact=True).click()
    assert Visit.objects.filter(patient=patient).count() == 2

    # The PI's page shows it by itself.
    page.wait_for_function(
        "(before) => document.querySelector('#computed-at').textContent.trim() !== before",
        arg=computed_before, timeout=30_000,
    )
    page.wait_for_function(
        "() => { const row = [...document.querySelectorAll('#table-efficacy tbody tr')]"
        ".find(r => r.querySelector('th').textContent.trim() === 'IGA 0, 1 or 2');"
        " return row && row.querySelectorAll('td')[0].textContent.trim() === '2'; }",
        timeout=30_000,
    )
    elapsed = time.monotonic() - saved
    after = efficacy_cell(page, "IGA 0, 1 or 2", 0), efficacy_cell(page, "IGA 0, 1 or 2", 1)
    assert after != before
    assert after == ("2", "2 (100.0%)")
    assert page.evaluate("window.__sameDocument") == "still here"  # no reload
    assert navigations == []
    assert elapsed < 20, f"the new visit took {elapsed:.1f} s to reach the open dashboard"
    page.locator("#updated-badge").wait_for()
    page.wait_for_function(
        "() => document.querySelector('#pending-label').textContent.trim() === 'No changes pending'"
    )
    screenshot(page, "dashboard-pi-updated", "desktop")

    assert page.problems == [] and investigator.problems == []

    # Not the PI's center.
    assert page.goto("/dashboards/centers/es-bcn/").status == 404
    print(f"visit saved -> shown on the PI's dashboard in {elapsed:.1f} s")
