"""Export the registry as a dataset bundle (dataset-format.md): the inverse of the importer.

``export_bundle(path, options, user=...)`` writes one ``.zip`` holding, in one folder:

- the eight CSV files of the bundle, with exactly the columns of ``columns.FILES`` (cells
  written by ``bundle.format_cell``, the inverse of the importer's ``parse_cell``), so that
  ``import_bundle(export)`` into an empty registry gives back the same records;
- ``data_dictionary.csv`` and ``data_dictionary.html`` (label, type, unit, allowed values or
  range of every column) and ``datapackage.json`` (Frictionless Table Schema);
- on request ``dataset.xlsx`` (a sheet per table) and ``parquet/<table>.parquet``, typed.

Scope and filters (decided here, shown on the export page and in the dictionary):

- The exporter's scope comes from the scoping helpers: a coordinator may export every center,
  a center PI the centers where they are PI (``exportable_centers``); the patient rows are
  read through ``for_user`` as well. ``user=None`` is the command line: every center.
- **Filters select patients, never parts of a patient.** A drug filter keeps the patients who
  have at least one treatment episode of that drug, with *all* their records: their other
  episodes, prior treatments, every visit and adverse event. Keeping only the matching
  episodes would cut visits and events away from the episode they belong to, leave adverse
  events naming episodes that are not in the bundle, and change baselines and switching
  histories; a patient-level subset stays a valid bundle whose endpoints equal the
  registry's for those patients. The enrolment period (``enrolled_on`` within the dates,
  both included) also selects patients. ``centers.csv`` and ``lab_ranges.csv`` hold the
  centers in scope.

Pseudonymisation:

- Patients are their codes; nothing of the registry's users is read (no audit history, no
  ``created_by``), and the files name no user, not even the one who exported.
- The adverse-event ``description`` (the only free-text column) is left out unless asked for
  (``free_text``): the column is then absent, not empty.
- ``shift_dates``: every date of a patient moves back by the same number of days, drawn per
  patient (1 to ``DATE_SHIFT_MAX_DAYS``) from a random key made for this export and then
  forgotten: days between a patient's dates are intact (so every endpoint is), patients move
  by different amounts, nobody can undo it, and no date can land in the future. The birth
  year moves by the number of calendar years the enrolment date moved (0 or 1), so that the
  age at enrolment (enrolment year - birth year, the only use of the birth year) is unchanged
  and the birth year stays at or before the enrolment year; it is kept at 1900 or later.

Spreadsheet formula injection (a text cell starting with ``=``, ``+``, ``-`` or ``@``):

- The CSV files are written verbatim. Prefixing such cells with ``'`` would change the value
  (the importer stores strings as given), breaking ``import(export)``; the dictionary tells
  readers to open the CSVs with a text import, or the workbook.
- The Excel workbook is protected without changing a value: every text cell is written as a
  string cell, so even ``=HYPERLINK(...)`` is shown as text and never evaluated.

Speed and memory: rows are streamed, never collected, so memory stays flat whatever the size.
On PostgreSQL all files are read in one repeatable-read snapshot; each CSV is produced by
``COPY (SELECT ...) TO STDOUT`` from the very queryset the generic path reads, with the cells
formatted in SQL exactly as ``format_cell`` does (tests compare both paths cell by cell), and
the bytes go straight into the zip entry (CSV lines end in LF there, CRLF on the generic path;
both are read alike). The generic path reads ``values_list(...)`` rows and writes them in
chunks: through a server-side cursor (``iterator(chunk_size)``) on PostgreSQL, and on SQLite in
short statements, a batch of patients at a time, so that an export never holds the lock that
would stop data entry (see ``Scope``). Excel is written with openpyxl's write-only mode
(inline strings, rows flushed to a temporary file) and Parquet in record batches.
"""
from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import io
import os
import queue
import re
import secrets
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection, models
from django.db.models import Exists, F, Func, OuterRef, Q, Value
from django.db.models.functions import NullIf
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from endpoints.selectors import export_snapshot, one_snapshot
from registry.centers.models import Center, LabRange
from registry.clinical.models import Patient, TreatmentEpisode
from registry.core.fields import CodeListField
from registry.core.scoping import Role

from . import datapackage as package
from . import dictionary
from .bundle import format_cell
from .columns import DOSE_CHANGES, FILES, PATIENTS, FileSpec

#: Rows fetched per round trip by the generic path.
CHUNK_SIZE = 5000
#: zlib level of the entries: level 1 deflates the CSVs four times as fast as the default (6)
#: for a zip 25% larger.
COMPRESS_LEVEL = 1
#: Bytes gathered before a write into the zip entry.
WRITE_BUFFER = 1 << 18
#: PostgreSQL: database backends that format one large file at the same time (each COPYs a
#: range of patients), and the rows from which a file is split.
COPY_STREAMS = 2
PARALLEL_MIN_ROWS = 100_000
#: PostgreSQL, for the export transaction: dates written as ISO (COPY writes them in the
#: session's DateStyle), and no JIT (compiling a long read's expressions costs more than it
#: saves).
SESSION_SETTINGS = ("SET LOCAL datestyle = 'ISO, YMD'", "SET LOCAL jit = off")
#: A shifted patient's dates move back by 1 to this many days.
DATE_SHIFT_MAX_DAYS = 365
#: Rows of a sheet, the header included (Excel's limit); a longer table continues on the next.
EXCEL_MAX_ROWS = 1_048_576
PARQUET_BATCH_ROWS = 10_000
PARQUET_COMPRESSION = "zstd"
FIRST_BIRTH_YEAR = 1900

