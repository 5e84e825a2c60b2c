"""Time on treatment: months, windows, the visits of an episode, baselines and doses."""
from datetime import date, timedelta

import pytest

from endpoints.compute.records import DoseChange, Episode, Visit
from endpoints.compute.timeline import (
    WINDOW_DAYS, course_of, day_since_start, dose_on, high_dose_intervals, is_on_treatment,
    month_of, window_of,
)

START = date(2023, 1, 10)


def day(n: int) -> date:
    return START + timedelta(days=n)


def episode(**fields) -> Episode:
    values = dict(code="e1", patient_code="p1", drug="upadacitinib", start_date=START,
                  start_dose_mg=15)
    values.update(fields)
    return Episode(**values)


def visits(*days_and_scores) -> list[Visit]:
    return [Visit("p1", day(n), **scores) for n, scores in days_and_scores]


def test_day_since_start_counts_the_start_as_day_0():
    assert day_since_start(episode(), START) == 0
    assert day_since_start(episode(), day(-30)) == -30
    assert day_since_start(episode(), date(2023, 4, 10)) == 90


@pytest.mark.parametrize("days, month", [
    (0, 0), (15, 0), (16, 1), (45, 1), (46, 2), (136, 4), (137, 5), (228, 7), (229, 8),
])
def test_it_rounds_days_to_months_of_30_4375_days(days, month):
    assert month_of(days) == month


def test_it_counts_day_46_in_m3_and_day_45_in_no_window():
    assert window_of(46) == "m3"
    assert window_of(45) is None


def test_it_counts_day_136_in_m3_and_day_137_in_m6():
    assert window_of(136) == "m3"
    assert window_of(137) == "m6"


def test_it_counts_day_228_in_m6_and_day_229_in_no_window():
    assert window_of(228) == "m6"
    assert window_of(229) is None


def test_window_days_agree_with_the_month_rule():
    assert WINDOW_DAYS == {"m3": (46, 136), "m6": (137, 228)}
    for n in range(-40, 400):
        first, last = WINDOW_DAYS["m3"]
        assert (window_of(n) == "m3") == (first <= n <= last)


def test_a_visit_30_days_before_the_start_belongs_to_the_episode_and_31_does_not():
    course = course_of(episode(), visits((-31, {}), (-30, {}), (0, {})))
    assert course.days == [-30, 0]


def test_visits_after_the_end_date_do_not_belong_to_the_episode():
    course = course_of(episode(end_date=day(100)), visits((99, {}), (100, {}), (101, {})))
    assert course.days == [99, 100]


def test_an_ongoing_episode_keeps_every_later_visit():
    course = course_of(episode(), visits((10, {}), (2000, {})))
    assert course.days == [10, 2000]


def test_day_0_and_the_end_date_are_on_treatment_and_the_day_before_is_not():
    ended = episode(end_date=day(60))
    assert is_on_treatment(ended, 0)
    assert is_on_treatment(ended, 60)
    assert not is_on_treatment(ended, -1)
    assert not is_on_treatment(ended, 61)
    assert is_on_treatment(episode(), 10_000)


def test_the_baseline_is_the_last_value_on_or_before_day_0():
    course = course_of(episode(), visits((-20, {"easi": 30.0}), (-5, {"easi": 25.0}),
                                         (1, {"easi": 10.0})))
    assert course.baseline("easi") == 25.0


def test_a_value_on_day_minus_30_is_a_baseline_and_on_day_minus_31_not():
    assert course_of(episode(), visits((-30, {"iga": 3}))).baseline("iga") == 3
    assert course_of(episode(), visits((-31, {"iga": 3}))).baseline("iga") is None


def test_a_day_0_value_is_the_baseline():
    assert course_of(episode(), visits((-10, {"iga": 4}), (0, {"iga": 3}))).baseline("iga") == 3


def test_each_score_has_its_own_baseline():
    course = course_of(episode(), visits((-20, {"iga": 4, "easi": 30.0}), (0, {"iga": 3})))
    assert course.baseline("iga") == 3
    assert course.baseline("easi") == 30.0  # the day-0 visit had no EASI
    assert course.baseline("dlqi") is None


def test_the_worst_value_in_a_window_is_the_highest_not_the_last():
    course = course_of(episode(), visits((50, {"easi": 4.0}), (90, {"easi": 12.5}),
                                         (130, {"easi": 2.0}), (140, {"easi": 40.0})))
    assert course.worst_in_window("easi", "m3") == 12.5
    assert course.worst_in_window("easi", "m6") == 40.0


def test_the_worst_value_in_a_window_stops_at_the_end_date():
    course = course_of(episode(end_date=day(100)), visits((60, {"iga": 1}), (120, {"iga": 4})))
    assert course.worst_in_window("iga", "m3") == 1


def test_the_nearest_visit_within_two_weeks_wins_and_a_tie_goes_to_the_earlier():
    course = course_of(episode(), visits((20, {"easi": 1.0}), (36, {"easi": 2.0}),
                                         (30, {"easi": 3.0})))
    assert course.nearest_value("easi", 28, 14) == 3.0
    tie = course_of(episode(), visits((26, {"easi": 1.0}), (30, {"easi": 2.0})))
    assert tie.nearest_value("easi", 28, 14) == 1.0
    assert tie.nearest_value("easi", 60, 14) is None


def test_the_dose_in_force_changes_on_the_date_of_the_change():
    ep = episode(dose_changes=(DoseChange(day(100), 30),), end_date=day(300))
    assert dose_on(ep, day(99)) == 15
    assert dose_on(ep, day(100)) == 30
    assert dose_on(ep, 300) == 30
    assert dose_on(ep, day(301)) is None
    assert dose_on(ep, day(-1)) is None


def test_it_finds_the_days_at_high_dose():
    ep = episode(dose_changes=(DoseChange(day(100), 45), DoseChange(day(220), 30)))
    assert high_dose_intervals(ep, 30) == [(100, 219)]


def test_a_high_dose_stretch_runs_to_the_end_date_or_stays_open():
    assert high_dose_intervals(episode(start_dose_mg=45, end_date=day(90)), 30) == [(0, 90)]
    assert high_dose_intervals(episode(start_dose_mg=45), 30) == [(0, None)]


def test_two_high_doses_in_a_row_are_one_stretch_and_a_return_is_another():
    ep = episode(dose_changes=(DoseChange(day(10), 45), DoseChange(day(20), 60),
                               DoseChange(day(30), 30), DoseChange(day(50), 45)),
                 end_date=day(80))
    assert high_dose_intervals(ep, 30) == [(10, 29), (50, 80)]


def test_the_approved_dose_itself_is_not_high():
    assert high_dose_intervals(episode(start_dose_mg=30), 30) == []
