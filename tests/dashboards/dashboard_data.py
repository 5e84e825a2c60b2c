"""Data the dashboard tests build: a cohort of plain records worked out by hand, ORM
patients, users. A module of its own (not conftest.py) so that tests can import it."""
from datetime import date, timedelta

from endpoints.compute.records import Center, Cohort, DoseChange, Episode, Patient, Visit

PASSWORD = "a-long-test-password-1"


# --- A cohort small enough to check by hand ---------------------------------------------------

def tiny_cohort():
    """Three patients at fr-tls (two enrolled in 2024, one in 2025) and one at es-bcn.

    M3 (days 46–136), worst value in the window:
    - P1 upadacitinib 15 mg: baseline IGA 3, EASI 20, itch 8; day 60 IGA 2 EASI 8; day 90
      IGA 1 EASI 4 itch 2 -> worst IGA 2, EASI 8 (60 % better), itch −6.
    - P2 upadacitinib 30 mg: baseline IGA 4, EASI 30, itch 9; day 91 IGA 1, EASI 3, itch 2 ->
      IGA 0/1, vIGA, EASI90, itch −7.
    - P3 baricitinib 4 mg: baseline IGA 3, EASI 25; day 100 IGA 3, EASI 20 -> no response.
    - B1 (es-bcn) upadacitinib 15 mg: baseline IGA 3, EASI 10; no follow-up visit.
    - P4 upadacitinib 30 mg (2025), no baseline visit (in no efficacy N), escalated to 45 mg
      on day 200: visits day 195 (EASI 20, BSA 30, IGA 4), 230 (EASI 8, BSA 10, IGA 2), 260
      (EASI 5).

    Adverse events: P1 answers acne "yes" on day 90 and has LDL 3.0 at baseline, 4.0 on day
    90 (fr-tls's upper limit is 3.4: treatment-emergent); P2 answers acne "no".
    """
    def visit(code, day, **scores):
        return Visit(code, day, **scores)

    patients = {
        "P1": Patient("P1", "fr-tls", "female", 1990, 165.0, 60.0, enrolled_on=date(2024, 1, 10)),
        "P2": Patient("P2", "fr-tls", "male", 1980, 180.0, 81.0, enrolled_on=date(2024, 2, 1)),
        "P3": Patient("P3", "fr-tls", "male", 1970, 170.0, 70.0, enrolled_on=date(2025, 3, 1)),
        "B1": Patient("B1", "es-bcn", "female", 2000, 160.0, 50.0, enrolled_on=date(2024, 5, 1)),
        "P4": Patient("P4", "fr-tls", "male", 1995, 175.0, 75.0, enrolled_on=date(2025, 1, 1)),
    }
    episodes = [
        Episode("P1-e1", "P1", "upadacitinib", date(2024, 1, 10), 15.0),
        Episode("P2-e1", "P2", "upadacitinib", date(2024, 2, 1), 30.0),
        Episode("P3-e1", "P3", "baricitinib", date(2025, 3, 1), 4.0),
        Episode("B1-e1", "B1", "upadacitinib", date(2024, 5, 1), 15.0),
        Episode("P4-e1", "P4", "upadacitinib", date(2025, 1, 1), 30.0, dose_changes=(
            DoseChange(date(2025, 1, 1) + timedelta(days=200), 45.0, "secondary_failure"),
        )),
    ]
    start = {e.patient_code: e.start_date for e in episodes}

    def on(code, day):
        return start[code] + timedelta(days=day)

    visits = {
        "P1": [
            visit("P1", on("P1", 0), iga=3, easi=20.0, pruritus_nrs=8, labs={"ldl": 3.0}),
            visit("P1", on("P1", 60), iga=2, easi=8.0),
            visit("P1", on("P1", 90), iga=1, easi=4.0, pruritus_nrs=2, labs={"ldl": 4.0},
                  checklist={"acne": True}),
        ],
        "P2": [
            visit("P2", on("P2", 0), iga=4, easi=30.0, pruritus_nrs=9),
            visit("P2", on("P2", 91), iga=1, easi=3.0, pruritus_nrs=2, checklist={"acne": False}),
        ],
        "P3": [
            visit("P3", on("P3", 0), iga=3, easi=25.0),
            visit("P3", on("P3", 100), iga=3, easi=20.0),
        ],
        "B1": [visit("B1", on("B1", -5), iga=3, easi=10.0)],
        "P4": [
            visit("P4", on("P4", 195), iga=4, easi=20.0, bsa=30.0),
            visit("P4", on("P4", 230), iga=2, easi=8.0, bsa=10.0),
            visit("P4", on("P4", 260), easi=5.0),
        ],
    }
    centers = {"fr-tls": Center("fr-tls", {"ldl": (None, 3.4)}), "es-bcn": Center("es-bcn")}
    return Cohort(centers, patients, episodes, visits, {})


def make_user(username, center=None, role=None, **flags):
    from django.contrib.auth import get_user_model

    from registry.centers.models import Membership

    user = get_user_model().objects.create_user(username, password=PASSWORD, **flags)
    if center is not None:
        Membership.objects.create(user=user, center=center, role=role)
    return user


def verify_second_factor(client, user):
    """Mark the client's session as verified by the user's authenticator, when the user's role
    requires two factors (coordinators and PIs) and the registry has them."""
    try:
        from django_otp import DEVICE_ID_SESSION_KEY
        from django_otp.plugins.otp_totp.models import TOTPDevice
    except ImportError:  # pragma: no cover - a registry without 2FA
        return
    if not getattr(user, "requires_two_factor", False):
        return
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first() or (
        TOTPDevice.objects.create(user=user, name="test", confirmed=True)
    )
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()


# --- Registry data through the ORM ------------------------------------------------------------

def add_patient(center, *, start, dose=15, drug="upadacitinib", visits=(), enrolled=None,
                birth_year=1985, sex="female"):
    """A patient with one episode and visits given as (day since start, scores)."""
    from registry.clinical.models import Patient as PatientModel
    from registry.clinical.models import TreatmentEpisode
    from registry.clinical.models import Visit as VisitModel

    patient = PatientModel.objects.create(
        center=center, sex=sex, birth_year=birth_year, enrolled_on=enrolled or start
    )
    episode = TreatmentEpisode.objects.create(
        patient=patient, drug=drug, start_date=start, start_dose_mg=dose
    )
    for day, scores in visits:
        VisitModel.objects.create(patient=patient, date=start + timedelta(days=day), **scores)
    return patient, episode


RESPONDER = ((0, {"iga": 3, "easi": 20}), (90, {"iga": 1, "easi": 4}))
NON_RESPONDER = ((0, {"iga": 3, "easi": 20}), (90, {"iga": 3, "easi": 18}))
