from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils.deconstruct import deconstructible
from django.utils.text import format_lazy
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from simple_history import register

from endpoints.compute import vocabulary as v
from registry.core.choices import label

from .base import ClinicalRecord, not_in_future


@deconstructible
class ScoreRange:
    """Refuses a score outside its instrument's range, naming the score and the range (the
    message is formatted when shown, so it is translated into the reader's language)."""

    def __init__(self, code, low, high):
        self.code, self.low, self.high = code, low, high

    def __call__(self, value):
        if value is not None and not self.low <= value <= self.high:
            raise ValidationError(
                _("%(score)s must be between %(low)s and %(high)s."),
                code="out_of_range",
                params={"score": label(self.code), "low": self.low, "high": self.high},
            )

    def __eq__(self, other):
        return isinstance(other, ScoreRange) and (self.code, self.low, self.high) == (
            other.code, other.low, other.high
        )


def score_field(code, low, high, step):
    if step == 1:
        return models.PositiveSmallIntegerField(
            label(code), null=True, blank=True, validators=[ScoreRange(code, low, high)],
            help_text=format_lazy("{}–{}", low, high),
        )
    return models.DecimalField(
        label(code), max_digits=4, decimal_places=1, null=True, blank=True,
        validators=[ScoreRange(code, low, high)],
        help_text=format_lazy(_("{low}–{high}, one decimal"), low=low, high=high),
    )


def lab_field(analyte):
    return models.FloatField(
        f"{label(analyte)} ({v.LAB_UNITS[analyte]})", null=True, blank=True,
        validators=[MinValueValidator(0, _("A lab value cannot be negative."))],
    )


def checklist_field(term):
    return models.BooleanField(
        label(term), null=True, blank=True, default=None,
        help_text=_("Empty = not assessed at this visit."),
    )


class Visit(ClinicalRecord):
    """One clinic visit: scores, labs and the solicited adverse-event checklist.

    The columns follow visits.csv of the dataset bundle one to one (scores, lab analytes in
    canonical units, ``aesi_<term>`` yes/no/not assessed), added from the shared vocabulary so
    that a new term or analyte is one line there.
    """

    center_path = "patient__center"
    clinical_date_field = "date"

    patient = models.ForeignKey(
        "clinical.Patient", on_delete=models.CASCADE, related_name="visits",
        verbose_name=_("patient"),
    )
    date = models.DateField(_("visit date"), validators=[not_in_future])

    class Meta:
        ordering = ["patient", "date"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "date"], name="one_visit_per_patient_per_day",
                violation_error_message=_("This patient already has a visit on that date."),
            )
        ]
        verbose_name = _("visit")
        verbose_name_plural = _("visits")

    def __str__(self):
        return f"{self.patient} {self.date}"

    def get_absolute_url(self):
        return reverse("patient-detail", args=[self.patient.code]) + f"#visit-{self.pk}"

    def clean_fields(self, exclude=None):
        """An integer score must be a whole number as given: Django reads an integer field
        with ``int()``, which would turn 2.5 into 2 and raise OverflowError on infinity."""
        exclude = set(exclude or ())
        errors = {}
        for code in INTEGER_SCORE_FIELDS:
            value = getattr(self, code)
            if code in exclude or value is None or isinstance(value, (int, str)):
                continue  # text is parsed by the field, which refuses "2.5"
            try:
                whole = value == int(value)
            except (TypeError, ValueError, OverflowError):
                whole = False
            if not whole:
                message = self._meta.get_field(code).error_messages["invalid"]
                errors[code] = [ValidationError(message, code="invalid", params={"value": value})]
        try:
            super().clean_fields(exclude=exclude | set(errors))
        except ValidationError as error:
            errors = error.update_error_dict(errors)
        if errors:
            raise ValidationError(errors)

    def scores(self):
        return {code: getattr(self, code) for code in v.SCORE_CODES if getattr(self, code) is not None}

    def labs(self):
        return {a: getattr(self, a) for a in v.ANALYTES if getattr(self, a) is not None}

    def checklist(self):
        return {t: getattr(self, f"aesi_{t}") for t in v.CLINICAL_TERMS if getattr(self, f"aesi_{t}") is not None}


for _code, _low, _high, _step in v.SCORES:
    Visit.add_to_class(_code, score_field(_code, _low, _high, _step))
for _analyte in v.ANALYTES:
    Visit.add_to_class(_analyte, lab_field(_analyte))
for _term in v.CLINICAL_TERMS:
    Visit.add_to_class(f"aesi_{_term}", checklist_field(_term))
# History is registered after the columns exist, so the audit trail records every one of them.
register(Visit, app="registry.clinical")

SCORE_FIELDS = list(v.SCORE_CODES)
INTEGER_SCORE_FIELDS = [code for code, _low, _high, step in v.SCORES if step == 1]
LAB_FIELDS = list(v.ANALYTES)
CHECKLIST_FIELDS = [f"aesi_{term}" for term in v.CLINICAL_TERMS]
