"""Efficacy at M3 and M6 (003, Table I), through compute_report on small cohorts."""
from datetime import date, timedelta

from endpoints.compute.records import Center, Cohort, DoseChange, Episode, Patient, Visit
from endpoints.compute.report import compute_report

START = date(2023, 1, 10)


def day(n: int) -> date:
    return START + timedelta(days=n)


def cohort(*patients) -> Cohort:
    """patients: (code, [(drug, dose, episode fields)], [(day, scores)]) per patient; every
    episode starts on START unless a ``start`` day is given."""
    records = dict(centers=[Center("c1")], patients=[], episodes=[], visits=[])
    for code, episodes, visit_days in patients:
        records["patients"].append(Patient(code, "c1", "female"))
        for number, (drug, dose, fields) in enumerate(episodes):
            fields = dict(fields)
            start = day(fields.pop("start", 0))
            records["episodes"].append(Episode(f"{code}-e{number}", code, drug, start, dose,
                                               **fields))
        for n, scores in visit_days:
            records["visits"].append(Visit(code, day(n), **scores))
    return Cohort.from_records(**records)


def one(visit_days, drug="upadacitinib", dose=15, **fields) -> Cohort:
    return cohort(("p1", [(drug, dose, fields)], visit_days))


def row(rows, endpoint, timepoint, group="all"):
    found = [r for r in rows if (r.table, r.endpoint, r.timepoint, r.group)
             == ("efficacy", endpoint, timepoint, group)]
    assert len(found) == 1, (endpoint, timepoint, group)
    return found[0]


def counts(rows, endpoint, timepoint, group="all"):
    r = row(rows, endpoint, timepoint, group)
    return r.n, r.count


def test_it_counts_day_46_in_m3_and_day_45_in_no_window():
    in_m3 = compute_report(one([(0, {"iga": 4}), (46, {"iga": 1})]))
    assert counts(in_m3, "iga_0_1_2", "m3") == (1, 1)
    too_early = compute_report(one([(0, {"iga": 4}), (45, {"iga": 1})]))
    assert counts(too_early, "iga_0_1_2", "m3") == (0, 0)
    assert row(too_early, "iga_0_1_2", "m3").percent is None


def test_it_counts_day_136_in_m3_and_day_137_in_m6():
    rows = compute_report(one([(0, {"iga": 4}), (136, {"iga": 2}), (137, {"iga": 3})]))
    assert counts(rows, "iga_0_1_2", "m3") == (1, 1)
    assert counts(rows, "iga_0_1_2", "m6") == (1, 0)


def test_it_counts_day_228_in_m6_and_day_229_in_no_window():
    assert counts(compute_report(one([(0, {"iga": 4}), (228, {"iga": 0})])),
                  "iga_0_1", "m6") == (1, 1)
    assert counts(compute_report(one([(0, {"iga": 4}), (229, {"iga": 0})])),
                  "iga_0_1", "m6") == (0, 0)


def test_it_takes_the_worst_value_in_the_window_not_the_last():
    rows = compute_report(one([(0, {"iga": 4, "easi": 20.0}), (50, {"iga": 3, "easi": 12.0}),
                               (120, {"iga": 1, "easi": 2.0})]))
    assert counts(rows, "iga_0_1_2", "m3") == (1, 0)  # worst IGA 3, not the last 1
    assert counts(rows, "easi50", "m3") == (1, 0)  # worst EASI 12 is a 40 % reduction
    assert row(rows, "easi_change", "m3").median == -8.0


def test_it_takes_the_baseline_from_day_minus_30_but_not_day_minus_31():
    inside = compute_report(one([(-30, {"easi": 20.0}), (60, {"easi": 5.0})]))
    assert counts(inside, "easi75", "m3") == (1, 1)
    outside = compute_report(one([(-31, {"easi": 20.0}), (60, {"easi": 5.0})]))
    assert counts(outside, "easi75", "m3") == (0, 0)


def test_a_day_0_value_is_the_baseline_and_a_later_one_is_not():
    rows = compute_report(one([(-10, {"dlqi": 25}), (0, {"dlqi": 20}), (1, {"dlqi": 30}),
                               (60, {"dlqi": 15})]))
    assert row(rows, "dlqi_change", "m3").median == -5
    assert counts(rows, "dlqi4", "m3") == (1, 1)


