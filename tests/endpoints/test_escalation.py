"""Escalation above the highest approved dose (000: upadacitinib 45 mg)."""
from datetime import date, timedelta

from endpoints.compute.records import (
    AdverseEvent, Center, Cohort, DoseChange, Episode, Patient, Visit,
)
from endpoints.compute.report import compute_report
from endpoints.compute.vocabulary import REASONS

START = date(2022, 3, 1)
PRE = {"easi": 16.0, "bsa": 26.0, "iga": 3, "pruritus_nrs": 8, "dlqi": 15}


def day(n: int) -> date:
    return START + timedelta(days=n)


def changes(*steps):
    """(day, dose, reason) -> dose changes."""
    return tuple(DoseChange(day(n), dose, reason) for n, dose, reason in steps)


def cohort(*episodes, visits=(), events=(), ranges=None) -> Cohort:
    """episodes: (patient code, start dose, dose changes, episode fields)."""
    patient_codes = sorted({patient for patient, *_ in episodes})
    return Cohort.from_records(
        centers=[Center("c1", ranges or {})],
        patients=[Patient(code, "c1", "male") for code in patient_codes],
        episodes=[
            Episode(f"{patient}-e{i}", patient, fields.pop("drug", "upadacitinib"),
                    day(fields.pop("start", 0)), dose, dose_changes=steps, **fields)
            for i, (patient, dose, steps, fields) in enumerate(
                (p, d, s, dict(f)) for p, d, s, f in episodes)
        ],
        visits=[Visit(patient, day(n), **scores) for patient, n, scores in visits],
        adverse_events=[AdverseEvent(patient, term, day(n), episode_code=code)
                        for patient, term, n, code in events],
    )


ESCALATED = ("p1", 30, changes((100, 45, "secondary_failure"), (220, 30, "disease_control")), {})
ESCALATED_VISITS = [
    ("p1", 0, {"easi": 20.0, "iga": 4}),
    ("p1", 95, PRE),
    ("p1", 128, {"easi": 8.0, "bsa": 10.0, "pruritus_nrs": 4, "dlqi": 8}),
    ("p1", 160, {"easi": 5.0, "iga": 2}),
    ("p1", 215, {"easi": 4.0}),
    ("p1", 300, {"easi": 3.0}),
]


def row(rows, endpoint, timepoint="", group="all", table="escalation"):
    found = [r for r in rows
             if (r.table, r.endpoint, r.timepoint, r.group) == (table, endpoint, timepoint, group)]
    assert len(found) == 1, (endpoint, timepoint, group)
    return found[0]


def counts(rows, endpoint, timepoint="", group="all"):
    r = row(rows, endpoint, timepoint, group)
    return r.n, r.count


def test_it_counts_an_escalation_by_dose_change_and_the_days_to_it():
    rows = compute_report(cohort(ESCALATED, visits=ESCALATED_VISITS))
    assert counts(rows, "escalated") == (1, 1)
    assert counts(rows, "started_high") == (1, 0)
    assert counts(rows, "escalated", group="upadacitinib_30") == (1, 1)
    days = row(rows, "days_to_escalation")
    assert (days.n, days.median) == (1, 100)


def test_days_at_high_dose_end_at_the_first_later_dose_change():
    rows = compute_report(cohort(ESCALATED, visits=ESCALATED_VISITS))
    assert row(rows, "days_at_high_dose").median == 120


def test_days_at_high_dose_end_at_the_end_date_when_it_comes_first():
    episode = ("p1", 30, changes((100, 45, "severity")),
               {"end_date": day(150), "end_reason": "adverse_event"})
    rows = compute_report(cohort(episode, visits=[("p1", 100, PRE), ("p1", 140, PRE)]))
    assert row(rows, "days_at_high_dose").median == 40  # last visit (day 140) comes first
    rows = compute_report(cohort(episode, visits=[("p1", 100, PRE)]))
    assert row(rows, "days_at_high_dose").median == 0  # escalation-day visit is the last
    rows = compute_report(cohort(episode, visits=[("p1", 90, PRE)]))
    assert row(rows, "days_at_high_dose").median == 50  # no visit since: the end date


def test_days_at_high_dose_end_at_the_last_visit_of_an_ongoing_episode():
    episode = ("p1", 30, changes((100, 45, "severity")), {})
    rows = compute_report(cohort(episode, visits=[("p1", 95, PRE), ("p1", 190, PRE)]))
    assert row(rows, "days_at_high_dose").median == 90
    rows = compute_report(cohort(episode, visits=[("p1", 95, PRE)]))
    assert row(rows, "days_at_high_dose").n == 0  # nothing bounds it yet


