"""Snapshot rows -> the tables the papers print, ready for a template.

Pure functions: rows in (the dicts a snapshot stores, one per results.csv row), tables out. No
database, no request; labels are lazy translations. The numbers in every cell are the
report's numbers, only formatted: a PI reads on the dashboard what ``results.csv`` says.

- Efficacy: 003's Table I (endpoints as rows; M3 and M6, each by start-dose group and all,
  as columns; "N" and "n (%)"; changes as median (Q1; Q3)).
- Adverse events: 003's Table II (N with data and n (%), per term and group).
- Dose escalation: the figures of 000's text, and the time course of its Figure 1 and
  Supplementary Figure 2 (as chart data and as a table).
- Baseline characteristics: 000's Table 1.
- Data completeness per center, and the pooled dashboard's per-center breakdown (with small
  cells of other centers suppressed).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from html import escape as html_escape

from django.utils.functional import Promise
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from endpoints.compute import vocabulary as v
from registry.core.choices import label as code_label

ALL = "all"
MINUS = "\u2212"
DASH = "\u2014"
#: Per-center cells of other centers below this count are shown as "<5" (pooled dashboard).
SMALL_CELL = 5
SUPPRESSED = "<5"


# --- Formatting -----------------------------------------------------------------------------

def number(value, decimals: int = 2) -> str:
    """A figure as printed: at most ``decimals`` decimals, no trailing zeros, a real minus
    sign (−3, −5.5, 2.75). None is a dash."""
    if value is None:
        return DASH
    text = f"{value:.{decimals}f}".rstrip("0").rstrip(".") if decimals else f"{value:.0f}"
    if text in ("-0", ""):
        text = "0"
    return text.replace("-", MINUS)


def fixed(value, decimals: int = 1) -> str:
    """A figure with a fixed number of decimals (means and SDs: 16.0 ± 7.3)."""
    if value is None:
        return DASH
    text = f"{value:.{decimals}f}"
    if float(text) == 0:
        text = text.lstrip("-")
    return text.replace("-", MINUS)


def percent(value) -> str:
    return DASH if value is None else f"{value:.1f}%"


def count_percent(row: dict | None) -> str:
    """"n (%)" as in 003: 33 (61.1%). No denominator: a dash (never 0 %)."""
    if row is None or not row.get("n"):
        return DASH
    return f"{row['count']} ({percent(row['percent'])})"


def count_of_n(row: dict | None) -> str:
    """"n/N (%)": 14/21 (66.7%), for rows whose denominator is not the column's."""
    if row is None or not row.get("n"):
        return DASH
    return f"{row['count']}/{row['n']} ({percent(row['percent'])})"


def median_quartiles(row: dict | None, separator: str = "; ", decimals: int = 2) -> str:
    """Median (Q1; Q3) as in 003: −3 (−5; −1)."""
    if row is None or not row.get("n"):
        return DASH
    median, q1, q3 = (number(row[key], decimals) for key in ("median", "q1", "q3"))
    return f"{median} ({q1}{separator}{q3})"


def median_range(row: dict | None) -> str:
    """Median (Q1–Q3) as in 000's text: 266 (138–682)."""
    return median_quartiles(row, "\u2013")


def mean_sd(row: dict | None) -> str:
    """Mean ± SD as in 000: 16.0 ± 7.3 (a single value has no SD)."""
    if row is None or not row.get("n"):
        return DASH
    if row.get("sd") is None:
        return fixed(row["mean"])
    return f"{fixed(row['mean'])} \u00b1 {fixed(row['sd'])}"


def group_label(group: str):
    """``upadacitinib_15`` -> "Upadacitinib 15 mg"; ``all`` -> "All patients"."""
    if group == ALL:
        return _("All patients")
    drug, _sep, dose = group.rpartition("_")
    if not drug:
        return group
    return format_lazy("{drug} {dose} mg", drug=code_label(drug), dose=dose)


def group_drug(group: str) -> str:
    return group.rpartition("_")[0]


# --- Table structure ------------------------------------------------------------------------

@dataclass
class Cell:
    text: str | Promise = ""
    #: a second, smaller line (a denominator, "n = 12")
    note: str | Promise = ""
    colspan: int = 1
    rowspan: int = 1
    #: extra CSS classes ("text-end", "group-start", …)
    css: str = ""


