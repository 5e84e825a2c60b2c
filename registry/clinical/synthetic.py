"""A synthetic multicenter cohort: the demo registry and the scale benchmarks share it.

Patients follow a plausible course on a JAK inhibitor or a biologic: a baseline visit, visits
at about months 1, 3, 6, 9 and 12 and then every four months, scores that fall while on
treatment, some upadacitinib escalations to 45 mg for secondary failure with de-escalation
once controlled, labs at some visits, the solicited checklist, and logged adverse events.
Deterministic for a given seed.
"""
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from endpoints.compute import vocabulary as v

from .models import AdverseEvent, DoseChange, Patient, PriorTreatment, TreatmentEpisode, Visit

START_REGIMENS = (
    ("upadacitinib", 15, 35),
    ("upadacitinib", 30, 25),
    ("baricitinib", 4, 15),
    ("abrocitinib", 200, 10),
    ("abrocitinib", 100, 5),
    ("dupilumab", 300, 10),
)
#: Typical reference ranges, in the canonical units of dataset-format.md.
REFERENCE_RANGES = {
    "total_cholesterol": (None, 5.2),
    "ldl": (None, 3.4),
    "triglycerides": (None, 1.7),
    "alt": (None, 40.0),
    "ast": (None, 40.0),
    "cpk": (None, 190.0),
    "lymphocytes": (1.0, 4.0),
    "neutrophils": (1.8, 7.5),
    "platelets": (150.0, 400.0),
    "hemoglobin": (12.0, 17.0),
    "creatinine": (None, 110.0),
}
VISIT_DAYS = (0, 30, 91, 182, 273, 365)
LOW_WHEN_ABNORMAL = {
    analyte for analytes, limit in v.LAB_TERMS.values() if limit == "lower" for analyte in analytes
}


@dataclass
class SyntheticCohort:
    patients: list = field(default_factory=list)
    prior_treatments: list = field(default_factory=list)
    episodes: list = field(default_factory=list)
    dose_changes: list = field(default_factory=list)
    visits: list = field(default_factory=list)
    adverse_events: list = field(default_factory=list)


def lab_panel(rng, abnormal=()):
    """One lab panel around the middle of the reference ranges; ``abnormal`` analytes outside."""
    values = {}
    for analyte, (lower, upper) in REFERENCE_RANGES.items():
        low = lower if lower is not None else upper * 0.3
        value = rng.uniform(low * 1.05, upper * 0.95)
        if analyte in abnormal:
            value = lower * rng.uniform(0.5, 0.9) if analyte in LOW_WHEN_ABNORMAL else upper * rng.uniform(1.1, 1.6)
        values[analyte] = round(value, 2)
    return values


def build_cohort(centers, patients_per_center, *, seed=2026, today=None):
    """Unsaved model instances for ``patients_per_center`` patients at each center."""
    rng = random.Random(seed)
    today = today or date.today()
    cohort = SyntheticCohort()
    regimens = [(drug, dose) for drug, dose, weight in START_REGIMENS for _ in range(weight)]
    for center in centers:
        for number in range(1, patients_per_center + 1):
            add_patient(cohort, rng, center, f"{center.code}-{number:04d}", regimens, today)
    return cohort