DICTIONARY_CSV = "data_dictionary.csv"
DICTIONARY_HTML = "data_dictionary.html"
DATAPACKAGE = "datapackage.json"
WORKBOOK = "dataset.xlsx"
PARQUET_FOLDER = "parquet"


class ExportRefused(Exception):
    """The export asked for data its requester may not export (or that does not exist)."""


@dataclass(frozen=True)
class ExportOptions:
    #: Center codes; None: every center the requester may export.
    centers: tuple[str, ...] | None = None
    drug: str | None = None
    enrolled_from: date | None = None
    enrolled_to: date | None = None
    shift_dates: bool = False
    free_text: bool = False
    excel: bool = False
    parquet: bool = False

    def filters(self):
        """The filters given, for the export record (JSON)."""
        values = {
            "drug": self.drug,
            "enrolled_from": self.enrolled_from.isoformat() if self.enrolled_from else None,
            "enrolled_to": self.enrolled_to.isoformat() if self.enrolled_to else None,
        }
        return {key: value for key, value in values.items() if value}

    def flags(self):
        return {
            "shift_dates": self.shift_dates, "free_text": self.free_text,
            "excel": self.excel, "parquet": self.parquet,
        }


@dataclass
class ExportResult:
    path: Path
    center_codes: list[str]
    row_counts: dict[str, int] = field(default_factory=dict)
    members: list[str] = field(default_factory=list)
    sha256: str = ""
    size: int = 0
    seconds: float = 0.0


#: ``progress(done, total, stage)``: rows written so far out of all rows to write.
Progress = Callable[[int, int, str], None]


# Who may export what ---------------------------------------------------------------------


def exportable_centers(user):
    """The centers ``user`` may export: every center for a coordinator, the centers where they
    are PI for a center PI, none for anyone else; ``None`` (the command line) every center."""
    if user is None:
        return Center.objects.all()
    centers = Center.objects.for_user(user)
    if getattr(user, "is_coordinator", False):
        return centers
    return centers.filter(memberships__user=user, memberships__role=Role.PI)


