from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from .base import not_in_future


class Signature(models.Model):
    """A center PI's signature of a patient's data up to a date.

    Records dated on or before ``signed_up_to`` are locked: changing one needs a reason for
    change (kept in the record's history) and revokes the signature, which the PI then renews.
    """

    center_path = "patient__center"

    patient = models.ForeignKey(
        "clinical.Patient", on_delete=models.CASCADE, related_name="signatures",
        verbose_name=_("patient"),
    )
    signed_up_to = models.DateField(_("data signed up to"), validators=[not_in_future])
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
        verbose_name=_("signed by"),
    )
    signed_at = models.DateTimeField(_("signed at"), default=timezone.now)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    revoke_reason = models.TextField(_("reason the signature was removed"), blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["patient", "-signed_at"]
        verbose_name = _("signature")
        verbose_name_plural = _("signatures")

    def __str__(self):
        return _("%(patient)s signed up to %(date)s") % {"patient": self.patient, "date": self.signed_up_to}

    @property
    def center_id(self):
        return self.patient.center_id

    def revoke(self, reason):
        self.revoked_at = timezone.now()
        self.revoke_reason = reason
        self._change_reason = reason
        self.save(update_fields=["revoked_at", "revoke_reason"])
