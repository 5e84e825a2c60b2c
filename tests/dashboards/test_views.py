"""The dashboard pages: who sees what, filters, downloads, the live status, and the cost of a
request (read snapshots only, a fixed number of queries)."""
import csv
import io
from datetime import date
from html.parser import HTMLParser

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from endpoints import services
from endpoints.compute.report import compute_report, write_results_csv
from endpoints.models import POOLED, RecomputeState, Snapshot
from endpoints.selectors import load_cohort

from dashboard_data import NON_RESPONDER, RESPONDER, add_patient

CENTER_URLS = ("center-dashboard", "center-dashboard-status", "center-dashboard-live",
               "center-dashboard-csv")
POOLED_URLS = ("pooled-dashboard", "pooled-dashboard-status", "pooled-dashboard-live",
               "pooled-dashboard-csv")


@pytest.fixture(autouse=True)
def fresh_body_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def registry(center_a, center_b):
    """fr-tls: a responder on upadacitinib 15 mg enrolled in 2023 and a non-responder on
    30 mg enrolled in 2024; es-bcn: three patients. Snapshots of every scope."""
    add_patient(center_a, start=date(2023, 2, 1), visits=RESPONDER)
    add_patient(center_a, start=date(2024, 2, 1), dose=30, visits=NON_RESPONDER, sex="male")
    for month in (3, 4, 5):
        add_patient(center_b, start=date(2024, month, 1), drug="baricitinib", dose=4,
                    visits=RESPONDER)
    services.recompute_all_scopes()
    return center_a, center_b


