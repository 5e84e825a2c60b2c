"""The bundle importer: the models' rules, every error at once, all or nothing, idempotent."""
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from registry.centers.models import Center, LabRange
from registry.clinical.models import (
    AdverseEvent,
    DoseChange,
    Patient,
    PriorTreatment,
    TreatmentEpisode,
    Visit,
)
from registry.datasets.bundle import format_cell, parse_cell
from registry.datasets.columns import FILE_BY_NAME, FILES
from registry.datasets.importer import import_bundle

pytestmark = pytest.mark.django_db

BUNDLES = Path(__file__).resolve().parents[1] / "fixtures" / "bundles"
FRENCH, SPANISH = BUNDLES / "french", BUNDLES / "spanish"


def error_lines(result):
    return [str(error) for error in result.errors]


# A valid bundle ---------------------------------------------------------------------------


def test_a_valid_bundle_imports_every_record_with_its_values(bundle_files, write_bundle, counts, valid_counts):
    result = import_bundle(write_bundle(bundle_files))

    assert error_lines(result) == []
    assert result.written
    assert counts() == valid_counts
    assert {name: summary.created for name, summary in result.summary.items()} == {
        "centers.csv": 2, "lab_ranges.csv": 2, "patients.csv": 3, "prior_treatments.csv": 2,
        "episodes.csv": 2, "dose_changes.csv": 2, "visits.csv": 3, "adverse_events.csv": 2,
    }

    nantes = Center.objects.get(code="fr-nte")
    assert (nantes.name, nantes.country) == ("CHU de Nantes", "FR")
    assert nantes.lab_range_map() == {"ldl": (None, 3.4), "lymphocytes": (1.0, 4.0)}

    patient = Patient.objects.get(code="fr-nte-0001")
    assert patient.center == nantes
    assert (patient.sex, patient.birth_year, patient.ad_onset_age) == ("female", 1985, 3)
    assert (patient.height_cm, patient.weight_kg) == (Decimal("165.0"), Decimal("60.5"))
    assert patient.special_areas == ["hands", "face_neck"]
    assert patient.atopic_comorbidities == ["asthma", "rhinitis"]
    assert patient.autoimmune_comorbidities == []
    assert patient.enrolled_on == date(2024, 1, 10)
    assert Patient.objects.get(code="fr-nte-0002").height_cm is None

    prior = PriorTreatment.objects.get(patient=patient, drug="ciclosporin")
    assert (prior.start_date, prior.end_date, prior.stop_reason) == (
        date(2020, 1, 1), date(2020, 6, 30), "adverse_event",
    )
    assert PriorTreatment.objects.get(patient=patient, drug="dupilumab").start_date is None

    episode = TreatmentEpisode.objects.get(code="fr-nte-0001-e1")
    assert (episode.patient, episode.drug, episode.start_dose_mg) == (patient, "upadacitinib", 30)
    assert episode.is_ongoing
    stopped = TreatmentEpisode.objects.get(code="fr-nte-0002-e1")
    assert (stopped.end_date, stopped.end_reason) == (date(2024, 8, 1), "secondary_failure")

    visit = Visit.objects.get(patient=patient, date=date(2024, 1, 10))
    assert (visit.easi, visit.iga, visit.ldl, visit.aesi_acne) == (Decimal("24.5"), 3, 2.9, False)
    assert Visit.objects.get(patient=patient, date=date(2024, 4, 10)).aesi_acne is True
    assert Visit.objects.get(patient__code="fr-nte-0002").aesi_acne is None  # empty = not assessed

    acne = AdverseEvent.objects.get(term="acne")
    assert acne.episode == episode  # derived from the onset date by the model
    assert (acne.serious, acne.severity, acne.description) == (False, "mild", "Papulopustular, face and neck.")
    herpes = AdverseEvent.objects.get(term="herpes_simplex")
    assert herpes.episode == stopped and herpes.serious is None


def test_imports_are_audited_with_the_import_as_reason(bundle_files, write_bundle, coordinator):
    import_bundle(write_bundle(bundle_files), user=coordinator, change_reason="legacy spreadsheet")

    history = Visit.history.all()
    assert history.count() == 3
    assert {(h.history_type, h.history_user, h.history_change_reason) for h in history} == {
        ("+", coordinator, "legacy spreadsheet")
    }
    assert DoseChange.history.filter(history_change_reason="legacy spreadsheet").count() == 2
    assert Patient.history.filter(history_user=coordinator).count() == 3


