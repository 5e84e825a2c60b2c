"""Import a dataset bundle into the registry: validate everything, then write it all or nothing.

The rules are the models' (field validators, ``clean()``, constraints), applied through
``full_clean()``. The importer adds only what belongs to a bundle: unknown columns, cells that
do not parse, references to records that are neither in the bundle nor in the registry,
duplicate identities inside the bundle, and the match of each row with the record of the same
identity already in the registry (which is then updated, or left alone when nothing changed).

How it runs: one transaction; files are taken parents first (``columns.FILES``); each file's
rows are validated, then its valid rows are written in bulk (with their audit history), so
that the rules of the next files that read the database — an adverse event's episode derived
from its onset, a dose change against the dose in force — see the bundle's own parents.
Dose changes are validated and saved one at a time in date order within each episode. When
any row is refused, or for a dry run, the transaction is rolled back: nothing is written, and
the summary says what would have been created, updated or left unchanged.

A row whose own cells do not parse is checked only against its field rules (its cross-field
rules would judge a value it does not have). A row whose parent row was refused is validated
as far as the models can without the saved parent, and never written.
"""
from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction
from django.utils.translation import gettext_lazy as _
from simple_history.utils import bulk_create_with_history

from endpoints import services as endpoint_services

from .bundle import Bundle, BundleError, CsvFile, UnreadableBundle, parse_cell
from registry.centers.models import Center
from registry.clinical.models import StaleRecord

from .columns import DOSE_CHANGES, EPISODES, FILE_BY_NAME, FILES, FileSpec

BATCH_SIZE = 1000
#: ``__in`` lookups are split so that no query exceeds SQLite's parameter limit.
LOOKUP_CHUNK = 900
PROGRESS_EVERY = 5000
#: Fields that change on every save and say nothing about the record's values.
BOOKKEEPING_FIELDS = ("created_at", "updated_at", "version")

CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"

REFERENCE_LABELS = {
    "centers.csv": _("center"),
    "patients.csv": _("patient"),
    "episodes.csv": _("treatment episode"),
}