@dataclass
class Row:
    label: str | Promise
    cells: list[Cell] = field(default_factory=list)
    #: "data", "item" (indented under the previous data row), or "section" (a heading row
    #: spanning the table; ``cells`` is empty)
    kind: str = "data"
    #: no event or no value in any column: drawn lighter
    muted: bool = False
    #: a link for the label (the completeness table links patients)
    href: str = ""


@dataclass
class Table:
    key: str
    title: str | Promise
    #: header rows; the first cell of the first row is the row-label header
    head: list[list[Cell]]
    body: list[Row]
    footnotes: list = field(default_factory=list)

    @property
    def html(self) -> SafeString:
        return table_html(self)

    @property
    def width(self) -> int:
        """Columns of the table, row labels included (a section row spans them all)."""
        return sum(cell.colspan for cell in self.head[0])


_SPECIAL = frozenset("&<>\"'")


def escape(text) -> str:
    """HTML-escape a text (a lazy translation is evaluated first). Most cells are figures
    with nothing to escape; they are returned as they are."""
    text = str(text)
    if _SPECIAL.isdisjoint(text):
        return text
    return html_escape(text)


def _cell_html(tag, cell, extra_class="", scope=""):
    attributes = f' scope="{scope}"' if scope else ""
    if cell.colspan > 1:
        attributes += f' colspan="{cell.colspan}"'
    if cell.rowspan > 1:
        attributes += f' rowspan="{cell.rowspan}"'
    css = f"{cell.css} {extra_class}".strip() if extra_class else cell.css
    if css:
        attributes += f' class="{escape(css)}"'
    note = f'<span class="cell-note">{escape(cell.note)}</span>' if cell.note else ""
    return f"<{tag}{attributes}>{escape(cell.text)}{note}</{tag}>"


def table_html(table: Table) -> SafeString:
    """The table as HTML. Written here rather than in a template loop: a pooled report has
    about two thousand cells, which Django's template engine renders in ~100 ms and this in a
    few; every text is escaped."""
    out = [f'<table class="table table-sm report-table mb-0" id="table-{escape(table.key)}">',
           f'<caption class="visually-hidden">{escape(table.title)}</caption><thead>']
    for row_index, head_row in enumerate(table.head):
        out.append("<tr>")
        for index, cell in enumerate(head_row):
            label = "row-label" if row_index == 0 and index == 0 else ""
            out.append(_cell_html("th", cell, label, "col"))
        out.append("</tr>")
    out.append("</thead><tbody>")
    width = table.width
    for row in table.body:
        if row.kind == "section":
            out.append(f'<tr class="row-section"><th colspan="{width}" scope="colgroup">'
                       f'{escape(row.label)}</th></tr>')
            continue
        css = f"row-{row.kind}" + (" row-muted" if row.muted else "")
        label = escape(row.label)
        if row.href:
            label = f'<a href="{escape(row.href)}">{label}</a>'
        out.append(f'<tr class="{css}"><th scope="row" class="row-label">{label}</th>')
        out.extend(_cell_html("td", cell) for cell in row.cells)
        out.append("</tr>")
    out.append("</tbody></table>")
    return mark_safe("".join(out))  # noqa: S308 - every text above is escaped


class Rows:
    """Snapshot rows indexed by (table, endpoint, timepoint, group)."""

    def __init__(self, rows: list[dict]):
        self.rows = rows
        self.index = {}
        self._groups: dict[str, dict] = {}
        for row in rows:
            self.index[(row["table"], row["endpoint"], row["timepoint"], row["group"])] = row
            self._groups.setdefault(row["table"], {}).setdefault(row["group"], None)

    def get(self, table, endpoint, timepoint, group) -> dict | None:
        return self.index.get((table, endpoint, timepoint, group))

    def groups(self, table: str) -> list[str]:
        """The groups a table reports, in the report's order (``all`` first)."""
        return list(self._groups.get(table, ()))

    def start_dose_groups(self) -> list[str]:
        """Every start-dose group of the scope (those of the efficacy table, which lists
        every group that has episodes), ``all`` excluded."""
        return [group for group in self.groups("efficacy") if group != ALL]


