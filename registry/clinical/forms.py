"""Data-entry forms. Validation is the models'; the forms only lay fields out and scope choices."""
from crispy_forms.helper import FormHelper
from crispy_forms.layout import HTML, Div, Fieldset, Layout, LayoutObject, Submit
from django import forms
from django.forms.renderers import Jinja2
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .models import (
    AdverseEvent,
    DataQuery,
    DoseChange,
    Patient,
    PriorTreatment,
    Signature,
    TreatmentEpisode,
    Visit,
)
from .models.visits import CHECKLIST_FIELDS, LAB_FIELDS, SCORE_FIELDS


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs):
        super().__init__(format="%Y-%m-%d", **kwargs)


def today_max(widget):
    widget.attrs["max"] = timezone.localdate().isoformat()
    return widget


class YesNoSelect(forms.NullBooleanSelect):
    """Yes / No / an explicit third answer (not assessed, unknown), never a silent default."""

    def __init__(self, empty_label, attrs=None):
        super().__init__(attrs)
        self.choices = [("unknown", empty_label), ("true", _("Yes")), ("false", _("No"))]

    def value_from_datadict(self, data, files, name):
        # The answer as posted: YesNoField refuses one that is none of the three, where
        # NullBooleanSelect would read it as the third answer.
        return data.get(name)


class YesNoField(forms.NullBooleanField):
    """The field of a YesNoSelect: an unknown answer ("maybe", "yes") is an error, not
    silently "not assessed"."""

    ANSWERS = {None: None, "": None, "unknown": None, "true": True, "false": False,
               True: True, False: False}

    def __init__(self, empty_label, **kwargs):
        kwargs.update(required=False, widget=YesNoSelect(empty_label))
        super().__init__(**kwargs)

    def to_python(self, value):
        try:
            return self.ANSWERS[value]
        except (KeyError, TypeError):
            raise forms.ValidationError(
                _("Select a valid choice. %(value)s is not one of the available choices."),
                code="invalid_choice", params={"value": value},
            )


