"""Data completeness (endpoints.compute.completeness): pure, records in, rows out."""
from datetime import date, timedelta

from endpoints.compute.completeness import TOTAL, completeness
from endpoints.compute.records import Center, Cohort, Episode, Patient, Visit

TODAY = date(2025, 1, 1)


def cohort_for(patients, episodes, visits, centers=("fr-tls", "es-bcn")):
    return Cohort(
        {code: Center(code) for code in centers},
        {p.code: p for p in patients},
        episodes,
        visits,
        {},
    )


def test_it_counts_the_share_of_visits_with_each_score_per_center():
    start = date(2024, 1, 1)
    rows = completeness(cohort_for(
        [Patient("A1", "fr-tls", "male"), Patient("B1", "es-bcn", "female")],
        [Episode("A1-e1", "A1", "upadacitinib", start, 15.0)],
        {
            "A1": [
                Visit("A1", start, iga=3, easi=20.0),
                Visit("A1", start + timedelta(days=90), iga=1),
                Visit("A1", start + timedelta(days=95), dlqi=4),
            ],
            "B1": [Visit("B1", start, easi=10.0)],
        },
    ), TODAY)
    by_center = {row.center: row for row in rows}
    assert [row.center for row in rows] == ["es-bcn", "fr-tls", TOTAL]
    tls = by_center["fr-tls"]
    assert (tls.patients, tls.episodes, tls.visits) == (1, 1, 3)
    assert tls.visits_with["iga"] == 2 and tls.visits_with["easi"] == 1
    assert tls.visits_with["dlqi"] == 1 and tls.visits_with["scorad"] == 0
    total = by_center[TOTAL]
    assert (total.patients, total.visits, total.visits_with["easi"]) == (2, 4, 2)
    assert total.patients_without_episode == ["B1"]


def test_an_episode_without_a_visit_from_day_minus_30_to_day_0_lacks_a_baseline():
    start = date(2024, 3, 1)
    rows = completeness(cohort_for(
        [Patient("A1", "fr-tls", "male"), Patient("A2", "fr-tls", "male"),
         Patient("A3", "fr-tls", "male")],
        [
            Episode("A1-e1", "A1", "upadacitinib", start, 15.0),
            Episode("A2-e1", "A2", "upadacitinib", start, 15.0),
            Episode("A3-e1", "A3", "upadacitinib", start, 15.0),
        ],
        {
            "A1": [Visit("A1", start - timedelta(days=30), iga=3)],  # day −30: a baseline
            "A2": [Visit("A2", start - timedelta(days=31), iga=3),   # too early
                   Visit("A2", start + timedelta(days=1), iga=3)],   # too late
        },
        centers=("fr-tls",),
    ), TODAY)
    tls = rows[0]
    assert tls.episodes_without_baseline == [("A2", "A2-e1"), ("A3", "A3-e1")]


def test_only_episodes_followed_past_day_136_can_lack_an_m3_visit():
    today = date(2024, 6, 1)
    rows = completeness(cohort_for(
        [Patient(code, "fr-tls", "female") for code in ("A1", "A2", "A3", "A4")],
        [
            # ongoing, day 152 today, no visit in days 46–136: missing
            Episode("A1-e1", "A1", "upadacitinib", date(2024, 1, 1), 15.0),
            # ongoing, day 136 today: not yet due
            Episode("A2-e1", "A2", "upadacitinib", today - timedelta(days=136), 15.0),
            # stopped on day 100: never due
            Episode("A3-e1", "A3", "upadacitinib", date(2024, 1, 1), 15.0,
                    end_date=date(2024, 1, 1) + timedelta(days=100)),
            # due, with a visit on day 46
            Episode("A4-e1", "A4", "upadacitinib", date(2024, 1, 1), 15.0),
        ],
        {"A4": [Visit("A4", date(2024, 1, 1) + timedelta(days=46), easi=3.0)]},
        centers=("fr-tls",),
    ), today)
    tls = rows[0]
    assert tls.m3_due == 2
    assert tls.episodes_without_m3 == [("A1", "A1-e1")]


def test_a_center_without_patients_still_has_a_row(cohort):
    rows = completeness(Cohort({"fr-tls": Center("fr-tls"), "empty": Center("empty")}, {}, [], {}, {}), TODAY)
    assert [(row.center, row.patients, row.visits) for row in rows] == [
        ("empty", 0, 0), ("fr-tls", 0, 0), (TOTAL, 0, 0)
    ]


def test_rows_can_be_reported_under_another_center_key(cohort):
    rows = completeness(cohort, TODAY, center_of=lambda code: "pool")
    assert [row.center for row in rows] == ["pool", TOTAL]
    assert (rows[0].patients, rows[0].visits) == (5, 11)
