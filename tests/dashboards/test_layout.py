"""The papers' table layouts (endpoints.layout) against a small cohort worked out by hand.

The cells a PI reads are the report's numbers: every cell is checked against the row of
``compute_report`` it formats, and the hand-worked figures of tests/dashboards/conftest.py
are checked as printed.
"""
from html.parser import HTMLParser

import pytest
from django.utils import translation

from endpoints import layout
from endpoints.compute.report import compute_report
from endpoints.services import row_as_dict

GROUPS = ["all", "upadacitinib_15", "upadacitinib_30", "baricitinib_4"]


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


@pytest.fixture
def rows(cohort):
    return layout.Rows([row_as_dict(row) for row in compute_report(cohort)])


def grid(table):
    """Row label -> cell texts, for the table's data rows."""
    return {str(row.label): [str(cell.text) for cell in row.cells]
            for row in table.body if row.kind != "section"}


def headers(table, index):
    return [str(cell.text) for cell in table.head[index]]


# --- Formatting ----------------------------------------------------------------------------


@pytest.mark.parametrize("value, text", [
    (-3, "−3"), (-3.0, "−3"), (-5.5, "−5.5"), (2.75, "2.75"), (0.0, "0"), (-0.001, "0"),
    (None, "—"), (12.3456, "12.35"),
])
def test_numbers_are_printed_with_a_real_minus_sign_and_no_trailing_zeros(value, text):
    assert layout.number(value) == text


def test_a_change_reads_as_in_003():
    row = {"n": 49, "median": -3, "q1": -5, "q3": -1}
    assert layout.median_quartiles(row) == "−3 (−5; −1)"


def test_no_denominator_is_a_dash_never_zero_percent():
    assert layout.count_percent({"n": 0, "count": 0, "percent": None}) == "—"
    assert layout.count_percent({"n": 14, "count": 0, "percent": 0.0}) == "0 (0.0%)"
    assert layout.count_percent({"n": 54, "count": 33, "percent": 61.1}) == "33 (61.1%)"


def test_mean_and_sd_read_as_in_000():
    assert layout.mean_sd({"n": 21, "mean": 16.0, "sd": 7.3}) == "16.0 ± 7.3"
    assert layout.mean_sd({"n": 1, "mean": 13.0, "sd": None}) == "13.0"


def test_group_keys_become_drug_and_dose():
    assert str(layout.group_label("upadacitinib_15")) == "Upadacitinib 15 mg"
    assert str(layout.group_label("abrocitinib_200")) == "Abrocitinib 200 mg"
    assert str(layout.group_label("all")) == "All patients"


# --- 003, Table I ---------------------------------------------------------------------------


def test_efficacy_is_laid_out_as_003_table_i(rows):
    [table] = layout.efficacy_tables(rows, rows.groups("efficacy"))
    assert headers(table, 0) == ["Outcome", "Outcomes at M3", "Outcomes at M6"]
    assert headers(table, 1) == ["All patients", "Upadacitinib 15 mg", "Upadacitinib 30 mg",
                                 "Baricitinib 4 mg"] * 2
    assert headers(table, 2) == ["N", "n (%)"] * 8
    cells = grid(table)
    # M3 columns: all, upadacitinib 15, upadacitinib 30, baricitinib 4 (N, n (%) each)
    assert cells["IGA 0, 1 or 2"][:8] == ["3", "2 (66.7%)", "1", "1 (100.0%)", "1", "1 (100.0%)",
                                          "1", "0 (0.0%)"]
    assert cells["EASI75"][:2] == ["3", "1 (33.3%)"]
    assert cells["Itch NRS"][:4] == ["2", "−6.5 (−6.75; −6.25)", "1", "−6 (−6; −6)"]
    assert cells["Itch NRS"][6:8] == ["0", "—"]
    # nobody was seen at M6
    assert cells["IGA 0, 1 or 2"][8:] == ["0", "—"] * 4


def test_every_efficacy_cell_is_the_reports_number(rows):
    [table] = layout.efficacy_tables(rows, GROUPS)
    cells = grid(table)
    labels = dict(layout.RESPONDER_ROWS) | dict(layout.CHANGE_ROWS)
    checked = 0
    for endpoint, title in labels.items():
        for t, timepoint in enumerate(("m3", "m6")):
            for g, group in enumerate(GROUPS):
                row = rows.get("efficacy", endpoint, timepoint, group)
                n_text, value_text = cells[str(title)][(t * 4 + g) * 2:(t * 4 + g) * 2 + 2]
                assert n_text == str(row["n"])
                expected = (layout.median_quartiles(row) if endpoint.endswith("_change")
                            else layout.count_percent(row))
                assert value_text == expected
                checked += 1
    assert checked == 17 * 2 * 4


