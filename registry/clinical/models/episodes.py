from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from endpoints.compute.vocabulary import HIGHEST_APPROVED_DOSE_MG
from registry.core.choices import DRUG_CHOICES, REASON_CHOICES

from .base import ClinicalRecord, date_order_error, not_in_future

POSITIVE_DOSE = MinValueValidator(Decimal("0.1"), _("The dose must be above 0 mg."))


def dose_label(dose):
    """15 mg, not 15.0 mg: doses are read aloud in clinic."""
    return f"{Decimal(dose).normalize():f} mg"


class TreatmentEpisode(ClinicalRecord):
    """One continuous course of one drug: day 0 of every endpoint."""

    center_path = "patient__center"
    clinical_date_field = "start_date"

    patient = models.ForeignKey(
        "clinical.Patient", on_delete=models.CASCADE, related_name="episodes",
        verbose_name=_("patient"),
    )
    code = models.CharField(
        _("episode code"), max_length=60, unique=True, blank=True,
        help_text=_("Generated from the patient code when left empty."),
    )
    drug = models.CharField(_("drug"), max_length=30, choices=DRUG_CHOICES)
    start_date = models.DateField(_("start date"), validators=[not_in_future])
    start_dose_mg = models.DecimalField(
        _("start dose (mg/day)"), max_digits=6, decimal_places=1, validators=[POSITIVE_DOSE]
    )
    end_date = models.DateField(_("end date"), null=True, blank=True, validators=[not_in_future])
    end_reason = models.CharField(
        _("stop reason"), max_length=30, choices=REASON_CHOICES, blank=True
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["patient", "start_date", "pk"]
        verbose_name = _("treatment episode")
        verbose_name_plural = _("treatment episodes")

    def __str__(self):
        return f"{self.get_drug_display()} {dose_label(self.start_dose_mg)} ({self.start_date})"

    def get_absolute_url(self):
        return reverse("patient-detail", args=[self.patient.code]) + f"#episode-{self.pk}"

    @property
    def is_ongoing(self):
        return self.end_date is None

    def ordered_dose_changes(self):
        """Dose changes in date order, from the prefetch cache when there is one."""
        return sorted(self.dose_changes.all(), key=lambda change: change.date)

    def dose_on(self, day):
        """The daily dose in force on ``day`` (None outside the episode)."""
        if day < self.start_date or (self.end_date and day > self.end_date):
            return None
        dose = self.start_dose_mg
        for change in self.ordered_dose_changes():
            if change.date > day:
                break
            dose = change.dose_mg
        return dose

    @property
    def current_dose(self):
        """The dose in force now, or at the end for a stopped episode."""
        changes = self.ordered_dose_changes()
        return changes[-1].dose_mg if changes else self.start_dose_mg

    @property
    def high_dose_limit(self):
        return HIGHEST_APPROVED_DOSE_MG.get(self.drug)

    @property
    def is_at_high_dose(self):
        limit = self.high_dose_limit
        return limit is not None and self.current_dose > limit

    def next_code(self):
        prefix = f"{self.patient.code}-e"
        taken = TreatmentEpisode.objects.filter(code__startswith=prefix).values_list(
            "code", flat=True
        )
        numbers = [int(c[len(prefix):]) for c in taken if c[len(prefix):].isdigit()]
        return f"{prefix}{max(numbers, default=0) + 1}"

    def save(self, *args, **kwargs):
        if not self.code:
            self.code = self.next_code()
        super().save(*args, **kwargs)

    def clean(self):
        errors = {}
        if self.end_date and self.start_date and self.end_date < self.start_date:
            errors["end_date"] = _("The end date must be on or after the start date.")
        if self.end_date and not self.end_reason:
            errors["end_reason"] = _("Give the reason the treatment was stopped.")
        if self.end_reason and not self.end_date:
            errors["end_reason"] = _("A stop reason needs an end date.")
        if self.pk and self.end_date and "end_date" not in errors:
            late = self.dose_changes.filter(date__gt=self.end_date).order_by("date").first()
            if late:
                errors["end_date"] = _(
                    "A dose change on %(date)s falls after this end date."
                ) % {"date": late.date}
        if self.pk and self.start_date and "start_date" not in errors:
            early = self.dose_changes.filter(date__lte=self.start_date).order_by("date").first()
            if early:
                errors["start_date"] = _(
                    "A dose change on %(date)s falls on or before this start date."
                ) % {"date": early.date}
        if errors:
            raise ValidationError(errors)


class DoseChange(ClinicalRecord):
    """A new daily dose from ``date`` on; escalation or de-escalation follows from the dose before."""

    center_path = "episode__patient__center"
    clinical_date_field = "date"

    episode = models.ForeignKey(
        TreatmentEpisode, on_delete=models.CASCADE, related_name="dose_changes",
        verbose_name=_("treatment episode"),
    )
    date = models.DateField(_("first day at the new dose"), validators=[not_in_future])
    dose_mg = models.DecimalField(
        _("new dose (mg/day)"), max_digits=6, decimal_places=1, validators=[POSITIVE_DOSE]
    )
    reason = models.CharField(_("reason"), max_length=30, choices=REASON_CHOICES, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["episode", "date"]
        constraints = [
            models.UniqueConstraint(fields=["episode", "date"], name="one_dose_change_per_day")
        ]
        verbose_name = _("dose change")
        verbose_name_plural = _("dose changes")

    def __str__(self):
        return f"{self.date}: {dose_label(self.dose_mg)}"

    @property
    def patient(self):
        return self.episode.patient

    def previous_dose(self):
        """The dose in force the day before this change, ignoring this change itself (from the
        episode's prefetched changes when the page prefetched them)."""
        dose = self.episode.start_dose_mg
        for change in self.episode.ordered_dose_changes():
            if change.pk == self.pk:
                continue
            if change.date >= self.date:
                break
            dose = change.dose_mg
        return dose

    @property
    def is_escalation(self):
        return self.dose_mg > self.previous_dose()

    @property
    def direction_label(self):
        return _("Escalation") if self.is_escalation else _("De-escalation")

    def clean(self):
        if not (self.episode_id and self.date and self.dose_mg is not None):
            return
        episode = self.episode
        if self.date <= episode.start_date:
            raise date_order_error("date", _("A dose change must come after the episode's start (%(date)s).") % {"date": episode.start_date})
        if episode.end_date and self.date > episode.end_date:
            raise date_order_error("date", _("A dose change must come on or before the episode's end (%(date)s).") % {"date": episode.end_date})
        others = episode.dose_changes.exclude(pk=self.pk)
        if others.filter(date=self.date).exists():
            raise ValidationError({"date": _("This episode already has a dose change on that day.")})
        if self.dose_mg == self.previous_dose():
            raise ValidationError(
                {"dose_mg": _("The dose in force on that day is already %(dose)s.") % {"dose": dose_label(self.dose_mg)}}
            )
        following = others.filter(date__gt=self.date).order_by("date").first()
        if following and following.dose_mg == self.dose_mg:
            raise ValidationError(
                {"dose_mg": _("The next dose change (%(date)s) already sets %(dose)s.") % {"date": following.date, "dose": dose_label(self.dose_mg)}}
            )
