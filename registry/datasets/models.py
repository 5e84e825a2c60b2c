"""The record of every dataset export: who, when, what scope, which options, what came out.

Exports are the registry's only pooled reads of patient data, so each one is recorded, from the
web page (a coordinator, or a center PI for their own centers) or from the command line (no
user: ``origin`` says so). The record outlives the file: web exports are deleted after
``settings.EXPORT_EXPIRY`` and the record is then marked expired, never removed.
"""
from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ExportRecordQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Coordinators see every export; anyone else only the exports they made."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if getattr(user, "is_coordinator", False):
            return self.all()
        return self.filter(created_by=user)


class ExportRecord(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting to start")
        RUNNING = "running", _("Running")
        DONE = "done", _("Ready")
        FAILED = "failed", _("Failed")
        EXPIRED = "expired", _("Expired")

    class Origin(models.TextChoices):
        WEB = "web", _("Web page")
        COMMAND = "command", _("Command line")

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
        related_name="dataset_exports", verbose_name=_("exported by"),
        help_text=_("Empty for a command-line export."),
    )
    origin = models.CharField(_("origin"), max_length=10, choices=Origin.choices, default=Origin.WEB)
    created_at = models.DateTimeField(_("requested"), default=timezone.now, db_index=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    #: The centers exported (codes), resolved when the export was requested.
    centers = models.JSONField(_("centers"), default=list)
    #: True when no center was chosen: every center the exporter may export (pooled).
    all_centers = models.BooleanField(_("all centers"), default=False)
    #: ``drug``, ``enrolled_from``, ``enrolled_to`` (ISO dates), when given.
    filters = models.JSONField(_("filters"), default=dict, blank=True)
    #: ``shift_dates``, ``free_text``, ``excel``, ``parquet``.
    options = models.JSONField(_("options"), default=dict, blank=True)
    language = models.CharField(_("language"), max_length=10, blank=True)
    #: Bundle file name -> rows written.
    row_counts = models.JSONField(_("rows per file"), default=dict, blank=True)
    #: Under MEDIA_ROOT for web exports; the path given on the command line otherwise.
    file_name = models.CharField(_("file"), max_length=500, blank=True)
    size_bytes = models.BigIntegerField(_("size (bytes)"), null=True, blank=True)
    sha256 = models.CharField(_("SHA-256 checksum"), max_length=64, blank=True)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True, db_index=True)
    error = models.TextField(_("error"), blank=True)

    objects = ExportRecordQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("dataset export")
        verbose_name_plural = _("dataset exports")

    def __str__(self):
        return f"export #{self.pk} ({self.status})"

    @property
    def is_finished(self):
        return self.status in {self.Status.DONE, self.Status.FAILED, self.Status.EXPIRED}

    def has_expired(self, now=None):
        if self.status == self.Status.EXPIRED:
            return True
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    @property
    def total_rows(self):
        return sum(self.row_counts.values()) if self.row_counts else 0