def test_many_groups_put_m3_and_m6_in_two_tables(rows):
    groups = GROUPS + ["abrocitinib_100"]
    tables = layout.efficacy_tables(rows, groups)
    assert [headers(table, 0)[0] for table in tables] == ["Outcomes at M3", "Outcomes at M6"]
    assert len(grid(tables[0])["EASI75"]) == 2 * len(groups)


def test_a_start_dose_filter_keeps_all_patients_and_that_group():
    groups = ["all", "upadacitinib_15", "upadacitinib_30", "baricitinib_4"]
    assert layout.select_groups(groups, group="upadacitinib_30") == ["all", "upadacitinib_30"]
    assert layout.select_groups(groups, drug="upadacitinib") == [
        "all", "upadacitinib_15", "upadacitinib_30"
    ]
    assert layout.select_groups(groups, drug="dupilumab") == ["all"]


# --- 003, Table II --------------------------------------------------------------------------


def test_adverse_events_are_laid_out_as_003_table_ii(rows):
    table = layout.adverse_events_table(rows, GROUPS)
    assert headers(table, 1) == ["N with data", "n (%)"] * 4
    cells = grid(table)
    assert cells["At least 1 adverse event"] == [
        "2", "1 (50.0%)", "1", "1 (100.0%)", "1", "0 (0.0%)", "0", "—"
    ]
    assert cells["At least 1 biological adverse event"][:2] == ["1", "1 (100.0%)"]
    assert cells["Cholesterol increased (LDL or total)"][:2] == ["1", "1 (100.0%)"]
    assert cells["Acne / papulopustular facial eruption"][:2] == ["2", "1 (50.0%)"]
    sections = [str(row.label) for row in table.body if row.kind == "section"]
    assert sections == ["Biological adverse events", "Clinical adverse events"]
    muted = {str(row.label) for row in table.body if row.muted}
    assert "Herpes zoster" in muted and "At least 1 adverse event" not in muted


# --- 000: escalation, time course, baseline ----------------------------------------------------


def test_the_escalation_summary_reads_as_000(rows):
    table = layout.escalation_table(rows, rows.groups("escalation"))
    assert [str(cell.text) for cell in table.head[0][1:]] == ["All patients", "Upadacitinib 30 mg"]
    assert [str(cell.note) for cell in table.head[0][1:]] == ["N = 1", "N = 1"]
    cells = grid(table)
    assert cells["Escalated by a dose change, n/N (%)"] == ["1/1 (100.0%)"] * 2
    assert cells["Days to escalation, median (Q1–Q3)"] == ["200 (200–200)"] * 2
    assert cells["Days at the high dose, median (Q1–Q3)"] == ["60 (60–60)"] * 2
    assert cells["Secondary failure"] == ["1/1 (100.0%)", ""]
    assert cells["Improved (EASI below pre-escalation)"] == ["1/1 (100.0%)"] * 2
    labels = [str(row.label) for row in table.body]
    pre = labels.index("Before escalation, mean ± SD")
    locf = labels.index("Last observation at the high dose, mean ± SD")
    assert [str(c.text) for c in table.body[pre + 1].cells] == ["20.0", "20.0"]  # EASI
    assert [str(c.text) for c in table.body[locf + 1].cells] == ["5.0", "5.0"]


def test_no_escalation_means_no_escalation_table(cohort):
    cohort.episodes[:] = [e for e in cohort.episodes if e.patient_code != "P4"]
    del cohort.patients["P4"]
    rows = layout.Rows([row_as_dict(row) for row in compute_report(cohort)])
    assert layout.escalation_table(rows, rows.groups("escalation")) is None
    assert layout.course_table(rows) is None


def test_the_time_course_charts_carry_n_under_each_point(rows):
    charts = layout.course_charts(rows)
    figure1 = charts["figure1"]
    assert [series["key"] for series in figure1["series"]] == ["easi", "bsa"]
    easi, bsa = figure1["series"]
    assert easi["data"][:3] == [20.0, 8.0, 5.0] and easi["n"][:3] == [1, 1, 1]
    assert bsa["data"][:3] == [30.0, 10.0, None] and bsa["n"][:3] == [1, 1, 0]
    assert figure1["labels"][0] == ["Week 0 (before)", "N = 1"]
    assert figure1["labels"][2] == ["Week 8", "N = 1 / 0"]
    assert not figure1["empty"] and charts["figure2"]["empty"]


