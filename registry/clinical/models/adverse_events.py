from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from registry.core.choices import (
    AE_ACTION_CHOICES,
    AE_OUTCOME_CHOICES,
    AE_TERM_CHOICES,
    SEVERITY_CHOICES,
)

from .base import ClinicalRecord, date_order_error, not_in_future

#: An event may start up to this long after an episode's end and still belong to it.
ATTRIBUTION_AFTER_END = timedelta(days=30)


class AdverseEvent(ClinicalRecord):
    """An entry of the adverse-event log."""

    center_path = "patient__center"
    clinical_date_field = "onset_date"

    patient = models.ForeignKey(
        "clinical.Patient", on_delete=models.CASCADE, related_name="adverse_events",
        verbose_name=_("patient"),
    )
    episode = models.ForeignKey(
        "clinical.TreatmentEpisode", on_delete=models.SET_NULL, null=True, blank=True,
        related_name="adverse_events", verbose_name=_("treatment episode"),
        help_text=_("Left empty, it is derived from the onset date."),
    )
    term = models.CharField(_("term"), max_length=40, choices=AE_TERM_CHOICES)
    onset_date = models.DateField(_("onset date"), validators=[not_in_future])
    end_date = models.DateField(_("end date"), null=True, blank=True, validators=[not_in_future])
    severity = models.CharField(_("severity"), max_length=10, choices=SEVERITY_CHOICES, blank=True)
    serious = models.BooleanField(_("serious (ICH E2A)"), null=True, blank=True)
    action = models.CharField(
        _("action taken"), max_length=20, choices=AE_ACTION_CHOICES, blank=True
    )
    outcome = models.CharField(_("outcome"), max_length=30, choices=AE_OUTCOME_CHOICES, blank=True)
    description = models.TextField(_("description"), blank=True, max_length=2000)

    history = HistoricalRecords()

    class Meta:
        ordering = ["patient", "onset_date", "pk"]
        verbose_name = _("adverse event")
        verbose_name_plural = _("adverse events")

    def __str__(self):
        return f"{self.patient} {self.get_term_display()} ({self.onset_date})"

    def get_absolute_url(self):
        return reverse("patient-detail", args=[self.patient.code]) + f"#ae-{self.pk}"

    def episode_on_onset(self):
        """The patient's episode under way at onset (or within 30 days after its end)."""
        for episode in self.patient.episodes.order_by("-start_date"):
            end = episode.end_date + ATTRIBUTION_AFTER_END if episode.end_date else None
            if episode.start_date <= self.onset_date and (end is None or self.onset_date <= end):
                return episode
        return None

    def clean(self):
        if self.end_date and self.onset_date and self.end_date < self.onset_date:
            raise date_order_error("end_date", _("The end date must be on or after the onset date."))
        if not (self.patient_id and self.onset_date):
            return
        if self.episode_id is None:
            self.episode = self.episode_on_onset()
            return
        episode = self.episode
        if episode.patient_id != self.patient_id:
            raise ValidationError({"episode": _("This episode belongs to another patient.")})
        latest = episode.end_date + ATTRIBUTION_AFTER_END if episode.end_date else None
        if self.onset_date < episode.start_date or (latest and self.onset_date > latest):
            raise ValidationError(
                {
                    "onset_date": _(
                        "The onset must fall between the episode's start (%(start)s) and 30 days after its end (%(end)s)."
                    )
                    % {"start": episode.start_date, "end": latest}
                }
            )
