"""Time-based one-time passwords (django-otp): required for coordinators and center PIs,
available to everyone."""
from base64 import b32encode
from io import BytesIO

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.shortcuts import redirect, resolve_url
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.views.generic import FormView
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from .forms import TokenForm

#: Paths a user who must set up 2FA can still reach.
ALWAYS_ALLOWED = ("/accounts/", "/i18n/", "/static/")


def confirmed_device(user):
    return TOTPDevice.objects.devices_for_user(user, confirmed=True).first()


def qr_code_svg(device):
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    buffer = BytesIO()
    image.save(buffer)
    return mark_safe(buffer.getvalue().decode())


class TwoFactorView(LoginRequiredMixin, FormView):
    """Set up an authenticator app (QR code, then a code to confirm it), or, for a user who has
    one, verify this session with a code."""

    form_class = TokenForm
    template_name = "accounts/two_factor.html"

    def get_device(self):
        device = confirmed_device(self.request.user)
        if device is None:
            device = TOTPDevice.objects.filter(user=self.request.user, confirmed=False).first()
            if device is None:
                device = TOTPDevice.objects.create(
                    user=self.request.user, name=str(_("Authenticator app")), confirmed=False
                )
        return device

    def get_context_data(self, **kwargs):
        device = self.get_device()
        context = super().get_context_data(device=device, enrolling=not device.confirmed, **kwargs)
        if not device.confirmed:
            context["qr_code"] = qr_code_svg(device)
            context["secret"] = b32encode(device.bin_key).decode()
        return context

    def form_valid(self, form):
        device = self.get_device()
        if not device.verify_token(form.cleaned_data["token"].strip()):
            form.add_error("token", _("This code is not valid. Check your device's clock and try the current code."))
            return self.form_invalid(form)
        if not device.confirmed:
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            messages.success(self.request, _("Two-factor authentication is set up."))
        otp_login(self.request, device)
        return redirect(self.next_url())

    def next_url(self):
        target = self.request.GET.get("next", "")
        if url_has_allowed_host_and_scheme(target, allowed_hosts={self.request.get_host()}):
            return target
        return resolve_url(settings.LOGIN_REDIRECT_URL)


class RequireTwoFactorMiddleware:
    """Sends coordinators and PIs whose session is not verified to the 2FA page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if (
            user.is_authenticated
            and user.requires_two_factor
            and not user.is_verified()
            and not request.path.startswith(ALWAYS_ALLOWED)
        ):
            return redirect(f"{reverse('two-factor')}?next={request.get_full_path()}")
        return self.get_response(request)
