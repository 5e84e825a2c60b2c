"""What every clinical record shares: its center path, timestamps and date rules."""
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator
from django.db import models, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext_lazy as _

from registry.core.scoping import CenterScopedQuerySet


def not_in_future(value):
    """Registry data are observations: nothing can have happened after today."""
    if value and value > timezone.localdate():
        raise ValidationError(
            _("%(date)s is in the future."),
            code="future_date",
            params={"date": date_format(value, "SHORT_DATE_FORMAT")},
        )


class StaleRecord(Exception):
    """Someone else saved the record since this copy was read: saving would lose their change."""

    def __init__(self, record):
        super().__init__(f"{record._meta.label} {record.pk} changed since version {record.version}")
        self.record = record


class ClinicalRecord(models.Model):
    """Base of patient data: scoped by center, timestamped, optimistic-locked, signable.

    ``center_path`` is the lookup from the model to its center, which the scoping queryset
    uses; a model without one cannot be listed by a view. ``version`` goes up with every save:
    saving a copy read at an older version raises :class:`StaleRecord` instead of silently
    overwriting a colleague's change.
    """

    center_path = None

    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    version = models.PositiveIntegerField(_("version"), default=1, editable=False)

    objects = CenterScopedQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if self._state.adding or self.pk is None:
            super().save(*args, **kwargs)
        else:
            self._save_unless_stale(*args, **kwargs)
        from registry.clinical.plausibility import check_record

        check_record(self)

    def _save_unless_stale(self, *args, **kwargs):
        with transaction.atomic():
            claimed = type(self)._base_manager.filter(pk=self.pk, version=self.version).update(
                version=F("version") + 1
            )
            if not claimed:
                raise StaleRecord(self)
            self.version += 1
            super().save(*args, **kwargs)
            self.after_change()

    def delete(self, *args, **kwargs):
        result = super().delete(*args, **kwargs)
        self.after_change()
        return result

    @property
    def center_id(self):
        """The center of a child record is its patient's (Patient has the column itself)."""
        return self.signed_patient.center_id

    # Signatures ------------------------------------------------------------------------------

    #: The date that places the record in the patient's follow-up (None: the whole record set,
    #: e.g. the patient's own characteristics).
    clinical_date_field = None

    @property
    def signed_patient(self):
        return self.patient

    @property
    def clinical_date(self):
        return getattr(self, self.clinical_date_field) if self.clinical_date_field else None

    def covering_signature(self):
        """The patient's active signature that covers this record, if any."""
        patient = self.signed_patient
        if patient is None or patient.pk is None:
            return None
        signature = patient.signatures.filter(revoked_at__isnull=True).order_by("-signed_up_to").first()
        if signature is None:
            return None
        days = [self.clinical_date, *self._stored_clinical_dates()]
        if any(day is None or day <= signature.signed_up_to for day in days):
            return signature
        return None

    def _stored_clinical_dates(self):
        """The record's date as saved: moving a signed record out of the signed period is a
        change to signed data too."""
        if not self.clinical_date_field or self.pk is None or self._state.adding:
            return []
        return list(
            type(self)._base_manager.filter(pk=self.pk).values_list(self.clinical_date_field, flat=True)
        )

    def is_locked(self):
        """Saved data a PI signed: changing it needs a reason and removes the signature."""
        return not self._state.adding and self.covering_signature() is not None

    def full_clean(self, *args, **kwargs):
        super().full_clean(*args, **kwargs)
        self.check_signature_lock(getattr(self, "_change_reason", ""))

    def clean_fields(self, exclude=None):
        """Django checks a TextField's ``max_length`` only in forms: checked here too, for
        every writer (the importer, scripts)."""
        errors = {}
        for field in self._meta.concrete_fields:
            if not isinstance(field, models.TextField) or not field.max_length:
                continue
            value = getattr(self, field.attname)
            if value and field.name not in (exclude or ()):
                try:
                    MaxLengthValidator(field.max_length)(value)
                except ValidationError as error:
                    errors[field.name] = error.error_list
        try:
            super().clean_fields(exclude=exclude)
        except ValidationError as error:
            errors = error.update_error_dict(errors)
        if errors:
            raise ValidationError(errors)

    def check_signature_lock(self, reason):
        # The reason first: with one given, the lock (a query) need not be looked up.
        if not (reason or "").strip() and self.is_locked():
            raise ValidationError(
                {"reason_for_change": _("These data are signed: give a reason for the change.")}
            )

    def after_change(self):
        """A change to signed data removes the signature (the reason stays in the history)."""
        signature = self.covering_signature()
        if signature is not None:
            signature.revoke(getattr(self, "_change_reason", "") or "")


def date_order_error(field, message):
    return ValidationError({field: ValidationError(message, code="date_order")})
