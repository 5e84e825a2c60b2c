"""What every clinical record shares: its center path, timestamps and date rules."""
from django.core.exceptions import ValidationError
from django.db import models
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


class ClinicalRecord(models.Model):
    """Base of patient data: scoped by center, timestamped, optimistic-locked.

    ``center_path`` is the lookup from the model to its center, which the scoping queryset
    uses; a model without one cannot be listed by a view.
    """

    center_path = None

    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = CenterScopedQuerySet.as_manager()

    class Meta:
        abstract = True


def date_order_error(field, message):
    return ValidationError({field: ValidationError(message, code="date_order")})