def test_a_zip_imports_like_a_directory(bundle_files, write_bundle, zip_bundle, counts, valid_counts):
    result = import_bundle(zip_bundle(write_bundle(bundle_files)))
    assert error_lines(result) == []
    assert counts() == valid_counts


def test_any_file_may_be_absent_and_columns_come_in_any_order(write_bundle, center_a):
    folder = write_bundle({"patients.csv": [
        {"enrolled_on": "2024-03-01", "sex": "male", "center_code": "fr-tls", "patient_code": "fr-tls-0100"},
    ]})
    result = import_bundle(folder)
    assert error_lines(result) == []
    assert list(result.summary) == ["patients.csv"]
    assert Patient.objects.get(code="fr-tls-0100").center == center_a


def test_a_patient_code_is_kept_as_given(write_bundle, center_a):
    write = {"patients.csv": [{"patient_code": "fr-tls-legacy-17", "center_code": "fr-tls", "sex": "female"}]}
    assert import_bundle(write_bundle(write)).ok
    assert Patient.objects.filter(code="fr-tls-legacy-17").exists()


def test_a_dry_run_reports_what_would_change_and_writes_nothing(bundle_files, write_bundle, counts):
    before = counts()
    result = import_bundle(write_bundle(bundle_files), dry_run=True)
    assert result.ok and not result.written
    assert result.totals().created == 18
    assert counts() == before


# Errors -----------------------------------------------------------------------------------


def test_every_error_is_reported_at_once_and_nothing_is_written(bundle_files, write_bundle, counts, center_a):
    bundle_files["visits.csv"][1]["easi"] = "80"  # row 3 (the header is row 1)
    bundle_files["visits.csv"][2]["iga"] = "2.5"
    bundle_files["patients.csv"][1]["sex"] = "unknown"
    bundle_files["patients.csv"][2]["birth_year"] = "1850"
    bundle_files["episodes.csv"][0]["drug"] = "upa"
    bundle_files["episodes.csv"][1]["end_reason"] = ""
    bundle_files["adverse_events.csv"][0]["serious"] = "maybe"
    bundle_files["prior_treatments.csv"][0]["end_date"] = "2019-12-31"
    tomorrow = timezone.localdate() + timedelta(days=1)
    bundle_files["lab_ranges.csv"][0]["upper"] = "-1"
    bundle_files["centers.csv"][1]["country"] = "es"
    bundle_files["visits.csv"][0]["date"] = tomorrow.isoformat()
    before = counts()

    result = import_bundle(write_bundle(bundle_files))

    lines = error_lines(result)
    assert "visits.csv:3:easi: EASI must be between 0 and 72." in lines
    assert "visits.csv:4:iga: “2.5” value must be an integer." in lines
    assert any(line.startswith("visits.csv:2:date: ") and "is in the future" in line for line in lines)
    assert "patients.csv:3:sex: Value 'unknown' is not a valid choice." in lines
    assert "patients.csv:4:birth_year: The birth year must be 1900 or later." in lines
    assert "episodes.csv:2:drug: Value 'upa' is not a valid choice." in lines
    assert "episodes.csv:3:end_reason: Give the reason the treatment was stopped." in lines
    assert any(line.startswith("adverse_events.csv:2:serious: “maybe” is not yes or no") for line in lines)
    assert "prior_treatments.csv:2:end_date: The end date must be on or after the start date." in lines
    assert "lab_ranges.csv:2:upper: A reference limit cannot be negative." in lines
    assert "centers.csv:3:country: Use an ISO 3166-1 alpha-2 code, e.g. FR." in lines
    # Sorted by file (bundle order), then row.
    assert lines == [str(e) for e in sorted(result.errors, key=lambda e: e.sort_key)]
    assert lines[0].startswith("centers.csv:")
    assert not result.written
    assert counts() == before


def test_an_error_in_the_last_file_rolls_back_every_file(bundle_files, write_bundle, counts):
    before = counts()
    bundle_files["adverse_events.csv"][1]["end_date"] = "2024-08-01"  # before the onset
    result = import_bundle(write_bundle(bundle_files))
    assert error_lines(result) == [
        "adverse_events.csv:3:end_date: The end date must be on or after the onset date."
    ]
    assert counts() == before


