"""What is in the zip: the bundle's CSVs with dataset-format.md's columns, the data dictionary,
datapackage.json, and on request an Excel workbook and typed Parquet files."""
import csv
import io
import zipfile
from datetime import date
from decimal import Decimal

import pytest
from django.db import connection

from registry.datasets.columns import FILES
from registry.datasets.exporter import ExportOptions, export_bundle
from tests.exports.conftest import AWKWARD, FORMULA
from tests.exports.helpers import BUNDLE_FILES, Export, validate_package

pytestmark = pytest.mark.django_db

CLINICAL_TERMS = (
    "acne", "herpes_simplex", "herpes_zoster", "headache", "upper_respiratory_infection",
    "nausea", "diarrhea", "abdominal_pain", "cough", "fever", "weight_increase",
    "conjunctivitis", "serious_infection", "venous_thromboembolism", "mace", "malignancy",
    "other_clinical",
)
#: The columns of dataset-format.md, version 1, written out from the document.
DATASET_FORMAT = {
    "centers.csv": ["center_code", "name", "country"],
    "lab_ranges.csv": ["center_code", "analyte", "lower", "upper"],
    "patients.csv": [
        "patient_code", "center_code", "sex", "birth_year", "height_cm", "weight_kg",
        "ad_onset_age", "ad_subtype", "special_areas", "atopic_comorbidities",
        "autoimmune_comorbidities", "cv_risk_factors", "neoplasia_last_5y", "enrolled_on",
    ],
    "prior_treatments.csv": ["patient_code", "drug", "start_date", "end_date", "stop_reason"],
    "episodes.csv": [
        "episode_code", "patient_code", "drug", "start_date", "start_dose_mg", "end_date",
        "end_reason",
    ],
    "dose_changes.csv": ["episode_code", "date", "dose_mg", "reason"],
    "visits.csv": [
        "patient_code", "date", "iga", "easi", "scorad", "bsa", "pruritus_nrs", "sleep_nrs",
        "dlqi", "poem", "total_cholesterol", "ldl", "triglycerides", "alt", "ast", "cpk",
        "lymphocytes", "neutrophils", "platelets", "hemoglobin", "creatinine",
        *(f"aesi_{term}" for term in CLINICAL_TERMS),
    ],
    "adverse_events.csv": [
        "patient_code", "episode_code", "term", "onset_date", "end_date", "severity", "serious",
        "action", "outcome", "description",
    ],
}


@pytest.fixture
def full_export(cohort, tmp_path):
    result = export_bundle(tmp_path / "full.zip", ExportOptions(free_text=True, excel=True, parquet=True))
    return result, Export(result.path)


def test_the_zip_holds_one_folder_with_the_bundle_the_dictionary_and_the_package(full_export):
    result, export = full_export
    assert export.folder.startswith("ad-registry-export-")
    assert export.files == sorted([
        *BUNDLE_FILES, "data_dictionary.csv", "data_dictionary.html", "datapackage.json",
        "dataset.xlsx", *(f"parquet/{name.removesuffix('.csv')}.parquet" for name in BUNDLE_FILES),
    ])
    assert result.members == export.names


def test_without_excel_or_parquet_the_zip_has_only_the_bundle_and_its_descriptions(cohort, tmp_path):
    export = Export(export_bundle(tmp_path / "plain.zip").path)
    assert export.files == sorted([*BUNDLE_FILES, "data_dictionary.csv", "data_dictionary.html", "datapackage.json"])


def test_csv_headers_are_the_columns_of_dataset_format_md(full_export):
    _result, export = full_export
    for name, columns in DATASET_FORMAT.items():
        header, _rows = export.table(name)
        assert header == columns, name
    assert [spec.name for spec in FILES] == list(DATASET_FORMAT)


def test_cells_are_written_as_the_format_says(full_export, cohort):
    _result, export = full_export
    patients = {row["patient_code"]: row for row in export.dicts("patients.csv")}
    a1 = patients[cohort["a1"].code]
    assert a1["special_areas"] == "hands;face_neck"
    assert a1["autoimmune_comorbidities"] == ""
    assert (a1["height_cm"], a1["weight_kg"], a1["enrolled_on"]) == ("165.5", "60.2", "2024-01-10")
    visits = export.dicts("visits.csv")
    first = next(v for v in visits if v["patient_code"] == cohort["a1"].code and v["date"] == "2024-01-10")
    assert (first["easi"], first["iga"], first["ldl"], first["lymphocytes"]) == ("24.5", "3", "2.9", "1.0")
    assert (first["aesi_acne"], first["aesi_headache"]) == ("no", "")
    events = {row["term"]: row for row in export.dicts("adverse_events.csv")}
    assert events["acne"]["description"] == FORMULA  # verbatim: the CSV is the exchange format
    assert events["herpes_simplex"]["description"] == AWKWARD
    assert events["herpes_simplex"]["episode_code"] == f"{cohort['a1'].code}-e1"  # derived, then stored
    assert events["conjunctivitis"]["serious"] == "yes"


