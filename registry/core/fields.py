"""Model fields shared by the data-entry apps."""
from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from .choices import choices


class CodeListField(models.JSONField):
    """A list of vocabulary codes (comorbidities, special areas), stored as a JSON list.

    dataset-format.md has list columns where "empty means none of the items": the field is
    never null, an empty list is an answer. Portable across SQLite and PostgreSQL, unlike
    ArrayField.
    """

    def __init__(self, *args, codes=(), **kwargs):
        self.codes = tuple(codes)
        kwargs.setdefault("default", list)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs["codes"] = self.codes
        if kwargs.get("default") is list:
            del kwargs["default"]
        if kwargs.get("blank") is True:
            del kwargs["blank"]
        return name, path, args, kwargs

    def validate(self, value, model_instance):
        super().validate(value, model_instance)
        unknown = [code for code in value or () if code not in self.codes]
        if unknown:
            raise ValidationError(
                _("Unknown code(s) %(codes)s; allowed: %(allowed)s."),
                code="invalid_choice",
                params={"codes": ", ".join(map(str, unknown)), "allowed": ", ".join(self.codes)},
            )
        if len(set(value or ())) != len(value or ()):
            raise ValidationError(_("A code is listed twice."), code="duplicate")

    def formfield(self, **kwargs):
        return forms.MultipleChoiceField(
            choices=choices(self.codes),
            required=False,
            widget=forms.CheckboxSelectMultiple,
            label=self.verbose_name.capitalize(),
            help_text=self.help_text,
        )
