from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.translation import gettext_lazy as _


class User(AbstractUser):
    """A registry user. Center roles come from memberships; the study role is a flag."""

    is_coordinator = models.BooleanField(
        _("study coordinator"),
        default=False,
        help_text=_("Reads every center's data and exports pooled datasets."),
    )

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"

    @property
    def requires_two_factor(self):
        """Coordinators and center PIs see pooled or signed data: they must use 2FA."""
        if self.is_coordinator:
            return True
        if not hasattr(self, "_is_pi"):
            from registry.core.scoping import Role

            self._is_pi = self.memberships.filter(role=Role.PI).exists()
        return self._is_pi
