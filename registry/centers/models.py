from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from registry.core.choices import ANALYTE_CHOICES
from registry.core.scoping import CenterScopedQuerySet, Role


class Center(models.Model):
    center_path = "pk"

    code = models.CharField(
        _("code"),
        max_length=20,
        unique=True,
        validators=[
            RegexValidator(
                r"^[a-z0-9]+(-[a-z0-9]+)*$",
                _("Use lower-case letters, digits and dashes, e.g. bcn-hsc."),
            )
        ],
    )
    name = models.CharField(_("hospital name"), max_length=200)
    country = models.CharField(
        _("country"),
        max_length=2,
        blank=True,
        validators=[RegexValidator(r"^[A-Z]{2}$", _("Use an ISO 3166-1 alpha-2 code, e.g. FR."))],
    )

    objects = CenterScopedQuerySet.as_manager()

    class Meta:
        ordering = ["code"]
        verbose_name = _("center")
        verbose_name_plural = _("centers")

    def __str__(self):
        return f"{self.code} — {self.name}"

    @property
    def center_id(self):
        return self.pk

    def lab_range_map(self):
        """analyte -> (lower, upper), the form the endpoint computation reads."""
        return {r.analyte: (r.lower, r.upper) for r in self.lab_ranges.all()}


class LabRange(models.Model):
    """A center's local reference range for one analyte (treatment-emergent lab AEs)."""

    center = models.ForeignKey(Center, on_delete=models.CASCADE, related_name="lab_ranges")
    analyte = models.CharField(_("analyte"), max_length=30, choices=ANALYTE_CHOICES)
    lower = models.FloatField(_("lower limit of normal"), null=True, blank=True)
    upper = models.FloatField(_("upper limit of normal"), null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["center", "analyte"]
        constraints = [
            models.UniqueConstraint(fields=["center", "analyte"], name="one_range_per_analyte")
        ]
        verbose_name = _("lab reference range")
        verbose_name_plural = _("lab reference ranges")

    def __str__(self):
        return f"{self.center.code} {self.analyte}: {self.lower}–{self.upper}"

    def clean(self):
        from django.core.exceptions import ValidationError

        errors = {}
        for name in ("lower", "upper"):
            value = getattr(self, name)
            if value is not None and value < 0:
                errors[name] = _("A reference limit cannot be negative.")
        if self.lower is not None and self.upper is not None and self.upper <= self.lower:
            errors["upper"] = _("The upper limit must be above the lower limit.")
        if errors:
            raise ValidationError(errors)


class Membership(models.Model):
    """A user's role at one center."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    center = models.ForeignKey(Center, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(
        _("role"),
        max_length=20,
        choices=Role.choices,
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["center", "user"]
        constraints = [
            models.UniqueConstraint(fields=["user", "center"], name="one_role_per_center")
        ]
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")

    def __str__(self):
        return f"{self.user} @ {self.center.code} ({self.get_role_display()})"
