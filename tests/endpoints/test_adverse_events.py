"""Adverse events per episode (003, Table II): data available, events, labs against ranges."""
from datetime import date, timedelta

from endpoints.compute.records import (
    AdverseEvent, Center, Cohort, Episode, Patient, Visit,
)
from endpoints.compute.report import compute_report
from endpoints.compute.vocabulary import AE_TERMS

START = date(2023, 1, 10)
RANGES = {
    "ldl": (None, 3.0), "total_cholesterol": (None, 5.0), "alt": (None, 40.0),
    "ast": (None, 40.0), "lymphocytes": (1.0, 4.0), "hemoglobin": (12.0, 17.0),
}


def day(n: int) -> date:
    return START + timedelta(days=n)


def one(visit_days=(), events=(), *, end=None, ranges=RANGES, drug="upadacitinib", dose=15,
        center="c1") -> Cohort:
    """One patient, one episode from START; visit_days: (day, labs, checklist)."""
    return Cohort.from_records(
        centers=[Center(center, dict(ranges))],
        patients=[Patient("p1", center, "male")],
        episodes=[Episode("e1", "p1", drug, START, dose,
                          end_date=None if end is None else day(end),
                          end_reason=None if end is None else "other")],
        visits=[Visit("p1", day(n), labs=dict(labs), checklist=dict(checklist))
                for n, labs, checklist in visit_days],
        adverse_events=[
            AdverseEvent("p1", term, day(onset), episode_code=code)
            for term, onset, code in events
        ],
    )


def counts(rows, term, group="all"):
    found = [r for r in rows if (r.table, r.endpoint, r.group) == ("adverse_events", term, group)]
    assert len(found) == 1, term
    assert found[0].timepoint == "on_treatment"
    return found[0].n, found[0].count


def test_it_counts_a_checklist_yes_on_treatment_as_an_event():
    rows = compute_report(one([(0, {}, {"acne": False}), (30, {}, {"acne": True})]))
    assert counts(rows, "acne") == (1, 1)
    assert counts(rows, "any_clinical_ae") == (1, 1)
    assert counts(rows, "any_ae") == (1, 1)


def test_a_checklist_answer_before_day_0_is_data_but_not_an_event():
    rows = compute_report(one([(-10, {}, {"herpes_simplex": True}),
                               (-31, {}, {"headache": False})]))
    assert counts(rows, "herpes_simplex") == (1, 0)
    assert counts(rows, "headache") == (0, 0)  # day -31 is not a visit of the episode


def test_a_checklist_no_is_data_without_an_event():
    assert counts(compute_report(one([(10, {}, {"nausea": False})])), "nausea") == (1, 0)


def test_an_unanswered_item_is_no_data():
    rows = compute_report(one([(10, {}, {"nausea": False})]))
    assert counts(rows, "cough") == (0, 0)
    assert counts(rows, "any_biological_ae") == (0, 0)


def test_a_visit_after_the_end_date_gives_neither_data_nor_event():
    rows = compute_report(one([(40, {"ldl": 4.0}, {"fever": True})], end=30))
    assert counts(rows, "fever") == (0, 0)
    assert counts(rows, "cholesterol_increased") == (0, 0)


def test_it_counts_a_treatment_emergent_lab_abnormality():
    rows = compute_report(one([(-5, {"ldl": 2.5}, {}), (60, {"ldl": 3.4}, {})]))
    assert counts(rows, "cholesterol_increased") == (1, 1)
    assert counts(rows, "any_biological_ae") == (1, 1)


def test_an_abnormality_already_present_at_baseline_is_not_an_event():
    rows = compute_report(one([(-5, {"ldl": 3.5}, {}), (60, {"ldl": 3.6}, {})]))
    assert counts(rows, "cholesterol_increased") == (1, 0)


def test_an_abnormal_day_0_value_is_its_own_baseline_so_not_an_event():
    rows = compute_report(one([(0, {"alt": 80.0}, {}), (30, {"alt": 90.0}, {})]))
    assert counts(rows, "transaminases_increased") == (1, 0)


def test_an_abnormality_without_a_lab_baseline_is_treatment_emergent():
    rows = compute_report(one([(30, {"ast": 41.0}, {})]))
    assert counts(rows, "transaminases_increased") == (1, 1)


def test_a_lab_baseline_older_than_30_days_is_no_baseline():
    rows = compute_report(one([(-31, {"ast": 80.0}, {}), (30, {"ast": 81.0}, {})]))
    assert counts(rows, "transaminases_increased") == (1, 1)


def test_a_value_at_the_limit_is_within_range():
    rows = compute_report(one([(30, {"ldl": 3.0, "lymphocytes": 1.0}, {})]))
    assert counts(rows, "cholesterol_increased") == (1, 0)
    assert counts(rows, "lymphopenia") == (1, 0)


def test_either_analyte_of_a_term_raises_it():
    rows = compute_report(one([(-1, {"ldl": 2.0, "total_cholesterol": 5.5}, {}),
                               (30, {"ldl": 3.2, "total_cholesterol": 5.6}, {})]))
    # LDL went above the range from a normal baseline; total cholesterol was high already.
    assert counts(rows, "cholesterol_increased") == (1, 1)


def test_lymphopenia_and_anemia_read_the_lower_limit():
    rows = compute_report(one([(0, {"lymphocytes": 1.5, "hemoglobin": 18.0}, {}),
                               (30, {"lymphocytes": 0.8, "hemoglobin": 18.5}, {})]))
    assert counts(rows, "lymphopenia") == (1, 1)
    assert counts(rows, "anemia") == (1, 0)  # high hemoglobin is not anemia


