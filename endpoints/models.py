"""Stored results of the cohort endpoints: what dashboards read, never compute."""
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from endpoints.compute.stats import DEFAULT_QUANTILE_METHOD
from endpoints.storage import ResultRowsField, RowsByYearField

#: The scope key of the whole study; a center's scope is its code (which cannot contain "*").
POOLED = "*"


class StudySettings(models.Model):
    """Study-wide analysis settings, one row (edited in the admin)."""

    QUANTILE_METHODS = [
        ("type7", _("Linear interpolation (R type 7, NumPy linear, Excel QUARTILE.INC)")),
        ("type6", _("Weighted average (SPSS, R type 6, Excel QUARTILE.EXC)")),
    ]

    quantile_method = models.CharField(
        _("quartile method"), max_length=10, choices=QUANTILE_METHODS,
        default=DEFAULT_QUANTILE_METHOD,
    )
    share_pooled_results = models.BooleanField(
        _("share pooled results with centers"), default=False,
        help_text=_("Center PIs may see the pooled dashboard (small cells of other centers are suppressed)."),
    )

    class Meta:
        verbose_name = _("study settings")
        verbose_name_plural = _("study settings")

    def __str__(self):
        return str(_("Study settings"))

    def clean(self):
        if StudySettings.objects.exclude(pk=self.pk).exists():
            raise ValidationError(_("The study has one settings record."))

    @classmethod
    def current(cls):
        settings, _created = cls.objects.get_or_create(pk=1)
        return settings


class Snapshot(models.Model):
    """The latest computed results of one scope, replaced as a whole by each recompute."""

    scope = models.CharField(_("scope"), max_length=20, unique=True)
    rows = ResultRowsField(_("result rows"), default=list)
    computed_at = models.DateTimeField(_("computed at"))
    #: When the records the rows were computed from were read; a recompute that read older
    #: records than the stored snapshot never overwrites it.
    inputs_read_at = models.DateTimeField(_("inputs read at"))
    fingerprint = models.CharField(_("input fingerprint"), max_length=64)
    quantile_method = models.CharField(_("quartile method"), max_length=10)
    duration_ms = models.PositiveIntegerField(_("computation time (ms)"), default=0)
    patients = models.PositiveIntegerField(_("patients"), default=0)
    episodes = models.PositiveIntegerField(_("episodes"), default=0)
    visits = models.PositiveIntegerField(_("visits"), default=0)
    #: The same rows for the patients enrolled in each year: {"2024": [row, ...]}. The
    #: dashboard's enrolment-period filter picks one year's rows; nothing is computed then.
    rows_by_enrolment_year = RowsByYearField(_("result rows by enrolment year"), default=dict)
    #: The keys of ``rows_by_enrolment_year`` in order, so the filter is drawn without
    #: loading every year's rows.
    enrolment_years = models.JSONField(_("enrolment years"), default=list)
    #: Per center of the scope, then the scope's total (``endpoints.compute.completeness``).
    completeness = models.JSONField(_("data completeness"), default=list)
    #: Pooled scope only: headline figures per center, so the pooled dashboard never reads
    #: the centers' snapshots.
    center_breakdown = models.JSONField(_("per-center breakdown"), default=list)

    class Meta:
        ordering = ["scope"]
        verbose_name = _("endpoint snapshot")
        verbose_name_plural = _("endpoint snapshots")

    def __str__(self):
        return f"{self.scope} @ {self.computed_at:%Y-%m-%d %H:%M:%S}"


class RecomputeState(models.Model):
    """Changes waiting for a scope's recompute, so a burst of saves queues one task."""

    scope = models.CharField(_("scope"), max_length=20, unique=True)
    pending_changes = models.PositiveIntegerField(_("changes pending"), default=0)
    #: Set while a recompute task is queued and not yet started; cleared when it starts.
    queued_at = models.DateTimeField(_("queued at"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)

    class Meta:
        verbose_name = _("recompute state")
        verbose_name_plural = _("recompute states")

    def __str__(self):
        return f"{self.scope}: {self.pending_changes} pending"