def test_it_ignores_visits_after_the_end_date():
    rows = compute_report(one([(0, {"iga": 4}), (60, {"iga": 1}), (101, {"iga": 4})],
                              end_date=day(100), end_reason="adverse_event"))
    assert counts(rows, "iga_0_1_2", "m3") == (1, 1)


def test_a_dose_change_after_m3_keeps_the_episode_in_its_start_dose_group():
    rows = compute_report(one(
        [(0, {"iga": 4}), (90, {"iga": 2}), (180, {"iga": 2})],
        dose_changes=(DoseChange(day(120), 30, "partial_response"),),
    ))
    assert counts(rows, "iga_0_1_2", "m6", "upadacitinib_15") == (1, 1)
    assert not [r for r in rows if r.group == "upadacitinib_30"]


def test_a_zero_easi_baseline_is_not_evaluable_for_responders_but_counts_for_change():
    rows = compute_report(one([(0, {"easi": 0.0, "scorad": 0.0}), (60, {"easi": 3.0,
                                                                        "scorad": 0.0})]))
    for endpoint in ("easi50", "easi75", "easi90", "easi100", "scorad50"):
        assert counts(rows, endpoint, "m3") == (0, 0)
    assert row(rows, "easi_change", "m3").n == 1
    assert row(rows, "easi_change", "m3").median == 3.0


def test_easi50_is_reached_at_exactly_half_despite_floating_point():
    rows = compute_report(one([(0, {"easi": 10.2}), (60, {"easi": 5.1})]))
    assert counts(rows, "easi50", "m3") == (1, 1)
    assert counts(rows, "easi75", "m3") == (1, 0)
    assert row(rows, "easi_change", "m3").median == -5.1


def test_easi100_needs_a_worst_value_of_0():
    assert counts(compute_report(one([(0, {"easi": 8.0}), (60, {"easi": 0.0})])),
                  "easi100", "m3") == (1, 1)
    assert counts(compute_report(one([(0, {"easi": 8.0}), (60, {"easi": 0.1})])),
                  "easi100", "m3") == (1, 0)


def test_viga_response_needs_iga_0_or_1_and_two_grades_below_baseline():
    assert counts(compute_report(one([(0, {"iga": 3}), (60, {"iga": 1})])),
                  "viga_response", "m3") == (1, 1)
    assert counts(compute_report(one([(0, {"iga": 2}), (60, {"iga": 1})])),
                  "viga_response", "m3") == (1, 0)
    rows = compute_report(one([(0, {"iga": 2}), (60, {"iga": 1})]))
    assert counts(rows, "iga_0_1", "m3") == (1, 1)


def test_itch_and_dlqi_respond_at_a_4_point_reduction():
    rows = compute_report(one([(0, {"pruritus_nrs": 8, "dlqi": 10}),
                               (60, {"pruritus_nrs": 4, "dlqi": 7})]))
    assert counts(rows, "pruritus_nrs4", "m3") == (1, 1)
    assert counts(rows, "dlqi4", "m3") == (1, 0)


def test_an_episode_without_a_value_in_the_window_is_out_of_n():
    rows = compute_report(one([(0, {"iga": 4, "easi": 30.0}), (60, {"iga": 2})]))
    assert counts(rows, "iga_0_1_2", "m3") == (1, 1)
    assert counts(rows, "easi50", "m3") == (0, 0)
    assert row(rows, "easi_change", "m3").n == 0
    assert row(rows, "easi_change", "m3").median is None


def test_change_endpoints_report_median_quartiles_mean_and_sd():
    patients = [
        (f"p{i}", [("upadacitinib", 15, {})], [(0, {"bsa": 50.0}), (60, {"bsa": 50.0 - drop})])
        for i, drop in enumerate([10, 20, 30, 40])
    ]
    r = row(compute_report(cohort(*patients)), "bsa_change", "m3")
    assert (r.n, r.median, r.q1, r.q3, r.mean) == (4, -25.0, -32.5, -17.5, -25.0)
    assert abs(r.sd - 12.909944487358056) < 1e-9
    assert r.count is None and r.percent is None