def test_cells_are_parsed_strictly(write_bundle, center_a):
    rows = [
        {"patient_code": "fr-tls-0101", "center_code": "fr-tls", "sex": "male", "enrolled_on": "2024-3-1"},
        {"patient_code": "fr-tls-0102", "center_code": "fr-tls", "sex": "male", "enrolled_on": "01/03/2024"},
        {"patient_code": "fr-tls-0103", "center_code": "fr-tls", "sex": "male", "weight_kg": "seventy"},
        {"patient_code": "fr-tls-0104", "center_code": "fr-tls", "sex": "male", "special_areas": "hands;feet"},
        {"patient_code": "fr-tls-0105", "center_code": "fr-tls", "sex": "male", "special_areas": "hands;hands"},
    ]
    lines = error_lines(import_bundle(write_bundle({"patients.csv": rows})))
    assert lines[0].startswith("patients.csv:2:enrolled_on: “2024-3-1” value has an invalid date format")
    assert lines[1].startswith("patients.csv:3:enrolled_on: “01/03/2024” value has an invalid date format")
    assert lines[2] == "patients.csv:4:weight_kg: “seventy” value must be a decimal number."
    assert lines[3].startswith("patients.csv:5:special_areas: Unknown code(s) feet")
    assert lines[4] == "patients.csv:6:special_areas: A code is listed twice."
    assert len(lines) == 5


def test_a_required_cell_left_empty_is_refused(write_bundle, center_a):
    rows = [
        {"patient_code": "", "center_code": "fr-tls", "sex": "male"},
        {"patient_code": "fr-tls-0107", "center_code": "", "sex": "male"},
        {"patient_code": "fr-tls-0108", "center_code": "fr-tls", "sex": ""},
    ]
    lines = error_lines(import_bundle(write_bundle({"patients.csv": rows})))
    assert lines == [
        "patients.csv:2:patient_code: This field cannot be blank.",
        "patients.csv:3:center_code: This field cannot be null.",
        "patients.csv:4:sex: This field cannot be blank.",
    ]


def test_an_unknown_column_is_an_error_unless_told_to_ignore_it(bundle_files, write_bundle, counts, valid_counts):
    bundle_files["visits.csv"][0]["eazi"] = "12"
    folder = write_bundle(bundle_files)

    result = import_bundle(folder)
    assert error_lines(result) == ["visits.csv:1:eazi: Unknown column."]
    assert counts()["Visit"] == 0

    result = import_bundle(folder, ignore_unknown_columns=True)
    assert error_lines(result) == []
    assert counts() == valid_counts


def test_a_missing_required_column_is_reported_once(write_bundle, center_a, counts):
    rows = [{"patient_code": "fr-tls-0110", "center_code": "fr-tls"}, {"patient_code": "fr-tls-0111", "center_code": "fr-tls"}]
    result = import_bundle(write_bundle({"patients.csv": rows}))
    assert error_lines(result) == ["patients.csv:1:sex: This required column is missing."]
    assert counts()["Patient"] == 0


def test_a_row_of_the_wrong_width_is_refused(tmp_path, center_a):
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "patients.csv").write_text(
        "patient_code,center_code,sex\nfr-tls-0120,fr-tls,male\nfr-tls-0121,fr-tls,male,extra\n\n"
        "fr-tls-0122,fr-tls,female\n",
        encoding="utf-8",
    )
    result = import_bundle(folder)
    assert error_lines(result) == ["patients.csv:3: This row has 4 cells but the header has 3."]


def test_rows_are_numbered_like_a_spreadsheet_with_quoted_cells_and_a_bom(tmp_path, center_a):
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "patients.csv").write_text(
        "\ufeffpatient_code,center_code,sex\n\"fr-tls-0130\",fr-tls,male\nfr-tls-0131,fr-tls,other\n",
        encoding="utf-8",
    )
    assert error_lines(import_bundle(folder)) == ["patients.csv:3:sex: Value 'other' is not a valid choice."]


def test_a_bundle_that_cannot_be_read_is_one_error(tmp_path):
    assert error_lines(import_bundle(tmp_path / "nowhere")) == ["bundle: nowhere: no such file or directory."]
    not_zip = tmp_path / "bundle.zip"
    not_zip.write_text("hello")
    assert error_lines(import_bundle(not_zip)) == ["bundle: bundle.zip is neither a directory nor a zip file."]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert error_lines(import_bundle(empty))[0].startswith("bundle: No bundle file found")
    latin = tmp_path / "latin"
    latin.mkdir()
    (latin / "centers.csv").write_bytes("center_code,name\nfr-x,Hôpital\n".encode("latin-1"))
    assert error_lines(import_bundle(latin)) == ["centers.csv: The file is not UTF-8 text (byte 23)."]


