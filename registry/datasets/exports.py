"""Dataset exports as a service: requested on the web page, run by a Celery task, expired by
Celery beat, or run from the command line. Every export is an ``ExportRecord``.

Web exports are written under ``MEDIA_ROOT/exports/`` with a random name, downloaded through
the export pages only (never served as static media), and deleted ``settings.EXPORT_EXPIRY``
after they are ready. While one runs, its progress is a small JSON file beside it (the worker
writes it, the status page reads it): the export's reads stay in one read-only transaction,
which cannot also update the record.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import time
from functools import partial
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .exporter import ExportOptions, ExportRefused, ExportResult, export_bundle, exportable_centers
from .models import ExportRecord

logger = logging.getLogger(__name__)

EXPORT_FOLDER = "exports"
#: The progress file is rewritten at most this often.
PROGRESS_EVERY_SECONDS = 0.5


def export_dir():
    folder = Path(settings.MEDIA_ROOT) / EXPORT_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def file_path(record: ExportRecord) -> Path:
    """Where the record's zip is (web exports: under MEDIA_ROOT; command line: as given)."""
    path = Path(record.file_name)
    return path if path.is_absolute() else Path(settings.MEDIA_ROOT) / path


def progress_path(record: ExportRecord) -> Path:
    return export_dir() / f"{record.pk}.progress.json"


def read_progress(record: ExportRecord):
    """{"done", "total", "stage"} of a running export, or None."""
    try:
        return json.loads(progress_path(record).read_text())
    except (OSError, ValueError):
        return None


def options_of(record: ExportRecord) -> ExportOptions:
    from datetime import date

    filters, flags = record.filters or {}, record.options or {}
    return ExportOptions(
        centers=None if record.all_centers else tuple(record.centers),
        drug=filters.get("drug") or None,
        enrolled_from=date.fromisoformat(filters["enrolled_from"]) if filters.get("enrolled_from") else None,
        enrolled_to=date.fromisoformat(filters["enrolled_to"]) if filters.get("enrolled_to") else None,
        shift_dates=bool(flags.get("shift_dates")),
        free_text=bool(flags.get("free_text")),
        excel=bool(flags.get("excel")),
        parquet=bool(flags.get("parquet")),
    )


def may_download(user, record: ExportRecord) -> bool:
    """The record is visible to ``user`` (checked by the caller) and they may still export
    every center in it (a PI who lost the role cannot fetch the file any more)."""
    if getattr(user, "is_coordinator", False):
        return True
    allowed = set(exportable_centers(user).values_list("code", flat=True))
    return set(record.centers) <= allowed


# Web: request, run, expire ----------------------------------------------------------------


def request_export(*, user, options: ExportOptions, language: str = "") -> ExportRecord:
    """Record a web export and queue its task once the record is committed.

    The centers are resolved now, through the scoping helpers: ``ExportRefused`` when one is
    not the user's to export."""
    centers = exportable_centers(user)
    if options.centers is not None:
        wanted = set(options.centers)
        found = set(centers.filter(code__in=wanted).values_list("code", flat=True))
        if wanted - found or not wanted:
            raise ExportRefused(_("Center(s) not yours to export: %(codes)s.") % {
                "codes": ", ".join(sorted(wanted - found)) or "—"
            })
        centers = centers.filter(code__in=wanted)
    codes = list(centers.order_by("code").values_list("code", flat=True))
    if not codes:
        raise ExportRefused(_("You may not export any center."))
    record = ExportRecord.objects.create(
        created_by=user, origin=ExportRecord.Origin.WEB, centers=codes,
        all_centers=options.centers is None, filters=options.filters(), options=options.flags(),
        language=language or settings.LANGUAGE_CODE,
        file_name=f"{EXPORT_FOLDER}/{secrets.token_hex(16)}.zip",
    )
    from .tasks import export_dataset_task

    transaction.on_commit(partial(export_dataset_task.delay, record.pk))
    return record