def select_groups(groups: list[str], *, drug: str = "", group: str = "") -> list[str]:
    """The columns to show: ``all`` (when the table has it) and the start-dose groups that
    pass the filters (one drug's groups, or one start-dose group)."""
    chosen = [ALL] if ALL in groups else []
    for key in groups:
        if key == ALL:
            continue
        if group and key != group:
            continue
        if drug and group_drug(key) != drug:
            continue
        chosen.append(key)
    return chosen


def _group_header(groups, span=2, note_of=None):
    cells = []
    for index, group in enumerate(groups):
        cells.append(Cell(
            group_label(group), note=note_of(group) if note_of else "", colspan=span,
            css="text-center group-start" + (" group-all" if group == ALL else ""),
        ))
    return cells


# --- 003, Table I: efficacy -----------------------------------------------------------------

TIMEPOINT_LABELS = {"m3": _("Outcomes at M3"), "m6": _("Outcomes at M6")}
RESPONDER_ROWS = (
    ("iga_0_1_2", _("IGA 0, 1 or 2")),
    ("iga_0_1", _("IGA 0 or 1")),
    ("viga_response", _("vIGA-AD response (IGA 0/1, ≥ 2 grades better)")),
    ("scorad50", _("SCORAD50")),
    ("scorad75", _("SCORAD75")),
    ("scorad90", _("SCORAD90")),
    ("easi50", _("EASI50")),
    ("easi75", _("EASI75")),
    ("easi90", _("EASI90")),
    ("easi100", _("EASI100")),
    ("pruritus_nrs4", _("Itch NRS ≥ 4 points better")),
    ("dlqi4", _("DLQI ≥ 4 points better")),
)
CHANGE_ROWS = (
    ("pruritus_nrs_change", _("Itch NRS")),
    ("dlqi_change", _("DLQI")),
    ("easi_change", _("EASI")),
    ("scorad_change", _("SCORAD")),
    ("bsa_change", _("BSA (%)")),
)


#: Up to this many group columns, M3 and M6 stand side by side as in 003's Table I; with more,
#: one table per timepoint, one above the other, so that the page stays readable.
SIDE_BY_SIDE_GROUPS = 4


def efficacy_tables(rows: Rows, groups: list[str]) -> list[Table]:
    """003's Table I: one table with M3 and M6 side by side, or one per timepoint when there
    are more than :data:`SIDE_BY_SIDE_GROUPS` columns of groups."""
    if len(groups) <= SIDE_BY_SIDE_GROUPS:
        return [efficacy_table(rows, groups)]
    return [efficacy_table(rows, groups, (timepoint,)) for timepoint in ("m3", "m6")]


def efficacy_table(rows: Rows, groups: list[str], timepoints=("m3", "m6")) -> Table:
    """003's Table I. ``groups``: the columns, ``all`` first (see :func:`select_groups`)."""
    group_row = [cell for _tp in timepoints for cell in _group_header(groups)]
    if len(timepoints) > 1:
        head = [[Cell(_("Outcome"), rowspan=3)] + [
            Cell(TIMEPOINT_LABELS[tp], colspan=2 * len(groups), css="text-center timepoint-start")
            for tp in timepoints
        ], group_row]
    else:
        # One timepoint per table: its name heads the outcome column.
        head = [[Cell(TIMEPOINT_LABELS[timepoints[0]], rowspan=2, css="timepoint-label")] + group_row]
    head += [
        [
            cell for _tp in timepoints for _g in groups
            for cell in (
                Cell(_("N"), css="text-end group-start"),
                Cell(_("n (%)"), css="text-end"),
            )
        ],
    ]
    body = []
    for endpoint, title in RESPONDER_ROWS:
        cells, any_data = [], False
        for tp in timepoints:
            for group in groups:
                row = rows.get("efficacy", endpoint, tp, group)
                n = row["n"] if row else 0
                any_data = any_data or bool(n)
                cells.append(Cell(str(n), css="text-end group-start text-body-secondary"))
                cells.append(Cell(count_percent(row), css="text-end"))
        body.append(Row(title, cells, muted=not any_data))
    body.append(Row(_("Change from baseline, median (Q1; Q3)"), kind="section"))
    for endpoint, title in CHANGE_ROWS:
        cells, any_data = [], False
        for tp in timepoints:
            for group in groups:
                row = rows.get("efficacy", endpoint, tp, group)
                n = row["n"] if row else 0
                any_data = any_data or bool(n)
                cells.append(Cell(str(n), css="text-end group-start text-body-secondary"))
                cells.append(Cell(median_quartiles(row), css="text-end text-nowrap"))
        body.append(Row(title, cells, muted=not any_data))
    key = "efficacy" if len(timepoints) > 1 else f"efficacy-{timepoints[0]}"
    return Table(
        key, _("Efficacy at month 3 and month 6"), head, body,
        footnotes=[
            _("N: episodes with both a baseline value and a value in the window. M3: the worst "
              "value of months 2 to 4 of treatment; M6: of months 5 to 7."),
            _("Change: worst value in the window minus baseline (negative = better)."),
        ],
    )


