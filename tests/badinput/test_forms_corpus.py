"""A corpus of malformed submissions to the data-entry forms ("Trustworthy data", bad input).

Every case is one POST through the Django test client, as an investigator of center A (or,
for the CSRF cases, the same investigator on a client that enforces CSRF checks), built from a
valid payload with one thing broken. For each case:

- the response is not a 500 (the test client re-raises view exceptions, so a crash fails);
- the form comes back with an error on the named field (rendered in the page), or a non-field
  error (``__all__``), or the expected 403 / 404;
- the database is unchanged: row counts of every clinical model and of its audit history, and
  every row's values (so the record the form edits is compared field by field).

``test_every_base_payload_is_accepted`` checks that the unbroken payloads do save, so each
case fails for the one thing it breaks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from endpoints.compute import vocabulary as v
from registry.clinical.models import (
    AdverseEvent,
    DoseChange,
    Patient,
    PriorTreatment,
    Signature,
    TreatmentEpisode,
    Visit,
)
from tests.badinput.snapshots import row_counts, row_values
from tests.conftest import log_in

pytestmark = pytest.mark.django_db

#: Two days ahead, so that no time zone makes it today.
FUTURE = (date.today() + timedelta(days=2)).isoformat()
LONG_TEXT = "x" * 100_000
NON_FIELD = "__all__"


class Drop:
    """Leave the key out of the POST."""

    def __repr__(self):
        return "DROP"


DROP = Drop()


@dataclass(frozen=True)
class Ref:
    """The primary key of a record of the world, known only once the world exists."""

    name: str

    def __repr__(self):
        return f"Ref({self.name})"


class Version:
    """The current version of the edited record."""

    def __init__(self, offset=0):
        self.offset = offset

    def __repr__(self):
        return f"Version({self.offset:+d})"


@dataclass(frozen=True)
class Case:
    id: str
    url: str
    target: str
    changes: dict = field(default_factory=dict)
    #: A field that must carry an error, NON_FIELD, or an HTTP status code.
    expect: str | int = NON_FIELD
    csrf: bool = False


# Valid payloads -------------------------------------------------------------------------------

PATIENT = {
    "sex": "female", "birth_year": "1980", "height_cm": "170.0", "weight_kg": "65.5",
    "ad_onset_age": "2", "ad_subtype": "generalized", "enrolled_on": "2024-01-15",
    "special_areas": ["hands"], "atopic_comorbidities": ["asthma", "rhinitis"],
    "autoimmune_comorbidities": [], "cv_risk_factors": ["smoking"], "neoplasia_last_5y": [],
}
PRIOR = {"drug": "ciclosporin", "start_date": "2019-01-01", "end_date": "2019-06-01", "stop_reason": "adverse_event"}
EPISODE_START = {"drug": "dupilumab", "start_date": "2024-07-01", "start_dose_mg": "300"}
EPISODE_EDIT = {"drug": "upadacitinib", "start_date": "2024-01-10", "start_dose_mg": "30", "end_date": "", "end_reason": ""}
EPISODE_STOP = {"end_date": "2024-09-01", "end_reason": "disease_control"}
# episode_a: 30 mg from 2024-01-10, de-escalated to 15 mg on 2024-05-01.
ESCALATE = {"date": "2024-06-01", "dose_mg": "30", "reason": "severity"}
DEESCALATE = {"date": "2024-06-01", "dose_mg": "7.5", "reason": "disease_control"}
DOSE_EDIT = {"date": "2024-05-01", "dose_mg": "15", "reason": "disease_control"}
VISIT = {"date": "2024-06-01", "easi": "12.5", "iga": "2", "scorad": "30.5", "bsa": "10.5",
         "pruritus_nrs": "4", "sleep_nrs": "3", "dlqi": "8", "poem": "10", "ldl": "2.9",
         "aesi_acne": "false", "aesi_headache": "unknown"}
VISIT_EDIT = {"date": "2024-01-10", "easi": "21.5", "iga": "3"}
EVENT = {"term": "headache", "onset_date": "2024-03-15", "end_date": "2024-03-20", "episode": "",
         "severity": "mild", "serious": "false", "action": "none", "outcome": "resolved",
         "description": "Mild headache."}

#: url name -> (valid payload, whether it edits a record and so posts its version)
BASE = {
    "patient-create": (PATIENT, False),
    "patient-update": (PATIENT, True),
    "prior-treatment-create": (PRIOR, False),
    "prior-treatment-update": (PRIOR, True),
    "episode-create": (EPISODE_START, False),
    "episode-update": (EPISODE_EDIT, True),
    "episode-stop": (EPISODE_STOP, True),
    "episode-escalate": (ESCALATE, False),
    "episode-deescalate": (DEESCALATE, False),
    "dose-change-update": (DOSE_EDIT, True),
    "visit-create": (VISIT, False),
    "visit-update": (VISIT_EDIT, True),
    "adverse-event-create": (EVENT, False),
    "adverse-event-update": (EVENT, True),
    "visit-delete": ({}, False),
}

#: The valid target of each url name, for the base payloads.
HOME = {
    "patient-create": "center_a", "patient-update": "patient_a",
    "prior-treatment-create": "patient_a", "prior-treatment-update": "prior_a",
    "episode-create": "patient_a", "episode-update": "episode_a", "episode-stop": "episode_a",
    "episode-escalate": "episode_a", "episode-deescalate": "episode_a",
    "dose-change-update": "dose_a", "visit-create": "patient_a", "visit-update": "visit_a",
    "adverse-event-create": "patient_a", "adverse-event-update": "ae_a",
}
BY_CODE = {
    "patient-create", "patient-update", "prior-treatment-create", "episode-create",
    "visit-create", "adverse-event-create",
}


# The corpus -----------------------------------------------------------------------------------

def case(url, name, changes, expect, target=None, **kwargs):
    return Case(f"{url}:{name}", url, target or HOME[url], changes, expect, **kwargs)


def score_cases():
    cases = []
    for code, low, high, step in v.SCORES:
        integer = step == 1
        below = "-1" if integer else "-0.1"
        above = str(high + 1) if integer else f"{high}.1"
        fine = "2.5" if integer else "10.25"
        for label, text in [
            ("below-min", below), ("above-max", above), ("granularity", fine), ("text", "abc"),
            ("1e400", "1e400"), ("nan", "NaN"), ("infinity", "Infinity"), ("tiny-negative", "-0.0001"),
        ]:
            cases.append(case("visit-create", f"{code}-{label}", {code: text}, code))
    cases.append(case("visit-create", "easi-emoji", {"easi": "12\N{GRINNING FACE}"}, "easi"))
    cases.append(case("visit-create", "iga-nul-byte", {"iga": "2\x00"}, "iga"))
    cases.append(case("visit-update", "easi-above-max", {"easi": "72.1"}, "easi"))
    cases.append(case("visit-update", "dlqi-text", {"dlqi": "ten"}, "dlqi"))
    return cases


def lab_cases():
    cases = []
    for analyte in v.ANALYTES:
        cases.append(case("visit-create", f"{analyte}-negative", {analyte: "-0.1"}, analyte))
        cases.append(case("visit-create", f"{analyte}-text", {analyte: "high"}, analyte))
    for label, text in [("nan", "NaN"), ("infinity", "Infinity"), ("1e400", "1e400"),
                        ("minus-infinity", "-inf"), ("comma-decimal", "2,9")]:
        cases.append(case("visit-create", f"ldl-{label}", {"ldl": text}, "ldl"))
    return cases


def date_cases(url, name, *, required=True, extra=()):
    cases = [
        case(url, f"{name}-future", {name: FUTURE}, name),
        case(url, f"{name}-far-future", {name: "9999-12-31"}, name),
        case(url, f"{name}-feb-30", {name: "2024-02-30"}, name),
        case(url, f"{name}-day-first", {name: "31/12/2024"}, name),
        case(url, f"{name}-year-zero", {name: "0000-01-01"}, name),
        case(url, f"{name}-rtl-mark", {name: "\u200f2024-02-01"}, name),
    ]
    if required:
        cases.append(case(url, f"{name}-empty", {name: ""}, name))
    return cases + list(extra)


def version_cases(url, target=None):
    """Edits must post the version they started from; an old one is refused. The version is a
    hidden field, so its problems are non-field errors (shown above the form)."""
    return [
        case(url, "version-missing", {"version": DROP}, NON_FIELD, target),
        case(url, "version-text", {"version": "abc"}, NON_FIELD, target),
        case(url, "version-stale", {"version": Version(-1)}, NON_FIELD, target),
        case(url, "version-ahead", {"version": Version(+1)}, NON_FIELD, target),
        case(url, "version-zero", {"version": "0"}, NON_FIELD, target),
    ]


def patient_cases():
    cases = []
    for url in ("patient-create", "patient-update"):
        cases += [
            case(url, "sex-unknown", {"sex": "x"}, "sex"),
            case(url, "sex-empty", {"sex": ""}, "sex"),
            case(url, "sex-rtl-override", {"sex": "\u202efemale"}, "sex"),
            case(url, "comorbidity-gout", {"atopic_comorbidities": ["asthma", "gout"]}, "atopic_comorbidities"),
        ]
    cases += [
        case("patient-create", "special-area-feet", {"special_areas": ["feet"]}, "special_areas"),
        case("patient-create", "autoimmune-emoji", {"autoimmune_comorbidities": ["vitiligo\N{GRINNING FACE}"]}, "autoimmune_comorbidities"),
        case("patient-create", "cv-risk-unknown", {"cv_risk_factors": ["stress"]}, "cv_risk_factors"),
        case("patient-create", "neoplasia-unknown", {"neoplasia_last_5y": ["wart"]}, "neoplasia_last_5y"),
        case("patient-create", "subtype-unknown", {"ad_subtype": "eczema"}, "ad_subtype"),
        case("patient-create", "birth-year-1850", {"birth_year": "1850"}, "birth_year"),
        case("patient-create", "birth-year-after-enrolment", {"birth_year": "2030"}, "birth_year"),
        case("patient-create", "birth-year-decimal", {"birth_year": "1980.5"}, "birth_year"),
        case("patient-create", "birth-year-1e400", {"birth_year": "1e400"}, "birth_year"),
        case("patient-create", "height-below", {"height_cm": "49.9"}, "height_cm"),
        case("patient-create", "height-above", {"height_cm": "250.1"}, "height_cm"),
        case("patient-create", "height-text", {"height_cm": "tall"}, "height_cm"),
        case("patient-create", "height-nan", {"height_cm": "NaN"}, "height_cm"),
        case("patient-create", "weight-below", {"weight_kg": "1.9"}, "weight_kg"),
        case("patient-create", "weight-above", {"weight_kg": "401"}, "weight_kg"),
        case("patient-create", "weight-negative", {"weight_kg": "-65"}, "weight_kg"),
        case("patient-create", "weight-two-decimals", {"weight_kg": "65.25"}, "weight_kg"),
        case("patient-create", "onset-age-above", {"ad_onset_age": "121"}, "ad_onset_age"),
        case("patient-create", "onset-age-negative", {"ad_onset_age": "-1"}, "ad_onset_age"),
        *date_cases("patient-create", "enrolled_on"),
        *version_cases("patient-update"),
    ]
    return cases


def prior_cases():
    return [
        case("prior-treatment-create", "drug-aspirin", {"drug": "aspirin"}, "drug"),
        case("prior-treatment-create", "drug-empty", {"drug": ""}, "drug"),
        case("prior-treatment-create", "drug-upper-case", {"drug": "Ciclosporin"}, "drug"),
        case("prior-treatment-create", "stop-reason-bored", {"stop_reason": "bored"}, "stop_reason"),
        case("prior-treatment-create", "end-before-start", {"end_date": "2018-12-31"}, "end_date"),
        *date_cases("prior-treatment-create", "start_date", required=False),
        case("prior-treatment-create", "end_date-future", {"end_date": FUTURE}, "end_date"),
        case("prior-treatment-update", "drug-aspirin", {"drug": "aspirin"}, "drug"),
        case("prior-treatment-update", "end-before-start", {"end_date": "2018-12-31"}, "end_date"),
        *version_cases("prior-treatment-update"),
    ]


def episode_cases():
    return [
        case("episode-create", "drug-aspirin", {"drug": "aspirin"}, "drug"),
        case("episode-create", "drug-emoji", {"drug": "dupilumab\N{GRINNING FACE}"}, "drug"),
        case("episode-create", "dose-zero", {"start_dose_mg": "0"}, "start_dose_mg"),
        case("episode-create", "dose-negative", {"start_dose_mg": "-300"}, "start_dose_mg"),
        case("episode-create", "dose-text", {"start_dose_mg": "300mg"}, "start_dose_mg"),
        case("episode-create", "dose-1e400", {"start_dose_mg": "1e400"}, "start_dose_mg"),
        case("episode-create", "dose-nan", {"start_dose_mg": "NaN"}, "start_dose_mg"),
        case("episode-create", "dose-two-decimals", {"start_dose_mg": "2.25"}, "start_dose_mg"),
        case("episode-create", "dose-empty", {"start_dose_mg": ""}, "start_dose_mg"),
        *date_cases("episode-create", "start_date"),
        case("episode-update", "drug-aspirin", {"drug": "aspirin"}, "drug"),
        case("episode-update", "end-before-start", {"end_date": "2024-01-09", "end_reason": "other"}, "end_date"),
        case("episode-update", "end-without-reason", {"end_date": "2024-09-01"}, "end_reason"),
        case("episode-update", "reason-without-end", {"end_reason": "disease_control"}, "end_reason"),
        case("episode-update", "reason-bored", {"end_date": "2024-09-01", "end_reason": "bored"}, "end_reason"),
        case("episode-update", "start-after-dose-change", {"start_date": "2024-06-01"}, "start_date"),
        case("episode-update", "end-before-dose-change", {"end_date": "2024-04-01", "end_reason": "other"}, "end_date"),
        case("episode-update", "start-future", {"start_date": FUTURE}, "start_date"),
        *version_cases("episode-update"),
        case("episode-stop", "end-missing", {"end_date": DROP}, "end_date"),
        case("episode-stop", "reason-missing", {"end_reason": ""}, "end_reason"),
        case("episode-stop", "reason-bored", {"end_reason": "bored"}, "end_reason"),
        case("episode-stop", "end-before-start", {"end_date": "2024-01-01"}, "end_date"),
        case("episode-stop", "end-before-dose-change", {"end_date": "2024-04-30"}, "end_date"),
        case("episode-stop", "end-future", {"end_date": FUTURE}, "end_date"),
        case("episode-stop", "end-malformed", {"end_date": "2024-02-30"}, "end_date"),
        *version_cases("episode-stop"),
    ]


def dose_change_cases():
    return [
        case("episode-escalate", "on-start-day", {"date": "2024-01-10", "dose_mg": "45"}, "date"),
        case("episode-escalate", "before-start", {"date": "2023-12-01", "dose_mg": "45"}, "date"),
        case("episode-escalate", "after-end", {"date": "2023-07-15", "dose_mg": "600"}, "date", "episode_old"),
        case("episode-escalate", "same-day-as-a-change", {"date": "2024-05-01", "dose_mg": "45"}, "date"),
        case("episode-escalate", "equal-to-dose-in-force", {"dose_mg": "15"}, "dose_mg"),
        case("episode-escalate", "to-a-lower-dose", {"dose_mg": "7.5"}, "dose_mg"),
        case("episode-escalate", "dose-zero", {"dose_mg": "0"}, "dose_mg"),
        case("episode-escalate", "dose-negative", {"dose_mg": "-45"}, "dose_mg"),
        case("episode-escalate", "dose-text", {"dose_mg": "double"}, "dose_mg"),
        case("episode-escalate", "dose-infinity", {"dose_mg": "Infinity"}, "dose_mg"),
        case("episode-escalate", "reason-bored", {"reason": "bored"}, "reason"),
        *date_cases("episode-escalate", "date"),
        case("episode-deescalate", "to-a-higher-dose", {"dose_mg": "30"}, "dose_mg"),
        case("episode-deescalate", "equal-to-dose-in-force", {"dose_mg": "15"}, "dose_mg"),
        case("episode-deescalate", "before-start", {"date": "2023-12-01"}, "date"),
        case("episode-deescalate", "after-end", {"date": "2023-07-15", "dose_mg": "150"}, "date", "episode_old"),
        case("dose-change-update", "before-start", {"date": "2024-01-01"}, "date"),
        case("dose-change-update", "equal-to-previous-dose", {"dose_mg": "30"}, "dose_mg"),
        case("dose-change-update", "date-future", {"date": FUTURE}, "date"),
        *version_cases("dose-change-update"),
    ]


def visit_cases():
    return [
        *date_cases("visit-create", "date"),
        case("visit-create", "duplicate-date", {"date": "2024-01-10"}, NON_FIELD),
        case("visit-create", "checklist-unknown-answer", {"aesi_acne": "maybe"}, "aesi_acne"),
        case("visit-update", "duplicate-of-another-visit", {"date": "2024-04-10"}, NON_FIELD),
        case("visit-update", "date-future", {"date": FUTURE}, "date"),
        *version_cases("visit-update"),
        case("visit-update", "signed-without-reason", {"date": "2023-06-01"}, "reason_for_change", "visit_signed"),
        case("visit-update", "signed-blank-reason", {"date": "2023-06-01", "reason_for_change": "   "}, "reason_for_change", "visit_signed"),
        case("visit-update", "reason-too-long", {"reason_for_change": "r" * 501}, "reason_for_change"),
        case("visit-update", "reason-nul-byte", {"reason_for_change": "typo\x00"}, "reason_for_change"),
        case("visit-delete", "signed-without-reason", {}, "reason_for_change", "visit_signed"),
    ]


def adverse_event_cases():
    cases = []
    for url in ("adverse-event-create", "adverse-event-update"):
        cases += [
            case(url, "term-sneeze", {"term": "sneeze"}, "term"),
            case(url, "end-before-onset", {"end_date": "2024-03-14"}, "end_date"),
            case(url, "episode-of-center-b", {"episode": Ref("episode_b")}, "episode"),
            case(url, "description-100k", {"description": LONG_TEXT}, "description"),
            case(url, "description-nul-byte", {"description": "rash\x00on the face"}, "description"),
        ]
    cases += [
        case("adverse-event-create", "term-empty", {"term": ""}, "term"),
        case("adverse-event-create", "term-rtl-override", {"term": "\u202eheadache"}, "term"),
        *date_cases("adverse-event-create", "onset_date"),
        case("adverse-event-create", "end-future", {"end_date": FUTURE}, "end_date"),
        case("adverse-event-create", "episode-of-another-patient", {"episode": Ref("episode_other")}, "episode"),
        case("adverse-event-create", "episode-not-a-number", {"episode": "abc"}, "episode"),
        case("adverse-event-create", "episode-missing-pk", {"episode": "999999"}, "episode"),
        case("adverse-event-create", "onset-before-episode", {"episode": Ref("episode_a"), "onset_date": "2023-12-01", "end_date": ""}, "onset_date"),
        case("adverse-event-create", "onset-long-after-episode", {"episode": Ref("episode_old"), "onset_date": "2023-09-01", "end_date": ""}, "onset_date"),
        case("adverse-event-create", "severity-unknown", {"severity": "extreme"}, "severity"),
        case("adverse-event-create", "action-unknown", {"action": "amputated"}, "action"),
        case("adverse-event-create", "outcome-unknown", {"outcome": "cured"}, "outcome"),
        case("adverse-event-create", "serious-unknown-answer", {"serious": "maybe"}, "serious"),
        *version_cases("adverse-event-update"),
    ]
    return cases


def csrf_cases():
    """The same valid payloads without a CSRF token: 403, nothing saved."""
    urls = [url for url in HOME]
    return [Case(f"{url}:no-csrf-token", url, HOME[url], {}, 403, csrf=True) for url in urls]


def foreign_cases():
    """Center B's records through center A's investigator: 404 (they do not exist for her)."""
    targets = {
        "patient-create": "center_b", "patient-update": "patient_b",
        "prior-treatment-create": "patient_b", "prior-treatment-update": "prior_b",
        "episode-create": "patient_b", "episode-update": "episode_b", "episode-stop": "episode_b",
        "episode-escalate": "episode_b", "episode-deescalate": "episode_b",
        "dose-change-update": "dose_b", "visit-create": "patient_b", "visit-update": "visit_b",
        "adverse-event-create": "patient_b", "adverse-event-update": "ae_b",
        "visit-delete": "visit_b",
    }
    cases = [Case(f"{url}:center-b", url, target, {}, 404) for url, target in targets.items()]
    cases += [
        Case("visit-update:no-such-visit", "visit-update", "missing", {}, 404),
        Case("episode-escalate:no-such-episode", "episode-escalate", "missing", {}, 404),
    ]
    return cases


CASES = [
    *score_cases(), *lab_cases(), *patient_cases(), *prior_cases(), *episode_cases(),
    *dose_change_cases(), *visit_cases(), *adverse_event_cases(), *csrf_cases(),
    *foreign_cases(),
]


# The world every case starts from -------------------------------------------------------------

def build_world():
    """Center A: patient_a with an ongoing upadacitinib episode (30 mg, 15 mg from 2024-05-01),
    an older stopped dupilumab episode, two visits, an adverse event and a prior treatment;
    a second patient whose data a PI signed; center B with the same kinds of records.
    Every record that a case edits has been saved twice (version 2), so that an old version
    exists."""
    from django.contrib.auth import get_user_model

    from registry.centers.models import Center, Membership

    users = get_user_model().objects
    center_a = Center.objects.create(code="fr-tls", name="CHU de Toulouse", country="FR")
    center_b = Center.objects.create(code="es-bcn", name="Hospital de Barcelona", country="ES")
    investigator = users.create_user("investigator-a")  # no password: force_login, no hashing
    pi = users.create_user("pi-a")
    Membership.objects.create(user=investigator, center=center_a, role="investigator")
    Membership.objects.create(user=pi, center=center_a, role="pi")

    patient_a = Patient.objects.create(center=center_a, sex="female", birth_year=1990, enrolled_on=date(2024, 1, 10))
    episode_a = TreatmentEpisode.objects.create(
        patient=patient_a, drug="upadacitinib", start_date=date(2024, 1, 10), start_dose_mg=30,
    )
    other = Patient.objects.create(center=center_a, sex="male", birth_year=1970, enrolled_on=date(2023, 5, 1))
    episode_old = TreatmentEpisode.objects.create(
        patient=patient_a, drug="dupilumab", start_date=date(2023, 1, 1), start_dose_mg=300,
        end_date=date(2023, 6, 30), end_reason="secondary_failure",
    )
    episode_other = TreatmentEpisode.objects.create(
        patient=other, drug="baricitinib", start_date=date(2023, 5, 1), start_dose_mg=4,
    )
    dose_a = DoseChange.objects.create(episode=episode_a, date=date(2024, 5, 1), dose_mg=15, reason="disease_control")
    visit_a = Visit.objects.create(patient=patient_a, date=date(2024, 1, 10), easi=Decimal("24.5"), iga=3, ldl=2.9)
    visit_a2 = Visit.objects.create(patient=patient_a, date=date(2024, 4, 10), easi=Decimal("8.2"), iga=1)
    ae_a = AdverseEvent.objects.create(
        patient=patient_a, episode=episode_a, term="acne", onset_date=date(2024, 3, 1),
        severity="mild", description="Face.",
    )
    prior_a = PriorTreatment.objects.create(
        patient=patient_a, drug="methotrexate", start_date=date(2018, 1, 1), end_date=date(2018, 12, 1),
    )
    visit_signed = Visit.objects.create(patient=other, date=date(2023, 6, 1), easi=Decimal("10.0"), iga=2)

    patient_b = Patient.objects.create(center=center_b, sex="male", birth_year=1985, enrolled_on=date(2024, 1, 1))
    episode_b = TreatmentEpisode.objects.create(
        patient=patient_b, drug="upadacitinib", start_date=date(2024, 1, 1), start_dose_mg=15,
    )
    dose_b = DoseChange.objects.create(episode=episode_b, date=date(2024, 4, 1), dose_mg=30, reason="severity")
    visit_b = Visit.objects.create(patient=patient_b, date=date(2024, 1, 1), easi=Decimal("30.0"))
    ae_b = AdverseEvent.objects.create(patient=patient_b, term="headache", onset_date=date(2024, 2, 1))
    prior_b = PriorTreatment.objects.create(patient=patient_b, drug="dupilumab")

    for record in (patient_a, episode_a, dose_a, visit_a, ae_a, prior_a, visit_signed):
        record.refresh_from_db()
        record.save()
    # Signed last: a save of signed data without a reason would revoke the signature.
    Signature.objects.create(patient=other, signed_up_to=date(2023, 12, 31), signed_by=pi)
    return dict(
        investigator=investigator, center_a=center_a, center_b=center_b, patient_a=patient_a,
        patient_b=patient_b, episode_a=episode_a, episode_old=episode_old,
        episode_other=episode_other, episode_b=episode_b, dose_a=dose_a, dose_b=dose_b,
        visit_a=visit_a, visit_a2=visit_a2, visit_b=visit_b, visit_signed=visit_signed,
        ae_a=ae_a, ae_b=ae_b, prior_a=prior_a, prior_b=prior_b,
    )


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """The world, built once for the module inside a transaction that wraps every case's own
    (rolled back) transaction, and rolled back at the end of the module."""
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            records = build_world()
        except BaseException:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)
            raise
    yield records
    with django_db_blocker.unblock():
        transaction.set_rollback(True)
        outer.__exit__(None, None, None)


def url_of(world, url, target):
    if target == "missing":
        return reverse(url, args=[999999])
    record = world[target]
    return reverse(url, args=[record.code if url in BY_CODE else record.pk])


def payload(world, url, target, changes):
    """The valid payload of ``url`` with ``changes``, references and versions resolved."""
    base, edits = BASE[url]
    data = dict(base)
    if edits and target != "missing":
        data["version"] = Version()
    data.update(changes)
    resolved = {}
    for key, value in data.items():
        if value is DROP:
            continue
        if isinstance(value, Ref):
            value = world[value.name].pk
        elif isinstance(value, Version):
            record = world[target]
            value = type(record)._base_manager.get(pk=record.pk).version + value.offset
        resolved[key] = value
    return resolved


@pytest.fixture(scope="module")
def clients(world, django_db_blocker):
    """One test client per CSRF mode for the whole module, logged in once as investigator A
    (the session is part of the module's world): a new client loads the middleware again
    (WhiteNoise scans every static file), which would cost more than the cases."""
    with django_db_blocker.unblock():
        return {
            csrf: log_in(Client(enforce_csrf_checks=csrf), world["investigator"])
            for csrf in (False, True)
        }


@pytest.fixture
def client_of(clients, db):
    """``client_of(csrf=False)``: the shared client, without messages left by another case."""

    def client(csrf=False):
        client = clients[csrf]
        client.cookies.pop("messages", None)
        return client

    return client


def post(client, world, case):
    return client.post(url_of(world, case.url, case.target), payload(world, case.url, case.target, case.changes))


# The tests ------------------------------------------------------------------------------------

def test_the_corpus_is_large_and_every_id_is_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 150


@pytest.mark.parametrize("url", list(HOME))
def test_every_base_payload_is_accepted(world, client_of, url):
    """The valid payloads save: a case's error is due to the one thing it breaks."""
    before = row_counts()
    response = post(client_of(), world, Case(f"{url}:valid", url, HOME[url]))
    assert response.status_code == 302, response.context["form"].errors if response.context else response
    after = row_counts()
    assert after != before  # a record was created, or its history grew


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_submission_is_refused_and_changes_nothing(world, client_of, case):
    client = client_of(csrf=case.csrf)
    counts, values = row_counts(), row_values()

    response = post(client, world, case)

    assert response.status_code != 500
    if isinstance(case.expect, int):
        assert response.status_code == case.expect
    else:
        assert response.status_code == 200, f"expected the form again, got {response.status_code}"
        form = response.context["form"]
        errors = form.errors.get(case.expect)
        assert errors, f"no error on {case.expect!r}; errors: {form.errors.as_data()}"
        page = response.content.decode()
        for message in errors:
            assert escape(message) in page, f"{message!r} is not shown on the page"
    assert row_counts() == counts
    assert row_values() == values


def test_emoji_and_right_to_left_text_are_stored_as_typed(world, client_of):
    """Non-ASCII free text is data, not an attack: it is kept exactly (only NUL is refused)."""
    text = "Eruption \N{GRINNING FACE} \u05e2\u05d5\u05e8 \u0645\u0631\u064a\u0636 \u202eevil\u202c é"
    response = post(client_of(), world, Case("ae", "adverse-event-create", "patient_a", {"description": text}))
    assert response.status_code == 302
    assert AdverseEvent.objects.get(patient=world["patient_a"], term="headache").description == text


def test_forged_parent_fields_in_the_post_are_ignored(world, client_of):
    """A POSTed ``patient`` / ``center`` / ``episode`` cannot move a new record to center B:
    the parent comes from the URL through the scoped lookup."""
    forged = {"patient": world["patient_b"].pk, "center": world["center_b"].pk}
    response = post(client_of(), world, Case("v", "visit-create", "patient_a", forged))
    assert response.status_code == 302
    assert Visit.objects.get(date=date(2024, 6, 1)).patient == world["patient_a"]
    forged = {"episode": world["episode_b"].pk}
    response = post(client_of(), world, Case("d", "episode-escalate", "episode_a", forged))
    assert response.status_code == 302
    assert DoseChange.objects.get(date=date(2024, 6, 1)).episode == world["episode_a"]
    assert not world["patient_b"].visits.filter(date=date(2024, 6, 1)).exists()
