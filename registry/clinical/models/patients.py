from collections import defaultdict

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import IntegrityError, models, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from endpoints.compute import vocabulary as v
from registry.core.choices import AD_SUBTYPE_CHOICES, DRUG_CHOICES, REASON_CHOICES, SEX_CHOICES
from registry.core.fields import CodeListField

from .base import ClinicalRecord, date_order_error, not_in_future
from .visits import Visit


#: Windows for the "what is missing" column (endpoints.md: baseline from day −30, M3 = days 46–136).
BASELINE_LOOKBACK_DAYS = 30
M3_FIRST_DAY, M3_LAST_DAY = 46, 136
STALE_AFTER_DAYS = 183


class Patient(ClinicalRecord):
    """A pseudonymous patient: a code, never a name, a full birth date or a record number."""

    center_path = "center"

    center = models.ForeignKey(
        "centers.Center", on_delete=models.PROTECT, related_name="patients",
        verbose_name=_("center"),
    )
    code = models.CharField(
        _("patient code"), max_length=40, unique=True, blank=True,
        help_text=_("Generated from the center code when left empty."),
    )
    sex = models.CharField(_("sex"), max_length=10, choices=SEX_CHOICES)
    birth_year = models.PositiveSmallIntegerField(
        _("birth year"), null=True, blank=True,
        validators=[MinValueValidator(1900, _("The birth year must be 1900 or later."))],
    )
    height_cm = models.DecimalField(
        _("height (cm)"), max_digits=4, decimal_places=1, null=True, blank=True,
        validators=[
            MinValueValidator(50, _("Height must be between 50 and 250 cm.")),
            MaxValueValidator(250, _("Height must be between 50 and 250 cm.")),
        ],
    )
    weight_kg = models.DecimalField(
        _("weight (kg)"), max_digits=4, decimal_places=1, null=True, blank=True,
        validators=[
            MinValueValidator(2, _("Weight must be between 2 and 400 kg.")),
            MaxValueValidator(400, _("Weight must be between 2 and 400 kg.")),
        ],
    )
    ad_onset_age = models.PositiveSmallIntegerField(
        _("age at AD onset (years)"), null=True, blank=True,
        validators=[MaxValueValidator(120, _("Age at onset must be between 0 and 120 years."))],
    )
    ad_subtype = models.CharField(
        _("predominant AD subtype"), max_length=20, choices=AD_SUBTYPE_CHOICES, blank=True
    )
    special_areas = CodeListField(_("special areas involved"), codes=v.SPECIAL_AREAS)
    atopic_comorbidities = CodeListField(_("atopic comorbidities"), codes=v.ATOPIC_COMORBIDITIES)
    autoimmune_comorbidities = CodeListField(
        _("autoimmune comorbidities"), codes=v.AUTOIMMUNE_COMORBIDITIES
    )
    cv_risk_factors = CodeListField(_("cardiovascular risk factors"), codes=v.CV_RISK_FACTORS)
    neoplasia_last_5y = CodeListField(_("neoplasia in the last 5 years"), codes=v.NEOPLASIA)
    enrolled_on = models.DateField(
        _("enrolled on"), default=timezone.localdate, validators=[not_in_future]
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["code"]
        verbose_name = _("patient")
        verbose_name_plural = _("patients")

    def __str__(self):
        return self.code

    def get_absolute_url(self):
        return reverse("patient-detail", args=[self.code])

    @property
    def signed_patient(self):
        return self

    @property
    def active_signature(self):
        return max(
            (s for s in self.signatures.all() if s.revoked_at is None),
            key=lambda s: s.signed_up_to, default=None,
        )

    def clean(self):
        if self.birth_year and self.enrolled_on and self.birth_year > self.enrolled_on.year:
            raise ValidationError(
                {"birth_year": _("The birth year must be between 1900 and the enrolment year.")}
            )

    def next_code(self):
        """The center's next free code, e.g. ``bcn-hsc-0008``."""
        prefix = f"{self.center.code}-"
        taken = Patient.objects.filter(code__startswith=prefix).values_list("code", flat=True)
        numbers = [int(c[len(prefix):]) for c in taken if c[len(prefix):].isdigit()]
        return f"{prefix}{max(numbers, default=0) + 1:04d}"

    def save(self, *args, **kwargs):
        if self.code:
            return super().save(*args, **kwargs)
        # Two investigators of one center may add patients at the same moment: the unique
        # constraint decides, and the loser takes the next number.
        for _attempt in range(5):
            self.code = self.next_code()
            try:
                with transaction.atomic():
                    return super().save(*args, **kwargs)
            except IntegrityError:
                self.code = ""
        raise IntegrityError("could not allocate a patient code")

    # The patient page and the center list read the following on prefetched relations
    # (``episodes__dose_changes``, ``visits``, ``adverse_events``; the list: visit dates from
    # ``with_visit_dates``), so a page costs a fixed number of queries whatever the number of
    # patients.

    def timeline(self):
        """(date, kind, record) for every episode start and stop, dose change, visit and event,
        newest first."""
        items = []
        for episode in self.episodes.all():
            items.append((episode.start_date, "start", episode))
            items += [(change.date, "dose", change) for change in episode.ordered_dose_changes()]
            if episode.end_date:
                items.append((episode.end_date, "stop", episode))
        items += [(visit.date, "visit", visit) for visit in self.visits.all()]
        items += [(event.onset_date, "ae", event) for event in self.adverse_events.all()]
        same_day_order = {"start": 0, "dose": 1, "visit": 2, "ae": 3, "stop": 4}
        return sorted(items, key=lambda item: (item[0], same_day_order[item[1]]), reverse=True)

    @property
    def current_episode(self):
        ongoing = [episode for episode in self.episodes.all() if episode.is_ongoing]
        return max(ongoing, key=lambda episode: episode.start_date, default=None)

    @classmethod
    def with_visit_dates(cls, patients):
        """``patients`` as a list, each given the dates of its visits from one query.

        The patient list shows only these dates: prefetching the visits built ~7 Visit objects
        per patient (~10 µs each with their other columns deferred), a third of the list's CPU.
        """
        patients = list(patients)
        dates = defaultdict(list)
        rows = Visit.objects.filter(patient__in=patients).order_by().values_list("patient_id", "date")
        for patient_id, day in rows:
            dates[patient_id].append(day)
        for patient in patients:
            patient._visit_dates = dates[patient.pk]
        return patients

    def visit_dates(self):
        """The dates of the patient's visits, unordered (from ``with_visit_dates`` when the
        list read them, else from the prefetched visits)."""
        if hasattr(self, "_visit_dates"):
            return self._visit_dates
        return [visit.date for visit in self.visits.all()]

    @property
    def last_visit(self):
        return max(self.visit_dates(), default=None)

    def missing_items(self, today=None):
        """What the center should chase for this patient, in a monitor's words."""
        today = today or timezone.localdate()
        visit_dates = self.visit_dates()
        episodes = list(self.episodes.all())
        missing = [] if episodes else [_("no treatment episode")]
        for episode in episodes:
            days = [(day - episode.start_date).days for day in visit_dates]
            if not any(-BASELINE_LOOKBACK_DAYS <= day <= 0 for day in days):
                missing.append(_("no baseline visit (%(drug)s)") % {"drug": episode.get_drug_display()})
            followed = ((episode.end_date or today) - episode.start_date).days
            if followed > M3_LAST_DAY and not any(M3_FIRST_DAY <= d <= M3_LAST_DAY for d in days):
                missing.append(_("no month-3 visit (%(drug)s)") % {"drug": episode.get_drug_display()})
        last = max(visit_dates, default=None)
        if self.current_episode and (last is None or (today - last).days > STALE_AFTER_DAYS):
            missing.append(_("no visit in the last 6 months"))
        return missing

    @property
    def age_at_enrolment(self):
        if self.birth_year and self.enrolled_on:
            return self.enrolled_on.year - self.birth_year
        return None


class PriorTreatment(ClinicalRecord):
    """A systemic treatment before the registry's episodes (baseline characteristics)."""

    center_path = "patient__center"
    clinical_date_field = "start_date"

    patient = models.ForeignKey(
        Patient, on_delete=models.CASCADE, related_name="prior_treatments"
    )
    drug = models.CharField(_("drug"), max_length=30, choices=DRUG_CHOICES)
    start_date = models.DateField(
        _("start date"), null=True, blank=True, validators=[not_in_future]
    )
    end_date = models.DateField(_("end date"), null=True, blank=True, validators=[not_in_future])
    stop_reason = models.CharField(
        _("stop reason"), max_length=30, choices=REASON_CHOICES, blank=True
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["patient", "start_date", "pk"]
        verbose_name = _("prior systemic treatment")
        verbose_name_plural = _("prior systemic treatments")

    def __str__(self):
        return f"{self.patient} {self.get_drug_display()}"

    def clean(self):
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise date_order_error("end_date", _("The end date must be on or after the start date."))