# --- 003, Table II: adverse events ----------------------------------------------------------

ANY_AE_ROWS = (
    ("any_ae", _("At least 1 adverse event")),
    ("any_biological_ae", _("At least 1 biological adverse event")),
    ("any_clinical_ae", _("At least 1 clinical adverse event")),
)


def adverse_events_table(rows: Rows, groups: list[str]) -> Table:
    tp = "on_treatment"
    head = [
        [Cell(_("Adverse event"), rowspan=2)] + _group_header(groups),
        [
            cell for _g in groups
            for cell in (
                Cell(_("N with data"), css="text-end group-start"),
                Cell(_("n (%)"), css="text-end"),
            )
        ],
    ]

    def row_for(endpoint, title, kind="data"):
        cells, any_event = [], False
        for group in groups:
            row = rows.get("adverse_events", endpoint, tp, group)
            n = row["n"] if row else 0
            any_event = any_event or bool(row and row["count"])
            cells.append(Cell(str(n), css="text-end group-start text-body-secondary"))
            cells.append(Cell(count_percent(row), css="text-end"))
        return Row(title, cells, kind=kind, muted=not any_event)

    body = [row_for(endpoint, title) for endpoint, title in ANY_AE_ROWS]
    body.append(Row(_("Biological adverse events"), kind="section"))
    body += [row_for(term, code_label(term), "item") for term in v.BIOLOGICAL_TERMS]
    body.append(Row(_("Clinical adverse events"), kind="section"))
    body += [row_for(term, code_label(term), "item") for term in v.CLINICAL_TERMS]
    return Table(
        "adverse_events", _("Adverse events on treatment"), head, body,
        footnotes=[
            _("N: episodes with data for the term (a checklist answer, a logged event or, for "
              "biological terms, an on-treatment lab value). Biological events: a logged event "
              "or a value beyond the center's reference range while the baseline value was "
              "within it."),
        ],
    )


# --- 000: dose escalation -------------------------------------------------------------------

ESCALATION_SCORES = (
    ("easi", _("EASI")),
    ("bsa", _("BSA (%)")),
    ("iga", _("IGA")),
    ("pruritus_nrs", _("Itch NRS")),
    ("dlqi", _("DLQI")),
)