class TableReader(HTMLParser):
    """The text of every cell of every table, by table id."""

    def __init__(self):
        super().__init__()
        self.tables, self._table, self._cell = {}, None, None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._table = self.tables.setdefault(dict(attrs).get("id"), [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._table[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def tables_of(response):
    content = response.json()["html"] if response["Content-Type"].startswith("application/json") \
        else response.content.decode()
    reader = TableReader()
    reader.feed(content)
    return reader.tables


def row_of(table, label):
    return next(row[1:] for row in table if row and row[0] == label)


def url(name, code=None, **query):
    path = reverse(name, args=[code] if code else [])
    if query:
        path += "?" + "&".join(f"{key}={value}" for key, value in query.items())
    return path


# --- Who sees what -------------------------------------------------------------------------

CENTER_A_STATUS = {
    "investigator_a": 200, "readonly_a": 200, "pi_a": 200, "coordinator": 200,
    "investigator_b": 404, "pi_b": 404,
}


@pytest.mark.parametrize("persona, expected", CENTER_A_STATUS.items())
def test_a_centers_dashboard_is_for_its_staff_and_coordinators(
    request, registry, as_user, persona, expected
):
    client = as_user(request.getfixturevalue(persona))
    for name in CENTER_URLS:
        assert client.get(url(name, "fr-tls", table="efficacy")).status_code == expected, name


def test_a_logged_out_visitor_is_sent_to_the_login_page(registry, client):
    for name in CENTER_URLS + POOLED_URLS:
        response = client.get(url(name, "fr-tls") if name.startswith("center") else url(name))
        assert response.status_code == 302, name
        assert response["Location"].startswith(reverse("login"))


def test_an_unknown_center_is_a_404_even_for_the_coordinator(registry, as_user, coordinator):
    assert as_user(coordinator).get(url("center-dashboard", "xx-none")).status_code == 404


POOLED_STATUS = {
    # persona: (share off, share on)
    "coordinator": (200, 200),
    "pi_a": (404, 200),
    "pi_b": (404, 200),
    "investigator_a": (404, 404),
    "readonly_a": (404, 404),
    "investigator_b": (404, 404),
}


@pytest.mark.parametrize("persona, expected", POOLED_STATUS.items())
def test_the_pooled_dashboard_is_for_coordinators_and_for_pis_when_shared(
    request, registry, as_user, study_settings, persona, expected
):
    user = request.getfixturevalue(persona)
    for shared, status in zip((False, True), expected):
        study_settings.share_pooled_results = shared
        study_settings.save()
        client = as_user(user)
        for name in POOLED_URLS:
            assert client.get(url(name, table="efficacy")).status_code == status, (shared, name)


def test_a_pi_sees_other_centers_small_cells_suppressed(registry, as_user, pi_a, study_settings):
    study_settings.share_pooled_results = True
    study_settings.save()
    response = as_user(pi_a).get(url("pooled-dashboard"))
    breakdown = tables_of(response)["table-breakdown"]
    own = row_of(breakdown, "CHU de Toulouse")
    other = row_of(breakdown, "Hospital de Barcelona")
    assert own[:2] == ["2", "2"]  # fr-tls: the PI's own center, 2 patients, shown
    assert own[2].startswith("1/2")
    assert set(other) == {"<5"}  # es-bcn: 3 patients, every cell suppressed
    # no other center's completeness, and not through the download either
    assert "table-completeness" not in tables_of(response)
    client = as_user(pi_a)
    assert client.get(url("pooled-dashboard-csv", table="completeness")).status_code == 404
    lines = client.get(url("pooled-dashboard-csv", table="breakdown")).content.decode().splitlines()
    es = next(line for line in lines if line.startswith("es-bcn"))
    assert es == "es-bcn," + ",".join(["<5"] * 11)


def test_the_coordinator_sees_every_cell(registry, as_user, coordinator):
    response = as_user(coordinator).get(url("pooled-dashboard"))
    tables = tables_of(response)
    assert row_of(tables["table-breakdown"], "Hospital de Barcelona")[:3] == ["3", "3", "3/3 (100.0%)"]
    completeness = tables["table-completeness"]
    assert row_of(completeness, "All centers")[:2] == ["5", "10"]


def test_the_navigation_links_to_the_users_dashboards(registry, as_user, investigator_a, coordinator):
    client = as_user(investigator_a)
    page = client.get(reverse("center-home", args=["fr-tls"])).content.decode()
    assert f'href="{reverse("dashboards")}"' in page
    # one center: straight to it
    assert client.get(reverse("dashboards"))["Location"] == url("center-dashboard", "fr-tls")
    listing = as_user(coordinator).get(reverse("dashboards")).content.decode()
    assert url("pooled-dashboard") in listing and url("center-dashboard", "es-bcn") in listing


# --- What the page shows -------------------------------------------------------------------------


def test_the_dashboard_shows_the_reports_figures_and_its_time(registry, as_user, pi_a):
    response = as_user(pi_a).get(url("center-dashboard", "fr-tls"))
    body = response.content.decode()
    snapshot = Snapshot.objects.get(scope="fr-tls")
    efficacy = tables_of(response)["table-efficacy"]
    # M3: all, upadacitinib 15 mg, upadacitinib 30 mg
    assert row_of(efficacy, "IGA 0, 1 or 2")[:6] == ["2", "1 (50.0%)", "1", "1 (100.0%)", "1", "0 (0.0%)"]
    # EASI changes −16 and −2: median −9, R type 7 quartiles −12.5 and −5.5
    assert row_of(efficacy, "EASI")[:2] == ["2", "−9 (−12.5; −5.5)"]
    assert "table-adverse_events" in tables_of(response)
    assert "table-baseline" in tables_of(response)
    assert snapshot.computed_at.isoformat() in body  # for the live script
    assert "No changes pending" in body
    assert "Linear interpolation" in body and "Definitions" in body
    assert "<script>" not in body.replace("<script src=", "")  # no inline script
    assert 'id="dashboard-config" type="application/json"' in body


def test_the_page_says_how_many_changes_are_pending(registry, as_user, investigator_a):
    RecomputeState.objects.update_or_create(scope="fr-tls", defaults={"pending_changes": 3})
    response = as_user(investigator_a).get(url("center-dashboard", "fr-tls"))
    assert "3 changes pending" in response.content.decode()
    status = as_user(investigator_a).get(url("center-dashboard-status", "fr-tls")).json()
    assert (status["pending_changes"], status["pending_label"]) == (3, "3 changes pending")


def test_without_snapshot_the_page_says_it_is_being_computed_and_asks_once(
    center_a, as_user, investigator_a, monkeypatch
):
    queued = []
    monkeypatch.setattr(services, "enqueue_recompute", queued.append)
    client = as_user(investigator_a)
    for _ in range(2):
        response = client.get(url("center-dashboard", "fr-tls"))
        assert response.status_code == 200
        assert "The figures are being computed" in response.content.decode()
    assert queued == ["fr-tls"]
    status = client.get(url("center-dashboard-status", "fr-tls")).json()
    assert status["computed_at"] is None


def test_without_a_broker_the_requested_recompute_has_run_by_the_answer(
    center_a, as_user, investigator_a
):
    add_patient(center_a, start=date(2024, 2, 1), visits=RESPONDER)
    response = as_user(investigator_a).get(url("center-dashboard", "fr-tls"))
    assert "table-efficacy" in tables_of(response)
    assert Snapshot.objects.filter(scope="fr-tls").exists()


# --- Filters ---------------------------------------------------------------------------------


def test_the_enrolment_year_picks_that_years_stored_rows(registry, as_user, investigator_a):
    client = as_user(investigator_a)
    by_year = {}
    for year in ("2023", "2024"):
        response = client.get(url("center-dashboard", "fr-tls", year=year))
        by_year[year] = row_of(tables_of(response)["table-efficacy"], "IGA 0, 1 or 2")[:2]
        assert f'<option value="{year}" selected>' in response.content.decode()
    assert by_year == {"2023": ["1", "1 (100.0%)"], "2024": ["1", "0 (0.0%)"]}
    missing = client.get(url("center-dashboard", "fr-tls", year="1999")).content.decode()
    assert "No patient of this dashboard was enrolled in the chosen year." in missing


def test_a_start_dose_shows_that_groups_columns_next_to_all_patients(registry, as_user, investigator_a):
    client = as_user(investigator_a)
    response = client.get(url("center-dashboard", "fr-tls", dose="upadacitinib_30"))
    header = tables_of(response)["table-efficacy"][1]
    assert header == ["All patients", "Upadacitinib 30 mg"] * 2
    response = client.get(url("center-dashboard", "fr-tls", drug="upadacitinib"))
    header = tables_of(response)["table-efficacy"][1]
    assert header == ["All patients", "Upadacitinib 15 mg", "Upadacitinib 30 mg"] * 2


def test_filters_compute_nothing(registry, as_user, investigator_a, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("a dashboard request computed endpoints")

    for name in ("episode_facts", "aggregate", "read_cohort"):
        monkeypatch.setattr(services, name, forbidden)
    client = as_user(investigator_a)
    for query in ({}, {"year": "2023"}, {"drug": "upadacitinib"}, {"dose": "upadacitinib_15", "year": "2024"}):
        for name in CENTER_URLS:
            assert client.get(url(name, "fr-tls", **query)).status_code == 200


# --- Downloads -----------------------------------------------------------------------------------


def test_every_table_downloads_as_results_csv_rows(registry, as_user, investigator_a):
    client = as_user(investigator_a)
    expected = io.StringIO()
    write_results_csv(compute_report(load_cohort(["fr-tls"])), expected)
    everything = client.get(url("center-dashboard-csv", "fr-tls"))
    assert everything["Content-Type"].startswith("text/csv")
    assert everything["Content-Disposition"].startswith('attachment; filename="fr-tls-results-')
    assert everything.content.decode() == expected.getvalue()
    for table in ("efficacy", "adverse_events", "escalation", "escalation_course", "baseline"):
        response = client.get(url("center-dashboard-csv", "fr-tls", table=table))
        rows = list(csv.DictReader(io.StringIO(response.content.decode())))
        assert {row["table"] for row in rows} <= {table}
        wanted = [line for line in expected.getvalue().splitlines()[1:] if line.startswith(table + ",")]
        assert response.content.decode().splitlines()[1:] == wanted


def test_a_download_follows_the_filters(registry, as_user, investigator_a):
    client = as_user(investigator_a)
    response = client.get(url("center-dashboard-csv", "fr-tls", table="efficacy", dose="upadacitinib_30"))
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert {row["group"] for row in rows} == {"all", "upadacitinib_30"}
    response = client.get(url("center-dashboard-csv", "fr-tls", table="efficacy", year="2023"))
    assert "-2023-" in response["Content-Disposition"]
    iga = next(row for row in csv.DictReader(io.StringIO(response.content.decode()))
               if (row["endpoint"], row["timepoint"], row["group"]) == ("iga_0_1_2", "m3", "all"))
    assert (iga["n"], iga["count"], iga["percent"]) == ("1", "1", "100.0")


def test_completeness_downloads_as_csv(registry, as_user, investigator_a):
    response = as_user(investigator_a).get(url("center-dashboard-csv", "fr-tls", table="completeness"))
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(row["center"], row["patients"], row["visits"]) for row in rows] == [
        ("fr-tls", "2", "4"), ("all", "2", "4")
    ]


def test_an_unknown_table_is_a_404(registry, as_user, investigator_a):
    client = as_user(investigator_a)
    assert client.get(url("center-dashboard-csv", "fr-tls", table="patients")).status_code == 404
    assert client.get(url("center-dashboard-csv", "fr-tls", table="breakdown")).status_code == 404


# --- Live -------------------------------------------------------------------------------------------


def test_the_status_says_when_the_figures_were_computed(registry, as_user, readonly_a):
    status = as_user(readonly_a).get(url("center-dashboard-status", "fr-tls"))
    snapshot = Snapshot.objects.get(scope="fr-tls")
    assert status["Cache-Control"] == "no-store"
    assert status.json()["computed_at"] == snapshot.computed_at.isoformat()
    assert status.json()["pending_changes"] == 0


def test_the_live_body_follows_a_newer_snapshot(registry, as_user, readonly_a, center_a):
    client = as_user(readonly_a)
    before = client.get(url("center-dashboard-live", "fr-tls")).json()
    add_patient(center_a, start=date(2024, 6, 1), visits=RESPONDER)
    services.recompute_scope("fr-tls")
    after = client.get(url("center-dashboard-live", "fr-tls")).json()
    assert after["computed_at"] > before["computed_at"]
    efficacy = tables_of(client.get(url("center-dashboard-live", "fr-tls")))["table-efficacy"]
    assert row_of(efficacy, "IGA 0, 1 or 2")[:2] == ["3", "2 (66.7%)"]


def test_polling_does_not_keep_the_session_alive(registry, as_user, readonly_a, settings):
    client = as_user(readonly_a)
    page = client.get(url("center-dashboard", "fr-tls"))
    assert settings.SESSION_COOKIE_NAME in page.cookies  # a page view renews the session
    for name in ("center-dashboard-status", "center-dashboard-live"):
        response = client.get(url(name, "fr-tls"))
        assert response.status_code == 200
        assert settings.SESSION_COOKIE_NAME not in response.cookies


# --- Cost of a request ------------------------------------------------------------------------------


def queries_of(client, path):
    cache.clear()
    with CaptureQueriesContext(connection) as queries:
        assert client.get(path).status_code == 200
    return len(queries)


@pytest.mark.parametrize("persona, path", [
    ("investigator_a", url("center-dashboard", "fr-tls")),
    ("investigator_a", url("center-dashboard", "fr-tls", year="2024", dose="upadacitinib_15")),
    ("coordinator", url("pooled-dashboard")),
    ("investigator_a", url("center-dashboard-status", "fr-tls")),
])
def test_a_dashboard_request_costs_the_same_queries_whatever_the_cohort(
    request, registry, as_user, persona, path, django_assert_max_num_queries
):
    client = as_user(request.getfixturevalue(persona))
    small = queries_of(client, path)
    center_a, center_b = registry
    for month in range(1, 13):
        add_patient(center_a, start=date(2024, month, 1), visits=RESPONDER)
        add_patient(center_b, start=date(2024, month, 2), visits=NON_RESPONDER)
    services.recompute_all_scopes()
    assert queries_of(client, path) == small
    cache.clear()
    with django_assert_max_num_queries(14):
        client.get(path)


def test_a_second_request_for_the_same_figures_reads_no_rows(registry, as_user, investigator_a):
    client = as_user(investigator_a)
    client.get(url("center-dashboard", "fr-tls"))
    with CaptureQueriesContext(connection) as queries:
        client.get(url("center-dashboard-live", "fr-tls"))
    snapshot_reads = [q["sql"] for q in queries if "endpoints_snapshot" in q["sql"]]
    assert len(snapshot_reads) == 1 and '"rows"' not in snapshot_reads[0]


def test_the_pooled_page_never_reads_the_centers_snapshots(registry, as_user, coordinator):
    client = as_user(coordinator)
    with CaptureQueriesContext(connection) as queries:
        client.get(url("pooled-dashboard"))
    scopes = [q["sql"] for q in queries if "endpoints_snapshot" in q["sql"]]
    assert scopes and all("'fr-tls'" not in sql and "es-bcn" not in sql for sql in scopes)
    assert len(scopes) <= 2
    assert POOLED
