from django import forms
from django.utils.translation import gettext_lazy as _
from django_otp.forms import OTPAuthenticationForm
from django_otp.plugins.otp_totp.models import TOTPDevice


class LoginForm(OTPAuthenticationForm):
    """Username, password and, for users who set up two-factor authentication, the 6-digit
    code of their authenticator app (one form, one step)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["otp_token"].label = _("Authenticator code")
        self.fields["otp_token"].help_text = _("Only if you set up two-factor authentication.")
        self.fields["otp_token"].widget.attrs.update({"autocomplete": "one-time-code", "inputmode": "numeric"})
        # One TOTP device per user: no device picker, no challenge button.
        del self.fields["otp_device"]
        del self.fields["otp_challenge"]

    def clean_otp(self, user):
        """A code is asked only of users who set up an authenticator; those who must have one
        (coordinators, PIs) are sent to set it up right after logging in."""
        device = TOTPDevice.objects.devices_for_user(user, confirmed=True).first() if user else None
        if device is None:
            return
        self.cleaned_data["otp_device"] = device.persistent_id
        self.cleaned_data.setdefault("otp_challenge", None)
        return super().clean_otp(user)


class TokenForm(forms.Form):
    token = forms.CharField(
        label=_("Authenticator code"), max_length=8,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}),
    )
