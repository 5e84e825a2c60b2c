"""ORM -> plain records: the only place the endpoint computation's input touches the database.

A 100,000-patient recompute reads about a million rows, and per-row Python work and memory
are most of its cost (bench/endpoints.py measures it). So:

- reads use ``values_list`` (no model instances), decimals are cast to floats in SQL, and on
  PostgreSQL the rows come in binary format (:func:`binary_rows`);
- tables are read on their own, without joins: rows carry ``patient_id`` / ``episode_id``,
  mapped to codes in Python, so every record of a patient shares one code string;
- a scoped read filters on center ids (no join to the center table);
- JSON lists are read as text and each distinct text parsed once (the lists repeat a lot);
- a visit's 17 checklist answers come as one integer (two bits a term), each distinct value
  decoded once into a dict that every visit with those answers shares; fetching and parsing
  17 columns of a million rows was a large part of the read;
- the large tables are streamed in chunks (on PostgreSQL libpq's chunked rows mode), so the
  raw rows never all sit in memory beside the records built from them, and the server sends
  the next rows while these are turned into records: a server-side cursor waited for each
  FETCH, the server and this process taking turns (a nightly part's read took 3.9 s instead
  of 2.6 s);
- identical checklists, and empty lab panels, are one shared dict (records are read-only);
- equal decimal scores and dates are one shared object each (scores have one decimal in a
  narrow range, dates a few thousand days, so most repeat). Lab values were shared too; a
  dict lookup per value cost more time than the memory it saved was worth once the nightly
  run read in two processes;
- the cyclic garbage collector is paused while the records are built: they hold no cycles,
  and left on it would traverse the growing cohort again and again. One collection at the
  end moves them to the oldest generation at once; without it the millions of new objects
  would be traversed three times as they age through the generations (seconds at 100,000
  patients);
- on PostgreSQL the reads share one repeatable-read snapshot (one transaction), so rows
  added between two reads cannot leave, say, an episode without its patient;
- each row's id and ``updated_at`` come with it, tallied per center into the
  :class:`InputSummaries` a snapshot's fingerprint is made of (:func:`read_cohort`): six
  grouped queries beside the read scanned every table again, a second time per part of a
  nightly run, and were about a sixth of the server's work in it.

Row order is that of the models' ``Meta.ordering`` where the computation can see it: patients
by code, episodes and adverse events by patient (code), then date and id, visits and dose
changes by date within their patient or episode.
"""
import dataclasses
import gc
import json
import operator
from collections import defaultdict
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import reduce

import psycopg
from django.db import connection, transaction
from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    ExpressionWrapper,
    F,
    Field,
    FloatField,
    Max,
    Sum,
    TextField,
    Value,
    When,
)
from django.db.models.functions import Cast
from psycopg.types.numeric import Int8BinaryLoader

from endpoints.compute import vocabulary as v
from endpoints.compute.records import (
    AdverseEvent,
    Center,
    Cohort,
    DoseChange,
    Episode,
    Patient,
    Visit,
)
from endpoints.compute.report import collector_paused
from registry.centers import models as centers
from registry.clinical import models as clinical

LIST_FIELDS = ("special_areas", *v.COMORBIDITY_LISTS)
CHECKLIST_COLUMNS = tuple(f"aesi_{term}" for term in v.CLINICAL_TERMS)
#: Rows per chunk of the large tables.
CHUNK_SIZE = 10_000
#: Scopes of more patients than this are read in chunks; smaller ones at once.
CHUNKED_FROM_PATIENTS = 20_000
NO_ITEMS = frozenset()
NO_VALUES = {}

#: Each patient-data model and its path to the center, for the input fingerprint.
FINGERPRINTED = (
    (clinical.Patient, "center"),
    (clinical.PriorTreatment, "patient__center"),
    (clinical.TreatmentEpisode, "patient__center"),
    (clinical.DoseChange, "episode__patient__center"),
    (clinical.Visit, "patient__center"),
    (clinical.AdverseEvent, "patient__center"),
)


def as_is(expression):
    """The column as the driver returns it. Django converts the value of every float or
    integer expression again in Python (``float(value)``), which also copies each row into a
    list; a million rows with a few such columns spent seconds there. Wrapped in an output
    field of no type, the expression gets no converter, and a query with none is not touched."""
    return ExpressionWrapper(expression, output_field=Field())


def as_float(name):
    return as_is(Cast(F(name), FloatField()))