def test_the_pre_escalation_baseline_is_the_last_value_within_30_days_before():
    rows = compute_report(cohort(ESCALATED, visits=ESCALATED_VISITS))
    for score, value in PRE.items():
        r = row(rows, score, "pre_escalation")
        assert (r.n, r.mean) == (1, value)
    late = compute_report(cohort(ESCALATED, visits=[("p1", 69, PRE), ("p1", 150, PRE)]))
    assert row(late, "easi", "pre_escalation").n == 0  # day 69 is 31 days before day 100


def test_a_start_at_high_dose_uses_the_episode_baseline():
    episode = ("p1", 45, changes((90, 30, "disease_control")), {})
    rows = compute_report(cohort(episode, visits=[("p1", -20, PRE), ("p1", 60, {"easi": 2.0})]))
    assert counts(rows, "started_high") == (1, 1)
    assert counts(rows, "escalated") == (1, 0)
    assert row(rows, "days_to_escalation").n == 0
    assert row(rows, "easi", "pre_escalation").mean == 16.0
    assert row(rows, "escalation_reason_severity").n == 0  # reasons are of escalations


def test_the_last_observation_at_high_dose_is_carried_forward():
    rows = compute_report(cohort(ESCALATED, visits=ESCALATED_VISITS))
    assert row(rows, "easi", "locf_high_dose").mean == 4.0  # day 215, not day 300 at 30 mg
    assert row(rows, "iga", "locf_high_dose").mean == 2  # per score: day 160
    assert counts(rows, "improved", "locf_high_dose") == (1, 1)
    assert counts(rows, "easi50", "locf_high_dose") == (1, 1)
    assert counts(rows, "easi75", "locf_high_dose") == (1, 1)  # 16 -> 4 is exactly 75 %


def test_without_a_later_assessment_the_baseline_is_carried_forward_and_not_improved():
    episode = ("p1", 30, changes((100, 45, "severity")), {})
    rows = compute_report(cohort(episode, visits=[("p1", 100, PRE)]))
    assert row(rows, "easi", "locf_high_dose").mean == 16.0
    assert counts(rows, "improved", "locf_high_dose") == (1, 0)


def test_a_controlled_deescalation_counts():
    rows = compute_report(cohort(ESCALATED, visits=ESCALATED_VISITS))
    assert counts(rows, "deescalated_controlled") == (1, 1)


def test_a_return_to_high_dose_or_a_stop_for_failure_is_not_a_controlled_deescalation():
    back = ("p1", 30, changes((100, 45, "severity"), (200, 30, "disease_control"),
                              (260, 45, "secondary_failure")), {})
    failed = ("p2", 30, changes((100, 45, "severity"), (200, 30, "disease_control")),
              {"end_date": day(300), "end_reason": "secondary_failure"})
    stopped_high = ("p3", 30, changes((100, 45, "severity")),
                    {"end_date": day(300), "end_reason": "disease_control"})
    rows = compute_report(cohort(back, failed, stopped_high))
    assert counts(rows, "deescalated_controlled") == (3, 0)


def test_an_adverse_event_counts_only_when_dated_at_high_dose():
    ranges = {"lymphocytes": (1.0, 4.0)}
    at_high = compute_report(cohort(
        ESCALATED, visits=[("p1", 0, {}), ("p1", 150, {})], ranges=ranges,
        events=[("p1", "herpes_simplex", 150, "p1-e0")]))
    assert counts(at_high, "any_ae_at_high_dose") == (1, 1)
    before = compute_report(cohort(ESCALATED, events=[("p1", "acne", 50, "p1-e0")]))
    assert counts(before, "any_ae_at_high_dose") == (1, 0)
    after = compute_report(cohort(ESCALATED, events=[("p1", "acne", 220, "p1-e0")]))
    assert counts(after, "any_ae_at_high_dose") == (1, 0)  # day 220 is back at 30 mg