@dataclass
class FileSummary:
    """What an import does (or would do) to the records of one file."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def rows(self):
        return self.created + self.updated + self.unchanged

    def as_dict(self):
        return {CREATED: self.created, UPDATED: self.updated, UNCHANGED: self.unchanged}


@dataclass
class ImportResult:
    errors: list[BundleError] = field(default_factory=list)
    #: file name -> summary, for the files present in the bundle, in bundle order.
    summary: dict[str, FileSummary] = field(default_factory=dict)
    #: Files of the bundle that are not part of the format (a data dictionary, ...).
    ignored_files: list[str] = field(default_factory=list)
    dry_run: bool = False
    seconds: float = 0.0

    @property
    def ok(self):
        return not self.errors

    @property
    def written(self):
        """True when the records were committed (no error and not a dry run)."""
        return self.ok and not self.dry_run

    def totals(self):
        total = FileSummary()
        for counts in self.summary.values():
            total.created += counts.created
            total.updated += counts.updated
            total.unchanged += counts.unchanged
        return total

    def error_lines(self):
        return [str(error) for error in self.errors]

    def summary_lines(self):
        width = max((len(name) for name in self.summary), default=0)
        return [
            f"{name:<{width}}  created {counts.created:>6}  updated {counts.updated:>6}"
            f"  unchanged {counts.unchanged:>6}"
            for name, counts in self.summary.items()
        ]


def import_bundle(
    path,
    *,
    ignore_unknown_columns: bool = False,
    dry_run: bool = False,
    user=None,
    change_reason: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> ImportResult:
    """Validate the bundle at ``path`` (a directory or a ``.zip``) and, when it has no error
    and ``dry_run`` is false, write it in one transaction.

    Never raises for bad data: every problem is in ``result.errors`` as
    ``file:row:column: message``. ``user`` and ``change_reason`` go into the audit history of
    the records written; ``progress`` receives one-line messages for long imports.
    """
    started = time.perf_counter()
    result = ImportResult(dry_run=dry_run)
    try:
        bundle = Bundle(path)
    except UnreadableBundle as error:
        result.errors.append(error.error)
        result.seconds = time.perf_counter() - started
        return result
    with bundle:
        result.ignored_files = list(bundle.ignored_files)
        run = _Import(
            bundle, result, ignore_unknown_columns=ignore_unknown_columns, user=user,
            change_reason=change_reason or f"dataset import: {bundle.path.name}",
            progress=progress or (lambda message: None),
        )
        with transaction.atomic():
            with endpoint_services.recompute_once():
                run.run()
            if result.errors or dry_run:
                transaction.set_rollback(True)
    result.errors.sort(key=lambda error: error.sort_key)
    result.seconds = time.perf_counter() - started
    return result


# Internals -----------------------------------------------------------------------------


class _Record:
    """One CSV row on its way to becoming a saved model instance."""

    __slots__ = (
        "line", "cells", "values", "failed", "errors", "key", "refs", "blocked", "instance",
        "snapshot", "changed", "action", "ok", "malformed", "partial",
    )

    def __init__(self, line, cells):
        self.line = line
        self.cells = cells
        self.values = {}  # model field name -> parsed value
        self.failed = set()  # model field names whose cell does not parse
        self.errors = []
        self.key = None  # identity inside the bundle (codes, not pks)
        self.refs = {}  # column -> referenced instance
        self.blocked = False  # a referenced bundle row was refused: validated, never written
        self.partial = False  # cells that do not parse: field rules only, no cross-field rules
        self.instance = None
        self.snapshot = None  # the values of the registry's record before the import
        self.changed = []
        self.action = None
        self.ok = False
        self.malformed = False


def _chunks(items, size):
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _has_history(model):
    return getattr(model._meta, "simple_history_manager_attribute", None) is not None


@functools.cache
def _compared_fields(model):
    return tuple(
        f for f in model._meta.concrete_fields
        if not f.primary_key and f.name not in BOOKKEEPING_FIELDS
    )


@functools.cache
def _identity_is_unique(spec):
    """True when the model's only unique field is the file's identity code (centers, patients,
    episodes). Its uniqueness is then what matching the identity already decided, for the whole
    file in one query: the row *is* the registry's record of that code (updated) or there is
    none (created), and a second row with the code is refused as a duplicate. The model's
    per-row unique query (a quarter of a large import) is skipped; any other unique field, or
    a model with ``unique_together``, keeps it."""
    meta = spec.model._meta
    unique = {f.name for f in meta.concrete_fields if f.unique and not f.primary_key}
    identity = {spec.column(name).field for name in spec.identity}
    return bool(spec.code_column) and unique <= identity and not meta.unique_together


class _Import:
    def __init__(self, bundle, result, *, ignore_unknown_columns, user, change_reason, progress):
        self.bundle = bundle
        self.result = result
        self.ignore_unknown_columns = ignore_unknown_columns
        self.user = user
        self.change_reason = change_reason
        self.progress = progress
        #: file name -> code -> _Record, for the files other files refer to.
        self.in_bundle = {spec.name: {} for spec in FILES if spec.code_column}
        #: Files that could not be read, or lack their code column: a reference into them
        #: that the registry does not know is not reported again on every child row.
        self.unreliable = set()

    def run(self):
        for spec in FILES:
            try:
                csv_file = self.bundle.read(spec.name, ignore_unknown_columns=self.ignore_unknown_columns)
            except UnreadableBundle as error:
                self.result.errors.append(error.error)
                self.unreliable.add(spec.name)
                continue
            if csv_file is None:
                continue
            self.result.summary[spec.name] = FileSummary()
            self.progress(f"{spec.name}: {len(csv_file.rows)} rows")
            self.import_file(spec, csv_file)

    # One file -----------------------------------------------------------------------------

    def import_file(self, spec: FileSpec, csv_file: CsvFile):
        self.result.errors.extend(csv_file.errors)
        missing = {error.column for error in csv_file.errors if error.row == 1} - set(csv_file.columns)
        file_blocked = bool(missing & set(spec.required_columns))
        if spec.code_column and spec.code_column not in csv_file.columns:
            self.unreliable.add(spec.name)
        bad_lines = {error.row for error in csv_file.errors if error.row and error.row > 1}

        layout = [(name, spec.column(name), spec.model_field(name)) for name in csv_file.columns]
        # A required column missing from the header is reported once, not on every row.
        missing_fields = {spec.column(name).field for name in missing & set(spec.column_names)}
        records = []
        for row in csv_file.rows:
            record = _Record(row.line, row.cells)
            record.malformed = row.line in bad_lines
            record.blocked = record.partial = file_blocked or record.malformed
            record.failed.update(missing_fields)
            self.parse(spec, layout, record)
            records.append(record)
        self.identify(spec, records)
        self.resolve_references(spec, csv_file, records)
        self.attach_existing(spec, records)

        if spec is DOSE_CHANGES:
            self.validate_and_save_in_date_order(spec, layout, records)
        else:
            for count, record in enumerate(records, start=1):
                if record.key is not False:  # False: a duplicate, already refused
                    self.validate(spec, layout, record)
                if count % PROGRESS_EVERY == 0:
                    self.progress(f"{spec.name}: validated {count}/{len(records)} rows")
            self.write(spec, [record for record in records if record.ok])

        summary = self.result.summary[spec.name]
        for record in records:
            self.result.errors.extend(record.errors)
            if record.ok:
                setattr(summary, record.action, getattr(summary, record.action) + 1)
        if spec.code_column:
            known = self.in_bundle[spec.name]
            for record in records:
                if record.key:
                    known.setdefault(record.key[0], record)

    def parse(self, spec, layout, record):
        for name, _column, model_field in layout:
            try:
                record.values[model_field.name] = parse_cell(model_field, record.cells.get(name))
            except ValidationError as error:
                record.failed.add(model_field.name)
                record.partial = True
                if record.malformed:
                    continue  # its cells are misaligned: the row is reported once
                for message in error.messages:
                    record.errors.append(BundleError(spec.name, record.line, name, message))

    def identify(self, spec, records):
        """The identity of each row; the second row with an identity already seen is refused."""
        seen = {}
        for record in records:
            parts = []
            for name in spec.identity:
                column = spec.column(name)
                value = record.values.get(column.field)
                if column.field in record.failed or (column.required and value in (None, "")):
                    parts = None
                    break
                parts.append(value)
            if parts is None:
                continue
            key = tuple(parts)
            if key in seen and not record.malformed:
                record.key = False
                record.errors.append(BundleError(
                    spec.name, record.line, spec.identity[-1],
                    str(_("Duplicate of row %(row)s (same %(columns)s).")
                        % {"row": seen[key], "columns": ", ".join(spec.identity)}),
                ))
            else:
                seen[key] = record.line
                record.key = key

    def resolve_references(self, spec, csv_file, records):
        """Each reference to the bundle's record of that code, else the registry's."""
        for column in spec.columns:
            if not column.is_reference or column.name not in csv_file.columns:
                continue
            known = self.in_bundle[column.ref]
            wanted = {
                record.values.get(column.field) for record in records
                if record.values.get(column.field) and record.values[column.field] not in known
            }
            registry = self.registry_records(FILE_BY_NAME[column.ref], wanted)
            for record in records:
                code = record.values.get(column.field)
                if not code:
                    continue
                if code in known:
                    parent = known[code]
                    record.refs[column.name] = parent.instance
                    if not parent.ok:
                        record.blocked = True
                elif code in registry:
                    record.refs[column.name] = registry[code]
                elif column.ref in self.unreliable or record.malformed:
                    record.blocked = True
                else:
                    record.failed.add(column.field)
                    record.errors.append(BundleError(
                        spec.name, record.line, column.name,
                        str(_("Unknown %(what)s “%(code)s”: it is neither in this bundle nor in the registry.")
                            % {"what": REFERENCE_LABELS[column.ref], "code": code}),
                    ))

    def registry_records(self, spec, codes):
        """code -> the registry's record, for ``codes`` of a centers/patients/episodes file."""
        code_field = spec.column(spec.code_column).field
        queryset = spec.model._default_manager.all()
        if spec is EPISODES:
            queryset = queryset.select_related("patient")
        found = {}
        for chunk in _chunks(codes, LOOKUP_CHUNK):
            for obj in queryset.filter(**{f"{code_field}__in": chunk}):
                found[getattr(obj, code_field)] = obj
        return found

    def attach_existing(self, spec, records):
        """The registry's record of the same identity, for the rows that have one."""
        keyed = [record for record in records if record.key]
        if spec.code_column:
            existing = self.registry_records(spec, {record.key[0] for record in keyed})
            for record in keyed:
                record.instance = existing.get(record.key[0])
            return
        parent_column = spec.column(spec.identity[0])
        parent_ids = {
            record.refs[parent_column.name].pk for record in keyed
            if parent_column.name in record.refs and record.refs[parent_column.name].pk
        }
        other_fields = [spec.column(name).field for name in spec.identity[1:]]
        by_key = {}
        manager = spec.model._default_manager
        for chunk in _chunks(parent_ids, LOOKUP_CHUNK):
            queryset = manager.filter(**{f"{parent_column.field}_id__in": chunk}).order_by("pk")
            for obj in queryset:
                key = (getattr(obj, f"{parent_column.field}_id"), *(getattr(obj, f) for f in other_fields))
                by_key.setdefault(key, obj)  # the oldest, if the registry holds look-alikes
        for record in keyed:
            parent = record.refs.get(parent_column.name)
            if parent is not None and parent.pk:
                record.instance = by_key.get((parent.pk, *record.key[1:]))

    # One row ------------------------------------------------------------------------------

    def build(self, spec, layout, record):
        """The instance with the row's values; returns the fields left out of validation."""
        model = spec.model
        instance = record.instance
        if instance is None:
            instance = record.instance = model()
            record.action = CREATED
        else:
            record.snapshot = {f.attname: getattr(instance, f.attname) for f in _compared_fields(model)}
        # The import is the reason for the change, in the history and for signed data.
        instance._change_reason = self.change_reason
        excluded = set(record.failed)
        for name, column, model_field in layout:
            if column.is_reference:
                target = record.refs.get(name)
                if target is not None:
                    setattr(instance, column.field, target)
                    excluded.add(column.field)  # its existence is what resolving checked
                elif not record.values.get(column.field):
                    if model_field.null:
                        setattr(instance, column.field, None)
                    elif column.required and record.action != CREATED:
                        self.refuse_empty(spec, record, name, model_field)
                continue
            if column.field in record.failed:
                continue
            value = record.values[column.field]
            if column.required and model_field.blank and value in (None, ""):
                # The model allows an empty code (it generates one); the bundle needs it.
                self.refuse_empty(spec, record, name, model_field)
                continue
            if value is None and not model_field.null and model_field.has_default():
                continue  # empty cell: the model's default for a new record, else kept
            setattr(instance, model_field.attname, value)
        return excluded

    def refuse_empty(self, spec, record, column_name, model_field):
        record.failed.add(model_field.name)
        record.errors.append(
            BundleError(spec.name, record.line, column_name, str(model_field.error_messages["blank"]))
        )

    def validate(self, spec, layout, record, *, partial=False):
        """Build the row's instance and run the model's validation on it."""
        if spec is EPISODES and record.instance is not None:
            patient = record.refs.get("patient_code")
            if patient is not None and patient.pk != record.instance.patient_id:
                record.errors.append(BundleError(
                    spec.name, record.line, "patient_code",
                    str(_("Episode “%(code)s” belongs to another patient (%(patient)s) in the registry.")
                        % {"code": record.key[0], "patient": record.instance.patient.code}),
                ))
        excluded = self.build(spec, layout, record)
        if record.malformed:
            return  # reported once, as a row of the wrong shape
        partial = partial or record.partial
        try:
            try:
                if partial:
                    record.instance.clean_fields(exclude=excluded)
                else:
                    record.instance.full_clean(
                        exclude=excluded, validate_unique=not _identity_is_unique(spec)
                    )
            except ValueError:
                # A rule that needs the saved parent, whose own row was refused.
                if not record.blocked:
                    raise
                record.instance.clean_fields(exclude=excluded)
        except ValidationError as error:
            for field_name, messages in error.message_dict.items():
                column = "" if field_name == NON_FIELD_ERRORS else spec.column_for_field(field_name)
                for message in messages:
                    record.errors.append(BundleError(spec.name, record.line, column, message))
        if record.errors or partial or record.blocked or not record.key:
            return
        record.ok = True
        if record.action != CREATED:
            record.changed = [
                f.name for f in _compared_fields(spec.model)
                if getattr(record.instance, f.attname) != record.snapshot[f.attname]
            ]
            record.action = UPDATED if record.changed else UNCHANGED

    # Writing ------------------------------------------------------------------------------

    def write(self, spec, records):
        model = spec.model
        created = [record.instance for record in records if record.action == CREATED]
        updated = [record for record in records if record.action == UPDATED]
        history = _has_history(model)
        if created:
            self.progress(f"{spec.name}: creating {len(created)} records")
        for chunk in _chunks(created, BATCH_SIZE):
            if history:
                bulk_create_with_history(
                    chunk, model, batch_size=BATCH_SIZE, default_user=self.user,
                    default_change_reason=self.change_reason,
                )
            else:
                model._default_manager.bulk_create(chunk, batch_size=BATCH_SIZE)
        if updated:
            self.progress(f"{spec.name}: updating {len(updated)} records")
        for record in updated:
            self.save(spec, record)
        # Bulk creation sends no post_save: tell the endpoints which centers changed (saves
        # do it through the signal).
        if spec.model is not Center:
            for instance in created:
                endpoint_services.note_change(instance.center_id)

    def save(self, spec, record):
        """One record through its model's save(): optimistic locking, the audit history with
        the import's reason, and whatever the model does on a change (e.g. revoking the
        signature of signed data)."""
        if self.user is not None:
            record.instance._history_user = self.user
        try:
            record.instance.save()
        except StaleRecord:
            record.ok = False
            record.errors.append(BundleError(spec.name, record.line, "", str(
                _("Someone changed this record in the registry during the import: import again.")
            )))

    def validate_and_save_in_date_order(self, spec, layout, records):
        """Dose changes: each is checked against the dose in force on its date, so they are
        taken in date order within each episode, whatever the row order, and each valid one is
        saved before the next is checked."""

        def order(record):
            episode = record.values.get("episode") or ""
            day = record.values.get("date")
            return (episode, not isinstance(day, date), day or date.min, record.line)

        broken_episodes = set()
        for count, record in enumerate(sorted(records, key=order), start=1):
            if record.key is False:
                continue
            episode = record.values.get("episode")
            self.validate(spec, layout, record, partial=episode in broken_episodes)
            if not record.ok:
                # The changes after a refused one would be checked against a wrong history.
                broken_episodes.add(episode)
            elif record.action != UNCHANGED:
                self.save(spec, record)
            if count % PROGRESS_EVERY == 0:
                self.progress(f"{spec.name}: {count}/{len(records)} rows")
