"""A coordinator exports in a real headless Chromium: starts the export, watches the progress
bar fill as a real Celery worker writes the zip, and downloads it.

Run ``python manage.py collectstatic --noinput`` first (the pages load the collected files).
The browser fixtures are tests/browser_support.py's; the worker is tests/conftest.py's.
"""
import time
import zipfile

import pytest
from django.utils import timezone

from registry.centers.models import Center
from registry.clinical.synthetic import build_cohort, save_cohort
from registry.datasets.models import ExportRecord

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def export_media(settings):
    """The worker is another process: it writes under the default MEDIA_ROOT, which the live
    server must read too (instead of the test's private folder). The files this test made are
    removed afterwards, whatever happened."""
    from pathlib import Path

    folder = Path(settings.MEDIA_ROOT) / "exports"
    before = set(folder.glob("*")) if folder.exists() else set()
    yield settings.MEDIA_ROOT
    for path in (set(folder.glob("*")) if folder.exists() else set()) - before:
        path.unlink(missing_ok=True)


def test_a_coordinator_starts_an_export_watches_its_progress_and_downloads_it(
    page, login, screenshot, coordinator, celery_worker_process, tmp_path
):
    centers = [Center.objects.create(code=code, name=name, country="FR")
               for code, name in (("fr-tls", "CHU de Toulouse"), ("fr-nte", "CHU de Nantes"))]
    save_cohort(build_cohort(centers, 600, seed=7, today=timezone.localdate()))

    login(coordinator)
    page.get_by_role("link", name="Export", exact=True).click()
    page.get_by_role("heading", name="Export the dataset").wait_for()
    assert page.get_by_label("fr-nte — CHU de Nantes").is_visible()
    page.get_by_label("Add an Excel workbook").check()
    page.get_by_label("Add Parquet files").check()
    screenshot(page, "export-form")
    with page.expect_navigation():
        page.get_by_role("button", name="Start the export").click()
    record = ExportRecord.objects.get()
    assert page.url.endswith(f"/datasets/exports/{record.pk}/")

    # Watch the bar: what the page shows, read every 100 ms until the download link appears.
    bar = page.locator("[data-progress]")
    link = page.get_by_role("link", name="Download the zip")
    seen = []
    deadline = time.monotonic() + 120
    while not link.is_visible():
        assert time.monotonic() < deadline, (seen[-5:], celery_worker_process["log"].read_text()[-3000:])
        value = int(bar.get_attribute("aria-valuenow"))
        if not seen or seen[-1] != value:
            seen.append(value)
            if 0 < value < 100 and len(seen) == 2:
                screenshot(page, "export-progress")
        time.sleep(0.1)
    assert int(bar.get_attribute("aria-valuenow")) == 100
    assert seen[0] < 100, f"the export was over before the page could show it: {seen}"
    assert seen == sorted(seen)
    assert any(0 < value < 100 for value in seen), seen  # the bar moved while the worker wrote
    page.get_by_text("Ready", exact=True).wait_for()
    screenshot(page, "export-ready")
    assert page.problems == []

    with page.expect_download() as download_info:
        link.click()
    download = download_info.value
    assert download.suggested_filename.startswith("ad-registry-export-")
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    record.refresh_from_db()
    assert record.status == "done" and record.created_by == coordinator
    with zipfile.ZipFile(path) as archive:
        names = {name.split("/", 1)[1] for name in archive.namelist()}
        assert {"centers.csv", "patients.csv", "visits.csv", "adverse_events.csv", "datapackage.json",
                "dataset.xlsx", "parquet/visits.parquet"} <= names
        visits = next(name for name in archive.namelist() if name.endswith("/visits.csv"))
        rows = archive.read(visits).decode().splitlines()
    assert rows[0].startswith("patient_code,date,iga,easi")
    assert len(rows) - 1 == record.row_counts["visits.csv"] > 5000
