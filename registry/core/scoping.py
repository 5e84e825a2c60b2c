"""Center scoping: the one place that decides which patient data a user may see or change.

Every patient-data model uses ``CenterScopedQuerySet`` as its default manager and names its
path to the center in ``center_path``. Views get their queryset through
``CenterScopedMixin``, so an object of another center is a 404 and a read-only member who
tries to write gets a 403. No view filters by center by hand.
"""
from django.core.exceptions import PermissionDenied
from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    INVESTIGATOR = "investigator", _("Investigator")
    READ_ONLY = "read_only", _("Read-only")
    PI = "pi", _("Center PI")


#: Center roles that may enter and change patient data.
WRITE_ROLES = (Role.INVESTIGATOR, Role.PI)


def center_ids_for(user, *, write=False):
    """The ids of the centers whose patient data ``user`` may read (or write).

    ``None`` means every center: coordinators read the whole study. They do not enter data, so
    for writes they get only the centers where they also hold a writing membership.
    """
    if not user.is_authenticated or not user.is_active:
        return []
    if getattr(user, "is_coordinator", False) and not write:
        return None
    cache_name = "_write_center_ids" if write else "_read_center_ids"
    if not hasattr(user, cache_name):
        from registry.centers.models import Membership

        memberships = Membership.objects.filter(user=user)
        if write:
            memberships = memberships.filter(role__in=WRITE_ROLES)
        setattr(user, cache_name, list(memberships.values_list("center_id", flat=True)))
    return getattr(user, cache_name)


def is_center_pi(user, center_id):
    """Whether ``user`` is PI of that center (who signs its data and may export it)."""
    from registry.centers.models import Membership

    return Membership.objects.filter(user=user, center_id=center_id, role=Role.PI).exists()


class CenterScopedQuerySet(models.QuerySet):
    def for_user(self, user, *, write=False):
        """The rows of the centers ``user`` may read (or, with ``write``, change)."""
        center_ids = center_ids_for(user, write=write)
        if center_ids is None:
            return self.all()
        path = self.model.center_path
        lookup = "pk__in" if path == "pk" else f"{path}__in"
        return self.filter(**{lookup: center_ids})


class CenterScopedMixin:
    """For class-based views over a center-scoped model.

    ``get_queryset`` narrows to what the user may read, so ``get_object`` 404s outside it;
    views that change data set ``writes = True`` and get a 403 when the user may read the
    object but not change it (read-only staff, coordinators).
    """

    writes = False

    def get_queryset(self):
        return self.model.objects.for_user(self.request.user)

    def get_object(self, queryset=None):
        obj = super().get_object(queryset)
        if self.writes:
            require_write(self.request.user, obj)
        return obj


def require_write(user, obj):
    """403 unless ``user`` may change data of ``obj``'s center."""
    center_ids = center_ids_for(user, write=True)
    if obj.center_id not in center_ids:
        raise PermissionDenied
