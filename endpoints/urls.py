"""Dashboards, mounted at /dashboards/ (registry/urls.py).

Center dashboards take the center code, so the scoping walk (tests/test_scoping.py) can
check them like every other center-scoped page; the pooled ones take nothing.
"""
from django.urls import path

from . import views

urlpatterns = [
    path("", views.IndexView.as_view(), name="dashboards"),
    path("centers/<slug:code>/", views.DashboardView.as_view(), name="center-dashboard"),
    path("centers/<slug:code>/status/", views.StatusView.as_view(), name="center-dashboard-status"),
    path("centers/<slug:code>/live/", views.LiveView.as_view(), name="center-dashboard-live"),
    path("centers/<slug:code>/csv/", views.CsvView.as_view(), name="center-dashboard-csv"),
    path("pooled/", views.DashboardView.as_view(pooled=True), name="pooled-dashboard"),
    path("pooled/status/", views.StatusView.as_view(pooled=True), name="pooled-dashboard-status"),
    path("pooled/live/", views.LiveView.as_view(pooled=True), name="pooled-dashboard-live"),
    path("pooled/csv/", views.CsvView.as_view(pooled=True), name="pooled-dashboard-csv"),
]