class _ProgressFile:
    """Writes the export's progress for the status page, at most every half second."""

    def __init__(self, record):
        self.path = progress_path(record)
        self.last = 0.0

    def __call__(self, done, total, stage):
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY_SECONDS and done < total:
            return
        self.last = now
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"done": done, "total": total, "stage": stage}))
        os.replace(temporary, self.path)

    def remove(self):
        self.path.unlink(missing_ok=True)


def run_export(record_id) -> ExportRecord:
    """The task's work: write the record's zip, then mark it ready (or failed). A record
    already finished is left alone (a task delivered twice)."""
    record = ExportRecord.objects.select_related("created_by").get(pk=record_id)
    if record.is_finished:
        return record
    started = timezone.now()
    ExportRecord.objects.filter(pk=record.pk).update(status=ExportRecord.Status.RUNNING, started_at=started)
    record.status, record.started_at = ExportRecord.Status.RUNNING, started
    progress = _ProgressFile(record)
    try:
        result = export_bundle(
            file_path(record), options_of(record), user=record.created_by,
            progress=progress, language=record.language or None,
        )
    except ExportRefused as error:
        _fail(record, str(error))
    except Exception:
        logger.exception("dataset export %s failed", record.pk)
        _fail(record, _("The export failed; the error is in the server log."))
    else:
        _finish(record, result, expires=True)
    finally:
        progress.remove()
    return record


def _finish(record, result: ExportResult, *, expires):
    now = timezone.now()
    record.status = ExportRecord.Status.DONE
    record.finished_at = now
    record.centers = result.center_codes
    record.row_counts = result.row_counts
    record.size_bytes = result.size
    record.sha256 = result.sha256
    record.expires_at = now + settings.EXPORT_EXPIRY if expires else None
    record.save(update_fields=[
        "status", "finished_at", "centers", "row_counts", "size_bytes", "sha256", "expires_at",
    ])


def _fail(record, message):
    record.status = ExportRecord.Status.FAILED
    record.finished_at = timezone.now()
    record.error = message
    record.save(update_fields=["status", "finished_at", "error"])
    if record.origin == ExportRecord.Origin.WEB:
        file_path(record).unlink(missing_ok=True)


def expire(record: ExportRecord):
    """Delete the record's file and mark it expired (the record itself stays)."""
    if record.origin == ExportRecord.Origin.WEB:
        file_path(record).unlink(missing_ok=True)
    record.status = ExportRecord.Status.EXPIRED
    record.save(update_fields=["status"])


def delete_expired_exports(now=None) -> int:
    """Celery beat: delete the files of web exports past their expiry; returns how many."""
    now = now or timezone.now()
    expired = ExportRecord.objects.filter(
        origin=ExportRecord.Origin.WEB, expires_at__lte=now,
    ).exclude(status=ExportRecord.Status.EXPIRED)
    count = 0
    for record in expired:
        expire(record)
        count += 1
    return count


# Command line -----------------------------------------------------------------------------


def command_export(output, options: ExportOptions, *, progress=None, language=None):
    """``manage.py export_dataset``: export every center (or ``options.centers``) to
    ``output``, recorded as a command-line export (no user, no expiry). Returns
    (record, result); raises ``ExportRefused`` for an unknown center."""
    output = Path(output).resolve()
    record = ExportRecord.objects.create(
        created_by=None, origin=ExportRecord.Origin.COMMAND, status=ExportRecord.Status.RUNNING,
        started_at=timezone.now(), centers=list(options.centers or []),
        all_centers=options.centers is None, filters=options.filters(), options=options.flags(),
        language=language or settings.LANGUAGE_CODE, file_name=str(output),
    )
    try:
        result = export_bundle(output, options, user=None, progress=progress, language=language)
    except ExportRefused as error:
        _fail(record, str(error))
        raise
    except BaseException:
        _fail(record, _("The export failed or was interrupted."))
        raise
    _finish(record, result, expires=False)
    return record, result