def add_patient(cohort, rng, center, code, regimens, today):
    start = today - timedelta(days=rng.randint(60, 3 * 365))
    birth_year = rng.randint(1950, 2006)
    patient = Patient(
        center=center, code=code, sex=rng.choice(v.SEXES), birth_year=birth_year,
        height_cm=Decimal(rng.randint(150, 195)), weight_kg=Decimal(rng.randint(48, 110)),
        ad_onset_age=rng.randint(0, 12), ad_subtype=rng.choice(("generalized", "flexural")),
        special_areas=rng.sample(v.SPECIAL_AREAS, rng.randint(0, 3)),
        atopic_comorbidities=rng.sample(v.ATOPIC_COMORBIDITIES, rng.randint(0, 3)),
        autoimmune_comorbidities=rng.sample(("alopecia_areata", "vitiligo", "thyroiditis"), rng.choice((0, 0, 0, 1))),
        cv_risk_factors=rng.sample(v.CV_RISK_FACTORS, rng.choice((0, 0, 1, 2))),
        neoplasia_last_5y=[] if rng.random() > 0.03 else ["basal_cell_carcinoma"],
        enrolled_on=start,
    )
    cohort.patients.append(patient)
    for drug in rng.sample(("ciclosporin", "methotrexate", "dupilumab", "phototherapy"), rng.randint(1, 3)):
        cohort.prior_treatments.append(PriorTreatment(
            patient=patient, drug=drug, stop_reason=rng.choice(("primary_failure", "secondary_failure", "adverse_event")),
        ))

    drug, dose = rng.choice(regimens)
    episode = TreatmentEpisode(
        patient=patient, code=f"{code}-e1", drug=drug, start_date=start, start_dose_mg=Decimal(dose)
    )
    cohort.episodes.append(episode)
    follow_up = (today - start).days
    stops = rng.random() < 0.2 and follow_up > 120
    if stops:
        episode.end_date = start + timedelta(days=rng.randint(100, follow_up - 1))
        episode.end_reason = rng.choice(("secondary_failure", "adverse_event", "patient_choice", "primary_failure"))
    last_day = ((episode.end_date or today) - start).days

    escalation_day = None
    if drug == "upadacitinib" and dose == 30 and last_day > 200 and rng.random() < 0.25:
        escalation_day = rng.randint(120, last_day - 60)
        cohort.dose_changes.append(DoseChange(episode=episode, date=start + timedelta(days=escalation_day), dose_mg=Decimal(45), reason="secondary_failure"))
        if last_day - escalation_day > 150 and rng.random() < 0.6:
            cohort.dose_changes.append(DoseChange(episode=episode, date=start + timedelta(days=escalation_day + rng.randint(90, 140)), dose_mg=Decimal(30), reason="disease_control"))

    easi0 = rng.uniform(14, 40)
    response = rng.uniform(0.3, 0.95)
    days = [d + (rng.randint(-10, 10) if d else -rng.randint(0, 14)) for d in VISIT_DAYS]
    days += list(range(485, last_day + 1, 120))
    seen = set()
    for day in days:
        if day > last_day or day in seen:
            continue
        seen.add(day)
        progress = min(max(day, 0) / 120, 1) * response
        flare = 0.5 if escalation_day and escalation_day - 40 < day <= escalation_day else 0
        easi = max(0.0, easi0 * (1 - progress + flare) + rng.gauss(0, 1.5))
        answered = day >= 0 or rng.random() < 0.5
        visit = Visit(
            patient=patient, date=start + timedelta(days=day),
            iga=min(4, max(0, round(easi / 9) + rng.choice((0, 0, 1)))),
            easi=Decimal(f"{min(easi, 72):.1f}"),
            scorad=Decimal(f"{min(103, easi * 1.3 + 12 + rng.gauss(0, 3)):.1f}") if rng.random() < 0.8 else None,
            bsa=Decimal(f"{min(100, easi * 1.4 + rng.uniform(0, 5)):.1f}"),
            pruritus_nrs=min(10, max(0, round(8 * (1 - progress) + rng.gauss(0, 1)))),
            sleep_nrs=min(10, max(0, round(6 * (1 - progress) + rng.gauss(0, 1)))),
            dlqi=min(30, max(0, round(18 * (1 - progress) + rng.gauss(0, 2)))) if rng.random() < 0.7 else None,
            poem=min(28, max(0, round(20 * (1 - progress) + rng.gauss(0, 2)))) if rng.random() < 0.5 else None,
        )
        if rng.random() < 0.6:
            abnormal = rng.sample(("ldl", "total_cholesterol", "triglycerides", "cpk", "alt", "lymphocytes"), 1) if day > 0 and rng.random() < 0.12 else ()
            for analyte, value in lab_panel(rng, abnormal).items():
                setattr(visit, analyte, value)
        if answered:
            for term in v.CLINICAL_TERMS:
                setattr(visit, f"aesi_{term}", rng.random() < (0.04 if term in {"acne", "herpes_simplex", "headache", "nausea"} else 0.004))
        cohort.visits.append(visit)

    if rng.random() < 0.15:
        onset = start + timedelta(days=rng.randint(1, max(1, last_day)))
        cohort.adverse_events.append(AdverseEvent(
            patient=patient, episode=episode, term=rng.choice(("acne", "herpes_simplex", "herpes_zoster", "upper_respiratory_infection", "headache")),
            onset_date=onset, end_date=min(today, onset + timedelta(days=rng.randint(3, 30))),
            severity=rng.choice(("mild", "mild", "moderate")), serious=False, action="none", outcome="resolved",
        ))


def save_cohort(cohort, batch_size=2000):
    """Bulk-insert a synthetic cohort (children after their parents)."""
    Patient.objects.bulk_create(cohort.patients, batch_size=batch_size)
    PriorTreatment.objects.bulk_create(cohort.prior_treatments, batch_size=batch_size)
    TreatmentEpisode.objects.bulk_create(cohort.episodes, batch_size=batch_size)
    DoseChange.objects.bulk_create(cohort.dose_changes, batch_size=batch_size)
    Visit.objects.bulk_create(cohort.visits, batch_size=batch_size)
    AdverseEvent.objects.bulk_create(cohort.adverse_events, batch_size=batch_size)
