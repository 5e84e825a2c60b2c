"""The nightly run at scale: result rows stored packed, the binary read, and the centers split
between processes giving what one process gives."""
import json
from datetime import date

import pytest
from django.db import connection
from django.utils import timezone

from endpoints import selectors, services
from endpoints.compute import forking
from endpoints.compute.tally import RESULT_COLUMNS
from endpoints.models import POOLED, Snapshot
from endpoints.storage import pack_row, unpack_row

from dashboard_data import NON_RESPONDER, RESPONDER, add_patient

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="binary reads and shared snapshots are PostgreSQL's"
)

#: A visit with labs (one missing), decimal scores and every checklist answer, the last term
#: (bits 32 and 33 of the read's checklist integer) answered "yes".
FULL_VISIT = {
    "iga": 2, "easi": 7.3, "scorad": 30.5, "bsa": 12.25, "pruritus_nrs": 4, "dlqi": 6,
    "alt": 41.5, "ast": 22.0, "ldl": 3.1, "total_cholesterol": 5.5, "cpk": 180.0,
    "lymphocytes": 1.2, "neutrophils": 3.3, "platelets": 250.0, "hemoglobin": 13.5,
    "creatinine": 80.0,
    **{f"aesi_{term}": False for term in selectors.v.CLINICAL_TERMS},
    "aesi_acne": True, f"aesi_{selectors.v.CLINICAL_TERMS[-1]}": True,
}


@pytest.fixture
def registry(center_a, center_b):
    add_patient(center_a, start=date(2023, 2, 1), visits=RESPONDER)
    add_patient(center_a, start=date(2023, 6, 1), dose=30, visits=NON_RESPONDER)
    add_patient(center_a, start=date(2024, 3, 1), drug="baricitinib", dose=4,
                visits=((0, FULL_VISIT), (85, {"iga": 1, "easi": 2.5})))
    add_patient(center_b, start=date(2024, 4, 1), visits=RESPONDER[:1])
    return center_a, center_b


def stored(scope):
    snapshot = Snapshot.objects.get(scope=scope)
    return (snapshot.rows, snapshot.rows_by_enrolment_year, snapshot.enrolment_years,
            snapshot.completeness, snapshot.center_breakdown, snapshot.patients,
            snapshot.episodes, snapshot.visits, snapshot.fingerprint)