def as_text(name):
    return as_is(Cast(F(name), TextField()))


def checklist_mask():
    """The visit's checklist as one integer: for term i, bits 2i (answered) and 2i+1 (yes).

    The constants are typed bigint: a bare ``Value`` is an integer parameter, which the
    binary read (:func:`binary_rows`) sends as a 32-bit one, and the 17th term's bits
    (32 and 33) would be lost."""
    def bits(value):
        return Value(value, output_field=BigIntegerField())

    return as_is(reduce(operator.add, (
        Case(
            When(**{column: True}, then=bits(3 << 2 * i)),
            When(**{column: False}, then=bits(1 << 2 * i)),
            default=bits(0),
            output_field=BigIntegerField(),
        )
        for i, column in enumerate(CHECKLIST_COLUMNS)
    )))


def checklist_of(mask, terms=v.CLINICAL_TERMS):
    """term -> True / False for the answered terms of a :func:`checklist_mask` value."""
    return {
        term: mask >> (2 * i + 1) & 1 == 1
        for i, term in enumerate(terms) if mask >> 2 * i & 1
    }


def rows_of(queryset, chunked):
    """Iterate a values_list queryset, in chunks or fetched at once. Nothing else may use the
    connection until the rows are all read (on PostgreSQL they are streamed)."""
    if connection.vendor == "postgresql":
        return binary_rows(queryset, chunked)
    return queryset.iterator(chunk_size=CHUNK_SIZE) if chunked else iter(queryset)


def binary_rows(queryset, chunked):
    """PostgreSQL: the queryset's rows as tuples, fetched in binary format.

    Django reads results as text; turning text into dates, integers and floats was most of
    what the driver spends on a large read, and binary values are about a third cheaper. The
    queryset's own SQL runs on Django's connection (its transaction) with psycopg's binary
    cursors; the columns have no Django converter (see :func:`as_is`), so the values are
    what ``values_list`` would give — but for timestamps: see :func:`raw_timestamps`.
    """
    sql, params = queryset.query.sql_with_params()
    connection.ensure_connection()
    # Django's connections make client-side cursors, which cannot read binary.
    if chunked:
        with psycopg.Cursor(connection.connection) as cursor:
            raw_timestamps(cursor)
            yield from cursor.stream(sql, params, binary=True, size=CHUNK_SIZE)
    else:
        with psycopg.Cursor(connection.connection) as cursor:
            raw_timestamps(cursor)
            cursor.execute(sql, params, binary=True)
            yield from cursor.fetchall()


#: PostgreSQL's own time origin: a binary timestamp counts microseconds from it.
POSTGRES_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def raw_timestamps(cursor):
    """Have a binary cursor hand over ``timestamptz`` values as PostgreSQL sends them: an
    integer of microseconds since :data:`POSTGRES_EPOCH` (the wire format of a ``bigint``).

    The read's only timestamps are the ``updated_at`` whose latest per center a fingerprint
    wants; a datetime in the connection's time zone cost 0.65 µs a value, as much as the
    rest of a visit's row, and one per center is made of the integers instead
    (:func:`timestamp_of`)."""
    cursor.adapters.register_loader("timestamptz", Int8BinaryLoader)


def timestamp_of(value):
    """A datetime from a :func:`raw_timestamps` integer (a datetime as it is)."""
    return POSTGRES_EPOCH + timedelta(microseconds=value) if isinstance(value, int) else value


def load_cohort(center_codes=None):
    """The records of the given centers (None: every center) as a :class:`Cohort`."""
    return read_cohort(center_codes)[0]


def read_cohort(center_codes=None):
    """(:class:`Cohort`, :class:`InputSummaries`) of the given centers (None: every center),
    the summaries tallied from the very rows of the cohort."""
    collecting = gc.isenabled()
    with one_snapshot(), collector_paused():
        cohort, summaries = _load_cohort(center_codes)
    if collecting and len(cohort.patients) > CHUNKED_FROM_PATIENTS:
        gc.collect()  # not when the caller has paused it: it will not traverse them
    return cohort, summaries


