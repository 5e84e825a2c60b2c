"""Monitoring views: each record's audit trail, PI signatures and data queries."""
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _
from django.views.generic import CreateView, DetailView, FormView, TemplateView

from registry.core.scoping import center_ids_for, is_center_pi, require_write

from .forms import QueryAnswerForm, QueryForm, SignatureForm
from .models import AdverseEvent, DataQuery, DoseChange, Patient, PriorTreatment, TreatmentEpisode, Visit

#: URL kind -> model whose history and queries can be reached by the record's id.
RECORD_KINDS = {
    "episode": TreatmentEpisode,
    "dose-change": DoseChange,
    "visit": Visit,
    "adverse-event": AdverseEvent,
    "prior-treatment": PriorTreatment,
}


def scoped_record(user, kind, key):
    """The record named in a URL, through the center scoping (404 outside it)."""
    if kind == "patient":
        return get_object_or_404(Patient.objects.for_user(user), code=key)
    model = RECORD_KINDS.get(kind)
    if model is None:
        raise Http404
    return get_object_or_404(model.objects.for_user(user), pk=key)


def history_entries(record):
    """The record's audit trail, newest first: who, when, what (each field old -> new), why."""
    entries = []
    records = list(record.history.select_related("history_user").order_by("-history_date", "-history_id"))
    for newer, older in zip(records, records[1:] + [None]):
        changes = []
        if older is not None and newer.history_type == "~":
            delta = newer.diff_against(older, excluded_fields=["version", "updated_at", "created_at"])
            changes = [
                (record._meta.get_field(c.field).verbose_name, c.old, c.new) for c in delta.changes
            ]
        entries.append({
            "when": newer.history_date, "who": newer.history_user,
            "type": {"+": _("created"), "~": _("changed"), "-": _("deleted")}[newer.history_type],
            "reason": newer.history_change_reason, "changes": changes,
        })
    return entries


class RecordHistoryView(LoginRequiredMixin, TemplateView):
    """Read-only: nobody, admins included, edits or deletes history through the registry."""

    template_name = "clinical/record_history.html"

    def get_context_data(self, **kwargs):
        record = scoped_record(self.request.user, self.kwargs["kind"], self.kwargs["key"])
        return super().get_context_data(record=record, entries=history_entries(record), **kwargs)


class SignPatientView(LoginRequiredMixin, CreateView):
    """A center PI signs a patient's data up to a date."""

    form_class = SignatureForm
    template_name = "clinical/record_form.html"

    @cached_property
    def patient(self):
        patient = get_object_or_404(Patient.objects.for_user(self.request.user), code=self.kwargs["code"])
        if not is_center_pi(self.request.user, patient.center_id):
            raise PermissionDenied
        return patient

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            self.patient
        return super().dispatch(request, *args, **kwargs)

    def get_form_kwargs(self):
        from .models import Signature

        return {**super().get_form_kwargs(), "instance": Signature(patient=self.patient, signed_by=self.request.user)}

    def get_context_data(self, **kwargs):
        return super().get_context_data(title=_("Sign patient data"), parent=self.patient, record_patient=self.patient, **kwargs)

    def form_valid(self, form):
        form.save()
        messages.success(self.request, _("Signed: %(patient)s's data up to %(date)s.") % {"patient": self.patient, "date": form.instance.signed_up_to})
        return redirect(self.patient)


class QueryCreateView(LoginRequiredMixin, CreateView):
    """A coordinator raises a query on a record (optionally one of its fields)."""

    form_class = QueryForm
    template_name = "clinical/record_form.html"

    @cached_property
    def record(self):
        if not self.request.user.is_coordinator:
            raise PermissionDenied
        return scoped_record(self.request.user, self.kwargs["kind"], self.kwargs["key"])

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            self.record
        return super().dispatch(request, *args, **kwargs)

    def get_form_kwargs(self):
        record = self.record
        query = DataQuery(
            patient=record.signed_patient, content_type=ContentType.objects.get_for_model(record),
            object_id=record.pk, raised_by=self.request.user,
        )
        return {**super().get_form_kwargs(), "instance": query, "record": record}

    def get_context_data(self, **kwargs):
        return super().get_context_data(title=_("Raise a query"), parent=self.record, record_patient=self.record.signed_patient, **kwargs)

    def form_valid(self, form):
        form.save()
        messages.success(self.request, _("Query raised."))
        return redirect(self.record.signed_patient)


class QueryDetailView(LoginRequiredMixin, FormView):
    """The center answers (or corrects the record, then answers); the coordinator closes."""

    template_name = "clinical/query_detail.html"
    form_class = QueryAnswerForm

    @cached_property
    def query(self):
        return get_object_or_404(DataQuery.objects.for_user(self.request.user).select_related("patient"), pk=self.kwargs["pk"])

    def get_context_data(self, **kwargs):
        query = self.query
        return super().get_context_data(
            query=query,
            can_answer=query.status != DataQuery.Status.CLOSED and query.patient.center_id in center_ids_for(self.request.user, write=True),
            can_close=self.request.user.is_coordinator and query.status != DataQuery.Status.CLOSED,
            **kwargs,
        )

    def post(self, request, *args, **kwargs):
        query = self.query
        if "close" in request.POST:
            if not request.user.is_coordinator:
                raise PermissionDenied
            query.close()
            messages.success(request, _("Query closed."))
            return redirect(query.patient)
        require_write(request.user, query)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        self.query.answer_with(self.request.user, form.cleaned_data["answer"])
        messages.success(self.request, _("Answer sent to the coordinator."))
        return redirect(self.query.patient)


class QueryListView(LoginRequiredMixin, TemplateView):
    """Open and answered queries of the centers the user can see."""

    template_name = "clinical/query_list.html"

    def get_context_data(self, **kwargs):
        queries = (
            DataQuery.objects.for_user(self.request.user)
            .exclude(status=DataQuery.Status.CLOSED)
            .select_related("patient", "raised_by")
            .order_by("status", "-raised_at")[:500]
        )
        return super().get_context_data(queries=queries, **kwargs)
