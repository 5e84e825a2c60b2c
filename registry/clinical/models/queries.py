from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from registry.core.scoping import CenterScopedQuerySet


class DataQuery(models.Model):
    """A question about a record ("EASI 52 with IGA 1?"): raised by a coordinator or by an
    automatic plausibility check, answered by the center, closed by the coordinator."""

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        ANSWERED = "answered", _("Answered")
        CLOSED = "closed", _("Closed")

    center_path = "patient__center"

    patient = models.ForeignKey(
        "clinical.Patient", on_delete=models.CASCADE, related_name="queries",
        verbose_name=_("patient"),
    )
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, null=True, blank=True)
    object_id = models.PositiveBigIntegerField(null=True, blank=True)
    record = GenericForeignKey("content_type", "object_id")
    field_name = models.CharField(_("field"), max_length=60, blank=True)
    text = models.TextField(_("query"), max_length=2000)
    #: The automatic check that raised it (empty: raised by a person).
    rule = models.CharField(_("automatic check"), max_length=40, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.OPEN)
    raised_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", verbose_name=_("raised by"),
    )
    raised_at = models.DateTimeField(_("raised at"), default=timezone.now)
    answer = models.TextField(_("answer"), blank=True, max_length=2000)
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", verbose_name=_("answered by"),
    )
    answered_at = models.DateTimeField(_("answered at"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)

    objects = CenterScopedQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["-raised_at"]
        verbose_name = _("data query")
        verbose_name_plural = _("data queries")
        indexes = [models.Index(fields=["status", "patient"])]

    def __str__(self):
        return f"{self.patient}: {self.text[:60]}"

    def get_absolute_url(self):
        return reverse("query-detail", args=[self.pk])

    @property
    def center_id(self):
        return self.patient.center_id

    @property
    def is_automatic(self):
        return bool(self.rule)

    def answer_with(self, user, text):
        self.answer, self.answered_by, self.answered_at = text, user, timezone.now()
        self.status = self.Status.ANSWERED
        self.save()

    def close(self):
        self.status, self.closed_at = self.Status.CLOSED, timezone.now()
        self.save()
