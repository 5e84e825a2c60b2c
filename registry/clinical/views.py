"""Data entry for site investigators. Thin views: scoping comes from the queryset, validation
from the models, and every record is reached through ``for_user``."""
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, redirect
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _
from django.views.generic import CreateView, DeleteView, DetailView, ListView, UpdateView

from registry.centers.models import Center
from registry.core.scoping import CenterScopedMixin, center_ids_for, is_center_pi, require_write

from .forms import (
    AdverseEventForm,
    DeleteForm,
    DoseChangeForm,
    EpisodeForm,
    EpisodeStartForm,
    EpisodeStopForm,
    PatientForm,
    PriorTreatmentForm,
    VisitForm,
)
from .models import (
    AdverseEvent,
    DataQuery,
    Signature,
    DoseChange,
    Patient,
    PriorTreatment,
    StaleRecord,
    TreatmentEpisode,
    Visit,
)


def with_follow_up(patients):
    """Prefetch what the list and the timeline read, in a fixed number of queries."""
    return patients.select_related("center").prefetch_related(
        Prefetch(
            "episodes",
            queryset=TreatmentEpisode.objects.prefetch_related("dose_changes").order_by("start_date"),
        ),
        "visits",
        "adverse_events",
        "prior_treatments",
        Prefetch("signatures", queryset=Signature.objects.select_related("signed_by")),
    )


class HomeView(LoginRequiredMixin, ListView):
    """The centers a user works at; a single-center user goes straight to their center."""

    template_name = "clinical/home.html"
    context_object_name = "centers"

    def get_queryset(self):
        return Center.objects.for_user(self.request.user)

    def get(self, request, *args, **kwargs):
        centers = list(self.get_queryset()[:2])
        if len(centers) == 1 and not request.user.is_coordinator:
            return redirect("center-home", code=centers[0].code)
        return super().get(request, *args, **kwargs)


class CenterHomeView(LoginRequiredMixin, ListView):
    """A center's patients: search by code, last visit, current treatment, what is missing."""

    template_name = "clinical/center_home.html"
    context_object_name = "patients"
    paginate_by = 50

    @cached_property
    def center(self):
        return get_object_or_404(Center.objects.for_user(self.request.user), code=self.kwargs["code"])

    def get_queryset(self):
        patients = Patient.objects.for_user(self.request.user).filter(center=self.center)
        query = self.request.GET.get("q", "").strip()
        if query:
            patients = patients.filter(code__icontains=query)
        # Only what the list shows (last visit, current treatment, what is missing): the episodes
        # with their dose changes here, the visits' dates in paginate_queryset, and none of the
        # patient page's other records. Dose changes unordered: they are sorted in Python, and
        # their default ordering (by patient code) joined two tables and sorted in the database.
        return patients.select_related("center").prefetch_related(
            Prefetch(
                "episodes",
                queryset=TreatmentEpisode.objects.prefetch_related(
                    Prefetch("dose_changes", queryset=DoseChange.objects.order_by())
                ).order_by("start_date"),
            ),
        ).order_by("code")

    def paginate_queryset(self, queryset, page_size):
        """The page's patients, with their visit dates read in one query."""
        paginator, page, patients, is_paginated = super().paginate_queryset(queryset, page_size)
        page.object_list = Patient.with_visit_dates(patients)
        return paginator, page, page.object_list, is_paginated

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            center=self.center,
            query=self.request.GET.get("q", ""),
            can_write=self.center.pk in center_ids_for(self.request.user, write=True),
            queries=DataQuery.objects.for_user(self.request.user)
            .filter(patient__center=self.center)
            .exclude(status=DataQuery.Status.CLOSED)
            .select_related("patient", "raised_by")[:50],
            **kwargs,
        )


class RecordViewMixin(LoginRequiredMixin, CenterScopedMixin):
    template_name = "clinical/record_form.html"
    title = ""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(title=self.title, **kwargs)
        context["record_patient"] = self.record_patient(context["form"].instance)
        return context

    @staticmethod
    def record_patient(instance):
        """The patient a form's record belongs to (for the breadcrumb), if any yet."""
        if isinstance(instance, Patient):
            return instance if instance.pk else None
        if isinstance(instance, DoseChange):
            return instance.episode.patient
        return instance.patient

    def get_success_url(self):
        return self.object.get_absolute_url()

    def form_valid(self, form):
        try:
            response = super().form_valid(form)
        except StaleRecord:
            form.show_concurrent_change(self.model._base_manager.get(pk=form.instance.pk))
            return self.form_invalid(form)
        messages.success(self.request, _("Saved: %(record)s.") % {"record": self.object})
        return response


