"""Reading a dataset bundle (dataset-format.md) into records."""
import zipfile
from datetime import date

import pytest

from endpoints.compute.bundle import BundleError, read_bundle

FILES = {
    "centers.csv": "center_code,name,country\nbcn-hsc,Hospital Sagrat Cor,ES\nlyon,HCL,FR\n",
    "lab_ranges.csv": (
        "center_code,analyte,lower,upper\n"
        "bcn-hsc,ldl,,3.4\n"
        "bcn-hsc,lymphocytes,1.0,4.5\n"
    ),
    "patients.csv": (
        "patient_code,center_code,sex,birth_year,height_cm,weight_kg,ad_onset_age,ad_subtype,"
        "special_areas,atopic_comorbidities,autoimmune_comorbidities,cv_risk_factors,"
        "neoplasia_last_5y,enrolled_on\n"
        "bcn-hsc-0001,bcn-hsc,male,1990,181,80.5,2,flexural,hands;face_neck,asthma,,,,"
        "2023-02-01\n"
        "lyon-0001,lyon,female,,,,,,,,,,,\n"
    ),
    "prior_treatments.csv": (
        "patient_code,drug,start_date,end_date,stop_reason\n"
        "bcn-hsc-0001,dupilumab,2020-01-01,2021-01-01,secondary_failure\n"
        "bcn-hsc-0001,ciclosporin,,,\n"
        "bcn-hsc-0001,dupilumab,2021-06-01,2022-01-01,adverse_event\n"
    ),
    "episodes.csv": (
        "episode_code,patient_code,drug,start_date,start_dose_mg,end_date,end_reason\n"
        "bcn-hsc-0001-1,bcn-hsc-0001,upadacitinib,2023-02-01,30,,\n"
        "lyon-0001-1,lyon-0001,baricitinib,2023-03-01,4,2023-09-01,primary_failure\n"
    ),
    "dose_changes.csv": (
        "episode_code,date,dose_mg,reason\n"
        "bcn-hsc-0001-1,2023-10-01,30,disease_control\n"
        "bcn-hsc-0001-1,2023-06-01,45,secondary_failure\n"
    ),
    "visits.csv": (
        "patient_code,date,iga,easi,scorad,bsa,pruritus_nrs,dlqi,ldl,lymphocytes,aesi_acne,"
        "aesi_herpes_simplex\n"
        "bcn-hsc-0001,2023-03-01,2,8.5,,12.5,4,6,3.5,,yes,no\n"
        "bcn-hsc-0001,2023-02-01,4,21.3,55.1,40,8,18,2.9,1.8,,\n"
    ),
    "adverse_events.csv": (
        "patient_code,episode_code,term,onset_date,end_date,severity,serious,action,outcome,"
        "description\n"
        "bcn-hsc-0001,,herpes_simplex,2023-04-02,2023-04-20,mild,no,none,resolved,\"lip, HSV-1\"\n"
    ),
}


def write(directory, files=FILES):
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


@pytest.fixture
def bundle(tmp_path):
    return write(tmp_path / "bundle")


def test_it_reads_centers_and_their_lab_ranges(bundle):
    cohort = read_bundle(bundle)
    assert set(cohort.centers) == {"bcn-hsc", "lyon"}
    assert cohort.centers["bcn-hsc"].lab_ranges == {"ldl": (None, 3.4),
                                                     "lymphocytes": (1.0, 4.5)}
    assert cohort.centers["lyon"].lab_ranges == {}


def test_it_reads_patients_with_typed_fields_and_lists(bundle):
    patient = read_bundle(bundle).patients["bcn-hsc-0001"]
    assert patient.birth_year == 1990 and isinstance(patient.birth_year, int)
    assert (patient.height_cm, patient.weight_kg, patient.ad_onset_age) == (181.0, 80.5, 2.0)
    assert patient.ad_subtype == "flexural"
    assert patient.special_areas == frozenset({"hands", "face_neck"})
    assert patient.atopic_comorbidities == frozenset({"asthma"})
    assert patient.enrolled_on == date(2023, 2, 1)


def test_an_empty_cell_is_none_and_an_empty_list_is_empty(bundle):
    patient = read_bundle(bundle).patients["lyon-0001"]
    assert patient.birth_year is None and patient.ad_subtype is None
    assert patient.enrolled_on is None
    assert patient.special_areas == frozenset()
    assert patient.cv_risk_factors == frozenset()


def test_prior_treatments_become_the_patients_distinct_prior_drugs(bundle):
    cohort = read_bundle(bundle)
    assert cohort.patients["bcn-hsc-0001"].prior_drugs == frozenset({"dupilumab", "ciclosporin"})
    assert cohort.patients["lyon-0001"].prior_drugs == frozenset()


