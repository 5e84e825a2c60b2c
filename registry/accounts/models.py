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