def test_result_rows_are_stored_as_arrays_and_read_back_as_dicts(registry):
    services.recompute_scope("fr-tls", force=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT rows, rows_by_enrolment_year FROM endpoints_snapshot WHERE scope = %s", ["fr-tls"])
        raw_rows, raw_years = (json.loads(value) if isinstance(value, str) else value for value in cursor.fetchone())
    assert all(isinstance(values, list) and 4 <= len(values) <= len(RESULT_COLUMNS) for values in raw_rows)
    assert all(isinstance(values, list) for rows in raw_years.values() for values in rows)
    rows = Snapshot.objects.get(scope="fr-tls").rows
    assert [unpack_row(values) for values in raw_rows] == rows
    assert all(list(row) == list(RESULT_COLUMNS) for row in rows)
    easi75 = next(row for row in rows if (row["endpoint"], row["timepoint"], row["group"]) == ("easi75", "m3", "all"))
    assert (easi75["n"], easi75["count"]) == (3, 1)  # 7.3 -> 2.5 is no EASI75


def test_a_packed_row_leaves_out_only_trailing_empty_cells():
    row = dict.fromkeys(RESULT_COLUMNS)
    row.update(table="efficacy", endpoint="easi", timepoint="m3", group="all", n=4, median=2.5)
    assert pack_row(row) == ["efficacy", "easi", "m3", "all", 4, None, None, 2.5]
    assert unpack_row(pack_row(row)) == row


def test_rows_stored_as_dicts_before_the_packed_format_still_read(registry):
    services.recompute_scope("fr-tls", force=True)
    rows = Snapshot.objects.get(scope="fr-tls").rows
    Snapshot.objects.filter(scope="fr-tls").update(rows=[])  # then the old format, raw
    with connection.cursor() as cursor:
        cursor.execute("UPDATE endpoints_snapshot SET rows = %s WHERE scope = %s", [json.dumps(rows), "fr-tls"])
    assert Snapshot.objects.get(scope="fr-tls").rows == rows


def test_a_returned_snapshot_reads_its_rows_only_when_asked(registry, django_assert_num_queries):
    snapshot = services.recompute_scope("fr-tls", force=True)
    with django_assert_num_queries(1):
        rows = snapshot.rows
    assert rows == Snapshot.objects.get(scope="fr-tls").rows


@postgresql_only
def test_the_binary_read_gives_the_cohort_django_reads(registry, monkeypatch):
    binary = selectors.load_cohort()
    monkeypatch.setattr(
        selectors, "rows_of",
        lambda queryset, chunked: queryset.iterator(chunk_size=2) if chunked else iter(queryset),
    )
    through_django = selectors.load_cohort()
    assert binary == through_django
    visit = next(visit for visits in binary.visits.values() for visit in visits if visit.labs)
    last_term = selectors.v.CLINICAL_TERMS[-1]
    assert visit.checklist[last_term] is True and visit.checklist["acne"] is True
    assert visit.labs["alt"] == 41.5 and "ast" in visit.labs and visit.easi == 7.3


@pytest.mark.parametrize("codes", [None, ["fr-tls"], ["es-bcn"]])
def test_the_read_tallies_the_summaries_the_database_groups(registry, codes):
    """The fingerprints a recompute stores come from the rows it read; they must be those a
    later recompute compares with (InputSummaries.read, grouped queries)."""
    from registry.clinical.models import AdverseEvent, DoseChange, PriorTreatment, Visit

    visit = Visit.objects.filter(patient__center__code="fr-tls").last()
    PriorTreatment.objects.create(patient=visit.patient, drug="dupilumab")
    AdverseEvent.objects.create(patient=visit.patient, term="acne", onset_date=visit.date)
    episode = visit.patient.episodes.get()
    DoseChange.objects.create(episode=episode, date=episode.start_date.replace(day=20), dose_mg=30)
    _cohort, tallied = selectors.read_cohort(codes)
    grouped = selectors.InputSummaries.read(codes)
    assert tallied.tables == grouped.tables
    assert sorted(tallied.ranges) == sorted(grouped.ranges)
    scopes = [POOLED, "fr-tls", "es-bcn"] if codes is None else codes
    assert services.fingerprints_from(tallied, scopes, "type7") == services.fingerprints_from(grouped, scopes, "type7")
    assert set(tallied.tables["Visit"]) == {"fr-tls", "es-bcn"} if codes is None else set(codes)


@pytest.mark.parametrize("codes", [None, ["fr-tls"]])
def test_a_large_read_in_chunks_gives_what_a_small_one_reads_at_once(registry, monkeypatch, codes):
    """A registry-wide read streams its large tables in chunks (PostgreSQL: libpq's chunked
    rows mode); the records and summaries are those of reading them at once. An adverse event
    of an episode outside the read asks for the episode's code while the read is open."""
    from registry.clinical.models import AdverseEvent, Patient

    other = Patient.objects.filter(center__code="fr-tls").last()
    foreign = Patient.objects.filter(center__code="es-bcn").get().episodes.get()
    # Not valid through the forms (another patient's episode); a bundle could hold it.
    AdverseEvent.objects.bulk_create([AdverseEvent(
        patient=other, episode=foreign, term="acne", onset_date=foreign.start_date,
    )])
    at_once = selectors.read_cohort(codes)
    monkeypatch.setattr(selectors, "CHUNKED_FROM_PATIENTS", 0)
    monkeypatch.setattr(selectors, "CHUNK_SIZE", 2)
    in_chunks = selectors.read_cohort(codes)
    assert in_chunks == at_once
    assert sum(map(len, in_chunks[0].visits.values())) == (7 if codes is None else 6)
    assert [event.episode_code for events in in_chunks[0].adverse_events.values() for event in events] == [foreign.code]


@postgresql_only
def test_the_binary_read_of_one_scope_filters_on_its_patients(registry):
    cohort = selectors.load_cohort(["es-bcn"])
    assert {patient.center_code for patient in cohort.patients.values()} == {"es-bcn"}
    assert {episode.patient_code for episode in cohort.episodes} == set(cohort.patients)
    assert set(cohort.visits) == set(cohort.patients)


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_centers_split_between_processes_store_what_one_process_stores(registry):
    assert services.recompute_all_scopes(workers=1) == [POOLED, "es-bcn", "fr-tls"]
    alone = {scope: stored(scope) for scope in (POOLED, "es-bcn", "fr-tls")}
    Snapshot.objects.all().delete()
    assert services.recompute_all_scopes(workers=2) == [POOLED, "es-bcn", "fr-tls"]
    for scope, expected in alone.items():
        assert stored(scope) == expected, scope
        # the parts' fingerprints are those a single scope's recompute compares with
        assert Snapshot.objects.get(scope=scope).fingerprint == services.inputs_fingerprint(scope)


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_failing_part_leaves_the_pooled_snapshot_as_it_was(registry, monkeypatch):
    services.recompute_all_scopes(workers=1)
    before = stored(POOLED)

    def broken(cohort, summaries, codes, job):
        raise ValueError("disk full")

    monkeypatch.setattr(services, "compute_centers", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        services.recompute_all_scopes(workers=2)
    assert stored(POOLED) == before


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_the_pool_of_a_large_registry_is_summed_from_parts_storing_only_changed_centers(
    registry, monkeypatch
):
    from registry.clinical.models import Visit

    services.recompute_all_scopes(workers=1)
    before = {scope: Snapshot.objects.get(scope=scope).computed_at for scope in ("es-bcn", "fr-tls")}
    visit = Visit.objects.filter(patient__center__code="fr-tls", easi=4).first()
    # no longer an EASI75 responder; updated as a save would, without queuing a recompute
    Visit.objects.filter(pk=visit.pk).update(easi=9, updated_at=timezone.now())
    monkeypatch.setattr(forking, "PARALLEL_MIN_PATIENTS", 1)
    pooled = services.recompute_scope(POOLED)
    assert Snapshot.objects.get(scope="es-bcn").computed_at == before["es-bcn"]
    assert Snapshot.objects.get(scope="fr-tls").computed_at > before["fr-tls"]
    in_parts = stored(POOLED)
    monkeypatch.setattr(forking, "PARALLEL_MIN_PATIENTS", 10**9)
    services.recompute_scope(POOLED, force=True)
    assert stored(POOLED) == in_parts
    easi75 = next(row for row in pooled.rows if (row["endpoint"], row["timepoint"], row["group"]) == ("easi75", "m3", "all"))
    assert easi75["count"] == 0


@postgresql_only
def test_result_rows_are_compressed_with_lz4(db):
    """pglz compressing 30 MB of rows was most of PostgreSQL's time storing a nightly run."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attname, attcompression FROM pg_attribute "
            "WHERE attrelid = 'endpoints_snapshot'::regclass AND attname LIKE 'rows%%' ORDER BY 1"
        )
        assert cursor.fetchall() == [("rows", "l"), ("rows_by_enrolment_year", "l")]