def escalation_table(rows: Rows, groups: list[str]) -> Table | None:
    """000's escalation figures: columns are the groups with an episode that reaches the high
    dose. None when no episode of the scope does."""
    table = "escalation"

    def n_of(group):
        row = rows.get(table, "escalated", "", group)
        return row["n"] if row else 0

    if not n_of(ALL):
        return None
    head = [[Cell(_("Episodes reaching the high dose"))] + [
        Cell(group_label(group), note=format_lazy(_("N = {n}"), n=n_of(group)),
             css="text-end group-start")
        for group in groups
    ]]
    body = []

    def add(title, endpoint, timepoint, formatter, kind="data", all_only=False):
        cells, any_value = [], False
        for group in groups:
            if all_only and group != ALL:
                cells.append(Cell("", css="group-start"))
                continue
            row = rows.get(table, endpoint, timepoint, group)
            any_value = any_value or bool(row and row["n"])
            note = ""
            if row and row["n"] and formatter in (median_range, mean_sd):
                note = format_lazy(_("n = {n}"), n=row["n"])
            cells.append(Cell(formatter(row), note=note, css="text-end text-nowrap group-start"))
        body.append(Row(title, cells, kind=kind, muted=not any_value))

    add(_("Escalated by a dose change, n/N (%)"), "escalated", "", count_of_n)
    add(_("Started at the high dose, n/N (%)"), "started_high", "", count_of_n)
    add(_("Days to escalation, median (Q1–Q3)"), "days_to_escalation", "", median_range)
    add(_("Days at the high dose, median (Q1–Q3)"), "days_at_high_dose", "", median_range)
    reasons = [
        reason for reason in v.REASONS
        if (rows.get(table, f"escalation_reason_{reason}", "", ALL) or {}).get("count")
    ]
    if reasons:
        body.append(Row(_("Reason for escalation (escalated episodes), n/N (%)"), kind="section"))
        for reason in reasons:
            add(code_label(reason), f"escalation_reason_{reason}", "", count_of_n, "item", True)
    body.append(Row(_("Before escalation, mean ± SD"), kind="section"))
    for score, title in ESCALATION_SCORES:
        add(title, score, "pre_escalation", mean_sd, "item")
    body.append(Row(_("Last observation at the high dose, mean ± SD"), kind="section"))
    for score, title in ESCALATION_SCORES:
        add(title, score, "locf_high_dose", mean_sd, "item")
    body.append(Row(_("Response at the last observation at the high dose, n/N (%)"), kind="section"))
    add(_("Improved (EASI below pre-escalation)"), "improved", "locf_high_dose", count_of_n, "item")
    add(_("EASI50 from pre-escalation"), "easi50", "locf_high_dose", count_of_n, "item")
    add(_("EASI75 from pre-escalation"), "easi75", "locf_high_dose", count_of_n, "item")
    body.append(Row(_("Outcome"), kind="section"))
    add(_("De-escalated with disease controlled"), "deescalated_controlled", "", count_of_n, "item")
    add(_("Adverse event at the high dose"), "any_ae_at_high_dose", "", count_of_n, "item")
    return Table(
        "escalation", _("Dose escalation above the highest approved dose"), head, body,
        footnotes=[
            _("N: episodes that reach a dose above the drug's highest approved dose for atopic "
              "dermatitis (upadacitinib: above 30 mg)."),
        ],
    )


COURSE_WEEKS = (0, 4, 8, 12, 16, 24)
COURSE_SCORES = (("easi", _("EASI")), ("bsa", _("BSA (%)")), ("pruritus_nrs", _("Itch NRS")),
                 ("dlqi", _("DLQI")))
#: 000's Figure 1 (EASI, BSA) and Supplementary Figure 2 (itch NRS, DLQI)
CHARTS = (
    ("figure1", _("Mean EASI and BSA since escalation"), ("easi", "bsa")),
    ("figure2", _("Mean itch NRS and DLQI since escalation"), ("pruritus_nrs", "dlqi")),
)


def week_label(week: int):
    return _("Week 0 (before)") if week == 0 else format_lazy(_("Week {week}"), week=week)


def course_table(rows: Rows) -> Table | None:
    """The time course as a table (weeks as rows, scores as columns: mean ± SD and N)."""
    if not any((rows.get("escalation_course", s, f"week_{w}", ALL) or {}).get("n")
               for w in COURSE_WEEKS for s, _t in COURSE_SCORES):
        return None
    head = [[Cell(_("Weeks since the first high-dose day"), rowspan=2)] + [
        Cell(title, colspan=2, css="text-center group-start") for _s, title in COURSE_SCORES
    ], [
        cell for _s in COURSE_SCORES for cell in (
            Cell(_("N"), css="text-end group-start"), Cell(_("mean ± SD"), css="text-end"),
        )
    ]]
    body = []
    for week in COURSE_WEEKS:
        cells = []
        for score, _title in COURSE_SCORES:
            row = rows.get("escalation_course", score, f"week_{week}", ALL)
            cells.append(Cell(str(row["n"] if row else 0), css="text-end group-start text-body-secondary"))
            cells.append(Cell(mean_sd(row), css="text-end text-nowrap"))
        body.append(Row(week_label(week), cells))
    return Table(
        "escalation_course", _("Time course after escalation"), head, body,
        footnotes=[_("Week 0: the pre-escalation baseline. Later weeks: the visit nearest to "
                     "the week within ± 2 weeks.")],
    )