def test_baseline_characteristics_are_laid_out_as_000_table_1(rows):
    table = layout.baseline_table(rows, GROUPS)
    assert [str(cell.note) for cell in table.head[0][1:]] == ["n = 5", "n = 2", "n = 2", "n = 1"]
    cells = grid(table)
    assert cells["Age (years), median (Q1, Q3)"] == ["34 (30, 44)", "29 (26.5, 31.5)",
                                                     "37 (33.5, 40.5)", "55 (55, 55)"]
    assert cells["Male"] == ["3 (60.0%)", "0 (0.0%)", "2 (100.0%)", "1 (100.0%)"]
    assert cells["Female"][0] == "2 (40.0%)"
    # comorbidity items nobody has are left out; the list's "any" row stays
    assert "Asthma" not in cells
    assert cells["Atopic comorbidities, n (%)"][0] == "0 (0.0%)"


# --- Completeness and the pooled breakdown ----------------------------------------------------


def completeness_entry(center, patients, **extra):
    entry = {
        "center": center, "patients": patients, "episodes": patients, "visits": 10,
        "visits_with": {"iga": 10, "easi": 5}, "m3_due": 4,
        "episodes_without_baseline": [["p1", "p1-e1"]], "episodes_without_m3": [],
        "patients_without_episode": [],
    }
    return entry | extra


def test_completeness_shows_shares_and_what_to_chase():
    table = layout.completeness_table(
        [completeness_entry("fr-tls", 4), completeness_entry("*", 4)],
        center_names={"fr-tls": "CHU de Toulouse"},
    )
    cells = grid(table)
    assert list(cells) == ["CHU de Toulouse"]  # one center: no total row
    row = cells["CHU de Toulouse"]
    assert row[:4] == ["4", "10", "100.0%", "50.0%"]
    assert row[-3:] == ["4", "1 (25.0%)", "0/4 (0.0%)"]


def figure(n, count):
    from endpoints.compute.stats import percent

    return {"n": n, "count": count, "percent": percent(count, n)}


BREAKDOWN = [
    {"center": "fr-tls", "patients": 3, "episodes": 3, "visits": 9, "iga_0_1_2_m3": figure(3, 2),
     "easi75_m3": figure(3, 1), "any_ae": figure(3, 0)},
    {"center": "es-bcn", "patients": 4, "episodes": 4, "visits": 9, "iga_0_1_2_m3": figure(4, 4),
     "easi75_m3": figure(4, 1), "any_ae": figure(4, 0)},
    {"center": "de-ber", "patients": 12, "episodes": 12, "visits": 40,
     "iga_0_1_2_m3": figure(10, 7), "easi75_m3": figure(10, 3), "any_ae": figure(12, 0)},
]


def test_the_coordinator_sees_every_cell_of_the_breakdown():
    rows = layout.breakdown_rows(BREAKDOWN)
    assert [row["patients"] for row in rows] == ["3", "4", "12"]
    assert rows[1]["iga_0_1_2_m3"].startswith("4/4")
    assert layout.SUPPRESSED not in str(rows)


def test_a_pi_sees_other_centers_small_cells_as_less_than_five():
    rows = {row["center"]: row for row in layout.breakdown_rows(BREAKDOWN, own_centers={"fr-tls"})}
    # own center: shown even though small
    assert rows["fr-tls"]["patients"] == "3" and rows["fr-tls"]["iga_0_1_2_m3"].startswith("2/3")
    # another center with fewer than 5 patients: every cell
    assert set(rows["es-bcn"].values()) == {"es-bcn", "<5"}
    # another, larger center: only its small counts
    assert rows["de-ber"]["patients"] == "12"
    assert rows["de-ber"]["iga_0_1_2_m3"].startswith("7/10")
    assert rows["de-ber"]["easi75_m3"] == "<5"
    assert rows["de-ber"]["any_ae"].startswith("0/12")


# --- HTML --------------------------------------------------------------------------------------


class CellCounter(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows = []

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append(0)
        elif tag in ("td", "th"):
            self.rows[-1] += int(dict(attrs).get("colspan", 1))


def test_the_html_escapes_text_and_every_row_spans_the_table(rows):
    [table] = layout.efficacy_tables(rows, GROUPS)
    table.body[0].label = "<script>x</script>"
    html = str(table.html)
    assert "<script>" not in html and "&lt;script&gt;" in html
    parser = CellCounter()
    parser.feed(html)
    body_rows = parser.rows[len(table.head):]
    assert set(body_rows) == {table.width}