def test_a_checklist_yes_or_an_emergent_lab_at_high_dose_is_an_adverse_event():
    ranges = {"lymphocytes": (1.0, 4.0)}
    checklist = compute_report(cohort(
        ESCALATED, visits=[("p1", 130, {"checklist": {"acne": True}})]))
    assert counts(checklist, "any_ae_at_high_dose") == (1, 1)
    lab = compute_report(cohort(
        ESCALATED, ranges=ranges,
        visits=[("p1", 0, {"labs": {"lymphocytes": 2.0}}),
                ("p1", 130, {"labs": {"lymphocytes": 0.7}})]))
    assert counts(lab, "any_ae_at_high_dose") == (1, 1)
    pre_existing = compute_report(cohort(
        ESCALATED, ranges=ranges,
        visits=[("p1", 0, {"labs": {"lymphocytes": 0.8}}),
                ("p1", 130, {"labs": {"lymphocytes": 0.7}})]))
    assert counts(pre_existing, "any_ae_at_high_dose") == (1, 0)


def test_escalation_reasons_are_reported_for_all_only_over_escalated_episodes():
    other = ("p2", 15, changes((50, 30, "partial_response"), (150, 45, "severity")), {})
    rows = compute_report(cohort(ESCALATED, other))
    assert counts(rows, "escalation_reason_secondary_failure") == (2, 1)
    assert counts(rows, "escalation_reason_severity") == (2, 1)
    assert counts(rows, "escalation_reason_partial_response") == (2, 0)
    reasons = [r for r in rows if r.endpoint.startswith("escalation_reason_")]
    assert {r.group for r in reasons} == {"all"}
    assert {r.endpoint for r in reasons} == {f"escalation_reason_{x}" for x in REASONS}


def test_the_time_course_takes_the_visit_nearest_each_week():
    rows = compute_report(cohort(ESCALATED, visits=ESCALATED_VISITS))

    def course(score, week):
        return row(rows, score, f"week_{week}", table="escalation_course")

    assert course("easi", 0).mean == 16.0
    assert course("easi", 4).mean == 8.0  # day 128 is week 4 (day 128 exactly)
    assert course("easi", 8).mean == 5.0  # day 160 is 4 days from day 156
    assert course("easi", 12).n == 0  # nearest (day 160 / 215) are beyond 2 weeks of 184
    assert course("easi", 16).mean == 4.0  # day 215 is 3 days from 212
    assert course("easi", 24).n == 0  # day 300 is 32 days from 268
    assert course("bsa", 4).mean == 10.0
    assert course("dlqi", 0).sd is None and course("dlqi", 0).median is None


def test_a_tie_in_the_time_course_goes_to_the_earlier_visit():
    rows = compute_report(cohort(ESCALATED, visits=[
        ("p1", 123, {"easi": 9.0}), ("p1", 133, {"easi": 7.0})]))
    assert row(rows, "easi", "week_4", table="escalation_course").mean == 9.0


def test_the_time_course_has_every_week_for_group_all_only():
    rows = [r for r in compute_report(cohort(ESCALATED)) if r.table == "escalation_course"]
    assert {(r.endpoint, r.timepoint) for r in rows} == {
        (score, f"week_{week}") for score in ("easi", "bsa", "pruritus_nrs", "dlqi")
        for week in (0, 4, 8, 12, 16, 24)}
    assert {r.group for r in rows} == {"all"}


def test_an_episode_that_never_exceeds_the_limit_is_not_in_the_table():
    rows = compute_report(cohort(("p1", 30, changes((100, 15, "disease_control")), {}),
                                 ("p2", 4, (), {"drug": "baricitinib"})))
    assert counts(rows, "escalated") == (0, 0)
    assert {r.group for r in rows if r.table == "escalation"} == {"all"}


def test_drugs_without_a_limit_have_no_escalation_and_the_limit_is_a_setting():
    episode = ("p1", 600, (), {"drug": "dupilumab"})
    assert counts(compute_report(cohort(episode)), "started_high") == (0, 0)
    rows = compute_report(cohort(episode), high_dose_limits={"dupilumab": 300})
    assert counts(rows, "started_high") == (1, 1)
    assert counts(rows, "started_high", group="dupilumab_600") == (1, 1)


def test_groups_of_the_escalation_table_are_start_doses():
    rows = compute_report(cohort(
        ESCALATED,
        ("p2", 15, changes((50, 45, "severity")), {}),
        ("p3", 45, (), {}),
    ))
    assert counts(rows, "escalated") == (3, 2)
    assert counts(rows, "started_high", group="upadacitinib_45") == (1, 1)
    assert counts(rows, "escalated", group="upadacitinib_15") == (1, 1)
    days = row(rows, "days_to_escalation")
    assert (days.n, days.median, days.q1, days.q3) == (2, 75, 62.5, 87.5)