def course_charts(rows: Rows) -> dict:
    """Chart.js data of 000's Figure 1 and Supplementary Figure 2, N under each point."""
    charts = {}
    for key, title, scores in CHARTS:
        series = []
        for score in scores:
            found = [rows.get("escalation_course", score, f"week_{w}", ALL) or {} for w in COURSE_WEEKS]
            series.append({
                "key": score,
                "label": str(dict(COURSE_SCORES)[score]),
                "data": [row.get("mean") if row.get("n") else None for row in found],
                "sd": [row.get("sd") for row in found],
                "n": [row.get("n") or 0 for row in found],
            })
        labels = []
        for index, week in enumerate(COURSE_WEEKS):
            counts = [s["n"][index] for s in series]
            n_text = str(counts[0]) if len(set(counts)) == 1 else " / ".join(map(str, counts))
            labels.append([str(week_label(week)), str(format_lazy(_("N = {n}"), n=n_text))])
        charts[key] = {
            "title": str(title),
            "labels": labels,
            "series": series,
            "empty": not any(any(s["n"]) for s in series),
            "x_title": str(_("Weeks since the first high-dose day")),
            "n_label": str(_("N")),
        }
    return charts


# --- 000, Table 1: baseline characteristics -------------------------------------------------

COMORBIDITY_TITLES = {
    "atopic_comorbidities": (_("Atopic comorbidities, n (%)"), "any_atopic_comorbidity"),
    "autoimmune_comorbidities": (_("Autoimmune comorbidities, n (%)"), "any_autoimmune_comorbidity"),
    "cv_risk_factors": (_("Cardiovascular risk factors, n (%)"), "any_cv_risk_factor"),
    "neoplasia_last_5y": (_("History of neoplasia (last 5 years), n (%)"), "any_neoplasia_last_5y"),
}


def _item_endpoint(column, code):
    return f"{column}_other" if code == "other" else code


def baseline_table(rows: Rows, groups: list[str]) -> Table:
    table = "baseline"

    def patients(group):
        row = rows.get(table, "sex_male", "", group)
        return row["n"] if row else 0

    head = [[Cell(_("Characteristic"))] + [
        Cell(group_label(group), note=format_lazy(_("n = {n}"), n=patients(group)),
             css="text-end group-start")
        for group in groups
    ]]
    body = []

    def add(title, endpoint, formatter=count_percent, kind="data", hide_when_zero=False):
        cells, present = [], False
        for group in groups:
            row = rows.get(table, endpoint, "", group)
            present = present or bool(row and (row.get("count") or row.get("median") is not None))
            note = ""
            if formatter is not count_percent and row and row["n"] != patients(group):
                note = format_lazy(_("n = {n}"), n=row["n"])
            cells.append(Cell(formatter(row), note=note, css="text-end text-nowrap group-start"))
        if hide_when_zero and not present:
            return
        body.append(Row(title, cells, kind=kind, muted=not present))

    def quartiles_comma(row):
        """000's Table 1: 33 (26, 38), one decimal at most."""
        return median_quartiles(row, ", ", 1)

    add(_("Age (years), median (Q1, Q3)"), "age", quartiles_comma)
    body.append(Row(_("Sex, n (%)"), kind="section"))
    for sex in v.SEXES:
        add(code_label(sex), f"sex_{sex}", kind="item")
    add(_("BMI (kg/m²), median (Q1, Q3)"), "bmi", quartiles_comma)
    for column, codes in v.COMORBIDITY_LISTS.items():
        title, any_endpoint = COMORBIDITY_TITLES[column]
        add(title, any_endpoint)
        for code in codes:
            item_title = _("Other") if code == "other" else code_label(code)
            add(item_title, _item_endpoint(column, code), kind="item", hide_when_zero=True)
    body.append(Row(_("Predominant clinical subtype of AD, n (%)"), kind="section"))
    for subtype in v.AD_SUBTYPES:
        add(code_label(subtype), f"subtype_{subtype}", kind="item")
    add(_("Involvement of special areas: at least one, n (%)"), "any_special_area")
    for area in v.SPECIAL_AREAS:
        add(code_label(area), area, kind="item")
    add(_("Previously treated with biologics or JAK inhibitors, n (%)"), "prior_advanced")
    add(_("Number of prior biologics and JAK inhibitors, median (Q1–Q3)"),
        "prior_advanced_count", median_range)
    body.append(Row(_("Previous systemic treatments, n (%)"), kind="section"))
    for drug in v.DRUGS:
        add(code_label(drug), f"prior_{drug}", kind="item", hide_when_zero=True)
    return Table(
        "baseline", _("Baseline characteristics"), head, body,
        footnotes=[
            _("Patients, not episodes: a patient is counted once in All and once in the group "
              "of each of their episodes. Age: enrolment year minus birth year. Comorbidities "
              "and prior treatments that no patient has are not listed."),
        ],
    )


