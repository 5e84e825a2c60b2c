"""The report as a whole: scopes, results.csv, and the same answer however it is computed."""
import csv
import dataclasses
import io
import os
from datetime import date, timedelta

import pytest

from endpoints.compute.records import (
    AdverseEvent, Center, Cohort, DoseChange, Episode, Patient, Visit,
)
from endpoints.compute.report import (
    ResultRow, aggregate, compute_report, compute_reports_by_scope, episode_facts,
    write_results_csv,
)

START = date(2023, 1, 10)
COLUMNS = ["table", "endpoint", "timepoint", "group", "n", "count", "percent", "median", "q1",
           "q3", "mean", "sd"]


def day(n: int) -> date:
    return START + timedelta(days=n)


def registry(centers=3, patients_per_center=4) -> Cohort:
    """A small registry where every center has different results."""
    records = dict(centers=[], patients=[], episodes=[], visits=[], adverse_events=[])
    drugs = [("upadacitinib", 15), ("upadacitinib", 30), ("baricitinib", 4)]
    for c in range(centers):
        center = f"c{c}"
        records["centers"].append(Center(center, {"ldl": (None, 3.0 + c / 10)}))
        for p in range(patients_per_center):
            code = f"{center}-p{p}"
            drug, dose = drugs[(c + p) % 3]
            records["patients"].append(Patient(code, center, ("male", "female")[p % 2],
                                               1970 + 3 * p + c, enrolled_on=day(0)))
            steps = (DoseChange(day(90), 45, "severity"),) if drug == "upadacitinib" and p == 1 \
                else ()
            records["episodes"].append(Episode(f"{code}-e", code, drug, day(0), dose,
                                               dose_changes=steps))
            for n, easi in ((0, 20.0 + p + c), (60, 10.0 - p), (150, 6.1 + c), (200, 2.0)):
                records["visits"].append(Visit(
                    code, day(n), easi=easi, iga=min(4, int(easi // 5)), dlqi=int(easi),
                    labs={"ldl": 2.5 + (n + p + c) / 100}, checklist={"acne": n == 150 and p == 2},
                ))
            if p == 3:
                records["adverse_events"].append(AdverseEvent(code, "headache", day(70)))
    return Cohort.from_records(**records)


def sub_cohort(cohort: Cohort, center: str) -> Cohort:
    patients = {code: p for code, p in cohort.patients.items() if p.center_code == center}
    return Cohort(
        centers={center: cohort.centers[center]},
        patients=patients,
        episodes=[e for e in cohort.episodes if e.patient_code in patients],
        visits={code: cohort.visits[code] for code in patients},
        adverse_events={code: v for code, v in cohort.adverse_events.items() if code in patients},
    )


def test_a_result_row_has_exactly_the_results_csv_columns():
    assert [f.name for f in dataclasses.fields(ResultRow)] == COLUMNS


def test_the_results_file_has_the_header_and_one_line_per_row():
    rows = compute_report(registry())
    out = io.StringIO()
    write_results_csv(rows, out)
    lines = list(csv.reader(io.StringIO(out.getvalue())))
    assert lines[0] == COLUMNS
    assert len(lines) == len(rows) + 1
    assert {line[0] for line in lines[1:]} == {
        "efficacy", "adverse_events", "escalation", "escalation_course", "baseline"}


def test_numbers_are_written_without_float_noise_and_none_as_empty():
    out = io.StringIO()
    write_results_csv([
        ResultRow("efficacy", "easi_change", "m3", "all", 3, median=0.1 + 0.2, q1=-7.2000000001,
                  q3=2.0, mean=-1 / 3, sd=None),
        ResultRow("efficacy", "easi50", "m3", "all", 54, count=33, percent=61.1),
        ResultRow("efficacy", "easi50", "m6", "all", 5, count=2, percent=40.0),
        ResultRow("efficacy", "easi90", "m6", "all", 0, count=0, percent=None),
        ResultRow("efficacy", "easi_change", "m6", "all", 1, median=-0.00001),
    ], out)
    lines = out.getvalue().splitlines()
    assert lines[1] == "efficacy,easi_change,m3,all,3,,,0.3,-7.2,2,-0.3333,"
    assert lines[2] == "efficacy,easi50,m3,all,54,33,61.1,,,,,"
    assert lines[3] == "efficacy,easi50,m6,all,5,2,40.0,,,,,"
    assert lines[4] == "efficacy,easi90,m6,all,0,0,,,,,,"
    assert lines[5] == "efficacy,easi_change,m6,all,1,,,0,,,,"


def test_the_pooled_scope_is_the_whole_cohort():
    cohort = registry()
    reports = compute_reports_by_scope(cohort)
    assert reports[None] == compute_report(cohort)
    assert set(reports) == {None, "c0", "c1", "c2"}


def test_each_center_scope_equals_the_report_of_that_center_alone():
    cohort = registry()
    facts = episode_facts(cohort)
    for center in cohort.centers:
        assert aggregate(facts, [center]) == compute_report(sub_cohort(cohort, center))


def test_a_scope_of_several_centers_sums_their_figures():
    cohort = registry()
    rows = compute_reports_by_scope(cohort, {"two": ["c0", "c1"]})["two"]
    by_center = {c: compute_report(sub_cohort(cohort, c)) for c in ("c0", "c1")}

    def figure(rows, key):
        return next(r for r in rows if (r.table, r.endpoint, r.timepoint, r.group) == key)

    key = ("adverse_events", "cholesterol_increased", "on_treatment", "all")
    assert figure(rows, key).n == sum(figure(by_center[c], key).n for c in by_center)
    assert figure(rows, key).count == sum(figure(by_center[c], key).count for c in by_center)


def test_an_empty_scope_reports_group_all_with_zero_denominators():
    rows = aggregate(episode_facts(registry()), [])
    assert rows and {r.group for r in rows} == {"all"}
    assert all(r.n == 0 and r.percent is None and r.median is None for r in rows)


def test_an_episode_of_an_unknown_patient_is_refused():
    cohort = Cohort.from_records(centers=[Center("c1")],
                                 episodes=[Episode("e1", "ghost", "baricitinib", START, 4)])
    with pytest.raises(ValueError, match="ghost"):
        compute_report(cohort)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_splitting_the_patients_between_processes_gives_the_same_report():
    cohort = registry(centers=5, patients_per_center=7)
    serial = aggregate(episode_facts(cohort, workers=1))
    assert aggregate(episode_facts(cohort, workers=2)) == serial
    assert aggregate(episode_facts(cohort, workers=3)) == serial


def test_the_report_does_not_depend_on_the_order_of_the_records():
    cohort = registry()
    shuffled = Cohort(
        centers=dict(reversed(list(cohort.centers.items()))),
        patients=dict(reversed(list(cohort.patients.items()))),
        episodes=list(reversed(cohort.episodes)),
        visits=cohort.visits,
        adverse_events=cohort.adverse_events,
    )
    assert compute_report(shuffled) == compute_report(cohort)


def test_the_quantile_method_is_checked_before_computing():
    with pytest.raises(ValueError):
        compute_report(registry(), quantile_method="type9")