def test_row_counts_are_the_rows_of_each_csv(full_export):
    result, export = full_export
    for name in BUNDLE_FILES:
        assert result.row_counts[name] == len(export.table(name)[1])
    assert result.row_counts["visits.csv"] == 6 and result.row_counts["patients.csv"] == 3


def test_datapackage_json_is_a_valid_table_schema_package_consistent_with_the_csvs(full_export):
    _result, export = full_export
    assert validate_package(export) == []
    package = export.package()
    resources = {resource["name"]: resource for resource in package["resources"]}
    visits = resources["visits"]["schema"]
    fields = {field["name"]: field for field in visits["fields"]}
    assert fields["easi"]["type"] == "number"
    assert fields["easi"]["constraints"] == {"minimum": 0, "maximum": 72}
    assert fields["iga"] == {**fields["iga"], "type": "integer", "constraints": {"minimum": 0, "maximum": 4}}
    assert fields["date"]["type"] == "date" and fields["date"]["constraints"]["required"] is True
    assert fields["aesi_acne"]["trueValues"] == ["yes"] and fields["aesi_acne"]["falseValues"] == ["no"]
    assert fields["ldl"]["unit"] == "mmol/L"
    assert visits["primaryKey"] == ["patient_code", "date"]
    assert visits["foreignKeys"] == [
        {"fields": "patient_code", "reference": {"resource": "patients", "fields": "patient_code"}}
    ]
    patients = {field["name"]: field for field in resources["patients"]["schema"]["fields"]}
    assert patients["sex"]["constraints"]["enum"] == ["male", "female"]
    assert "asthma" in patients["atopic_comorbidities"]["constraints"]["pattern"]
    assert resources["patients"]["schema"]["primaryKey"] == "patient_code"
    episodes = {field["name"]: field for field in resources["episodes"]["schema"]["fields"]}
    assert "upadacitinib" in episodes["drug"]["constraints"]["enum"]
    events = resources["adverse_events"]["schema"]
    assert {key["fields"] for key in events["foreignKeys"]} == {"patient_code", "episode_code"}
    assert "primaryKey" not in resources["prior_treatments"]["schema"]  # start_date may be empty
    assert {resource["path"] for resource in package["resources"]} >= {"dataset.xlsx", "parquet/visits.parquet"}


def test_the_datapackage_check_catches_a_broken_file(full_export):
    """The checker used above is not blind: a cell out of range is reported."""
    _result, export = full_export
    name = f"{export.folder}/visits.csv"
    export.data[name] = export.data[name].replace(b",24.5,", b",99.5,")
    assert any("easi: above 72" in error for error in validate_package(export))


def test_the_data_dictionary_describes_every_column(full_export):
    _result, export = full_export
    rows = export.dicts("data_dictionary.csv")
    assert list(rows[0]) == [
        "file", "column", "label", "type", "unit", "required", "allowed_values", "minimum",
        "maximum", "description",
    ]
    described = [(row["file"], row["column"]) for row in rows]
    assert described == [(name, column) for name, columns in DATASET_FORMAT.items() for column in columns]
    by_column = {(row["file"], row["column"]): row for row in rows}
    easi = by_column[("visits.csv", "easi")]
    assert (easi["label"], easi["type"], easi["minimum"], easi["maximum"]) == ("EASI", "number", "0", "72")
    assert "one decimal" in easi["allowed_values"]
    assert by_column[("visits.csv", "creatinine")]["unit"] == "µmol/L"
    assert by_column[("patients.csv", "height_cm")]["unit"] == "cm"
    assert "male (Male)" in by_column[("patients.csv", "sex")]["allowed_values"]
    assert by_column[("patients.csv", "patient_code")]["required"] == "yes"
    assert by_column[("visits.csv", "aesi_acne")]["allowed_values"] == "yes / no"
    html = export.text("data_dictionary.html")
    assert "<table>" in html and "µmol/L" in html and "aesi_venous_thromboembolism" in html
    assert html.count("<tr>") >= len(rows)


def test_the_dictionary_is_written_in_the_requesters_language(cohort, tmp_path):
    export = Export(export_bundle(tmp_path / "fr.zip", language="fr").path)
    assert export.dicts("data_dictionary.csv")[0]["column"] == "center_code"