def test_extra_files_are_ignored_and_listed(bundle_files, write_bundle):
    folder = write_bundle(bundle_files)
    (folder / "datapackage.json").write_text("{}")
    result = import_bundle(folder)
    assert result.ok
    assert result.ignored_files == ["datapackage.json"]


# References -------------------------------------------------------------------------------


def test_unknown_references_are_reported(bundle_files, write_bundle, counts):
    bundle_files["patients.csv"][0]["center_code"] = "fr-xxx"
    bundle_files["visits.csv"].append({"patient_code": "fr-nte-9999", "date": "2024-03-01"})
    bundle_files["dose_changes.csv"].append({"episode_code": "nope-e1", "date": "2024-03-01", "dose_mg": "15"})
    bundle_files["adverse_events.csv"][0]["episode_code"] = "nope-e2"
    before = counts()

    lines = error_lines(import_bundle(write_bundle(bundle_files)))

    assert lines == [
        "patients.csv:2:center_code: Unknown center “fr-xxx”: it is neither in this bundle nor in the registry.",
        "dose_changes.csv:4:episode_code: Unknown treatment episode “nope-e1”: it is neither in this bundle nor in the registry.",
        "visits.csv:5:patient_code: Unknown patient “fr-nte-9999”: it is neither in this bundle nor in the registry.",
        "adverse_events.csv:2:episode_code: Unknown treatment episode “nope-e2”: it is neither in this bundle nor in the registry.",
    ]
    assert counts() == before


def test_a_reference_may_name_a_record_already_in_the_registry(write_bundle, patient_a, episode_a):
    files = {
        "visits.csv": [{"patient_code": patient_a.code, "date": "2024-02-10", "easi": "12.0"}],
        "dose_changes.csv": [{"episode_code": episode_a.code, "date": "2024-06-01", "dose_mg": "15", "reason": "disease_control"}],
        "adverse_events.csv": [{"patient_code": patient_a.code, "term": "headache", "onset_date": "2024-03-01"}],
    }
    result = import_bundle(write_bundle(files))
    assert error_lines(result) == []
    assert patient_a.visits.get().easi == Decimal("12.0")
    assert episode_a.dose_changes.get().dose_mg == 15
    assert patient_a.adverse_events.get().episode == episode_a


def test_rows_of_a_refused_parent_do_not_repeat_its_error(bundle_files, write_bundle):
    bundle_files["patients.csv"][0]["sex"] = "x"
    lines = error_lines(import_bundle(write_bundle(bundle_files)))
    assert lines == ["patients.csv:2:sex: Value 'x' is not a valid choice."]


def test_an_episode_cannot_move_to_another_patient(write_bundle, patient_a, episode_a, center_a):
    other = Patient.objects.create(center=center_a, sex="male", enrolled_on=date(2024, 1, 1))
    files = {"episodes.csv": [{
        "episode_code": episode_a.code, "patient_code": other.code, "drug": "upadacitinib",
        "start_date": "2024-01-10", "start_dose_mg": "30",
    }]}
    lines = error_lines(import_bundle(write_bundle(files)))
    assert lines == [
        f"episodes.csv:2:patient_code: Episode “{episode_a.code}” belongs to another patient ({patient_a.code}) in the registry."
    ]


def test_an_adverse_event_outside_its_episode_window_is_refused(bundle_files, write_bundle):
    bundle_files["adverse_events.csv"][1]["onset_date"] = "2024-09-15"  # 45 days after the end
    lines = error_lines(import_bundle(write_bundle(bundle_files)))
    assert lines == [
        "adverse_events.csv:3:onset_date: The onset must fall between the episode's start "
        "(2024-02-01) and 30 days after its end (2024-08-31)."
    ]


def test_an_adverse_event_outside_every_episode_is_kept(bundle_files, write_bundle):
    bundle_files["adverse_events.csv"][0]["onset_date"] = "2023-12-01"
    bundle_files["adverse_events.csv"][0]["end_date"] = ""
    assert import_bundle(write_bundle(bundle_files)).ok
    assert AdverseEvent.objects.get(term="acne").episode is None


# Duplicates -------------------------------------------------------------------------------


