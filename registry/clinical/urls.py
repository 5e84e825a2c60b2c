from django.urls import path

from . import monitoring, views
from .models import AdverseEvent, DoseChange, PriorTreatment, Visit

urlpatterns = [
    path("", views.HomeView.as_view(), name="home"),
    path("centers/<slug:code>/", views.CenterHomeView.as_view(), name="center-home"),
    path("centers/<slug:code>/patients/new/", views.PatientCreateView.as_view(), name="patient-create"),
    path("patients/<slug:code>/", views.PatientDetailView.as_view(), name="patient-detail"),
    path("patients/<slug:code>/edit/", views.PatientUpdateView.as_view(), name="patient-update"),
    path("patients/<slug:code>/episodes/new/", views.EpisodeCreateView.as_view(), name="episode-create"),
    path("patients/<slug:code>/visits/new/", views.VisitCreateView.as_view(), name="visit-create"),
    path("patients/<slug:code>/adverse-events/new/", views.AdverseEventCreateView.as_view(), name="adverse-event-create"),
    path("patients/<slug:code>/prior-treatments/new/", views.PriorTreatmentCreateView.as_view(), name="prior-treatment-create"),
    path("episodes/<int:pk>/edit/", views.EpisodeUpdateView.as_view(), name="episode-update"),
    path("episodes/<int:pk>/stop/", views.EpisodeStopView.as_view(), name="episode-stop"),
    path("episodes/<int:pk>/escalate/", views.DoseChangeCreateView.as_view(direction=1), name="episode-escalate"),
    path("episodes/<int:pk>/de-escalate/", views.DoseChangeCreateView.as_view(direction=-1), name="episode-deescalate"),
    path("dose-changes/<int:pk>/edit/", views.DoseChangeUpdateView.as_view(), name="dose-change-update"),
    path("dose-changes/<int:pk>/delete/", views.RecordDeleteView.as_view(model=DoseChange), name="dose-change-delete"),
    path("visits/<int:pk>/edit/", views.VisitUpdateView.as_view(), name="visit-update"),
    path("visits/<int:pk>/delete/", views.RecordDeleteView.as_view(model=Visit), name="visit-delete"),
    path("adverse-events/<int:pk>/edit/", views.AdverseEventUpdateView.as_view(), name="adverse-event-update"),
    path("adverse-events/<int:pk>/delete/", views.RecordDeleteView.as_view(model=AdverseEvent), name="adverse-event-delete"),
    path("prior-treatments/<int:pk>/edit/", views.PriorTreatmentUpdateView.as_view(), name="prior-treatment-update"),
    path("prior-treatments/<int:pk>/delete/", views.RecordDeleteView.as_view(model=PriorTreatment), name="prior-treatment-delete"),
    path("patients/<slug:code>/sign/", monitoring.SignPatientView.as_view(), name="patient-sign"),
    path("history/<slug:kind>/<str:key>/", monitoring.RecordHistoryView.as_view(), name="record-history"),
    path("queries/", monitoring.QueryListView.as_view(), name="query-list"),
    path("queries/<int:pk>/", monitoring.QueryDetailView.as_view(), name="query-detail"),
    path("queries/new/<slug:kind>/<str:key>/", monitoring.QueryCreateView.as_view(), name="query-create"),
]
