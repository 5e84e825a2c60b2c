from django import template

from registry.core.choices import label as code_label

register = template.Library()


@register.filter
def label(code):
    """The translated label of a vocabulary code."""
    return code_label(code)


@register.filter
def labels(codes):
    return ", ".join(str(code_label(code)) for code in codes or ())


@register.filter
def checklist_yes(visit):
    """Checklist terms answered "yes" at a visit."""
    return [term for term, answer in visit.checklist().items() if answer]