def test_duplicate_identities_inside_a_bundle_are_refused(bundle_files, write_bundle, counts):
    bundle_files["centers.csv"].append({"center_code": "fr-nte", "name": "Again"})
    bundle_files["patients.csv"].append(dict(bundle_files["patients.csv"][1]))
    bundle_files["episodes.csv"].append(dict(bundle_files["episodes.csv"][0]))
    bundle_files["visits.csv"].append({"patient_code": "fr-nte-0001", "date": "2024-04-10", "easi": "9"})
    bundle_files["dose_changes.csv"].append({"episode_code": "fr-nte-0001-e1", "date": "2024-05-01", "dose_mg": "15"})
    bundle_files["adverse_events.csv"].append({"patient_code": "fr-nte-0001", "term": "acne", "onset_date": "2024-04-01"})
    bundle_files["prior_treatments.csv"].append({"patient_code": "fr-nte-0001", "drug": "dupilumab"})
    bundle_files["lab_ranges.csv"].append({"center_code": "fr-nte", "analyte": "ldl", "upper": "3.0"})
    before = counts()

    lines = error_lines(import_bundle(write_bundle(bundle_files)))

    assert lines == [
        "centers.csv:4:center_code: Duplicate of row 2 (same center_code).",
        "lab_ranges.csv:4:analyte: Duplicate of row 2 (same center_code, analyte).",
        "patients.csv:5:patient_code: Duplicate of row 3 (same patient_code).",
        "prior_treatments.csv:4:start_date: Duplicate of row 3 (same patient_code, drug, start_date).",
        "episodes.csv:4:episode_code: Duplicate of row 2 (same episode_code).",
        "dose_changes.csv:4:date: Duplicate of row 3 (same episode_code, date).",
        "visits.csv:5:date: Duplicate of row 3 (same patient_code, date).",
        "adverse_events.csv:4:onset_date: Duplicate of row 2 (same patient_code, term, onset_date).",
    ]
    assert counts() == before


# Re-import and update ---------------------------------------------------------------------


def test_importing_the_same_bundle_twice_changes_nothing(bundle_files, write_bundle, counts):
    folder = write_bundle(bundle_files)
    assert import_bundle(folder).ok
    before = counts()
    history = (Visit.history.count(), Patient.history.count(), DoseChange.history.count(), AdverseEvent.history.count())
    stamps = sorted(Visit.objects.values_list("updated_at", flat=True))

    result = import_bundle(folder)

    assert error_lines(result) == []
    assert result.totals().created == result.totals().updated == 0
    assert result.totals().unchanged == 18
    assert counts() == before
    assert (Visit.history.count(), Patient.history.count(), DoseChange.history.count(), AdverseEvent.history.count()) == history
    assert sorted(Visit.objects.values_list("updated_at", flat=True)) == stamps
    assert AdverseEvent.objects.get(term="acne").episode.code == "fr-nte-0001-e1"


def test_a_record_already_in_the_registry_is_updated_to_the_bundle_values(bundle_files, write_bundle, coordinator):
    assert import_bundle(write_bundle(bundle_files, "first")).ok
    bundle_files["visits.csv"][0]["easi"] = "22.0"
    bundle_files["visits.csv"][0]["ldl"] = ""
    bundle_files["patients.csv"][0]["weight_kg"] = "62"
    bundle_files["centers.csv"][0]["name"] = "CHU de Nantes, Hôtel-Dieu"
    bundle_files["dose_changes.csv"][1]["dose_mg"] = "45.0"  # same value, other spelling
    bundle_files["dose_changes.csv"][0]["reason"] = "other"

    result = import_bundle(write_bundle(bundle_files, "second"), user=coordinator)

    assert error_lines(result) == []
    assert {name: (s.created, s.updated) for name, s in result.summary.items()} == {
        "centers.csv": (0, 1), "lab_ranges.csv": (0, 0), "patients.csv": (0, 1),
        "prior_treatments.csv": (0, 0), "episodes.csv": (0, 0), "dose_changes.csv": (0, 1),
        "visits.csv": (0, 1), "adverse_events.csv": (0, 0),
    }
    visit = Visit.objects.get(patient__code="fr-nte-0001", date=date(2024, 1, 10))
    assert (visit.easi, visit.ldl, visit.iga) == (Decimal("22.0"), None, 3)
    assert visit.version == 2
    change = visit.history.first()
    assert (change.history_type, change.history_user, change.easi) == ("~", coordinator, Decimal("22.0"))
    assert Patient.objects.get(code="fr-nte-0001").weight_kg == 62
    assert Center.objects.get(code="fr-nte").name == "CHU de Nantes, Hôtel-Dieu"
    assert DoseChange.objects.get(date=date(2024, 9, 1)).reason == "other"