@dataclasses.dataclass
class InputSummaries:
    """Per center, what the fingerprints are made of: per table the number of records, the
    sum of their ids and the latest change; and the laboratory ranges. A nightly run's parts
    tally their centers' while reading them and hand them back, so the pooled fingerprint
    costs no query; :meth:`read` asks the database (a scope's fingerprint before its read)."""

    #: model name -> center code -> (records, sum of ids, latest updated_at)
    tables: dict
    #: (center code, analyte, lower, upper), in center and analyte order
    ranges: list

    @classmethod
    def read(cls, codes=None):
        """The summaries of some centers (None: all), by one grouped query per table."""
        # Grouped by the center's id (no join to the center table for the whole registry);
        # some centers are picked by code (the planner then walks their patients' indexes).
        centers_ = centers.Center.objects.all() if codes is None else centers.Center.objects.filter(code__in=codes)
        code_of = dict(centers_.values_list("pk", "code"))
        tables = {}
        for model, path in FINGERPRINTED:
            rows = model.objects.all()
            if codes is not None:
                rows = rows.filter(**{f"{path}__code__in": codes})
            tables[model.__name__] = {
                code_of[center]: (n, ids, latest)
                for center, n, ids, latest in rows.order_by().values_list(f"{path}_id").annotate(
                    n=Count("pk"), ids=Sum("pk"), latest=Max("updated_at")
                ).values_list(f"{path}_id", "n", "ids", "latest")
                if center in code_of
            }
        ranges = centers.LabRange.objects.order_by("center__code", "analyte")
        if codes is not None:
            ranges = ranges.filter(center__code__in=codes)
        return cls(tables, list(ranges.values_list("center__code", "analyte", "lower", "upper")))

    def merge(self, other):
        for name, by_center in other.tables.items():
            self.tables.setdefault(name, {}).update(by_center)
        self.ranges = [*self.ranges, *other.ranges]


class ChangeTally:
    """One table's rows as read, per center: their ids and ``updated_at``, summed up at the
    end into what :meth:`InputSummaries.read` asks the database for."""

    def __init__(self):
        self.ids = defaultdict(list)
        self.times = defaultdict(list)

    def adders(self, center):
        """(add an id, add an updated_at) of one center, for a loop over its rows."""
        return self.ids[center].append, self.times[center].append

    def add(self, center, pk, updated_at):
        self.ids[center].append(pk)
        self.times[center].append(updated_at)

    def summaries(self):
        """center -> (records, sum of ids, latest updated_at), centers without rows left out."""
        return {
            center: (len(ids), sum(ids), timestamp_of(max(self.times[center])))
            for center, ids in self.ids.items() if ids
        }


@contextmanager
def one_snapshot(imported=None):
    """Every read in one transaction (which server-side cursors also want: outside one,
    Django declares them WITH HOLD and PostgreSQL copies the whole result first); on
    PostgreSQL a read-only repeatable-read one, so all reads see the same data.

    ``imported``: on PostgreSQL, a snapshot another transaction exported
    (:func:`export_snapshot`), so that processes reading parts of the registry at the same
    time all see the data as that transaction does.
    """
    if connection.in_atomic_block:
        if imported is not None:
            raise RuntimeError("a snapshot can only be imported at the start of a transaction")
        yield
        return
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                if imported is not None:
                    cursor.execute("SET TRANSACTION SNAPSHOT %s", [imported])
        yield


