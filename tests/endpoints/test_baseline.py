"""Baseline characteristics of the patients in scope (000, Table 1)."""
from datetime import date

from endpoints.compute.records import Center, Cohort, Episode, Patient
from endpoints.compute.report import compute_report
from endpoints.compute.vocabulary import DRUGS

START = date(2023, 1, 10)


def patient(code="p1", **fields) -> Patient:
    values = dict(code=code, center_code="c1", sex="male", birth_year=1990,
                  enrolled_on=date(2023, 5, 1))
    values.update(fields)
    return Patient(**values)


def cohort(patients, groups=None) -> Cohort:
    """groups: patient code -> [(drug, dose)] of their episodes (default upadacitinib 30)."""
    groups = groups or {}
    episodes = [
        Episode(f"{p.code}-e{i}", p.code, drug, START, dose)
        for p in patients
        for i, (drug, dose) in enumerate(groups.get(p.code, [("upadacitinib", 30)]))
    ]
    return Cohort.from_records(centers=[Center("c1")], patients=patients, episodes=episodes)


def row(rows, endpoint, group="all"):
    found = [r for r in rows if (r.table, r.endpoint, r.group) == ("baseline", endpoint, group)]
    assert len(found) == 1, (endpoint, group)
    assert found[0].timepoint == ""
    return found[0]


def counts(rows, endpoint, group="all"):
    r = row(rows, endpoint, group)
    return r.n, r.count, r.percent


def test_age_is_the_year_of_enrolment_minus_the_birth_year():
    rows = compute_report(cohort([
        patient("p1", birth_year=1990), patient("p2", birth_year=1980),
        patient("p3", birth_year=1970), patient("p4", birth_year=None),
    ]))
    age = row(rows, "age")
    assert (age.n, age.median, age.q1, age.q3, age.mean) == (3, 43, 38, 48, 43)


def test_bmi_is_weight_over_height_squared():
    rows = compute_report(cohort([patient(height_cm=180, weight_kg=81),
                                  patient("p2", height_cm=None, weight_kg=70)]))
    bmi = row(rows, "bmi")
    assert bmi.n == 1 and abs(bmi.median - 25.0) < 1e-9


def test_sex_and_subtype_count_every_patient_in_the_denominator():
    rows = compute_report(cohort([
        patient("p1", sex="male", ad_subtype="generalized"),
        patient("p2", sex="male", ad_subtype="flexural"),
        patient("p3", sex="female", ad_subtype=None),
    ]))
    assert counts(rows, "sex_male") == (3, 2, 66.7)
    assert counts(rows, "sex_female") == (3, 1, 33.3)
    assert counts(rows, "subtype_generalized") == (3, 1, 33.3)
    assert counts(rows, "subtype_other") == (3, 0, 0.0)


def test_an_empty_list_means_none_of_the_items_and_stays_in_the_denominator():
    rows = compute_report(cohort([
        patient("p1", special_areas=frozenset({"hands", "face_neck"})),
        patient("p2", special_areas=frozenset()),
    ]))
    assert counts(rows, "any_special_area") == (2, 1, 50.0)
    assert counts(rows, "hands") == (2, 1, 50.0)
    assert counts(rows, "genitalia") == (2, 0, 0.0)


def test_each_comorbidity_list_has_its_items_and_an_any_row():
    rows = compute_report(cohort([
        patient("p1", atopic_comorbidities=frozenset({"asthma", "rhinitis"}),
                neoplasia_last_5y=frozenset({"other"})),
        patient("p2", autoimmune_comorbidities=frozenset({"other", "vitiligo"}),
                cv_risk_factors=frozenset({"smoking"})),
    ]))
    assert counts(rows, "any_atopic_comorbidity") == (2, 1, 50.0)
    assert counts(rows, "asthma") == (2, 1, 50.0)
    assert counts(rows, "any_autoimmune_comorbidity") == (2, 1, 50.0)
    assert counts(rows, "autoimmune_comorbidities_other") == (2, 1, 50.0)
    assert counts(rows, "neoplasia_last_5y_other") == (2, 1, 50.0)
    assert counts(rows, "any_neoplasia_last_5y") == (2, 1, 50.0)
    assert counts(rows, "any_cv_risk_factor") == (2, 1, 50.0)
    assert not [r for r in rows if r.endpoint == "other"]


def test_prior_advanced_treatments_are_biologics_and_jak_inhibitors():
    rows = compute_report(cohort([
        patient("p1", prior_drugs=frozenset({"dupilumab", "upadacitinib", "ciclosporin"})),
        patient("p2", prior_drugs=frozenset({"ciclosporin", "methotrexate"})),
        patient("p3", prior_drugs=frozenset({"tralokinumab"})),
    ]))
    assert counts(rows, "prior_advanced") == (3, 2, 66.7)
    count = row(rows, "prior_advanced_count")
    assert (count.n, count.median, count.q1, count.q3) == (3, 1, 0.5, 1.5)
    assert counts(rows, "prior_ciclosporin") == (3, 2, 66.7)
    assert counts(rows, "prior_nemolizumab") == (3, 0, 0.0)
    prior = {r.endpoint for r in rows if r.endpoint.startswith("prior_") and r.group == "all"}
    # prior_vte and prior_mace are cardiovascular risk factors, not drugs
    assert prior - {"prior_vte", "prior_mace"} == {
        f"prior_{drug}" for drug in DRUGS} | {"prior_advanced", "prior_advanced_count"}


def test_a_patient_is_in_the_group_of_each_episode_and_once_in_all():
    rows = compute_report(cohort(
        [patient("p1", sex="female"), patient("p2")],
        groups={"p1": [("upadacitinib", 15), ("upadacitinib", 30)],
                "p2": [("upadacitinib", 30), ("upadacitinib", 30)]},
    ))
    assert counts(rows, "sex_female") == (2, 1, 50.0)
    assert counts(rows, "sex_female", "upadacitinib_15") == (1, 1, 100.0)
    assert counts(rows, "sex_female", "upadacitinib_30") == (2, 1, 50.0)


def test_a_patient_without_an_episode_is_in_all_only():
    rows = compute_report(cohort([patient("p1"), patient("p2", sex="female")],
                                 groups={"p2": []}))
    assert counts(rows, "sex_female") == (2, 1, 50.0)
    assert counts(rows, "sex_female", "upadacitinib_30") == (1, 0, 0.0)