def test_the_quantile_method_can_be_type6():
    patients = [
        (f"p{i}", [("upadacitinib", 15, {})], [(0, {"dlqi": 20}), (60, {"dlqi": 20 - drop})])
        for i, drop in enumerate([1, 2, 3, 4])
    ]
    r = row(compute_report(cohort(*patients), quantile_method="type6"), "dlqi_change", "m3")
    assert (r.median, r.q1, r.q3) == (-2.5, -3.75, -1.25)


def test_groups_are_start_doses_and_all_counts_every_episode():
    rows = compute_report(cohort(
        ("p1", [("upadacitinib", 15, {})], [(0, {"iga": 4}), (60, {"iga": 2})]),
        ("p2", [("upadacitinib", 30, {})], [(0, {"iga": 4}), (60, {"iga": 3})]),
        ("p3", [("baricitinib", 4, {})], [(0, {"iga": 4}), (60, {"iga": 1})]),
    ))
    assert counts(rows, "iga_0_1_2", "m3") == (3, 2)
    assert counts(rows, "iga_0_1_2", "m3", "upadacitinib_15") == (1, 1)
    assert counts(rows, "iga_0_1_2", "m3", "upadacitinib_30") == (1, 0)
    assert counts(rows, "iga_0_1_2", "m3", "baricitinib_4") == (1, 1)
    groups = [r.group for r in rows if r.endpoint == "iga_0_1_2" and r.timepoint == "m3"]
    assert groups == ["all", "upadacitinib_15", "upadacitinib_30", "baricitinib_4"]


def test_a_patient_with_two_episodes_counts_once_in_each_episode_group():
    rows = compute_report(cohort((
        "p1",
        [("dupilumab", 300, {"end_date": day(150), "end_reason": "secondary_failure"}),
         ("upadacitinib", 15, {"start": 160})],
        [(0, {"iga": 4}), (60, {"iga": 2}), (160, {"iga": 4}), (220, {"iga": 1})],
    )))
    assert counts(rows, "iga_0_1_2", "m3") == (2, 2)
    assert counts(rows, "iga_0_1_2", "m3", "dupilumab_300") == (1, 1)
    assert counts(rows, "iga_0_1_2", "m3", "upadacitinib_15") == (1, 1)


def test_a_group_with_no_evaluable_episode_is_reported_with_n_0_and_no_percent():
    rows = compute_report(cohort(
        ("p1", [("upadacitinib", 15, {})], [(0, {"easi": 20.0}), (60, {"easi": 5.0})]),
        ("p2", [("baricitinib", 4, {})], [(0, {"iga": 3})]),
    ))
    r = row(rows, "easi50", "m6", "baricitinib_4")
    assert (r.n, r.count, r.percent) == (0, 0, None)


def test_every_listed_efficacy_row_is_there_for_each_group():
    rows = compute_report(one([(0, {"iga": 4})]))
    efficacy = {(r.endpoint, r.timepoint, r.group) for r in rows if r.table == "efficacy"}
    endpoints = ["iga_0_1_2", "iga_0_1", "viga_response", "easi50", "easi75", "easi90",
                 "easi100", "scorad50", "scorad75", "scorad90", "pruritus_nrs4", "dlqi4",
                 "pruritus_nrs_change", "dlqi_change", "easi_change", "scorad_change",
                 "bsa_change"]
    assert efficacy == {(e, t, g) for e in endpoints for t in ("m3", "m6")
                        for g in ("all", "upadacitinib_15")}


def test_the_hot_loop_reads_the_scores_in_the_order_of_SCORES():
    """efficacy._scores_of spells the attributes out (faster than attrgetter): it must stay
    in step with SCORES, whose order window_endpoints unpacks."""
    from operator import attrgetter

    from endpoints.compute import efficacy

    visit = Visit("p", date(2024, 1, 1), iga=1, easi=2.0, scorad=3.0, bsa=4.0,
                  pruritus_nrs=5, sleep_nrs=6, dlqi=7, poem=8)
    assert efficacy._scores_of(visit) == attrgetter(*efficacy.SCORES)(visit) == (1, 2.0, 3.0, 4.0, 5, 7)
