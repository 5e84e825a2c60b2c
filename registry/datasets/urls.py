from django.urls import path

from . import export_views, views

urlpatterns = [
    path("import/", views.ImportUploadView.as_view(), name="dataset-import"),
    path("import/confirm/", views.ImportConfirmView.as_view(), name="dataset-import-confirm"),
    path("import/cancel/", views.ImportCancelView.as_view(), name="dataset-import-cancel"),
    path("export/", export_views.ExportStartView.as_view(), name="dataset-export"),
    path("exports/", export_views.ExportListView.as_view(), name="dataset-export-list"),
    path("exports/<int:pk>/", export_views.ExportDetailView.as_view(), name="dataset-export-detail"),
    path("exports/<int:pk>/status/", export_views.ExportStatusView.as_view(), name="dataset-export-status"),
    path("exports/<int:pk>/download/", export_views.ExportDownloadView.as_view(), name="dataset-export-download"),
]
