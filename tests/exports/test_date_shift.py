"""Shifted dates: one offset per patient (day gaps intact), different across patients and
exports, never in the future; the birth year keeps the age at enrolment; the endpoint report of
the re-imported shifted export is the registry's."""
from collections import defaultdict
from datetime import date, timedelta

import pytest
from django.utils import timezone

from registry.clinical.models import Patient
from registry.datasets.exporter import DATE_SHIFT_MAX_DAYS, ExportOptions, export_bundle, shifted_birth_year
from registry.datasets.importer import import_bundle
from tests.exports.helpers import Export
from tests.exports.test_round_trip import empty_the_registry, report_text

pytestmark = pytest.mark.django_db

DATE_COLUMNS = {
    "patients.csv": ("patient_code", ["enrolled_on"]),
    "prior_treatments.csv": ("patient_code", ["start_date", "end_date"]),
    "episodes.csv": ("patient_code", ["start_date", "end_date"]),
    "visits.csv": ("patient_code", ["date"]),
    "adverse_events.csv": ("patient_code", ["onset_date", "end_date"]),
}
ROW_KEYS = {
    "patients.csv": ("patient_code",),
    "prior_treatments.csv": ("patient_code", "drug", "stop_reason"),
    "episodes.csv": ("episode_code",),
    "visits.csv": None,  # matched by order: same rows, same order
    "adverse_events.csv": ("patient_code", "term"),
}


def offsets_by_patient(plain: Export, shifted: Export):
    """patient code -> every (original - shifted) day difference of their dates."""
    offsets = defaultdict(set)
    for name, (code_column, columns) in DATE_COLUMNS.items():
        original, moved = plain.dicts(name), shifted.dicts(name)
        assert len(original) == len(moved)
        for before, after in zip(original, moved):
            assert before[code_column] == after[code_column]
            for column in columns:
                assert bool(before[column]) == bool(after[column])
                if before[column]:
                    days = (date.fromisoformat(before[column]) - date.fromisoformat(after[column])).days
                    offsets[before[code_column]].add(days)
    episode_patient = {row["episode_code"]: row["patient_code"] for row in plain.dicts("episodes.csv")}
    for before, after in zip(plain.dicts("dose_changes.csv"), shifted.dicts("dose_changes.csv")):
        days = (date.fromisoformat(before["date"]) - date.fromisoformat(after["date"])).days
        offsets[episode_patient[before["episode_code"]]].add(days)
    return offsets


def test_each_patient_moves_by_one_offset_and_patients_move_differently(french, tmp_path):
    plain = Export(export_bundle(tmp_path / "plain.zip").path)
    shifted = Export(export_bundle(tmp_path / "shifted.zip", ExportOptions(shift_dates=True)).path)
    offsets = offsets_by_patient(plain, shifted)
    assert len(offsets) == Patient.objects.count() == 100
    for code, days in offsets.items():
        assert len(days) == 1, f"{code}: several offsets {days}"
        assert 1 <= next(iter(days)) <= DATE_SHIFT_MAX_DAYS
    distinct = {next(iter(days)) for days in offsets.values()}
    assert len(distinct) > 60  # 100 patients drawn from 365 days


def test_two_exports_shift_the_same_patient_differently(cohort, tmp_path):
    first = Export(export_bundle(tmp_path / "1.zip", ExportOptions(shift_dates=True)).path)
    second = Export(export_bundle(tmp_path / "2.zip", ExportOptions(shift_dates=True)).path)
    assert [row["enrolled_on"] for row in first.dicts("patients.csv")] != [
        row["enrolled_on"] for row in second.dicts("patients.csv")
    ]


def test_no_shifted_date_is_in_the_future(cohort, tmp_path):
    from registry.clinical.models import Visit

    Visit.objects.create(patient=cohort["b1"], date=timezone.localdate(), easi=3)
    shifted = Export(export_bundle(tmp_path / "s.zip", ExportOptions(shift_dates=True)).path)
    today = timezone.localdate()
    for name, (_code, columns) in DATE_COLUMNS.items():
        for row in shifted.dicts(name):
            for column in columns:
                if row[column]:
                    assert date.fromisoformat(row[column]) < today


def test_the_birth_year_keeps_the_age_at_enrolment(cohort, tmp_path):
    shifted = {row["patient_code"]: row for row in Export(
        export_bundle(tmp_path / "s.zip", ExportOptions(shift_dates=True)).path
    ).dicts("patients.csv")}
    for patient in Patient.objects.all():
        row = shifted[patient.code]
        enrolled = date.fromisoformat(row["enrolled_on"])
        assert enrolled.year - int(row["birth_year"]) == patient.age_at_enrolment
    # b1 was enrolled on 2 January 2024: any shift of two days or more moves her to 2023.
    b1 = shifted[cohort["b1"].code]
    if date.fromisoformat(b1["enrolled_on"]).year == 2023:
        assert b1["birth_year"] == "2000"


def test_the_birth_year_rule():
    assert shifted_birth_year(2001, date(2024, 1, 2), date(2023, 12, 20)) == 2000
    assert shifted_birth_year(2001, date(2024, 6, 2), date(2024, 3, 1)) == 2001
    assert shifted_birth_year(1900, date(2024, 1, 2), date(2023, 12, 20)) == 1900  # not before 1900
    assert shifted_birth_year(None, date(2024, 1, 2), date(2023, 12, 20)) is None


@pytest.mark.django_db(transaction=True)
def test_the_report_of_a_reimported_shifted_export_is_the_registrys(french, tmp_path):
    """Day gaps, ages and everything else the endpoints read survive the shift."""
    before = report_text()
    result = export_bundle(tmp_path / "s.zip", ExportOptions(shift_dates=True, free_text=True))
    empty_the_registry()
    imported = import_bundle(result.path)
    assert imported.error_lines() == []
    assert report_text() == before
    assert Patient.objects.count() == 100


def test_typed_files_are_shifted_like_the_csvs(cohort, tmp_path):
    import io

    import pyarrow.parquet as pq

    shifted = Export(export_bundle(
        tmp_path / "s.zip", ExportOptions(shift_dates=True, parquet=True), date_shift_key="fixed",
    ).path)
    table = pq.read_table(io.BytesIO(shifted.member("parquet/visits.parquet"))).to_pylist()
    assert [row["date"].isoformat() for row in table] == [row["date"] for row in shifted.dicts("visits.csv")]
    assert all(row["date"] < timezone.localdate() - timedelta(days=0) for row in table)
