"""Fixtures of the export tests: export files under a private MEDIA_ROOT, a small two-center
cohort with every kind of record and awkward values, and the fixture bundles."""
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

BUNDLES = Path(__file__).resolve().parents[1] / "fixtures" / "bundles"

#: Free text that a spreadsheet would take for a formula, and text that needs CSV quoting.
FORMULA = '=HYPERLINK("http://example.org/x","click")'
AWKWARD = 'Papules on the face; "mild", then\nspreading, 2nd line\r\nand a third'


@pytest.fixture(autouse=True)
def export_media(settings, tmp_path):
    """Export files go to a folder of the test."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def cohort(center_a, center_b):
    """Two centers; patients with episodes, a dose change, prior treatments, visits with
    scores, labs and checklist answers, and adverse events with free text."""
    from registry.clinical.models import (
        AdverseEvent, DoseChange, Patient, PriorTreatment, TreatmentEpisode, Visit,
    )

    a1 = Patient.objects.create(
        center=center_a, sex="female", birth_year=1990, height_cm=Decimal("165.5"),
        weight_kg=Decimal("60.2"), ad_onset_age=3, ad_subtype="generalized",
        special_areas=["hands", "face_neck"], atopic_comorbidities=["asthma", "rhinitis"],
        cv_risk_factors=["smoking"], enrolled_on=date(2024, 1, 10),
    )
    upa = TreatmentEpisode.objects.create(
        patient=a1, drug="upadacitinib", start_date=date(2024, 1, 10), start_dose_mg=15,
    )
    DoseChange.objects.create(episode=upa, date=date(2024, 4, 1), dose_mg=30, reason="secondary_failure")
    Visit.objects.create(patient=a1, date=date(2024, 1, 10), easi=Decimal("24.5"), iga=3, ldl=2.9,
                         lymphocytes=1.0, aesi_acne=False, pruritus_nrs=8)
    Visit.objects.create(patient=a1, date=date(2024, 4, 10), easi=Decimal("8.2"), iga=1,
                         aesi_acne=True, aesi_headache=False, alt=31.25)
    Visit.objects.create(patient=a1, date=date(2024, 7, 9), easi=Decimal("2.0"), iga=0, bsa=Decimal("1.5"))
    AdverseEvent.objects.create(patient=a1, episode=upa, term="acne", onset_date=date(2024, 3, 1),
                                end_date=date(2024, 3, 20), severity="mild", serious=False,
                                action="none", outcome="resolved", description=FORMULA)
    derived = AdverseEvent(patient=a1, term="herpes_simplex", onset_date=date(2024, 5, 2), description=AWKWARD)
    derived.full_clean()  # derives its episode from the onset date, as every form and import does
    derived.save()
    PriorTreatment.objects.create(patient=a1, drug="dupilumab", stop_reason="secondary_failure")

    a2 = Patient.objects.create(center=center_a, sex="male", birth_year=1975, enrolled_on=date(2023, 6, 1))
    dupi = TreatmentEpisode.objects.create(
        patient=a2, drug="dupilumab", start_date=date(2023, 6, 1), start_dose_mg=300,
        end_date=date(2024, 1, 1), end_reason="primary_failure",
    )
    PriorTreatment.objects.create(patient=a2, drug="ciclosporin", start_date=date(2020, 1, 1),
                                  end_date=date(2020, 6, 30), stop_reason="adverse_event")
    Visit.objects.create(patient=a2, date=date(2023, 6, 1), easi=Decimal("30.0"), iga=4, dlqi=20)
    Visit.objects.create(patient=a2, date=date(2023, 9, 1), easi=Decimal("28.0"), iga=4, dlqi=18)
    AdverseEvent.objects.create(patient=a2, episode=dupi, term="conjunctivitis",
                                onset_date=date(2023, 8, 1), severity="moderate", serious=True)

    b1 = Patient.objects.create(center=center_b, sex="female", birth_year=2001, enrolled_on=date(2024, 1, 2))
    TreatmentEpisode.objects.create(patient=b1, drug="abrocitinib", start_date=date(2024, 1, 2), start_dose_mg=200)
    Visit.objects.create(patient=b1, date=date(2024, 1, 2), easi=Decimal("18.4"), iga=3, platelets=250.0)
    return {"a1": a1, "a2": a2, "b1": b1}


@pytest.fixture
def french(db):
    from registry.datasets.importer import import_bundle

    result = import_bundle(BUNDLES / "french")
    assert result.error_lines() == []
    return result


@pytest.fixture
def spanish(db):
    from registry.datasets.importer import import_bundle

    result = import_bundle(BUNDLES / "spanish")
    assert result.error_lines() == []
    return result
