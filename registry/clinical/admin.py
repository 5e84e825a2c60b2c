"""Django admin for study set-up and support. Patient data stay center-scoped here too."""
from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from .models import AdverseEvent, DoseChange, Patient, PriorTreatment, TreatmentEpisode, Visit


class ScopedAdmin(SimpleHistoryAdmin):
    """Admin lists go through the same scoping as the views: staff see their centers only."""

    def get_queryset(self, request):
        return self.model.objects.for_user(request.user)


class DoseChangeInline(admin.TabularInline):
    model = DoseChange
    extra = 0


@admin.register(Patient)
class PatientAdmin(ScopedAdmin):
    list_display = ("code", "center", "sex", "birth_year", "enrolled_on")
    list_filter = ("center", "sex")
    search_fields = ("code",)


@admin.register(TreatmentEpisode)
class TreatmentEpisodeAdmin(ScopedAdmin):
    list_display = ("code", "drug", "start_dose_mg", "start_date", "end_date", "end_reason")
    list_filter = ("drug", "patient__center")
    search_fields = ("code", "patient__code")
    raw_id_fields = ("patient",)
    inlines = [DoseChangeInline]


@admin.register(Visit)
class VisitAdmin(ScopedAdmin):
    list_display = ("patient", "date", "iga", "easi", "scorad", "pruritus_nrs", "dlqi")
    list_filter = ("patient__center",)
    search_fields = ("patient__code",)
    raw_id_fields = ("patient",)
    date_hierarchy = "date"


@admin.register(AdverseEvent)
class AdverseEventAdmin(ScopedAdmin):
    list_display = ("patient", "term", "onset_date", "severity", "serious", "outcome")
    list_filter = ("term", "severity", "serious", "patient__center")
    search_fields = ("patient__code",)
    raw_id_fields = ("patient", "episode")


@admin.register(PriorTreatment)
class PriorTreatmentAdmin(ScopedAdmin):
    list_display = ("patient", "drug", "start_date", "end_date", "stop_reason")
    raw_id_fields = ("patient",)