def test_it_attaches_dose_changes_to_their_episode_in_date_order(bundle):
    episodes = {e.code: e for e in read_bundle(bundle).episodes}
    upa = episodes["bcn-hsc-0001-1"]
    assert upa.start_dose_mg == 30.0 and upa.end_date is None and upa.end_reason is None
    assert [(c.date, c.dose_mg, c.reason) for c in upa.dose_changes] == [
        (date(2023, 6, 1), 45.0, "secondary_failure"),
        (date(2023, 10, 1), 30.0, "disease_control"),
    ]
    bari = episodes["lyon-0001-1"]
    assert (bari.end_date, bari.end_reason, bari.dose_changes) == (
        date(2023, 9, 1), "primary_failure", ())


def test_it_sorts_visits_by_date_and_splits_scores_labs_and_checklist(bundle):
    first, second = read_bundle(bundle).visits["bcn-hsc-0001"]
    assert first.date == date(2023, 2, 1) and second.date == date(2023, 3, 1)
    assert (first.iga, first.easi, first.scorad, first.bsa, first.pruritus_nrs, first.dlqi) \
        == (4, 21.3, 55.1, 40.0, 8, 18)
    assert isinstance(first.iga, int) and isinstance(first.dlqi, int)
    assert first.labs == {"ldl": 2.9, "lymphocytes": 1.8}
    assert first.checklist == {}
    assert second.scorad is None and second.poem is None
    assert second.labs == {"ldl": 3.5}
    assert second.checklist == {"acne": True, "herpes_simplex": False}


def test_a_patient_without_visits_has_an_empty_list(bundle):
    assert read_bundle(bundle).visits["lyon-0001"] == []


def test_it_reads_the_adverse_event_log(bundle):
    (event,) = read_bundle(bundle).adverse_events["bcn-hsc-0001"]
    assert (event.term, event.onset_date, event.end_date) == (
        "herpes_simplex", date(2023, 4, 2), date(2023, 4, 20))
    assert event.episode_code is None
    assert (event.severity, event.serious) == ("mild", False)


def test_it_reads_a_zip_with_the_files_at_its_root(bundle, tmp_path):
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in bundle.iterdir():
            zipped.write(path, path.name)
    assert read_bundle(archive) == read_bundle(bundle)


def test_it_reads_a_zip_of_the_bundle_folder(bundle, tmp_path):
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in bundle.iterdir():
            zipped.write(path, f"registry-export-2024-03-01/{path.name}")
    assert read_bundle(str(archive)) == read_bundle(bundle)


def test_optional_files_may_be_absent(tmp_path):
    files = {name: FILES[name] for name in ("centers.csv", "patients.csv", "episodes.csv")}
    cohort = read_bundle(write(tmp_path / "minimal", files))
    assert cohort.adverse_events == {}
    assert all(not e.dose_changes for e in cohort.episodes)
    assert cohort.visits == {"bcn-hsc-0001": [], "lyon-0001": []}


def test_it_refuses_a_bundle_without_a_required_file(tmp_path):
    files = {name: FILES[name] for name in ("centers.csv", "patients.csv")}
    with pytest.raises(BundleError, match="episodes.csv"):
        read_bundle(write(tmp_path / "broken", files))


def test_columns_may_come_in_any_order_and_with_a_byte_order_mark(tmp_path):
    files = dict(FILES)
    files["centers.csv"] = "\ufeffcountry,center_code,name\nES,bcn-hsc,HSC\nFR,lyon,HCL\n"
    assert set(read_bundle(write(tmp_path / "b", files)).centers) == {"bcn-hsc", "lyon"}


def test_a_bad_cell_is_refused_naming_file_row_and_column(tmp_path):
    files = dict(FILES)
    files["episodes.csv"] = FILES["episodes.csv"].replace("2023-03-01", "01/03/2023")
    with pytest.raises(BundleError, match=r"episodes.csv, row 3, column 'start_date'"):
        read_bundle(write(tmp_path / "b", files))
    files["episodes.csv"] = FILES["episodes.csv"]
    files["visits.csv"] = FILES["visits.csv"].replace(",yes,no", ",maybe,no")
    with pytest.raises(BundleError, match=r"visits.csv, row 2, column 'aesi_acne'"):
        read_bundle(write(tmp_path / "c", files))


def test_a_whole_number_score_must_be_whole(tmp_path):
    files = dict(FILES)
    files["visits.csv"] = FILES["visits.csv"].replace("2023-03-01,2,", "2023-03-01,2.5,")
    with pytest.raises(BundleError, match="'iga'"):
        read_bundle(write(tmp_path / "b", files))


def test_unknown_columns_are_ignored_unless_strict(tmp_path):
    files = dict(FILES)
    files["centers.csv"] = "center_code,name,country,nmae\nbcn-hsc,HSC,ES,x\nlyon,HCL,FR,y\n"
    directory = write(tmp_path / "b", files)
    assert set(read_bundle(directory).centers) == {"bcn-hsc", "lyon"}
    with pytest.raises(BundleError, match="nmae"):
        read_bundle(directory, strict=True)


def test_a_strict_read_accepts_exactly_the_format(bundle):
    assert read_bundle(bundle, strict=True) == read_bundle(bundle)