# --- Data completeness ----------------------------------------------------------------------

COMPLETENESS_SCORES = (
    ("iga", _("IGA")), ("easi", _("EASI")), ("scorad", _("SCORAD")), ("bsa", _("BSA")),
    ("pruritus_nrs", _("Itch NRS")), ("sleep_nrs", _("Sleep NRS")), ("dlqi", _("DLQI")),
    ("poem", _("POEM")),
)


def share(count: int, total: int) -> str:
    if not total:
        return DASH
    tenths = (2000 * count + total) // (2 * total)
    return f"{tenths / 10:.1f}%"


def completeness_table(entries: list[dict], center_names: dict | None = None) -> Table:
    """Per center: the share of visits with each score, and the episodes without a baseline
    visit or an M3 visit. The scope's total comes last when there are several centers."""
    center_names = center_names or {}
    head = [
        [Cell(_("Center"), rowspan=2), Cell(_("Patients"), rowspan=2, css="text-end"),
         Cell(_("Visits"), rowspan=2, css="text-end"),
         Cell(_("Visits recording the score"), colspan=len(COMPLETENESS_SCORES),
              css="text-center group-start"),
         Cell(_("Episodes"), colspan=3, css="text-center group-start")],
        [Cell(title, css="text-end" + (" group-start" if i == 0 else ""))
         for i, (_s, title) in enumerate(COMPLETENESS_SCORES)] + [
            Cell(_("Total"), css="text-end group-start"),
            Cell(_("Without baseline visit"), css="text-end"),
            Cell(_("Without M3 visit"), css="text-end"),
        ],
    ]
    centers = [entry for entry in entries if entry["center"] != "*"]
    shown = centers + ([e for e in entries if e["center"] == "*"] if len(centers) > 1 else [])
    body = []
    for entry in shown:
        visits = entry["visits"]
        cells = [Cell(str(entry["patients"]), css="text-end"), Cell(str(visits), css="text-end")]
        for index, (score, _title) in enumerate(COMPLETENESS_SCORES):
            cells.append(Cell(share(entry["visits_with"].get(score, 0), visits),
                              css="text-end" + (" group-start" if index == 0 else "")))
        episodes = entry["episodes"]
        no_baseline = len(entry["episodes_without_baseline"])
        no_m3 = len(entry["episodes_without_m3"])
        cells += [
            Cell(str(episodes), css="text-end group-start"),
            Cell(f"{no_baseline} ({share(no_baseline, episodes)})" if episodes else DASH,
                 css="text-end" + (" text-danger" if no_baseline else "")),
            Cell(f"{no_m3}/{entry['m3_due']} ({share(no_m3, entry['m3_due'])})"
                 if entry["m3_due"] else DASH,
                 css="text-end" + (" text-danger" if no_m3 else "")),
        ]
        title = _("All centers") if entry["center"] == "*" else (
            center_names.get(entry["center"]) or entry["center"]
        )
        body.append(Row(title, cells, kind="total" if entry["center"] == "*" else "data"))
    return Table(
        "completeness", _("Data completeness"), head, body,
        footnotes=[
            _("Without baseline visit: no visit from day −30 to day 0 of the episode. Without "
              "M3 visit: followed past day 136 (ended, or ongoing today) and no visit from day "
              "46 to day 136; the denominator is the episodes past that window."),
        ],
    )


