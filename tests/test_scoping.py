"""Walks every URL pattern with every persona against records of their own and another center.

A new URL must be added to CATALOGUE (or, if it reads no patient data, to NOT_SCOPED with a
reason): an unclassified pattern fails the test, so no view escapes the center scoping.
"""
from datetime import date

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from registry.centers.models import Center
from registry.clinical.models import (
    AdverseEvent,
    DataQuery,
    DoseChange,
    Patient,
    PriorTreatment,
    TreatmentEpisode,
    Visit,
)
from tests.conftest import log_in, make_user

#: URL name -> (the record its URL names, whether it changes data)
CATALOGUE = {
    "center-home": ("center", "read"),
    "patient-create": ("center", "write"),
    "patient-detail": ("patient", "read"),
    "patient-update": ("patient", "write"),
    "episode-create": ("patient", "write"),
    "visit-create": ("patient", "write"),
    "adverse-event-create": ("patient", "write"),
    "prior-treatment-create": ("patient", "write"),
    "episode-update": ("episode", "write"),
    "episode-stop": ("episode", "write"),
    "episode-escalate": ("episode", "write"),
    "episode-deescalate": ("episode", "write"),
    "dose-change-update": ("dose_change", "write"),
    "dose-change-delete": ("dose_change", "write"),
    "visit-update": ("visit", "write"),
    "visit-delete": ("visit", "write"),
    "adverse-event-update": ("adverse_event", "write"),
    "adverse-event-delete": ("adverse_event", "write"),
    "prior-treatment-update": ("prior_treatment", "write"),
    "prior-treatment-delete": ("prior_treatment", "write"),
    "patient-sign": ("patient", "sign"),
    "record-history": ("history", "read"),
    "query-detail": ("query", "read"),
    "query-create": ("query_target", "raise_query"),
    "center-dashboard": ("center", "read"),
    "center-dashboard-status": ("center", "read"),
    "center-dashboard-live": ("center", "read"),
    "center-dashboard-csv": ("center", "read"),
}
#: Patterns that read no center's patient data, and why.
NOT_SCOPED = {
    "home": "lists the user's own centers through Center.objects.for_user",
    "login": "authentication", "logout": "authentication",
    "password_change": "the user's own account", "password_change_done": "the user's own account",
    "set_language": "interface language",
    "two-factor": "the user's own authenticator",
    "dashboards": "lists the user's own centers through Center.objects.for_user",
    "pooled-dashboard": "coordinators; PIs when the study shares pooled results; 404 otherwise (tests/dashboards)",
    "pooled-dashboard-status": "as pooled-dashboard (tests/dashboards)",
    "pooled-dashboard-live": "as pooled-dashboard (tests/dashboards)",
    "pooled-dashboard-csv": "as pooled-dashboard (tests/dashboards)",
    "query-list": "lists queries through DataQuery.objects.for_user",
    "dataset-import": "coordinators only (403 otherwise, tested in tests/datasets)",
    "dataset-import-confirm": "coordinators only (403 otherwise, tested in tests/datasets)",
    "dataset-import-cancel": "coordinators only (403 otherwise, tested in tests/datasets)",
    "dataset-export": "coordinators and PIs; centers from exportable_centers (for_user), a forged center is 403 (tests/exports)",
    "dataset-export-list": "ExportRecord.objects.visible_to: coordinators all, others their own (tests/exports)",
    "dataset-export-detail": "an ExportRecord, not patient data: visible_to, 404 otherwise (tests/exports)",
    "dataset-export-status": "an ExportRecord, not patient data: visible_to, 404 otherwise (tests/exports)",
    "dataset-export-download": "visible_to, and the user may still export its centers, else 403 (tests/exports)",
}
NOT_SCOPED_NAMESPACES = {"admin": "Django admin: staff only, querysets scoped by ScopedAdmin"}


def url_names(resolver=None, namespace=None):
    for pattern in (resolver or get_resolver()).url_patterns:
        if isinstance(pattern, URLResolver):
            yield from url_names(pattern, pattern.namespace or namespace)
        elif isinstance(pattern, URLPattern):
            yield namespace, pattern.name