def test_the_excel_workbook_has_a_typed_sheet_per_table_and_no_formula(full_export, cohort):
    from openpyxl import load_workbook

    _result, export = full_export
    workbook = load_workbook(io.BytesIO(export.member("dataset.xlsx")))
    assert workbook.sheetnames == ["dictionary", *(name.removesuffix(".csv") for name in BUNDLE_FILES)]
    for name in BUNDLE_FILES:
        sheet = workbook[name.removesuffix(".csv")]
        rows = list(sheet.iter_rows(values_only=True))
        header, csv_rows = export.table(name)
        assert list(rows[0]) == header
        assert len(rows) - 1 == len(csv_rows)
    visits = list(workbook["visits"].iter_rows(values_only=True))
    header = visits[0]
    first = next(row for row in visits[1:] if row[header.index("easi")] == 24.5)
    assert first[header.index("date")].date() == date(2024, 1, 10)
    assert first[header.index("iga")] == 3
    assert first[header.index("aesi_acne")] == "no"
    events = list(workbook["adverse_events"].iter_rows(values_only=True))
    descriptions = [row[events[0].index("description")] for row in events[1:]]
    assert FORMULA in descriptions
    # The cell is a string cell, never a formula cell (the XML of the sheet says so).
    with zipfile.ZipFile(io.BytesIO(export.member("dataset.xlsx"))) as xlsx:
        sheets = [name for name in xlsx.namelist() if name.startswith("xl/worksheets/")]
        xml = b"".join(xlsx.read(name) for name in sheets)
    assert b"<f>" not in xml and b"<f " not in xml
    assert b"HYPERLINK" in xml


def test_parquet_files_are_readable_with_typed_columns(full_export, cohort):
    import pyarrow as pa
    import pyarrow.parquet as pq

    _result, export = full_export
    for name in BUNDLE_FILES:
        table = pq.read_table(io.BytesIO(export.member(f"parquet/{name.removesuffix('.csv')}.parquet")))
        header, rows = export.table(name)
        assert table.column_names == header
        assert table.num_rows == len(rows)
    visits = pq.read_table(io.BytesIO(export.member("parquet/visits.parquet")))
    schema = visits.schema
    assert schema.field("date").type == pa.date32()
    assert schema.field("easi").type == pa.decimal128(4, 1)
    assert schema.field("iga").type == pa.int32()
    assert schema.field("ldl").type == pa.float64()
    assert schema.field("aesi_acne").type == pa.bool_()
    assert schema.field("patient_code").nullable is False
    assert schema.field("ldl").metadata[b"unit"] == b"mmol/L"
    rows = visits.to_pylist()
    first = next(row for row in rows if row["date"] == date(2024, 1, 10) and row["patient_code"] == cohort["a1"].code)
    assert (first["easi"], first["iga"], first["ldl"], first["aesi_acne"], first["aesi_headache"]) == (
        Decimal("24.5"), 3, 2.9, False, None,
    )
    patients = pq.read_table(io.BytesIO(export.member("parquet/patients.parquet")))
    assert patients.schema.field("special_areas").type == pa.list_(pa.string())
    by_code = {row["patient_code"]: row for row in patients.to_pylist()}
    assert by_code[cohort["a1"].code]["special_areas"] == ["hands", "face_neck"]
    assert by_code[cohort["a2"].code]["ad_subtype"] is None  # empty code: missing, as in the CSV


def test_an_empty_registry_exports_headers_only(db, tmp_path):
    export = Export(export_bundle(tmp_path / "empty.zip", ExportOptions(excel=True, parquet=True)).path)
    for name in BUNDLE_FILES:
        header, rows = export.table(name)
        assert header and rows == []
    assert validate_package(export) == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the COPY path is PostgreSQL's")
@pytest.mark.parametrize("shift", [False, True])
@pytest.mark.parametrize("data", [("french",), ("spanish", "cohort")])
def test_postgresql_copy_writes_the_same_cells_as_format_cell(request, tmp_path, shift, data):
    """The fast path (COPY, cells formatted in SQL) and the generic one (format_cell on every
    value) agree cell for cell, on both fixture cohorts and the awkward values above."""
    from registry.clinical.models import Visit

    loaded = {name: request.getfixturevalue(name) for name in data}
    if "cohort" in loaded:
        Visit.objects.create(patient=loaded["cohort"]["b1"], date=date(2024, 2, 1), ldl=1e-05,
                             alt=123456789.25, cpk=1e14, hemoglobin=0.1 + 0.2, creatinine=0.0)
        # A list item that is no vocabulary code (written around validation): the exact way.
        from registry.clinical.models import Patient

        Patient.objects.filter(pk=loaded["cohort"]["a2"].pk).update(neoplasia_last_5y=['odd, "item"', "other"])
    options = ExportOptions(shift_dates=shift, free_text=True)
    fast = export_bundle(tmp_path / "copy.zip", options, use_copy=True, date_shift_key="k")
    slow = export_bundle(tmp_path / "python.zip", options, use_copy=False, date_shift_key="k")
    assert fast.row_counts == slow.row_counts
    fast_zip, slow_zip = Export(fast.path), Export(slow.path)
    for name in BUNDLE_FILES:
        assert fast_zip.table(name) == slow_zip.table(name), name
    assert b"\r\n" not in fast_zip.member("centers.csv") and b"\r\n" in slow_zip.member("centers.csv")
    errors = validate_package(fast_zip)
    if "cohort" in loaded:  # the item written around validation is reported, and only it
        assert len(errors) == 1 and "neoplasia_last_5y" in errors[0] and 'odd, "item";other' in errors[0]
    else:
        assert errors == []