def chase_list(entry: dict, limit: int = 50) -> dict:
    """What to chase at one center: (patient, episode) pairs, at most ``limit`` of each."""
    return {
        "without_baseline": entry["episodes_without_baseline"][:limit],
        "without_baseline_more": max(0, len(entry["episodes_without_baseline"]) - limit),
        "without_m3": entry["episodes_without_m3"][:limit],
        "without_m3_more": max(0, len(entry["episodes_without_m3"]) - limit),
        "without_episode": entry["patients_without_episode"][:limit],
        "without_episode_more": max(0, len(entry["patients_without_episode"]) - limit),
    }


# --- Pooled: per-center breakdown -----------------------------------------------------------

BREAKDOWN_COLUMNS = (
    ("iga_0_1_2_m3", _("IGA 0, 1 or 2 at M3")),
    ("easi75_m3", _("EASI75 at M3")),
    ("any_ae", _("At least 1 adverse event")),
)


def suppressed_figure(figure: dict | None) -> bool:
    """A cell is small when its denominator or its count is 1 to 4 patients."""
    if not figure:
        return False
    n, count = figure.get("n") or 0, figure.get("count") or 0
    return 0 < n < SMALL_CELL or 0 < count < SMALL_CELL


def breakdown_table(entries: list[dict], *, own_centers=None, center_names=None) -> Table:
    """Headline figures per center. ``own_centers``: center codes whose cells are never
    suppressed (None: no suppression, the coordinator's view); other centers' cells that
    count fewer than 5 patients read "<5"."""
    center_names = center_names or {}
    head = [[Cell(_("Center")), Cell(_("Patients"), css="text-end"),
             Cell(_("Episodes"), css="text-end")] + [
        Cell(title, note=_("n/N (%)"), css="text-end group-start") for _k, title in BREAKDOWN_COLUMNS
    ]]
    body = []
    for entry in breakdown_rows(entries, own_centers=own_centers):
        cells = [Cell(entry["patients"], css="text-end"), Cell(entry["episodes"], css="text-end")]
        for key, _title in BREAKDOWN_COLUMNS:
            cells.append(Cell(entry[key], css="text-end text-nowrap group-start"))
        name = center_names.get(entry["center"]) or entry["center"]
        body.append(Row(name, cells))
    footnotes = [_("All enrolment years and all treatments; N as in the efficacy and adverse "
                   "event tables.")]
    if own_centers is not None:
        footnotes.append(_("Cells of other centers that count fewer than 5 patients are shown "
                           "as <5."))
    return Table("breakdown", _("Per-center breakdown"), head, body, footnotes=footnotes)


def breakdown_figures(entries: list[dict], *, own_centers=None) -> list[dict]:
    """The breakdown with suppression applied: every count of another center's small cell
    (and every figure of a center with fewer than 5 patients) replaced by "<5". The page and
    the CSV download both read this, so a suppressed figure never leaves the server."""
    out = []
    for entry in entries:
        protect = own_centers is not None and entry["center"] not in own_centers
        small_center = protect and 0 < entry["patients"] < SMALL_CELL

        def count(value):
            return SUPPRESSED if protect and (small_center or 0 < value < SMALL_CELL) else value

        row = {
            "center": entry["center"],
            "patients": count(entry["patients"]),
            "episodes": count(entry["episodes"]),
        }
        for key, _title in BREAKDOWN_COLUMNS:
            figure = entry.get(key) or {"n": 0, "count": 0, "percent": None}
            if protect and (small_center or suppressed_figure(figure)):
                row[key] = {"n": SUPPRESSED, "count": SUPPRESSED, "percent": SUPPRESSED,
                            "suppressed": True}
            else:
                row[key] = {**figure, "suppressed": False}
        out.append(row)
    return out


def breakdown_rows(entries: list[dict], *, own_centers=None) -> list[dict]:
    """:func:`breakdown_figures` as display strings."""
    out = []
    for entry in breakdown_figures(entries, own_centers=own_centers):
        row = {key: str(entry[key]) for key in ("center", "patients", "episodes")}
        for key, _title in BREAKDOWN_COLUMNS:
            figure = entry[key]
            row[key] = SUPPRESSED if figure["suppressed"] else count_of_n(figure)
        out.append(row)
    return out