def records_of(center, suffix):
    patient = Patient.objects.create(center=center, sex="male", birth_year=1980, enrolled_on=date(2024, 1, 1))
    episode = TreatmentEpisode.objects.create(patient=patient, drug="upadacitinib", start_date=date(2024, 1, 1), start_dose_mg=30)
    return {
        "center": center,
        "patient": patient,
        "episode": episode,
        "dose_change": DoseChange.objects.create(episode=episode, date=date(2024, 5, 1), dose_mg=45, reason="secondary_failure"),
        "visit": Visit.objects.create(patient=patient, date=date(2024, 1, 1), easi=22, iga=3),
        "adverse_event": AdverseEvent.objects.create(patient=patient, episode=episode, term="acne", onset_date=date(2024, 2, 1)),
        "prior_treatment": PriorTreatment.objects.create(patient=patient, drug="dupilumab"),
        "query": DataQuery.objects.create(patient=patient, text="EASI 52 with IGA 1?"),
    }


def url_for(name, records, kind):
    if kind in {"history", "query_target"}:
        return reverse(name, args=["visit", records["visit"].pk])
    record = records[kind]
    if isinstance(record, (Patient, Center)):
        return reverse(name, args=[record.code])
    return reverse(name, args=[record.pk])


def test_every_url_pattern_is_classified():
    unclassified = [
        name for namespace, name in url_names()
        if namespace not in NOT_SCOPED_NAMESPACES and name not in CATALOGUE and name not in NOT_SCOPED
    ]
    assert unclassified == []


#: access -> persona -> expected status (on a record of center A, on a record of center B)
EXPECTED = {
    "read": {
        "investigator_a": (200, 404), "pi_a": (200, 404), "readonly_a": (200, 404),
        "investigator_b": (404, 200), "coordinator": (200, 200),
    },
    "write": {
        "investigator_a": (200, 404), "pi_a": (200, 404), "readonly_a": (403, 404),
        "investigator_b": (404, 200), "coordinator": (403, 403),
    },
    "sign": {  # center PIs only
        "investigator_a": (403, 404), "pi_a": (200, 404), "readonly_a": (403, 404),
        "investigator_b": (404, 403), "coordinator": (403, 403),
    },
    "raise_query": {  # coordinators only
        "investigator_a": (403, 403), "pi_a": (403, 403), "readonly_a": (403, 403),
        "investigator_b": (403, 403), "coordinator": (200, 200),
    },
}


@pytest.mark.django_db
def test_every_scoped_url_answers_each_persona_as_its_role_allows(client, center_a, center_b):
    personas = {
        "investigator_a": make_user("inv-a", center_a, "investigator"),
        "pi_a": make_user("pi-a", center_a, "pi"),
        "readonly_a": make_user("ro-a", center_a, "read_only"),
        "investigator_b": make_user("inv-b", center_b, "investigator"),
        "coordinator": make_user("coord", is_coordinator=True),
    }
    records = {"a": records_of(center_a, "a"), "b": records_of(center_b, "b")}
    checked, leaks = 0, []
    for persona, user in personas.items():
        log_in(client, user)
        for name, (kind, access) in CATALOGUE.items():
            for side, want in zip("ab", EXPECTED[access][persona]):
                url = url_for(name, records[side], kind)
                got = client.get(url).status_code
                checked += 1
                if got != want:
                    leaks.append(f"{persona} GET {name} ({side}): {got}, expected {want}")
                if access != "read" and want in (403, 404):
                    got = client.post(url, {"date": "2024-06-01", "easi": "1"}).status_code
                    checked += 1
                    if got != want:
                        leaks.append(f"{persona} POST {name} ({side}): {got}, expected {want}")
        client.logout()
    for name, (kind, _access) in CATALOGUE.items():
        response = client.get(url_for(name, records["a"], kind))
        checked += 1
        if response.status_code != 302 or "/accounts/login/" not in response["Location"]:
            leaks.append(f"anonymous GET {name}: {response.status_code}")
    assert leaks == []
    assert checked > 300
    print(f"scoping walk: {len(CATALOGUE)} URL patterns x {len(personas)} personas x 2 centers"
          f" + anonymous = {checked} requests checked")


@pytest.mark.django_db
def test_forbidden_posts_change_nothing(client, center_a, center_b):
    records = records_of(center_a, "a")
    before = (Visit.objects.count(), DoseChange.objects.count(), Patient.objects.count())
    client.force_login(make_user("ro-a", center_a, "read_only"))
    client.post(reverse("visit-create", args=[records["patient"].code]), {"date": "2024-06-01", "easi": "10"})
    client.post(reverse("visit-delete", args=[records["visit"].pk]))
    client.force_login(make_user("inv-b", center_b, "investigator"))
    client.post(reverse("episode-escalate", args=[records["episode"].pk]), {"date": "2024-07-01", "dose_mg": "45"})
    client.post(reverse("patient-create", args=[center_a.code]), {"sex": "male", "enrolled_on": "2024-01-01"})
    assert (Visit.objects.count(), DoseChange.objects.count(), Patient.objects.count()) == before
