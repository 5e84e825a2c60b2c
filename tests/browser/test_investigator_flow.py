"""An investigator's day, end to end in a real headless Chromium against the live server.

Log in through the form, create a patient from the center home, start upadacitinib 30 mg,
record a baseline visit (an out-of-range EASI is refused and nothing saved), escalate to
45 mg, record a follow-up visit and an adverse event, read it all back on the timeline; an
investigator of another center then gets a 404 on that patient.
"""
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from registry.clinical.models import AdverseEvent, DoseChange, Patient, TreatmentEpisode, Visit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def iso(day):
    return day.isoformat()


def save(page, button="Save"):
    """Submit the record form and wait for the page that answers it."""
    with page.expect_navigation():
        page.get_by_role("button", name=button, exact=True).click()


def timeline_entry(page, day, text):
    """The timeline item dated ``day`` that contains ``text`` (exactly one)."""
    entry = page.locator("ol.timeline > li").filter(
        has=page.locator(f'time[datetime="{iso(day)}"]')
    ).filter(has_text=text)
    assert entry.count() == 1, f"no single timeline entry on {day} with {text!r}"
    return entry


def test_investigator_records_a_treatment_course(
    page, login, screenshot, investigator_a, investigator_b
):
    today = timezone.localdate()
    start = today - timedelta(days=120)
    escalation = start + timedelta(days=60)
    event_onset = start + timedelta(days=70)
    follow_up = start + timedelta(days=90)

    # Log in: a one-center investigator lands on their center's patient list.
    login(investigator_a)
    page.get_by_role("heading", name="CHU de Toulouse").wait_for()
    assert page.url.endswith("/centers/fr-tls/")

    # New patient, from the center home.
    page.get_by_role("link", name="New patient", exact=True).click()
    page.get_by_label("Sex").select_option("female")
    page.get_by_label("Birth year").fill("1988")
    page.get_by_label("Enrolled on").fill(iso(start))
    save(page)
    patient = Patient.objects.get()
    assert page.url.endswith(f"/patients/{patient.code}/")
    page.get_by_role("heading", name=patient.code, exact=True).wait_for()

    # Start upadacitinib 30 mg.
    page.get_by_role("link", name="Start treatment", exact=True).click()
    page.get_by_label("Drug").select_option("upadacitinib")
    page.get_by_label("Start date").fill(iso(start))
    page.get_by_label("Start dose (mg/day)").fill("30")
    save(page, "Start treatment")
    assert f"/patients/{patient.code}/" in page.url

    # Baseline visit: EASI 80 is out of range; the form says so and nothing is stored.
    page.get_by_role("link", name="New visit", exact=True).click()
    page.get_by_label("Visit date").fill(iso(start))
    page.get_by_label("IGA").fill("4")
    page.get_by_label("EASI").fill("80")
    save(page)
    assert "/visits/new/" in page.url
    page.get_by_role("alert").filter(has_text="Nothing was saved").wait_for()
    easi = page.get_by_label("EASI")
    assert "is-invalid" in easi.get_attribute("class")
    error = page.locator("#error_1_id_easi").inner_text()
    assert "EASI" in error and "between 0 and 72" in error, error
    assert Visit.objects.count() == 0
    screenshot(page, "visit-form-easi-error", "desktop")
    # The form comes back filled in: only EASI needs correcting.
    assert page.get_by_label("Visit date").input_value() == iso(start)
    assert page.get_by_label("IGA").input_value() == "4"
    easi.fill("24.5")
    save(page)
    assert f"/patients/{patient.code}/" in page.url
    assert Visit.objects.count() == 1

    # Escalate to 45 mg.
    page.get_by_role("link", name="Escalate dose", exact=True).click()
    page.get_by_label("First day at the new dose").fill(iso(escalation))
    page.get_by_label("New dose (mg/day)").fill("45")
    page.get_by_label("Reason").select_option("partial_response")
    save(page, "Escalate dose")
    assert f"/patients/{patient.code}/" in page.url

    # Follow-up visit.
    page.get_by_role("link", name="New visit", exact=True).click()
    page.get_by_label("Visit date").fill(iso(follow_up))
    page.get_by_label("IGA").fill("2")
    page.get_by_label("EASI").fill("6.2")
    save(page)
    assert f"/patients/{patient.code}/" in page.url

    # An adverse event, attributed to the episode from its onset date.
    page.get_by_role("link", name="New adverse event", exact=True).click()
    page.get_by_label("Term").select_option("acne")
    page.get_by_label("Onset date").fill(iso(event_onset))
    page.get_by_label("Severity").select_option("mild")
    page.get_by_label("Serious (ICH E2A)").select_option("false")
    page.get_by_label("Outcome").select_option("ongoing")
    save(page)
    assert f"/patients/{patient.code}/" in page.url

    # The timeline tells the whole course.
    timeline = page.get_by_role("list", name="Timeline")
    text = timeline.inner_text()
    timeline_entry(page, start, "Started Upadacitinib 30 mg")
    timeline_entry(page, escalation, "Escalation: Upadacitinib 45 mg")
    timeline_entry(page, start, "Visit").filter(has_text="EASI 24.5").wait_for()
    timeline_entry(page, follow_up, "Visit").filter(has_text="EASI 6.2").wait_for()
    timeline_entry(page, event_onset, "Adverse event: Acne")
    # Newest first: follow-up, event, escalation, then the start day (visit and start).
    newest_first = ("EASI 6.2", "Adverse event", "Escalation", "EASI 24.5", "Started")
    positions = [text.index(item) for item in newest_first]
    assert positions == sorted(positions), text
    # The episode card shows the dose now in force.
    assert "now 45 mg" in page.locator(f"#episode-{TreatmentEpisode.objects.get().pk}").inner_text()

    screenshot(page, "patient-timeline", "desktop")
    screenshot(page, "patient-timeline", "tablet")
    # Back on the center's list, the patient shows the dose now in force, flagged high.
    page.get_by_role("link", name="fr-tls", exact=True).click()
    row = page.get_by_role("row").filter(has_text=patient.code)
    assert "Upadacitinib 45 mg" in row.inner_text() and "high dose" in row.inner_text()
    screenshot(page, "center-home", "desktop")
    assert page.problems == []

    # What the database holds.
    counts = [model.objects.count() for model in (Patient, TreatmentEpisode, DoseChange, Visit)]
    assert counts + [AdverseEvent.objects.count()] == [1, 1, 1, 2, 1]
    episode = TreatmentEpisode.objects.get()
    assert (episode.patient, episode.drug, episode.start_date, episode.start_dose_mg) == (
        patient, "upadacitinib", start, Decimal("30")
    )
    change = DoseChange.objects.get()
    assert (change.episode, change.date, change.dose_mg) == (episode, escalation, Decimal("45"))
    assert change.is_escalation
    visits = list(Visit.objects.order_by("date").values_list("date", "easi", "iga"))
    assert visits == [(start, Decimal("24.5"), 4), (follow_up, Decimal("6.2"), 2)]
    event = AdverseEvent.objects.get()
    assert (event.patient, event.term, event.onset_date, event.episode) == (
        patient, "acne", event_onset, episode
    )
    assert event.serious is False

    # An investigator of another center cannot even see that the patient exists.
    with page.expect_navigation():
        page.get_by_role("button", name="Log out").click()
    login(investigator_b)
    response = page.goto(f"/patients/{patient.code}/")
    assert response.status == 404
    assert patient.code not in page.content()
    screenshot(page, "other-center-404", "desktop")
    assert page.goto(f"/patients/{patient.code}/visits/new/").status == 404