def test_a_column_absent_from_the_file_keeps_the_registry_value(bundle_files, write_bundle):
    assert import_bundle(write_bundle(bundle_files, "first")).ok
    files = {"visits.csv": [{"patient_code": "fr-nte-0001", "date": "2024-01-10", "iga": "2"}]}
    result = import_bundle(write_bundle(files, "second"))
    assert result.summary["visits.csv"].updated == 1
    visit = Visit.objects.get(patient__code="fr-nte-0001", date=date(2024, 1, 10))
    assert (visit.iga, visit.easi, visit.ldl) == (2, Decimal("24.5"), 2.9)


# Dose changes -----------------------------------------------------------------------------


def test_dose_changes_out_of_date_order_are_applied_in_date_order(bundle_files, write_bundle):
    result = import_bundle(write_bundle(bundle_files))
    assert error_lines(result) == []
    episode = TreatmentEpisode.objects.get(code="fr-nte-0001-e1")
    escalation, de_escalation = episode.ordered_dose_changes()
    assert (escalation.date, escalation.dose_mg, escalation.is_escalation) == (date(2024, 5, 1), 45, True)
    assert (de_escalation.date, de_escalation.dose_mg, de_escalation.is_escalation) == (date(2024, 9, 1), 30, False)


def test_a_dose_change_to_the_dose_in_force_is_refused(bundle_files, write_bundle, counts):
    bundle_files["dose_changes.csv"] = [
        {"episode_code": "fr-nte-0001-e1", "date": "2024-09-01", "dose_mg": "45", "reason": "other"},
        {"episode_code": "fr-nte-0001-e1", "date": "2024-05-01", "dose_mg": "45", "reason": "severity"},
        {"episode_code": "fr-nte-0002-e1", "date": "2024-03-01", "dose_mg": "300"},
    ]
    before = counts()
    lines = error_lines(import_bundle(write_bundle(bundle_files)))
    assert lines == [
        "dose_changes.csv:2:dose_mg: The dose in force on that day is already 45 mg.",
        "dose_changes.csv:4:dose_mg: The dose in force on that day is already 300 mg.",
    ]
    assert counts() == before


def test_a_dose_change_outside_its_episode_is_refused(bundle_files, write_bundle):
    bundle_files["dose_changes.csv"] = [
        {"episode_code": "fr-nte-0002-e1", "date": "2024-09-01", "dose_mg": "600"},
    ]
    assert error_lines(import_bundle(write_bundle(bundle_files))) == [
        "dose_changes.csv:2:date: A dose change must come on or before the episode's end (2024-08-01)."
    ]


# Cells and columns ------------------------------------------------------------------------


@pytest.mark.parametrize("spec", FILES, ids=lambda spec: spec.name)
def test_every_column_maps_to_a_model_field_and_formats_back(spec):
    for column in spec.columns:
        field = spec.model._meta.get_field(column.field)
        assert column.is_reference == field.is_relation
    assert set(spec.identity) <= set(spec.column_names)


@pytest.mark.parametrize(
    "file, column, text",
    [
        ("visits.csv", "easi", "24.5"),
        ("visits.csv", "iga", "3"),
        ("visits.csv", "ldl", "2.95"),
        ("visits.csv", "aesi_acne", "yes"),
        ("visits.csv", "aesi_acne", "no"),
        ("visits.csv", "date", "2024-03-01"),
        ("patients.csv", "special_areas", "hands;scalp"),
        ("patients.csv", "special_areas", ""),
        ("episodes.csv", "start_dose_mg", "7.5"),
        ("adverse_events.csv", "description", "Face, neck; \"quoted\""),
    ],
)
def test_a_cell_reads_and_writes_back_the_same(file, column, text):
    field = FILE_BY_NAME[file].model_field(column)
    assert format_cell(field, parse_cell(field, text)) == text


# The published French cohort (another engineer's fixture) -----------------------------------


@pytest.mark.skipif(not FRENCH.exists(), reason="tests/fixtures/bundles/french/ not built yet")
def test_the_french_cohort_bundle_imports_without_errors(counts):
    result = import_bundle(FRENCH)
    assert error_lines(result) == []
    assert counts()["Patient"] == 100
    assert result.summary["patients.csv"].created == 100
    again = import_bundle(FRENCH)
    assert again.totals().created == again.totals().updated == 0


@pytest.mark.skipif(not SPANISH.exists(), reason="tests/fixtures/bundles/spanish/ not built yet")
def test_the_spanish_cohort_bundle_imports_without_errors(counts):
    result = import_bundle(SPANISH)
    assert error_lines(result) == []
    assert counts()["Patient"] == 21
