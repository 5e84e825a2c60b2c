from crispy_forms.helper import FormHelper
from crispy_forms.layout import Fieldset, Layout, Submit
from django import forms
from django.utils.translation import gettext_lazy as _

from registry.core.choices import DRUG_CHOICES

from .exporter import ExportOptions, exportable_centers


class ExportForm(forms.Form):
    centers = forms.MultipleChoiceField(
        label=_("Centers"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("None ticked: every center you may export (pooled)."),
    )
    drug = forms.ChoiceField(
        label=_("Drug"),
        required=False,
        choices=[("", _("Any drug"))] + DRUG_CHOICES,
        help_text=_("Keeps the patients with at least one treatment episode of this drug, with all their records."),
    )
    enrolled_from = forms.DateField(
        label=_("Enrolled from"), required=False, widget=forms.DateInput(attrs={"type": "date"}),
    )
    enrolled_to = forms.DateField(
        label=_("Enrolled to"), required=False, widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_("Both dates included."),
    )
    shift_dates = forms.BooleanField(
        label=_("Shift dates (for sharing outside the study)"),
        required=False,
        help_text=_("Moves all dates of each patient back by the same random number of days (different for each patient); the days between a patient's dates are kept."),
    )
    free_text = forms.BooleanField(
        label=_("Include free text"),
        required=False,
        help_text=_("Adverse-event descriptions, left out by default: free text may name people."),
    )
    excel = forms.BooleanField(label=_("Add an Excel workbook"), required=False)
    parquet = forms.BooleanField(label=_("Add Parquet files"), required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.allowed = list(exportable_centers(user).order_by("code").values_list("code", "name"))
        self.fields["centers"].choices = [(code, f"{code} — {name}") for code, name in self.allowed]
        self.helper = FormHelper()
        self.helper.layout = Layout(
            Fieldset(_("Scope"), "centers"),
            Fieldset(_("Filters"), "drug", "enrolled_from", "enrolled_to"),
            Fieldset(_("Options"), "shift_dates", "free_text", "excel", "parquet"),
        )
        self.helper.add_input(Submit("submit", _("Start the export")))

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("enrolled_from"), cleaned.get("enrolled_to")
        if start and end and end < start:
            self.add_error("enrolled_to", _("The end of the enrolment period must be on or after its start."))
        return cleaned

    def options(self) -> ExportOptions:
        data = self.cleaned_data
        return ExportOptions(
            centers=tuple(data["centers"]) or None,
            drug=data["drug"] or None,
            enrolled_from=data["enrolled_from"],
            enrolled_to=data["enrolled_to"],
            shift_dates=data["shift_dates"],
            free_text=data["free_text"],
            excel=data["excel"],
            parquet=data["parquet"],
        )