def may_export(user):
    """Coordinators and center PIs (cached on the user for the menu of every page)."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_coordinator:
        return True
    if not hasattr(user, "_may_export_datasets"):
        user._may_export_datasets = exportable_centers(user).exists()
    return user._may_export_datasets


def _scoped(model, user):
    return model.objects.all() if user is None else model.objects.for_user(user)


class Scope:
    """The querysets of one export: the centers and patients selected, and each file's rows
    in a stable order (a patient's rows together, by date), and how to read them.

    On PostgreSQL every read happens in one repeatable-read snapshot (the caller opens it) and
    large files stream through server-side cursors. SQLite has no snapshot a reader can hold
    without blocking every writer of the registry for the length of the export, so there the
    rows are read in short statements (a batch of patients at a time) and each file is cut at
    the highest id it had when the export started: records added during the export are left
    out, so a child never names a parent missing from the bundle.
    """

    #: Patients per statement when reading in batches (SQLite).
    PATIENT_BATCH = 500

    def __init__(self, options: ExportOptions, user=None, *, batched=False, snapshot_id=None):
        self.user = user
        self.batched = batched
        #: PostgreSQL: the export transaction's snapshot, which parallel COPYs import.
        self.snapshot_id = snapshot_id
        self.high_water = {}
        if batched:
            for spec in FILES:
                highest = spec.model._base_manager.aggregate(highest=models.Max("pk"))["highest"]
                self.high_water[spec.model] = highest or 0
        allowed = exportable_centers(user)
        if options.centers is not None:
            wanted = set(options.centers)
            found = set(allowed.filter(code__in=wanted).values_list("code", flat=True))
            if wanted - found:
                raise ExportRefused(
                    _("Center(s) not found or not yours to export: %(codes)s.")
                    % {"codes": ", ".join(sorted(wanted - found))}
                )
            allowed = allowed.filter(code__in=wanted)
        pairs = list(allowed.order_by("code").values_list("pk", "code"))
        self.center_ids = [pk for pk, _code in pairs]
        self.center_codes = [code for _pk, code in pairs]
        self.options = options
        self.patients = _scoped(Patient, user).filter(*self._patient_conditions(""))
        #: ``split``'s patient bounds, by the key they cut on (the same for every child file).
        self._bounds = {}

    def _patient_conditions(self, prefix):
        """The patients selected, as conditions on a queryset that reaches its patient through
        ``prefix`` ("" for patients, "patient__", "episode__patient__"): a child file is
        filtered through the join that also reads its patient's code (one scan, not a second
        one of the patients for an ``IN`` subquery)."""
        options = self.options
        conditions = [Q(**{f"{prefix}center_id__in": self.center_ids})]
        if self.batched:
            conditions.append(Q(**{f"{prefix}pk__lte": self.high_water[Patient]}))
        if options.drug:
            conditions.append(Exists(TreatmentEpisode.objects.filter(
                patient=OuterRef(f"{prefix}pk"), drug=options.drug,
            )))
        if options.enrolled_from:
            conditions.append(Q(**{f"{prefix}enrolled_on__gte": options.enrolled_from}))
        if options.enrolled_to:
            conditions.append(Q(**{f"{prefix}enrolled_on__lte": options.enrolled_to}))
        return conditions

    def _cut(self, queryset):
        if not self.batched:
            return queryset
        return queryset.filter(pk__lte=self.high_water[queryset.model])

    def queryset(self, spec: FileSpec):
        model = spec.model
        if model is Center:
            return self._cut(_scoped(Center, self.user).filter(pk__in=self.center_ids)).order_by("code")
        if model is LabRange:
            return self._cut(LabRange.objects.filter(center_id__in=self.center_ids)).order_by(
                "center__code", "analyte"
            )
        if model is Patient:
            return self.patients.order_by("code")
        if spec is DOSE_CHANGES:
            return self._cut(_scoped(model, self.user).filter(
                *self._patient_conditions("episode__patient__")
            )).order_by("episode__patient_id", "episode_id", "date")
        date_field = {
            "prior_treatments.csv": "start_date", "episodes.csv": "start_date",
            "visits.csv": "date", "adverse_events.csv": "onset_date",
        }[spec.name]
        return self._cut(_scoped(model, self.user).filter(
            *self._patient_conditions("patient__")
        )).order_by("patient_id", date_field, "pk")

    def split(self, spec: FileSpec, queryset, total):
        """``queryset`` cut into ``COPY_STREAMS`` consecutive ranges of its order (patients by
        code, other files by patient id): one part unless the file is large and parallel
        COPYs can share the export's snapshot."""
        if (
            self.snapshot_id is None or COPY_STREAMS < 2 or total < PARALLEL_MIN_ROWS
            or spec.model in (Center, LabRange)
        ):
            return [queryset]
        if spec.model is Patient:
            key, bounds = "code", self._patient_bounds("code")
        else:
            key = "episode__patient_id" if spec is DOSE_CHANGES else "patient_id"
            bounds = self._patient_bounds("pk")
        parts, lower = [], None
        for bound in [*bounds, None]:
            part = queryset
            if lower is not None:
                part = part.filter(**{f"{key}__gte": lower})
            if bound is not None:
                part = part.filter(**{f"{key}__lt": bound})
            parts.append(part)
            lower = bound
        return parts

    def _patient_bounds(self, field):
        """The values of ``field`` (``code`` or ``pk``) that cut the selected patients, in that
        order, into ``COPY_STREAMS`` ranges of about equal size; computed once per field (the
        snapshot does not change), not once per file."""
        if field not in self._bounds:
            keys = self.patients.order_by(field).values_list(field, flat=True)
            count = self.patients.count()
            self._bounds[field] = sorted(
                {keys[count * part // COPY_STREAMS] for part in range(1, COPY_STREAMS)}
            )
        return self._bounds[field]

    def rows(self, spec: FileSpec, queryset, sources):
        """The value tuples of ``queryset``, in its order, read as this scope reads."""
        values = queryset.values_list(*sources)
        if not self.batched:
            yield from values.iterator(chunk_size=CHUNK_SIZE)
            return
        if spec.model in (Center, LabRange):
            yield from list(values)
            return
        if spec.model is Patient:  # by code, as ordered: the code is always read
            at = sources.index("code")
            page = values
            while True:
                batch = list(page[:CHUNK_SIZE])
                yield from batch
                if len(batch) < CHUNK_SIZE:
                    return
                page = values.filter(code__gt=batch[-1][at])
        patient_id = "episode__patient_id" if spec is DOSE_CHANGES else "patient_id"
        ids = self.patients.order_by("pk").values_list("pk", flat=True)
        last = 0
        while True:
            batch = list(ids.filter(pk__gt=last)[:self.PATIENT_BATCH])
            if not batch:
                return
            yield from list(values.filter(**{f"{patient_id}__in": batch}))
            last = batch[-1]


# Date shifting ---------------------------------------------------------------------------


class DateShift:
    """Each patient's offset in days, from a key made for one export (never stored).

    ``days(code) = 1 + int(md5(key + code)[:8], 16) mod DATE_SHIFT_MAX_DAYS``; the PostgreSQL
    path computes the same in SQL (``sql_days``)."""

    def __init__(self, key=None):
        self.key = key or secrets.token_hex(16)
        self.days = functools.lru_cache(maxsize=4096)(self._days)

    def _days(self, code):
        digest = hashlib.md5((self.key + code).encode("utf-8")).hexdigest()
        return 1 + int(digest[:8], 16) % DATE_SHIFT_MAX_DAYS

    def sql_days(self, code_lookup):
        return Sql(
            "(1 + MOD(('x' || substr(md5({0} || {1}), 1, 8))::bit(32)::bigint, "
            f"{DATE_SHIFT_MAX_DAYS}))::int",
            Value(self.key), F(code_lookup), output_field=models.IntegerField(),
        )


def shifted_birth_year(birth_year, enrolled_on, shifted_enrolled_on):
    if birth_year is None or enrolled_on is None:
        return birth_year
    return max(FIRST_BIRTH_YEAR, birth_year + shifted_enrolled_on.year - enrolled_on.year)


# One file's plan ---------------------------------------------------------------------------


class TablePlan:
    """How one file is read: the lookups of its columns, its typed model fields, and where the
    patient code and the dates sit in a row (for the date shift)."""

    def __init__(self, spec: FileSpec, *, free_text: bool):
        self.spec = spec
        self.columns = dictionary.exported_columns(spec, free_text=free_text)
        self.header = [column.name for column in self.columns]
        self.fields = [spec.model_field(column.name) for column in self.columns]
        self.sources = []
        for column, model_field in zip(self.columns, self.fields):
            if column.is_reference:
                target = next(s for s in FILES if s.name == column.ref)
                code_field = target.column(target.code_column).field
                self.sources.append(f"{column.field}__{code_field}")
            else:
                self.sources.append(column.field)
        self.width = len(self.sources)
        self.date_indexes = [
            index for index, model_field in enumerate(self.fields)
            if isinstance(model_field, models.DateField) and not self.columns[index].is_reference
        ]
        self.patient_code_lookup = None
        if spec is PATIENTS:
            self.patient_code_lookup = "code"
        elif spec is DOSE_CHANGES:
            self.patient_code_lookup = "episode__patient__code"
        elif "patient_code" in self.header:
            self.patient_code_lookup = "patient__code"
        self.shifts = bool(self.date_indexes) and self.patient_code_lookup is not None
        self.birth_year_index = self.header.index("birth_year") if spec is PATIENTS else None
        self.enrolled_index = self.header.index("enrolled_on") if spec is PATIENTS else None

    def read_sources(self, shift):
        """The lookups to read: the columns, then the patient code when the shift needs it and
        it is not a column."""
        sources = list(self.sources)
        if shift and self.shifts and self.patient_code_lookup not in sources:
            sources.append(self.patient_code_lookup)
        return sources

    def typed_rows(self, scope, queryset, shift: DateShift | None):
        """The rows as the models' Python values (dates shifted when asked), one tuple per row."""
        sources = self.read_sources(shift)
        rows = scope.rows(self.spec, queryset, sources)
        if shift is None or not self.shifts:
            yield from rows
            return
        code_at = sources.index(self.patient_code_lookup)
        dates, width = self.date_indexes, self.width
        birth, enrolled = self.birth_year_index, self.enrolled_index
        for row in rows:
            row = list(row)
            offset = timedelta(days=shift.days(row[code_at]))
            for index in dates:
                if row[index] is not None:
                    row[index] = row[index] - offset
            if birth is not None:
                original = row[enrolled] + offset if row[enrolled] is not None else None
                row[birth] = shifted_birth_year(row[birth], original, row[enrolled])
            yield tuple(row[:width])

    def csv_rows(self, scope, queryset, shift):
        fields = self.fields
        for row in self.typed_rows(scope, queryset, shift):
            yield [format_cell(model_field, value) for model_field, value in zip(fields, row)]

    # PostgreSQL: the same cells, formatted by the database --------------------------------

    def sql_columns(self, shift: DateShift | None):
        """One SQL expression per column whose text is what ``format_cell`` writes (NULL for
        an empty cell)."""
        offset = shift.sql_days(self.patient_code_lookup) if shift is not None and self.shifts else None
        expressions = []
        for index, (column, model_field, source) in enumerate(zip(self.columns, self.fields, self.sources)):
            if column.is_reference:
                expressions.append(F(source))
            elif isinstance(model_field, CodeListField):
                # ["hands", "face_neck"] -> hands;face_neck. The items are vocabulary codes
                # (lower-case snake_case, validated by the field), so no quote, comma, bracket
                # or space belongs to an item; anything else takes the exact, slower way.
                expressions.append(Sql(
                    "CASE WHEN {0}::text ~ '^\\[(\"[a-z0-9_]+\"(, )?)*\\]$' "
                    "THEN NULLIF(replace(translate({0}::text, '[]\" ', ''), ',', ';'), '') "
                    "ELSE NULLIF(array_to_string(ARRAY(SELECT jsonb_array_elements_text({0})), ';'), '') END",
                    F(source),
                ))
            elif isinstance(model_field, models.BooleanField):
                expressions.append(Sql("CASE {0} WHEN true THEN 'yes' WHEN false THEN 'no' END", F(source)))
            elif isinstance(model_field, models.DateField):
                # Written by PostgreSQL in the ISO style the export transaction sets.
                if offset is None:
                    expressions.append(F(source))
                else:
                    expressions.append(Sql("{0} - {1}", F(source), offset, output_field=models.DateField()))
            elif isinstance(model_field, models.FloatField):
                # Python's repr: "3.0" where PostgreSQL writes "3" (the same text for |x| < 1e15,
                # where PostgreSQL switches to an exponent).
                expressions.append(Sql(
                    "{0}::text || CASE WHEN {0} = trunc({0}) AND abs({0}) < 1e15 THEN '.0' ELSE '' END",
                    F(source),
                ))
            elif index == self.birth_year_index and offset is not None:
                expressions.append(Sql(
                    "CASE WHEN {0} IS NULL THEN NULL ELSE GREATEST(" + str(FIRST_BIRTH_YEAR)
                    + ", {0} + EXTRACT(YEAR FROM {1} - {2})::int - EXTRACT(YEAR FROM {1})::int) END",
                    F(source), F(self.sources[self.enrolled_index]), offset,
                ))
            elif isinstance(model_field, (models.CharField, models.TextField)):
                expressions.append(NullIf(F(source), Value(""), output_field=models.TextField()))
            else:  # integers, and decimals (numeric keeps its scale: "30.0")
                expressions.append(F(source))
        return expressions


_PLACEHOLDER = re.compile(r"\{(\d+)\}")


class Sql(Func):
    """A SQL template whose arguments are placed by position (``{0}``, ``{1}``, each as often
    as needed), compiled like any expression (joins, parameters). Text output by default."""

    def __init__(self, template, *expressions, output_field=None):
        super().__init__(*expressions, output_field=output_field or models.TextField())
        self.sql_template = template

    def as_sql(self, compiler, connection, **extra_context):
        compiled = [compiler.compile(expression) for expression in self.get_source_expressions()]
        params = []

        def place(match):
            sql, sql_params = compiled[int(match.group(1))]
            params.extend(sql_params)
            return f"({sql})"

        return _PLACEHOLDER.sub(place, self.sql_template), params


# Writing -----------------------------------------------------------------------------------


class _Tracker:
    """Rows written out of all rows to write, handed to the ``progress`` callback."""

    def __init__(self, callback: Progress, total: int):
        self.callback = callback
        self.total = total
        self.done = 0

    def advance(self, rows, stage):
        self.done = min(self.total, self.done + rows)
        self.callback(self.done, self.total, stage)


class _HashingWriter:
    """Bytes into a zip entry, counted and hashed on the way (``datapackage.json`` lists the
    size and sha256 of every CSV)."""

    def __init__(self, raw):
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def write(self, data):
        self.sha256.update(data)
        self.bytes += len(data)
        self.raw.write(data)


class _WriterThread(threading.Thread):
    """Hashing and compressing a CSV entry in a thread of its own (zlib and hashlib release
    the GIL), so that the database connection is read while the previous bytes are being
    compressed, instead of the server waiting on a full socket. At most ``QUEUED`` buffers wait
    (memory stays bounded)."""

    QUEUED = 8
    _END = object()

    def __init__(self, writer):
        super().__init__(daemon=True)
        self.writer = writer
        self.queue = queue.Queue(maxsize=self.QUEUED)
        self.error = None
        self.start()

    def run(self):
        while True:
            data = self.queue.get()
            if data is self._END:
                return
            if self.error is None:
                try:
                    self.writer.write(data)
                except BaseException as error:  # re-raised by close()
                    self.error = error

    def write(self, data):
        if self.error is not None:
            raise self.error
        self.queue.put(bytes(data))

    def close(self):
        self.queue.put(self._END)
        self.join()
        if self.error is not None:
            raise self.error


def _zip_info(name, when, compress_type=zipfile.ZIP_DEFLATED):
    """A zip entry dated ``when``, deflated at ``COMPRESS_LEVEL``.

    ``ZipFile.open(info, "w")`` and ``writestr(info, ...)`` compress at the level the
    ``ZipInfo`` holds, not at the archive's ``compresslevel`` (which only reaches entries named
    by a string): left unset, the entries were deflated at zlib's default level 6, which took
    four times as long as level 1 and was most of the export's time."""
    info = zipfile.ZipInfo(name, date_time=when.timetuple()[:6])
    info.compress_type = compress_type
    # Public as ``compress_level`` from Python 3.13, which keeps this name as an alias.
    info._compresslevel = COMPRESS_LEVEL
    info.external_attr = 0o644 << 16
    return info


def _write_csv_python(out, plan, scope, queryset, shift, tracker):
    """The generic path: ``format_cell`` on every cell, written in chunks (CRLF lines)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(plan.header)
    rows = pending = 0
    for cells in plan.csv_rows(scope, queryset, shift):
        writer.writerow(cells)
        rows += 1
        pending += 1
        if pending == CHUNK_SIZE:
            out.write(buffer.getvalue().encode("utf-8"))
            buffer.seek(0)
            buffer.truncate()
            tracker.advance(pending, plan.spec.name)
            pending = 0
    out.write(buffer.getvalue().encode("utf-8"))
    tracker.advance(pending, plan.spec.name)
    return rows


def _copy_statement(queryset, plan, shift):
    """``COPY (the file's query, cells formatted in SQL) TO STDOUT``, parameters inlined (raises
    ``EmptyResultSet`` for a query that cannot match, e.g. no center in scope)."""
    import psycopg

    sql, params = queryset.values_list(*plan.sql_columns(shift)).query.sql_with_params()
    connection.ensure_connection()
    statement = psycopg.ClientCursor(connection.connection).mogrify(sql, params)
    return f"COPY ({statement}) TO STDOUT WITH (FORMAT csv)"


class _CopyPart(threading.Thread):
    """One later part of a file: copied on a connection of its own, inside the export's
    snapshot (imported), into a temporary file that is appended to the entry in order."""

    def __init__(self, statement, snapshot, path):
        super().__init__(daemon=True)
        self.statement, self.snapshot, self.path = statement, snapshot, path
        self.lines = self.rows = 0
        self.error = None

    def run(self):
        from django.db import connection as own  # this thread's connection

        try:
            with one_snapshot(imported=self.snapshot), own.cursor() as cursor:
                for setting in SESSION_SETTINGS:
                    cursor.execute(setting)
                with open(self.path, "wb") as sink, cursor.cursor.copy(self.statement) as copy:
                    buffer = bytearray()
                    for data in copy:
                        buffer += data
                        if len(buffer) >= WRITE_BUFFER:
                            sink.write(buffer)
                            self.lines += buffer.count(b"\n")
                            buffer.clear()
                    sink.write(buffer)
                self.rows = cursor.cursor.rowcount
        except BaseException as error:  # handed to the main thread
            self.error = error
        finally:
            own.close()


def _write_csv_copy(out, plan, scope, queryset, shift, tracker, *, total, scratch):
    """PostgreSQL: the file's COPY streamed into the entry (LF lines, RFC 4180 quoting).

    A large file is cut into ``COPY_STREAMS`` consecutive ranges of its order (patient ids, or
    codes for patients.csv) read at the same time by as many database backends, the first
    streamed directly, the others spooled and appended in order: the same bytes, sooner."""
    out.write((",".join(plan.header) + "\n").encode("utf-8"))
    try:
        statements = [
            _copy_statement(part, plan, shift) for part in scope.split(plan.spec, queryset, total)
        ]
    except EmptyResultSet:  # e.g. no center in scope: the header alone
        return 0
    helpers = []
    for index, statement in enumerate(statements[1:], start=1):
        helper = _CopyPart(statement, scope.snapshot_id, Path(scratch) / f"{plan.spec.name}.{index}")
        helper.start()
        helpers.append(helper)
    lines = reported = 0

    def advance(count):
        nonlocal reported
        helper_lines = sum(helper.lines for helper in helpers)
        tracker.advance(count + helper_lines - reported, plan.spec.name)
        reported = helper_lines

    try:
        with connection.cursor() as cursor:
            raw = cursor.cursor
            with raw.copy(statements[0]) as copy:
                buffer = bytearray()
                for data in copy:
                    buffer += data
                    if len(buffer) >= WRITE_BUFFER:
                        out.write(buffer)
                        count = buffer.count(b"\n")
                        lines += count
                        advance(count)
                        buffer.clear()
                out.write(buffer)
            rows = raw.rowcount
    finally:
        for helper in helpers:
            helper.join()
    for helper in helpers:
        if helper.error is not None:
            raise helper.error
        with open(helper.path, "rb") as part:
            for block in iter(lambda: part.read(1 << 20), b""):
                out.write(block)
        helper.path.unlink()
        rows += helper.rows
    # What is left: the last buffer, the helpers' last lines, and newlines inside quoted free
    # text counted as lines (the progress ends on the true total either way).
    tracker.advance(max(0, rows - lines - reported), plan.spec.name)
    return rows


def write_csv_entry(archive, name, plan, scope, queryset, shift, *, use_copy, tracker, when,
                    total=0, scratch=None):
    """One CSV file of the bundle into ``archive``; returns (rows, bytes, sha256)."""
    with archive.open(_zip_info(name, when), "w", force_zip64=True) as raw:
        out = _HashingWriter(raw)
        if use_copy:
            writer = _WriterThread(out)
            try:
                rows = _write_csv_copy(writer, plan, scope, queryset, shift, tracker, total=total, scratch=scratch)
            finally:
                writer.close()
        else:
            rows = _write_csv_python(out, plan, scope, queryset, shift, tracker)
    return rows, out.bytes, out.sha256.hexdigest()


# Excel and Parquet -------------------------------------------------------------------------


def _excel_text(value):
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    # Control characters cannot be stored in a workbook (the CSV keeps them).
    return ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)


class ExcelSheet:
    """One table in the write-only workbook, continued on a new sheet past Excel's row limit.

    Every text cell is a string cell, so that a value starting with ``=`` is shown as text and
    never evaluated (openpyxl would otherwise store it as a formula)."""

    def __init__(self, book, title, header, infos):
        self.book, self.title, self.header = book, title, header
        self.kinds = [info.kind for info in infos]
        self.parts = 0
        self.rows = EXCEL_MAX_ROWS  # a sheet is opened on the first row

    def _open(self):
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.styles import Font

        self.parts += 1
        title = self.title if self.parts == 1 else f"{self.title} ({self.parts})"
        self.sheet = self.book.create_sheet(title=title[:31])
        bold = Font(bold=True)
        cells = []
        for name in self.header:
            cell = WriteOnlyCell(self.sheet, value=name)
            cell.font = bold
            cells.append(cell)
        self.sheet.append(cells)
        self.rows = 1

    def _text_cell(self, value):
        from openpyxl.cell import WriteOnlyCell

        cell = WriteOnlyCell(self.sheet, value=_excel_text(value))
        cell.data_type = "s"
        return cell

    def append(self, row):
        if self.rows >= EXCEL_MAX_ROWS:
            self._open()
        cells = []
        for kind, value in zip(self.kinds, row):
            if value is None or value == "":
                cells.append(None)
            elif kind == dictionary.BOOLEAN:
                cells.append(dictionary.YES if value else dictionary.NO)
            elif kind == dictionary.LIST:
                cells.append(";".join(value) or None)
            elif isinstance(value, str):
                cells.append(self._text_cell(value) if value[0] in "=+-@\t\r" or not value.isprintable() else value)
            else:
                cells.append(value)
        self.sheet.append(cells)
        self.rows += 1


class ExcelWorkbook:
    def __init__(self, path, described):
        from openpyxl import Workbook

        self.path = path
        self.book = Workbook(write_only=True)
        self.book.properties.creator = "AD registry"
        sheet = ExcelSheet(self.book, _("dictionary"), list(dictionary.DICTIONARY_COLUMNS),
                           [dictionary.ColumnInfo("", "", dictionary.STRING, "")] * len(dictionary.DICTIONARY_COLUMNS))
        for row in dictionary.dictionary_rows(described):
            sheet.append([row[column] for column in dictionary.DICTIONARY_COLUMNS])

    def table(self, file_name, header, infos):
        return ExcelSheet(self.book, file_name.removesuffix(".csv"), header, infos)

    def save(self):
        self.book.save(self.path)


def arrow_type(info):
    import pyarrow as pa

    return {
        dictionary.STRING: pa.string(), dictionary.CODE: pa.string(), dictionary.DATE: pa.date32(),
        dictionary.BOOLEAN: pa.bool_(), dictionary.INTEGER: pa.int32(), dictionary.FLOAT: pa.float64(),
        dictionary.LIST: pa.list_(pa.string()),
    }.get(info.kind) or pa.decimal128(info.max_digits, info.decimal_places)


class ParquetTable:
    """One table as a Parquet file, typed (dates, decimals with their scale, nullable
    booleans, lists of codes), written in record batches."""

    def __init__(self, path, infos):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa = pa
        self.path = path
        self.schema = pa.schema([
            pa.field(info.name, arrow_type(info), nullable=not info.required, metadata={
                "label": info.label, "unit": info.unit, "description": info.note,
            })
            for info in infos
        ])
        self.blank_is_null = [info.kind in (dictionary.STRING, dictionary.CODE) for info in infos]
        self.writer = pq.ParquetWriter(str(path), self.schema, compression=PARQUET_COMPRESSION)
        self.columns = [[] for _info in infos]
        self.pending = 0

    def append(self, row):
        for column, blank_is_null, value in zip(self.columns, self.blank_is_null, row):
            column.append(None if blank_is_null and value == "" else value)
        self.pending += 1
        if self.pending >= PARQUET_BATCH_ROWS:
            self.flush()

    def flush(self):
        if not self.pending:
            return
        arrays = [
            self.pa.array(values, type=schema_field.type)
            for values, schema_field in zip(self.columns, self.schema)
        ]
        self.writer.write_batch(self.pa.record_batch(arrays, schema=self.schema))
        self.columns = [[] for _column in self.columns]
        self.pending = 0

    def close(self):
        self.flush()
        self.writer.close()


def write_typed_files(scratch, scope, plans, querysets, shift, options, described, tracker):
    """Excel and/or Parquet from one typed read of every file; returns (arcname, path)."""
    scratch = Path(scratch)
    workbook = ExcelWorkbook(scratch / WORKBOOK, described) if options.excel else None
    files = []
    for plan in plans:
        name = plan.spec.name
        infos = described[name]
        sheet = workbook.table(name, plan.header, infos) if workbook else None
        table = None
        if options.parquet:
            table = ParquetTable(scratch / f"{name.removesuffix('.csv')}.parquet", infos)
        pending = 0
        stage = _("%(file)s (typed)") % {"file": name}
        for row in plan.typed_rows(scope, querysets[name], shift):
            if sheet is not None:
                sheet.append(row)
            if table is not None:
                table.append(row)
            pending += 1
            if pending == CHUNK_SIZE:
                tracker.advance(pending, stage)
                pending = 0
        tracker.advance(pending, stage)
        if sheet is not None and sheet.parts == 0:
            sheet._open()  # an empty table still has its sheet, with the header
        if table is not None:
            table.close()
            files.append((f"{PARQUET_FOLDER}/{table.path.name}", table.path))
    if workbook is not None:
        workbook.save()
        files.insert(0, (WORKBOOK, workbook.path))
    return files


# The export --------------------------------------------------------------------------------


def describe_export(options: ExportOptions, center_codes, row_counts, created):
    """What the zip says about itself (dictionary page, datapackage description): scope,
    filters, options, rows, and the decisions a reader needs. Never a user."""
    notes = [
        _("Filters select patients: a patient in the export comes with all their records "
          "(every episode, prior treatment, visit and adverse event), also when a drug filter "
          "is set (it keeps the patients with at least one episode of that drug)."),
        _("Patients are identified by pseudonymous codes only; no registry user is named."),
    ]
    if options.shift_dates:
        notes.append(_(
            "Dates are shifted: all dates of a patient moved back by the same number of days "
            "(1 to %(days)s, different for each patient and not recorded anywhere), so the days "
            "between a patient's dates are intact. The birth year moved by the calendar years "
            "the enrolment date moved, so the age at enrolment is unchanged."
        ) % {"days": DATE_SHIFT_MAX_DAYS})
    if options.free_text:
        notes.append(_("Free text (adverse-event descriptions) is included."))
    else:
        notes.append(_("Free text (adverse-event descriptions) is left out."))
    notes.append(_(
        "The CSV files hold the values exactly as recorded. A text cell starting with =, +, - "
        "or @ could be taken for a formula by a spreadsheet that opens a CSV file directly: "
        "import the CSV files as text, or use the Excel workbook, where every text cell is "
        "stored as text."
    ))
    filters = []
    if options.drug:
        filters.append((_("Drug"), options.drug))
    if options.enrolled_from:
        filters.append((_("Enrolled from"), options.enrolled_from.isoformat()))
    if options.enrolled_to:
        filters.append((_("Enrolled to"), options.enrolled_to.isoformat()))
    flags = [
        (_("Dates shifted"), options.shift_dates), (_("Free text"), options.free_text),
        (_("Excel workbook"), options.excel), (_("Parquet files"), options.parquet),
    ]
    return {
        "created": created,
        "pooled": options.centers is None,
        "centers": list(center_codes),
        "filters": filters,
        "options": [(name, _("yes") if value else _("no")) for name, value in flags],
        "rows": dict(row_counts),
        "notes": notes,
    }


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_bundle(
    path,
    options: ExportOptions = ExportOptions(),
    *,
    user=None,
    progress: Progress | None = None,
    language: str | None = None,
    use_copy: bool | None = None,
    now: datetime | None = None,
    date_shift_key: str | None = None,
) -> ExportResult:
    """Write the export zip at ``path`` (replaced atomically when complete).

    ``user``: the requester, whose scope bounds the export (``ExportRefused`` for a center
    outside it); None for the command line. ``use_copy``: PostgreSQL's COPY for the CSVs
    (default: on PostgreSQL). ``progress(done, total, stage)`` is called as rows are written.
    ``date_shift_key`` fixes the shift's key (tests compare two exports); leave it None.
    """
    started = time.perf_counter()
    path = Path(path)
    now = now or timezone.now()
    local = timezone.localtime(now)
    progress = progress or (lambda done, total, stage: None)
    use_copy = connection.vendor == "postgresql" if use_copy is None else use_copy
    shift = DateShift(date_shift_key) if options.shift_dates else None
    folder = f"ad-registry-export-{local:%Y%m%d-%H%M%S}"
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.part")
    result = ExportResult(path=path, center_codes=[])
    with translation.override(language or settings.LANGUAGE_CODE):
        try:
            snapshot = connection.vendor == "postgresql"
            # Parallel COPYs import the export's snapshot: only one this export opened itself
            # (inside a caller's transaction, its uncommitted rows would be invisible to them).
            own_transaction = not connection.in_atomic_block
            with (
                tempfile.TemporaryDirectory(dir=path.parent, prefix=".export-") as scratch,
                one_snapshot() if snapshot else contextlib.nullcontext(),
            ):
                snapshot_id = None
                if snapshot:
                    with connection.cursor() as cursor:
                        for setting in SESSION_SETTINGS:
                            cursor.execute(setting)
                    if own_transaction and COPY_STREAMS > 1:
                        snapshot_id = export_snapshot()
                scope = Scope(options, user, batched=not snapshot, snapshot_id=snapshot_id)
                result.center_codes = scope.center_codes
                plans = [TablePlan(spec, free_text=options.free_text) for spec in FILES]
                querysets = {spec.name: scope.queryset(spec) for spec in FILES}
                totals = {name: queryset.count() for name, queryset in querysets.items()}
                typed = options.excel or options.parquet
                tracker = _Tracker(progress, sum(totals.values()) * (2 if typed else 1))
                tracker.advance(0, "")
                described = dictionary.describe(free_text=options.free_text)
                with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL) as archive:
                    written = {}
                    for plan in plans:
                        name = plan.spec.name
                        rows, size, digest = write_csv_entry(
                            archive, f"{folder}/{name}", plan, scope, querysets[name], shift,
                            use_copy=use_copy, tracker=tracker, when=local, total=totals[name],
                            scratch=scratch,
                        )
                        result.row_counts[name] = rows
                        written[name] = {
                            "bytes": size, "sha256": digest,
                            "line_terminator": "\n" if use_copy else "\r\n",
                        }
                    extra = [
                        {"name": "data-dictionary", "path": DICTIONARY_CSV, "format": "csv",
                         "mediatype": "text/csv", "encoding": "utf-8"},
                        {"name": "data-dictionary-html", "path": DICTIONARY_HTML, "format": "html",
                         "mediatype": "text/html", "encoding": "utf-8"},
                    ]
                    if typed:
                        for arcname, file in write_typed_files(
                            scratch, scope, plans, querysets, shift, options, described, tracker,
                        ):
                            archive.write(file, f"{folder}/{arcname}", compress_type=zipfile.ZIP_STORED)
                            is_excel = arcname == WORKBOOK
                            extra.append({
                                "name": arcname.replace("/", "-").replace(".", "-").lower(),
                                "path": arcname,
                                "format": "xlsx" if is_excel else "parquet",
                                "mediatype": (
                                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
                                    if is_excel else "application/vnd.apache.parquet"
                                ),
                                "bytes": Path(file).stat().st_size,
                                "hash": f"sha256:{sha256_of(file)}",
                            })
                            os.unlink(file)
                    about = describe_export(options, scope.center_codes, result.row_counts, local.isoformat())
                    descriptor = package.datapackage(
                        described,
                        name="ad-registry-export",
                        title=_("Atopic dermatitis systemic treatment registry: dataset export"),
                        description=" ".join(str(note) for note in about["notes"]),
                        created=local.isoformat(), files=written, extra_resources=extra,
                    )
                    for name, text in (
                        (DICTIONARY_CSV, dictionary.dictionary_csv(described)),
                        (DICTIONARY_HTML, dictionary.dictionary_html(described, about=about)),
                        (DATAPACKAGE, package.dumps(descriptor)),
                    ):
                        archive.writestr(_zip_info(f"{folder}/{name}", local), text.encode("utf-8"))
                    result.members = archive.namelist()
            os.replace(part, path)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    result.size = path.stat().st_size
    result.sha256 = sha256_of(path)
    result.seconds = time.perf_counter() - started
    return result
