"""Bundle import in the browser, for study coordinators: upload, read the report, confirm.

The uploaded zip stays on the server between the two steps, under ``MEDIA_ROOT/imports``,
named by a random token kept in the session; the confirmation imports that file, never a
second upload. Reads and writes every center: coordinators only (architecture.md lists the
pooled dataset among the few cross-center views).
"""
import secrets
import time
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.utils.translation import gettext_lazy as _
from django.views import View

from .forms import BundleUploadForm
from .importer import import_bundle

SESSION_KEY = "dataset_import"
#: Uploads left behind (abandoned reports, expired sessions) are removed after this long.
STALE_UPLOAD_SECONDS = 24 * 60 * 60
#: The report lists this many errors; the command line prints them all.
ERRORS_SHOWN = 1000


def upload_dir():
    folder = Path(settings.MEDIA_ROOT) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def upload_path(token):
    return upload_dir() / f"{token}.zip"


def remove_stale_uploads():
    limit = time.time() - STALE_UPLOAD_SECONDS
    for path in upload_dir().glob("*.zip"):
        try:
            if path.stat().st_mtime < limit:
                path.unlink()
        except FileNotFoundError:
            pass


class CoordinatorRequiredMixin(LoginRequiredMixin):
    """Logged-out users go to the login page; logged-in users who are not coordinators get 403."""

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and not request.user.is_coordinator:
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)


class PendingUploadMixin(CoordinatorRequiredMixin):
    """The upload this session checked, if the posted token is still that one."""

    def pending(self, request):
        pending = request.session.get(SESSION_KEY)
        token = request.POST.get("token", "")
        if not pending or not secrets.compare_digest(pending.get("token", ""), token):
            return None
        if not upload_path(pending["token"]).exists():
            return None
        return pending

    def forget(self, request, pending):
        upload_path(pending["token"]).unlink(missing_ok=True)
        request.session.pop(SESSION_KEY, None)


def report(request, result, *, name, pending=None, written=False):
    return render(request, "datasets/import_report.html", {
        "result": result,
        "name": name,
        "pending": pending,
        "written": written,
        "errors_shown": result.errors[:ERRORS_SHOWN],
        "errors_hidden": max(0, len(result.errors) - ERRORS_SHOWN),
        "totals": result.totals(),
    })


class ImportUploadView(CoordinatorRequiredMixin, View):
    template_name = "datasets/import_upload.html"

    def get(self, request):
        return render(request, self.template_name, {"form": BundleUploadForm()})

    def post(self, request):
        form = BundleUploadForm(request.POST, request.FILES)
        if not form.is_valid():
            return render(request, self.template_name, {"form": form})
        remove_stale_uploads()
        previous = request.session.get(SESSION_KEY)
        if previous:
            upload_path(previous["token"]).unlink(missing_ok=True)
        token = secrets.token_hex(16)
        path = upload_path(token)
        upload = form.cleaned_data["bundle"]
        with open(path, "wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        pending = {
            "token": token,
            "name": Path(upload.name).name,
            "ignore_unknown_columns": form.cleaned_data["ignore_unknown_columns"],
        }
        result = import_bundle(
            path, dry_run=True, user=request.user,
            ignore_unknown_columns=pending["ignore_unknown_columns"],
        )
        if result.ok:
            request.session[SESSION_KEY] = pending
        else:
            path.unlink(missing_ok=True)
            request.session.pop(SESSION_KEY, None)
            pending = None
        return report(request, result, name=Path(upload.name).name, pending=pending)


class ImportConfirmView(PendingUploadMixin, View):
    def post(self, request):
        pending = self.pending(request)
        if pending is None:
            messages.error(request, _("This upload is no longer available: upload the bundle again."))
            return redirect("dataset-import")
        result = import_bundle(
            upload_path(pending["token"]), user=request.user,
            ignore_unknown_columns=pending["ignore_unknown_columns"],
            change_reason=f"dataset import (upload {pending['name']})",
        )
        if not result.ok:
            # The registry changed since the check: show why, and let them check again.
            self.forget(request, pending)
            return report(request, result, name=pending["name"])
        self.forget(request, pending)
        return report(request, result, name=pending["name"], written=True)


class ImportCancelView(PendingUploadMixin, View):
    def post(self, request):
        pending = self.pending(request)
        if pending is not None:
            self.forget(request, pending)
            messages.info(request, _("The upload was discarded; nothing was imported."))
        return redirect("dataset-import")
