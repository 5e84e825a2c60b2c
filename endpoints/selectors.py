"""ORM -> plain records: the only place the endpoint computation's input touches the database.

Reads use ``values_list`` (no model instances) and cast decimals to floats in SQL: a
100,000-patient recompute reads about a million visits, and per-row Python work is most of
its cost.
"""
from collections import defaultdict

from django.db.models import F, FloatField
from django.db.models.functions import Cast

from endpoints.compute import vocabulary as v
from endpoints.compute.records import (
    AdverseEvent,
    Center,
    Cohort,
    DoseChange,
    Episode,
    Patient,
    Visit,
)
from registry.centers import models as centers
from registry.clinical import models as clinical

LIST_FIELDS = ("special_areas", *v.COMORBIDITY_LISTS)
CHECKLIST_COLUMNS = tuple(f"aesi_{term}" for term in v.CLINICAL_TERMS)


def as_float(name):
    return Cast(F(name), FloatField())


def load_cohort(center_codes=None):
    """The records of the given centers (None: every center) as a :class:`Cohort`."""
    def scoped(queryset, path):
        if center_codes is None:
            return queryset
        return queryset.filter(**{f"{path}code__in": list(center_codes)})

    lab_ranges = defaultdict(dict)
    for code, analyte, lower, upper in scoped(centers.LabRange.objects, "center__").values_list(
        "center__code", "analyte", "lower", "upper"
    ):
        lab_ranges[code][analyte] = (lower, upper)
    center_records = {
        code: Center(code=code, lab_ranges=lab_ranges.get(code, {}))
        for code in scoped(centers.Center.objects, "").values_list("code", flat=True)
    }

    prior_drugs = defaultdict(set)
    for code, drug in scoped(clinical.PriorTreatment.objects, "patient__center__").values_list(
        "patient__code", "drug"
    ):
        prior_drugs[code].add(drug)

    patients = {}
    for row in scoped(clinical.Patient.objects, "center__").values_list(
        "code", "center__code", "sex", "birth_year", as_float("height_cm"),
        as_float("weight_kg"), "ad_onset_age", "ad_subtype", *LIST_FIELDS, "enrolled_on",
    ):
        code, center, sex, birth_year, height, weight, onset, subtype = row[:8]
        lists = [frozenset(items or ()) for items in row[8:8 + len(LIST_FIELDS)]]
        patients[code] = Patient(
            code, center, sex, birth_year, height, weight, onset, subtype or None, *lists,
            enrolled_on=row[-1], prior_drugs=frozenset(prior_drugs.get(code, ())),
        )

    changes = defaultdict(list)
    for episode_id, day, dose, reason in scoped(
        clinical.DoseChange.objects, "episode__patient__center__"
    ).order_by("date").values_list("episode_id", "date", as_float("dose_mg"), "reason"):
        changes[episode_id].append(DoseChange(day, dose, reason or None))
    episodes = [
        Episode(code, patient, drug, start, dose, end, reason or None, tuple(changes.get(pk, ())))
        for pk, code, patient, drug, start, dose, end, reason in scoped(
            clinical.TreatmentEpisode.objects, "patient__center__"
        ).values_list(
            "pk", "code", "patient__code", "drug", "start_date", as_float("start_dose_mg"),
            "end_date", "end_reason",
        )
    ]

    visits = defaultdict(list)
    score_columns = [as_float(c) if c in {"easi", "scorad", "bsa"} else c for c in v.SCORE_CODES]
    n_scores, n_labs = len(v.SCORE_CODES), len(v.ANALYTES)
    for row in scoped(clinical.Visit.objects, "patient__center__").order_by("date").values_list(
        "patient__code", "date", *score_columns, *v.ANALYTES, *CHECKLIST_COLUMNS
    ):
        labs_row = row[2 + n_scores:2 + n_scores + n_labs]
        checklist_row = row[2 + n_scores + n_labs:]
        visits[row[0]].append(Visit(
            row[0], row[1], *row[2:2 + n_scores],
            labs={a: value for a, value in zip(v.ANALYTES, labs_row) if value is not None},
            checklist={t: answer for t, answer in zip(v.CLINICAL_TERMS, checklist_row) if answer is not None},
        ))

    events = defaultdict(list)
    for patient, term, onset, episode, end, severity, serious in scoped(
        clinical.AdverseEvent.objects, "patient__center__"
    ).values_list(
        "patient__code", "term", "onset_date", "episode__code", "end_date", "severity", "serious"
    ):
        events[patient].append(AdverseEvent(patient, term, onset, episode, end, severity or None, serious))

    return Cohort(center_records, patients, episodes, dict(visits), dict(events))
