"""``user|may_export_datasets``: whether the menu shows the Export link (coordinators and
center PIs)."""
from django import template

from registry.datasets.exporter import may_export

register = template.Library()


@register.filter
def may_export_datasets(user):
    # The two-factor middleware has already looked up whether the user is a PI anywhere: a
    # user known not to be one needs no query (pages keep their query budget).
    if user.is_authenticated and not user.is_coordinator and getattr(user, "_is_pi", None) is False:
        return False
    return may_export(user)
