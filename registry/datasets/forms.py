import zipfile

from crispy_forms.helper import FormHelper
from crispy_forms.layout import Submit
from django import forms
from django.utils.translation import gettext_lazy as _


class BundleUploadForm(forms.Form):
    bundle = forms.FileField(
        label=_("Dataset bundle (.zip)"),
        help_text=_("A zip of the CSV files described in the dataset format (centers.csv, patients.csv, …)."),
        widget=forms.ClearableFileInput(attrs={"accept": ".zip,application/zip"}),
    )
    ignore_unknown_columns = forms.BooleanField(
        label=_("Ignore unknown columns"),
        required=False,
        help_text=_("Otherwise a column that is not part of the format refuses the bundle, so that a misspelt column cannot silently drop data."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.helper = FormHelper()
        self.helper.form_tag = True
        self.helper.add_input(Submit("submit", _("Check the bundle")))

    def clean_bundle(self):
        upload = self.cleaned_data["bundle"]
        if not upload.name.lower().endswith(".zip") or not zipfile.is_zipfile(upload):
            raise forms.ValidationError(_("Upload a .zip file."))
        upload.seek(0)
        return upload