def test_a_high_baseline_does_not_make_a_later_low_value_pre_existing():
    rows = compute_report(one([(0, {"lymphocytes": 5.0}, {}), (30, {"lymphocytes": 0.5}, {})]))
    assert counts(rows, "lymphopenia") == (1, 1)


def test_each_center_reads_its_own_lab_range():
    visits = [(0, {"alt": 30.0}, {}), (30, {"alt": 45.0}, {})]
    strict = compute_report(one(visits, ranges={"alt": (None, 40.0)}, center="a"))
    lenient = compute_report(one(visits, ranges={"alt": (None, 50.0)}, center="b"))
    assert counts(strict, "transaminases_increased") == (1, 1)
    assert counts(lenient, "transaminases_increased") == (1, 0)


def test_a_lab_without_a_range_at_the_center_is_data_but_never_an_event():
    rows = compute_report(one([(30, {"cpk": 5000.0}, {})]))
    assert counts(rows, "cpk_increased") == (1, 0)


def test_pooled_centers_each_keep_their_range():
    cohort = Cohort.from_records(
        centers=[Center("a", {"alt": (None, 40.0)}), Center("b", {"alt": (None, 50.0)})],
        patients=[Patient("p1", "a", "male"), Patient("p2", "b", "male")],
        episodes=[Episode("e1", "p1", "upadacitinib", START, 15),
                  Episode("e2", "p2", "upadacitinib", START, 15)],
        visits=[Visit("p1", day(30), labs={"alt": 45.0}), Visit("p2", day(30), labs={"alt": 45.0})],
    )
    assert counts(compute_report(cohort), "transaminases_increased") == (2, 1)


def test_labs_before_day_0_are_no_data():
    rows = compute_report(one([(-3, {"ldl": 2.0}, {})]))
    assert counts(rows, "cholesterol_increased") == (0, 0)
    assert counts(rows, "other_biological") == (0, 0)


def test_other_biological_has_data_from_any_lab_and_an_event_only_when_logged():
    rows = compute_report(one([(30, {"hemoglobin": 14.0}, {})]))
    assert counts(rows, "other_biological") == (1, 0)
    logged = compute_report(one([(30, {"hemoglobin": 14.0}, {})],
                                events=[("other_biological", 40, "e1")]))
    assert counts(logged, "other_biological") == (1, 1)


def test_a_logged_event_with_onset_on_treatment_counts():
    rows = compute_report(one(events=[("herpes_zoster", 12, "e1")]))
    assert counts(rows, "herpes_zoster") == (1, 1)
    assert counts(rows, "any_ae") == (1, 1)


def test_a_logged_event_is_data_for_its_term_even_without_labs():
    rows = compute_report(one(events=[("neutropenia", 12, "e1")]))
    assert counts(rows, "neutropenia") == (1, 1)
    assert counts(rows, "any_biological_ae") == (1, 1)


def test_a_logged_event_after_the_end_date_is_data_but_not_an_event():
    rows = compute_report(one(events=[("fever", 35, "e1")], end=30))
    assert counts(rows, "fever") == (1, 0)


def test_an_event_without_episode_code_counts_on_the_episode_of_its_onset():
    rows = compute_report(one(events=[("diarrhea", 20, None)], end=30))
    assert counts(rows, "diarrhea") == (1, 1)


def test_an_event_outside_every_episode_counts_nowhere():
    rows = compute_report(one(events=[("diarrhea", 40, None), ("cough", -5, None)], end=30))
    assert counts(rows, "diarrhea") == (0, 0)
    assert counts(rows, "cough") == (0, 0)


def test_an_event_without_code_is_attributed_to_the_right_one_of_two_episodes():
    cohort = Cohort.from_records(
        centers=[Center("c1")],
        patients=[Patient("p1", "c1", "female")],
        episodes=[
            Episode("e1", "p1", "dupilumab", START, 300, end_date=day(99),
                    end_reason="primary_failure"),
            Episode("e2", "p1", "upadacitinib", day(100), 30),
        ],
        adverse_events=[AdverseEvent("p1", "acne", day(130))],
    )
    rows = compute_report(cohort)
    assert counts(rows, "acne", "upadacitinib_30") == (1, 1)
    assert counts(rows, "acne", "dupilumab_300") == (0, 0)
    assert counts(rows, "acne") == (1, 1)


def test_any_ae_counts_the_episodes_with_data_for_any_term():
    cohort = Cohort.from_records(
        centers=[Center("c1", RANGES)],
        patients=[Patient(f"p{i}", "c1", "male") for i in range(3)],
        episodes=[Episode(f"e{i}", f"p{i}", "baricitinib", START, 4) for i in range(3)],
        visits=[
            Visit("p0", day(30), checklist={"acne": True}),
            Visit("p1", day(30), labs={"ldl": 2.0}),
        ],
    )
    rows = compute_report(cohort)
    assert counts(rows, "any_ae") == (2, 1)
    assert counts(rows, "any_clinical_ae") == (1, 1)
    assert counts(rows, "any_biological_ae") == (1, 0)
    assert counts(rows, "any_ae", "baricitinib_4") == (2, 1)


def test_every_term_has_a_row_per_group():
    rows = compute_report(one())
    endpoints = {r.endpoint for r in rows if r.table == "adverse_events"}
    assert endpoints == {*AE_TERMS, "any_ae", "any_clinical_ae", "any_biological_ae"}
    assert {r.group for r in rows if r.table == "adverse_events"} == {"all", "upadacitinib_15"}
