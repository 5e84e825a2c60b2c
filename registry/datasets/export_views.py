"""Dataset export pages: start an export, watch it, download it, list the exports.

Coordinators export any centers (pooled); a center PI exports the centers where they are PI;
everyone else gets 403 (anonymous users go to the login page). An export record is visible to
coordinators and to the user who made it (404 to anyone else). The export itself runs as a
Celery task; the page polls a JSON status view (static/datasets/export.js, no inline script).
"""
from django.conf import settings
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.translation import gettext as _
from django.views import View
from django.views.generic import ListView

from . import exports
from .export_forms import ExportForm
from .exporter import ExportRefused, may_export
from .models import ExportRecord


class ExportAccessMixin(LoginRequiredMixin):
    """Logged-out users go to the login page; users who may not export get 403."""

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and not may_export(request.user):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)


class ExportRecordMixin(ExportAccessMixin):
    def get_record(self):
        return get_object_or_404(ExportRecord.objects.visible_to(self.request.user), pk=self.kwargs["pk"])


class ExportStartView(ExportAccessMixin, View):
    template_name = "datasets/export_form.html"

    def get(self, request):
        return self.render(request, ExportForm(user=request.user))

    def render(self, request, form, status=200):
        recent = ExportRecord.objects.visible_to(request.user).filter(created_by=request.user)[:5]
        return render(request, self.template_name, {
            "form": form, "recent": recent,
            "expiry_hours": int(settings.EXPORT_EXPIRY.total_seconds() // 3600),
        }, status=status)

    def post(self, request):
        form = ExportForm(request.POST, user=request.user)
        allowed = {code for code, _name in form.allowed}
        if set(request.POST.getlist("centers")) - allowed:
            # Only the user's own centers are offered: another one is a forged request.
            raise PermissionDenied
        if not form.is_valid():
            return self.render(request, form)
        try:
            record = exports.request_export(
                user=request.user, options=form.options(), language=translation.get_language() or "",
            )
        except ExportRefused:
            raise PermissionDenied
        return redirect("dataset-export-detail", pk=record.pk)


def status_payload(record):
    """What the export page shows, as JSON for its script."""
    progress = exports.read_progress(record) if record.status == ExportRecord.Status.RUNNING else None
    done_rows = total_rows = 0
    stage = ""
    if record.status == ExportRecord.Status.DONE:
        percent = 100
        done_rows = total_rows = record.total_rows
        message = _("Ready: %(rows)s rows, %(size)s.") % {
            "rows": formats.number_format(record.total_rows, force_grouping=True),
            "size": _file_size(record.size_bytes),
        }
    elif progress:
        done_rows, total_rows, stage = progress["done"], progress["total"], progress["stage"]
        percent = int(100 * done_rows / total_rows) if total_rows else 0
        message = _("%(stage)s: %(done)s of %(total)s rows written.") % {
            "stage": stage or _("starting"),
            "done": formats.number_format(done_rows, force_grouping=True),
            "total": formats.number_format(total_rows, force_grouping=True),
        }
    elif record.status in (ExportRecord.Status.PENDING, ExportRecord.Status.RUNNING):
        percent = 0
        message = _("Waiting for the export to start…")
    elif record.status == ExportRecord.Status.FAILED:
        percent = 0
        message = record.error or _("The export failed.")
    else:
        percent = 0
        message = _("This export has expired and its file was deleted.")
    expired = record.has_expired()
    return {
        "id": record.pk,
        "status": ExportRecord.Status.EXPIRED if expired else record.status,
        "status_label": str(ExportRecord.Status.EXPIRED.label if expired else record.get_status_display()),
        "finished": record.is_finished,
        "percent": percent,
        "done_rows": done_rows,
        "total_rows": total_rows,
        "stage": stage,
        "message": str(message),
        "error": record.error,
        "row_counts": record.row_counts,
        "size_bytes": record.size_bytes,
        "sha256": record.sha256,
        "expires_at": record.expires_at.isoformat() if record.expires_at else None,
        "download_url": (
            reverse("dataset-export-download", args=[record.pk])
            if record.status == ExportRecord.Status.DONE and not expired else None
        ),
    }


def _file_size(size):
    from django.template.defaultfilters import filesizeformat

    return filesizeformat(size or 0)


class ExportDetailView(ExportRecordMixin, View):
    def get(self, request, pk):
        record = self.get_record()
        return render(request, "datasets/export_detail.html", {
            "record": record, "status": status_payload(record),
        })


class ExportStatusView(ExportRecordMixin, View):
    def get(self, request, pk):
        response = JsonResponse(status_payload(self.get_record()))
        response["Cache-Control"] = "no-store"
        return response


class ExportDownloadView(ExportRecordMixin, View):
    def get(self, request, pk):
        record = self.get_record()
        if not exports.may_download(request.user, record):
            raise PermissionDenied
        path = exports.file_path(record)
        if record.has_expired() or (record.status == ExportRecord.Status.DONE and not path.exists()):
            if record.status != ExportRecord.Status.EXPIRED:
                exports.expire(record)
            return render(request, "datasets/export_expired.html", {"record": record}, status=410)
        if record.status != ExportRecord.Status.DONE:
            return redirect("dataset-export-detail", pk=record.pk)
        stamp = timezone.localtime(record.created_at).strftime("%Y%m%d-%H%M%S")
        return FileResponse(
            open(path, "rb"), as_attachment=True,
            filename=f"ad-registry-export-{stamp}-{record.pk}.zip", content_type="application/zip",
        )


class ExportListView(ExportAccessMixin, ListView):
    template_name = "datasets/export_list.html"
    context_object_name = "records"
    paginate_by = 50

    def get_queryset(self):
        return ExportRecord.objects.visible_to(self.request.user).select_related("created_by")