class ChildCreateMixin(RecordViewMixin):
    """Create a record under a parent (center, patient, episode) the user may write to.

    The parent comes from the URL through the scoped queryset: another center's parent is a
    404, a read-only member gets a 403, and the new record's center is never POSTed.
    """

    parent_model = Patient
    parent_lookup = "code"
    parent_field = "patient"

    @cached_property
    def parent(self):
        parent = get_object_or_404(
            self.parent_model.objects.for_user(self.request.user),
            **{self.parent_lookup: self.kwargs[self.parent_lookup]},
        )
        require_write(self.request.user, parent)
        return parent

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            self.parent  # 404 / 403 before anything else
        return super().dispatch(request, *args, **kwargs)

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        kwargs["instance"] = self.model(**{self.parent_field: self.parent})
        return kwargs

    def get_context_data(self, **kwargs):
        return super().get_context_data(parent=self.parent, **kwargs)


class RecordUpdateMixin(RecordViewMixin):
    writes = True


# Patients ---------------------------------------------------------------------------------


class PatientCreateView(ChildCreateMixin, CreateView):
    model = Patient
    form_class = PatientForm
    parent_model = Center
    parent_field = "center"
    title = _("New patient")


class PatientDetailView(LoginRequiredMixin, CenterScopedMixin, DetailView):
    model = Patient
    slug_field = slug_url_kwarg = "code"
    template_name = "clinical/patient_detail.html"

    def get_queryset(self):
        return with_follow_up(super().get_queryset())

    def get_context_data(self, **kwargs):
        patient = self.object
        return super().get_context_data(
            can_write=patient.center_id in center_ids_for(self.request.user, write=True),
            can_sign=is_center_pi(self.request.user, patient.center_id),
            open_queries=patient.queries.exclude(status=DataQuery.Status.CLOSED),
            **kwargs,
        )


class PatientUpdateView(RecordUpdateMixin, UpdateView):
    model = Patient
    form_class = PatientForm
    slug_field = slug_url_kwarg = "code"
    title = _("Edit patient")


# Treatment episodes and dose changes --------------------------------------------------------


class EpisodeCreateView(ChildCreateMixin, CreateView):
    model = TreatmentEpisode
    form_class = EpisodeStartForm
    title = _("Start treatment")


class EpisodeUpdateView(RecordUpdateMixin, UpdateView):
    model = TreatmentEpisode
    form_class = EpisodeForm
    title = _("Edit treatment episode")


class EpisodeStopView(RecordUpdateMixin, UpdateView):
    model = TreatmentEpisode
    form_class = EpisodeStopForm
    title = _("Stop treatment")


class DoseChangeCreateView(ChildCreateMixin, CreateView):
    model = DoseChange
    form_class = DoseChangeForm
    parent_model = TreatmentEpisode
    parent_lookup = "pk"
    parent_field = "episode"
    direction = 1

    @property
    def title(self):
        return _("Escalate dose") if self.direction == 1 else _("De-escalate dose")

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "direction": self.direction}

    def get_success_url(self):
        return self.parent.get_absolute_url()


class DoseChangeUpdateView(RecordUpdateMixin, UpdateView):
    model = DoseChange
    form_class = DoseChangeForm
    title = _("Edit dose change")

    def get_success_url(self):
        return self.object.episode.get_absolute_url()


# Visits, adverse events, prior treatments ---------------------------------------------------


class VisitCreateView(ChildCreateMixin, CreateView):
    model = Visit
    form_class = VisitForm
    title = _("New visit")


class VisitUpdateView(RecordUpdateMixin, UpdateView):
    model = Visit
    form_class = VisitForm
    title = _("Edit visit")


class AdverseEventCreateView(ChildCreateMixin, CreateView):
    model = AdverseEvent
    form_class = AdverseEventForm
    title = _("New adverse event")


class AdverseEventUpdateView(RecordUpdateMixin, UpdateView):
    model = AdverseEvent
    form_class = AdverseEventForm
    title = _("Edit adverse event")


class PriorTreatmentCreateView(ChildCreateMixin, CreateView):
    model = PriorTreatment
    form_class = PriorTreatmentForm
    title = _("Add prior systemic treatment")

    def get_success_url(self):
        return self.parent.get_absolute_url()


class PriorTreatmentUpdateView(RecordUpdateMixin, UpdateView):
    model = PriorTreatment
    form_class = PriorTreatmentForm
    title = _("Edit prior systemic treatment")

    def get_success_url(self):
        return self.object.patient.get_absolute_url()


class RecordDeleteView(LoginRequiredMixin, CenterScopedMixin, DeleteView):
    """Delete a visit, event, dose change or prior treatment after confirmation (with a reason
    when the record is signed: the deletion and its reason stay in the audit trail)."""

    writes = True
    template_name = "clinical/record_confirm_delete.html"
    form_class = DeleteForm

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "record": self.object}

    def get_success_url(self):
        return self.object.patient.get_absolute_url()

    def form_valid(self, form):
        self.object._change_reason = form.cleaned_data["reason_for_change"]
        messages.success(self.request, _("Deleted: %(record)s.") % {"record": self.object})
        return super().form_valid(form)
