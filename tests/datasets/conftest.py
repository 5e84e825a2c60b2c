"""Small dataset bundles written in tmp_path: a valid one to start from, and writers."""
import copy
import csv
import zipfile

import pytest

#: A small valid bundle: two centers, three patients, two episodes (one stopped), dose changes
#: listed out of date order, visits, and two adverse events (one with its episode derived).
VALID = {
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
            "birth_year": "1990", "height_cm": "", "weight_kg": "", "ad_onset_age": "",
            "ad_subtype": "", "special_areas": "", "atopic_comorbidities": "",
            "autoimmune_comorbidities": "", "cv_risk_factors": "", "neoplasia_last_5y": "",
            "enrolled_on": "2024-02-01",
        },
        {
            "patient_code": "es-grx-0001", "center_code": "es-grx", "sex": "female",
            "birth_year": "2001", "height_cm": "", "weight_kg": "", "ad_onset_age": "",
            "ad_subtype": "flexural", "special_areas": "", "atopic_comorbidities": "",
            "autoimmune_comorbidities": "vitiligo", "cv_risk_factors": "",
            "neoplasia_last_5y": "", "enrolled_on": "2023-06-15",
        },
    ],
    "prior_treatments.csv": [
        {"patient_code": "fr-nte-0001", "drug": "ciclosporin", "start_date": "2020-01-01",
         "end_date": "2020-06-30", "stop_reason": "adverse_event"},
        {"patient_code": "fr-nte-0001", "drug": "dupilumab", "start_date": "",
         "end_date": "", "stop_reason": "secondary_failure"},
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
        {"patient_code": "fr-nte-0001", "date": "2024-01-10", "easi": "24.5", "iga": "3",
         "ldl": "2.9", "aesi_acne": "no"},
        {"patient_code": "fr-nte-0001", "date": "2024-04-10", "easi": "8.2", "iga": "1",
         "ldl": "", "aesi_acne": "yes"},
        {"patient_code": "fr-nte-0002", "date": "2024-02-01", "easi": "30", "iga": "4",
         "ldl": "3.1", "aesi_acne": ""},
    ],
    "adverse_events.csv": [
        {"patient_code": "fr-nte-0001", "episode_code": "", "term": "acne",
         "onset_date": "2024-04-01", "end_date": "2024-04-20", "severity": "mild",
         "serious": "no", "action": "none", "outcome": "resolved",
         "description": "Papulopustular, face and neck."},
        {"patient_code": "fr-nte-0002", "episode_code": "fr-nte-0002-e1", "term": "herpes_simplex",
         "onset_date": "2024-08-20", "end_date": "", "severity": "moderate", "serious": "",
         "action": "", "outcome": "ongoing", "description": ""},
    ],
}

#: Records of VALID, per model.
VALID_COUNTS = {
    "Center": 2, "LabRange": 2, "Patient": 3, "PriorTreatment": 2, "TreatmentEpisode": 2,
    "DoseChange": 2, "Visit": 3, "AdverseEvent": 2,
}


def write_csv(path, rows, header=None):
    header = header or list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow([row.get(column, "") for column in header])


@pytest.fixture
def bundle_files():
    """A fresh copy of the valid bundle's rows, to change in a test."""
    return copy.deepcopy(VALID)


@pytest.fixture
def write_bundle(tmp_path):
    """``write_bundle(files, name="bundle")``: the rows of ``files`` as a bundle directory."""

    def write(files, name="bundle"):
        folder = tmp_path / name
        folder.mkdir()
        for file_name, rows in files.items():
            write_csv(folder / file_name, rows)
        return folder

    return write


@pytest.fixture
def zip_bundle(tmp_path):
    """``zip_bundle(folder)``: a zip holding the bundle folder (as when a folder is zipped)."""

    def make(folder, name="bundle.zip"):
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as archive:
            for file in sorted(folder.iterdir()):
                archive.write(file, f"{folder.name}/{file.name}")
        return path

    return make


def model_counts():
    from registry.centers.models import Center, LabRange
    from registry.clinical.models import (
        AdverseEvent, DoseChange, Patient, PriorTreatment, TreatmentEpisode, Visit,
    )

    models = (Center, LabRange, Patient, PriorTreatment, TreatmentEpisode, DoseChange, Visit, AdverseEvent)
    return {model.__name__: model.objects.count() for model in models}


@pytest.fixture
def valid_counts():
    return dict(VALID_COUNTS)


@pytest.fixture
def counts():
    """``counts()``: records per model now."""
    return model_counts