class RecordForm(forms.ModelForm):
    """Base of every data-entry form.

    The parent record (patient, episode) is set on the instance by the view from a scoped
    lookup, never from POSTed data; ``parent_field`` keeps it in model validation so that
    constraints such as "one visit per patient per date" are checked before saving.
    """

    parent_field = None
    submit_label = _("Save")
    #: Widgets drawn from Django's Jinja2 copies of its widget templates (the same HTML): the
    #: Django-template ones cost ~0.3 ms a widget, a third of the visit form's CPU (~40
    #: widgets). One shared instance (it compiles each template once); not project-wide in
    #: FORM_RENDERER, because the admin's own widgets exist only as Django templates.
    default_renderer = Jinja2()

    #: The version of the record the user started from (optimistic locking, see ClinicalRecord).
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)
    reason_for_change = forms.CharField(
        label=_("Reason for change"), required=False, max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Required when the record is signed; kept in the audit trail."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            if isinstance(field.widget, forms.DateInput):
                field.widget = today_max(DateInput())
        editing = self.instance.pk is not None
        self.fields["version"].initial = self.instance.version
        self.fields["version"].required = editing
        if not editing:
            del self.fields["reason_for_change"]
        elif self.instance.is_locked():
            self.fields["reason_for_change"].required = True
        self.helper = FormHelper()
        self.helper.form_tag = True
        self.helper.add_input(Submit("submit", self.submit_label))
        layout = self.get_layout()
        if layout is not None:
            layout.append("version")
            if editing:
                layout.append("reason_for_change")
            self.helper.layout = layout

    def clean(self):
        cleaned = super().clean()
        if "version" in self._errors:
            # A hidden field: its own error would show nowhere on the page.
            del self._errors["version"]
            self.add_error(None, _(
                "Nothing was saved: the form did not say which version of the record it "
                "changes. Reload the page and enter your change again."
            ))
        elif self.instance.pk is not None and cleaned.get("version") is not None:
            # "is not None": version 0 must be refused as stale, not skip the check.
            self.instance.version = cleaned["version"]
        self.instance._change_reason = cleaned.get("reason_for_change", "")
        return cleaned

    def show_concurrent_change(self, current):
        """After a refused save: say what the colleague changed; the user's entries stay in the
        form, and submitting again (now from the current version) overwrites knowingly."""
        changed = []
        for name, field in self.fields.items():
            if name in {"version", "reason_for_change"} or name not in self.cleaned_data:
                continue
            theirs = getattr(current, name, None)
            if theirs != self.cleaned_data[name]:
                changed.append(f"{field.label}: {theirs if theirs not in (None, '') else '—'}")
        author = current.history.first().history_user if hasattr(current, "history") else None
        self.add_error(None, _(
            "Nothing was saved: %(who)s saved this record while you were editing it. "
            "Their values: %(changes)s. Check them, then save again to replace them with yours."
        ) % {"who": author or _("someone else"), "changes": "; ".join(changed) or _("no visible field")})
        data = self.data.copy()
        data["version"] = current.version
        self.data = data

    def get_layout(self):
        return None

    def _get_validation_exclusions(self):
        exclusions = super()._get_validation_exclusions()
        if self.parent_field:
            exclusions.discard(self.parent_field)
        return exclusions


def row(*names, cols=3):
    width = 12 // cols
    return Div(*[Div(name, css_class=f"col-md-{width}") for name in names], css_class="row")


class FieldGrid(LayoutObject):
    """Rows of ``cols`` equal columns of labelled inputs and selects, drawn by one template.

    The same markup as ``row()`` with crispy's bootstrap5 field template, for forms with many
    plain fields (the visit form's ~45 scores, labs and checklist answers): crispy renders each
    field with its own template, a copy of the whole page context and five includes, which was
    most of the visit form's CPU. Checkboxes, radio buttons and files are not drawn here; use
    ``row()`` for them.
    """

    template = "clinical/_field_grid.html"

    def __init__(self, *fields, cols=4):
        self.fields = list(fields)
        self.cols = cols

    def render(self, form, context, template_pack=None, **kwargs):
        form.rendered_fields.update(self.fields)
        bound = [form[name] for name in self.fields]
        return render_to_string(self.template, {
            "rows": [bound[i:i + self.cols] for i in range(0, len(bound), self.cols)],
            "column_class": f"col-md-{12 // self.cols}",
            "form_show_errors": context.get("form_show_errors", True),
        })


class PatientForm(RecordForm):
    class Meta:
        model = Patient
        fields = [
            "sex", "birth_year", "height_cm", "weight_kg", "ad_onset_age", "ad_subtype",
            "enrolled_on", "special_areas", "atopic_comorbidities", "autoimmune_comorbidities",
            "cv_risk_factors", "neoplasia_last_5y",
        ]
        widgets = {"enrolled_on": DateInput()}

    def get_layout(self):
        return Layout(
            Fieldset(_("Patient"), row("sex", "birth_year", "enrolled_on"),
                     row("height_cm", "weight_kg", "ad_onset_age"), "ad_subtype"),
            Fieldset(_("Involvement and comorbidities"),
                     row("special_areas", "atopic_comorbidities", "autoimmune_comorbidities"),
                     row("cv_risk_factors", "neoplasia_last_5y", cols=2)),
        )


class PriorTreatmentForm(RecordForm):
    parent_field = "patient"

    class Meta:
        model = PriorTreatment
        fields = ["drug", "start_date", "end_date", "stop_reason"]
        widgets = {"start_date": DateInput(), "end_date": DateInput()}


class EpisodeStartForm(RecordForm):
    parent_field = "patient"
    submit_label = _("Start treatment")

    class Meta:
        model = TreatmentEpisode
        fields = ["drug", "start_date", "start_dose_mg"]
        widgets = {"start_date": DateInput()}


class EpisodeForm(RecordForm):
    parent_field = "patient"

    class Meta:
        model = TreatmentEpisode
        fields = ["drug", "start_date", "start_dose_mg", "end_date", "end_reason"]
        widgets = {"start_date": DateInput(), "end_date": DateInput()}


class EpisodeStopForm(RecordForm):
    parent_field = "patient"
    submit_label = _("Stop treatment")

    class Meta:
        model = TreatmentEpisode
        fields = ["end_date", "end_reason"]
        widgets = {"end_date": DateInput()}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["end_date"].required = True
        self.fields["end_reason"].required = True


class DoseChangeForm(RecordForm):
    """Escalate, de-escalate or correct a dose change.

    ``direction`` (+1 escalate, −1 de-escalate, None edit) makes "escalate dose" a first-class
    action: a lower dose entered as an escalation is refused rather than silently stored.
    """

    parent_field = "episode"

    class Meta:
        model = DoseChange
        fields = ["date", "dose_mg", "reason"]
        widgets = {"date": DateInput()}

    def __init__(self, *args, direction=None, **kwargs):
        self.direction = direction
        super().__init__(*args, **kwargs)
        if direction == 1:
            self.helper.inputs[0].value = _("Escalate dose")
        elif direction == -1:
            self.helper.inputs[0].value = _("De-escalate dose")

    def clean(self):
        cleaned = super().clean()
        dose, day = cleaned.get("dose_mg"), cleaned.get("date")
        episode = self.instance.episode
        if self.direction and dose is not None and day is not None:
            in_force = episode.dose_on(day) or episode.current_dose
            if self.direction == 1 and dose <= in_force:
                self.add_error("dose_mg", _("An escalation needs a dose above the %(dose)s mg in force.") % {"dose": f"{in_force.normalize():f}"})
            if self.direction == -1 and dose >= in_force:
                self.add_error("dose_mg", _("A de-escalation needs a dose below the %(dose)s mg in force.") % {"dose": f"{in_force.normalize():f}"})
        return cleaned


class VisitForm(RecordForm):
    parent_field = "patient"

    class Meta:
        model = Visit
        fields = ["date", *SCORE_FIELDS, *LAB_FIELDS, *CHECKLIST_FIELDS]
        widgets = {"date": DateInput()}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in CHECKLIST_FIELDS:
            # The help text is said once, in the fieldset's legend.
            self.fields[name] = YesNoField(_("Not assessed"), label=self.fields[name].label)

    def get_layout(self):
        return Layout(
            Div("date", css_class="col-md-3"),
            Fieldset(_("Scores"), FieldGrid(*SCORE_FIELDS)),
            Fieldset(_("Laboratory (canonical units)"), FieldGrid(*LAB_FIELDS), css_class="collapse-labs"),
            Fieldset(_("Solicited adverse events since the last visit (leave “Not assessed” when not asked)"),
                     FieldGrid(*CHECKLIST_FIELDS)),
        )


class AdverseEventForm(RecordForm):
    parent_field = "patient"

    class Meta:
        model = AdverseEvent
        fields = [
            "term", "onset_date", "end_date", "episode", "severity", "serious", "action",
            "outcome", "description",
        ]
        widgets = {
            "onset_date": DateInput(),
            "end_date": DateInput(),
            "description": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Only this patient's episodes: a forged id of another patient's episode is invalid.
        self.fields["episode"].queryset = self.instance.patient.episodes.all()
        self.fields["serious"] = YesNoField(
            _("Unknown"), label=self.fields["serious"].label, help_text=self.fields["serious"].help_text
        )

    def get_layout(self):
        return Layout(
            row("term", "onset_date", "end_date"),
            row("episode", "severity", "serious"),
            row("action", "outcome", cols=2),
            "description",
        )


class DeleteForm(forms.Form):
    reason_for_change = forms.CharField(
        label=_("Reason for deletion"), required=False, max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args, record, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reason_for_change"].required = record.is_locked()
        if record.is_locked():
            self.fields["reason_for_change"].help_text = _("These data are signed: the reason is kept in the audit trail.")


class SignatureForm(forms.ModelForm):
    class Meta:
        model = Signature
        fields = ["signed_up_to"]
        widgets = {"signed_up_to": DateInput()}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["signed_up_to"].initial = timezone.localdate()
        self.helper = FormHelper()
        self.helper.add_input(Submit("submit", _("Sign")))


class QueryForm(forms.ModelForm):
    field_name = forms.ChoiceField(label=_("Field"), required=False)

    class Meta:
        model = DataQuery
        fields = ["field_name", "text"]
        widgets = {"text": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, record, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["field_name"].choices = [("", _("The whole record"))] + [
            (f.name, f.verbose_name.capitalize()) for f in record._meta.concrete_fields
            if f.editable and not f.is_relation and f.name not in {"code"}
        ]
        self.helper = FormHelper()
        self.helper.add_input(Submit("submit", _("Raise query")))


class QueryAnswerForm(forms.Form):
    answer = forms.CharField(label=_("Answer"), max_length=2000, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.helper = FormHelper()
        self.helper.add_input(Submit("submit", _("Send answer")))