def test_reading_in_short_batches_gives_the_rows_of_one_read(french, spanish, monkeypatch):
    """SQLite's way (a batch of patients per statement, files cut at their highest id when the
    export started) reads the same rows in the same order as one streamed read."""
    from registry.datasets.exporter import CHUNK_SIZE, Scope, TablePlan

    monkeypatch.setattr(Scope, "PATIENT_BATCH", 7)
    monkeypatch.setattr("registry.datasets.exporter.CHUNK_SIZE", 9)
    options = ExportOptions(free_text=True)
    streamed, batched = Scope(options), Scope(options, batched=True)
    for spec in FILES:
        plan = TablePlan(spec, free_text=True)
        one = list(plan.typed_rows(streamed, streamed.queryset(spec), None))
        many = list(plan.typed_rows(batched, batched.queryset(spec), None))
        assert many == one, spec.name
        assert one or spec.name == "dose_changes.csv"
    assert CHUNK_SIZE > 9


def test_records_added_after_a_batched_export_started_are_left_out(cohort):
    from registry.clinical.models import Patient, Visit
    from registry.datasets.columns import PATIENTS, VISITS
    from registry.datasets.exporter import Scope, TablePlan

    scope = Scope(ExportOptions(), batched=True)
    late = Patient.objects.create(center=cohort["a1"].center, sex="male", enrolled_on=date(2024, 3, 1))
    Visit.objects.create(patient=late, date=date(2024, 3, 1), easi=3)
    Visit.objects.create(patient=cohort["a2"], date=date(2024, 3, 1), easi=3)
    for spec, count in ((PATIENTS, 3), (VISITS, 6)):
        plan = TablePlan(spec, free_text=False)
        assert len(list(plan.typed_rows(scope, scope.queryset(spec), None))) == count


@pytest.mark.skipif(connection.vendor != "postgresql", reason="parallel COPY is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_large_files_copied_by_several_backends_are_the_same_bytes(french, tmp_path, monkeypatch):
    """Split into ranges of patients, read by parallel COPYs inside the export's own snapshot
    (exported and imported), spooled and appended in order: byte for byte one COPY's file."""
    from registry.datasets import exporter

    options = ExportOptions(shift_dates=True, free_text=True)
    monkeypatch.setattr(exporter, "COPY_STREAMS", 1)
    single = Export(export_bundle(tmp_path / "one.zip", options, date_shift_key="k").path)
    monkeypatch.setattr(exporter, "COPY_STREAMS", 3)
    monkeypatch.setattr(exporter, "PARALLEL_MIN_ROWS", 1)
    splits = []
    original = exporter.Scope.split

    def spy(self, spec, queryset, total):
        parts = original(self, spec, queryset, total)
        splits.append((spec.name, len(parts)))
        return parts

    monkeypatch.setattr(exporter.Scope, "split", spy)
    seen = []
    parallel = export_bundle(tmp_path / "three.zip", options, date_shift_key="k",
                             progress=lambda done, total, stage: seen.append(done))
    assert dict(splits)["visits.csv"] == 3 and dict(splits)["patients.csv"] == 3
    assert dict(splits)["centers.csv"] == 1
    for name in BUNDLE_FILES:
        assert Export(parallel.path).member(name) == single.member(name), name
    assert seen[-1] == sum(parallel.row_counts.values()) and seen == sorted(seen)


def test_every_entry_is_deflated_at_the_exporters_level(cohort, tmp_path, monkeypatch):
    """``ZipFile.open(info)`` compresses at the ``ZipInfo``'s level, not the archive's: each
    entry must carry ``COMPRESS_LEVEL`` itself (zlib's default level is four times slower)."""
    import zlib

    from registry.datasets.exporter import COMPRESS_LEVEL

    levels = []
    compressobj = zlib.compressobj

    def spy(level=zlib.Z_DEFAULT_COMPRESSION, *args, **kwargs):
        levels.append(level)
        return compressobj(level, *args, **kwargs)

    monkeypatch.setattr(zlib, "compressobj", spy)
    export_bundle(tmp_path / "levels.zip", ExportOptions())
    assert len(levels) >= len(BUNDLE_FILES) and set(levels) == {COMPRESS_LEVEL}