def export_snapshot():
    """PostgreSQL, inside :func:`one_snapshot`: the transaction's snapshot id, for other
    connections to import while this transaction stays open; None elsewhere."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_export_snapshot()")
        return cursor.fetchone()[0]


def _load_cohort(center_codes):
    center_rows = centers.Center.objects.order_by("code")
    if center_codes is not None:
        center_rows = center_rows.filter(code__in=list(center_codes))
    code_of_center = dict(center_rows.values_list("pk", "code"))
    center_ids = list(code_of_center)

    lab_ranges = defaultdict(dict)
    range_rows = centers.LabRange.objects.order_by("center_id", "analyte")
    if center_codes is not None:
        range_rows = range_rows.filter(center_id__in=center_ids)
    for center_id, analyte, lower, upper in range_rows.values_list(
        "center_id", "analyte", "lower", "upper"
    ):
        lab_ranges[center_id][analyte] = (lower, upper)
    center_records = {
        code: Center(code=code, lab_ranges=lab_ranges.get(pk, {}))
        for pk, code in code_of_center.items()
    }
    # Sorted as InputSummaries.read sorts them (by code in the database's collation); the
    # fingerprint sorts them again in Python.
    ranges = sorted(
        (code_of_center[pk], analyte, lower, upper)
        for pk, by_analyte in lab_ranges.items() if pk in code_of_center
        for analyte, (lower, upper) in by_analyte.items()
    )
    tallies = {model.__name__: ChangeTally() for model, _path in FINGERPRINTED}

    # Patients, in code order (the order every per-patient loop of the computation follows).
    patient_rows = clinical.Patient.objects.order_by("code")
    if center_codes is not None:
        patient_rows = patient_rows.filter(center_id__in=center_ids)
    patient_rows = list(rows_of(patient_rows.values_list(
        "pk", "code", "center_id", "sex", "birth_year", as_float("height_cm"),
        as_float("weight_kg"), "ad_onset_age", "ad_subtype",
        *(as_text(name) for name in LIST_FIELDS), "enrolled_on", "updated_at",
    ), chunked=center_codes is None))
    chunked = len(patient_rows) > CHUNKED_FROM_PATIENTS

    def scoped(queryset, path, ids):
        """Rows of the scope: all, or those whose ``<path>_id`` is one of ``ids``.

        A scope's ids are known from the rows read before, and on PostgreSQL filtering on
        them reads the few rows through their foreign-key index, where a join to the
        patient table has the planner scan the whole child table. Elsewhere (SQLite, whose
        statements take a limited number of parameters) the join stays.
        """
        if center_codes is None:
            return queryset
        if connection.vendor == "postgresql":
            # One array parameter: an IN list of thousands of ids costs more to build, and
            # so does a Python list adapted id by id: the array goes as its text.
            quote = connection.ops.quote_name
            model = queryset.model
            column = model._meta.get_field(path).column
            return queryset.extra(
                where=[f"{quote(model._meta.db_table)}.{quote(column)} = ANY(%s::bigint[])"],
                params=["{" + ",".join(map(str, ids)) + "}"],
            )
        return queryset.filter(**{f"{path}__{'patient__' if path == 'episode' else ''}center_id__in": center_ids})

    patient_ids = [row[0] for row in patient_rows]
    center_of_patient = {row[0]: code_of_center[row[2]] for row in patient_rows}
    add_change = tallies["Patient"].add
    for row in patient_rows:
        add_change(code_of_center[row[2]], row[0], row[-1])
    prior_drugs = defaultdict(set)
    add_change = tallies["PriorTreatment"].add
    for pk, patient_id, drug, updated_at in rows_of(scoped(
        clinical.PriorTreatment.objects.order_by(), "patient", patient_ids
    ).values_list("pk", "patient_id", "drug", "updated_at"), chunked):
        prior_drugs[patient_id].add(drug)
        add_change(center_of_patient[patient_id], pk, updated_at)

    code_of_patient = {}
    rank_of_patient = {}
    patients = {}
    parsed_lists = {}
    drug_sets = {}
    n_lists = len(LIST_FIELDS)
    for row in patient_rows:
        pk, code, center_id, sex, birth_year, height, weight, onset, subtype = row[:9]
        lists = []
        for text in row[9:9 + n_lists]:
            items = parsed_lists.get(text)
            if items is None:
                items = parsed_lists[text] = frozenset(_json_list(text))
            lists.append(items)
        drugs = prior_drugs.get(pk)
        if drugs:
            drugs = frozenset(drugs)
            drugs = drug_sets.setdefault(drugs, drugs)
        code_of_patient[pk] = code
        rank_of_patient[pk] = len(rank_of_patient)
        patients[code] = Patient(
            code, code_of_center[center_id], sex, birth_year, height, weight, onset,
            subtype or None, *lists, enrolled_on=row[-2],
            prior_drugs=drugs or NO_ITEMS,
        )
    del prior_drugs, patient_rows

    episode_rows = list(rows_of(scoped(
        clinical.TreatmentEpisode.objects.order_by(), "patient", patient_ids
    ).values_list(
        "pk", "code", "patient_id", "drug", "start_date", as_float("start_dose_mg"),
        "end_date", "end_reason", "updated_at",
    ), chunked))
    # By patient code, start date and id, as TreatmentEpisode.Meta.ordering sorts them.
    episode_rows.sort(key=lambda row: (rank_of_patient.get(row[2], -1), row[4], row[0]))
    center_of_episode = {row[0]: center_of_patient.get(row[2]) for row in episode_rows}
    changes = defaultdict(list)
    add_change = tallies["DoseChange"].add
    for pk, episode_id, day, dose, reason, updated_at in scoped(
        clinical.DoseChange.objects.order_by("episode_id", "date"), "episode",
        [row[0] for row in episode_rows],
    ).values_list("pk", "episode_id", "date", as_float("dose_mg"), "reason", "updated_at"):
        changes[episode_id].append(DoseChange(day, dose, reason or None))
        if center_of_episode.get(episode_id) is not None:
            add_change(center_of_episode[episode_id], pk, updated_at)
    code_of_episode = {}
    episodes = []
    add_change = tallies["TreatmentEpisode"].add
    for pk, code, patient_id, drug, start, dose, end, reason, updated_at in episode_rows:
        patient = code_of_patient.get(patient_id)
        if patient is None:  # not in the patient read (added since, or not in scope)
            continue
        add_change(center_of_patient[patient_id], pk, updated_at)
        code_of_episode[pk] = code
        episodes.append(Episode(
            code, patient, drug, start, dose, end, reason or None, tuple(changes.get(pk, ())),
        ))
    del episode_rows, changes

    visits = {}
    decimal_scores = {"easi", "scorad", "bsa"}
    score_columns = [as_float(c) if c in decimal_scores else c for c in v.SCORE_CODES]
    decimals_at = [i for i, c in enumerate(v.SCORE_CODES) if c in decimal_scores]
    # Floats and dates apart: 1.0 == 1 == True must not share. Zero is not shared, so that
    # -0.0 stays itself.
    share_float = {}.setdefault
    share_date = {}.setdefault
    n_scores, n_labs = len(v.SCORE_CODES), len(v.ANALYTES)
    labs_at, checks_at = 2 + n_scores, 2 + n_scores + n_labs
    analytes = v.ANALYTES
    no_labs = (None,) * n_labs
    checklists = {0: NO_VALUES}
    last_patient, patient_visits = None, None
    visit_changes = tallies["Visit"]
    for row in rows_of(scoped(
        clinical.Visit.objects.order_by("patient_id", "date"), "patient", patient_ids
    ).values_list(
        "patient_id", "date", *score_columns, *analytes, checklist_mask(), "pk", "updated_at",
    ), chunked):
        if row[0] != last_patient:
            last_patient = row[0]
            code = code_of_patient.get(last_patient)
            patient_visits = None
            if code is not None:  # else not in the patient read (added since)
                patient_visits = visits[code] = []
                add_id, add_time = visit_changes.adders(center_of_patient[last_patient])
        if patient_visits is None:
            continue
        add_id(row[-2])
        add_time(row[-1])
        labs_row = row[labs_at:checks_at]
        if labs_row == no_labs:
            labs = NO_VALUES
        elif None not in labs_row:  # a full panel, the usual case: built in C
            labs = dict(zip(analytes, labs_row))
        else:
            labs = {a: value for a, value in zip(analytes, labs_row) if value is not None}
        scores = list(row[2:labs_at])
        for i in decimals_at:
            if scores[i]:
                scores[i] = share_float(scores[i], scores[i])
        checklist = checklists.get(row[checks_at])
        if checklist is None:
            checklist = checklists[row[checks_at]] = checklist_of(row[checks_at])
        patient_visits.append(Visit(code, share_date(row[1], row[1]), *scores, labs, checklist))

    events = defaultdict(list)
    add_change = tallies["AdverseEvent"].add
    # Read whole (a few per patient): an event of an episode not read asks for its code.
    for pk, patient_id, term, onset, episode_id, end, severity, serious, updated_at in list(rows_of(scoped(
        clinical.AdverseEvent.objects.order_by("patient_id", "onset_date", "pk"), "patient",
        patient_ids,
    ).values_list(
        "pk", "patient_id", "term", "onset_date", "episode_id", "end_date", "severity", "serious",
        "updated_at",
    ), chunked)):
        code = code_of_patient.get(patient_id)
        if code is None:
            continue
        add_change(center_of_patient[patient_id], pk, updated_at)
        episode = None if episode_id is None else code_of_episode.get(episode_id)
        if episode is None and episode_id is not None:
            episode = clinical.TreatmentEpisode.objects.values_list("code", flat=True).get(pk=episode_id)
        events[code].append(AdverseEvent(code, term, onset, episode, end, severity or None, serious))

    summaries = InputSummaries({name: tally.summaries() for name, tally in tallies.items()}, ranges)
    return Cohort(center_records, patients, episodes, visits, dict(events)), summaries


def _json_list(text):
    """A JSON list column read as text (None or JSON null: no items)."""
    if text is None:
        return ()
    return json.loads(text) or ()
