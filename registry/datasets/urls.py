from django.urls import path

from . import views

urlpatterns = [
    path("import/", views.ImportUploadView.as_view(), name="dataset-import"),
    path("import/confirm/", views.ImportConfirmView.as_view(), name="dataset-import-confirm"),
    path("import/cancel/", views.ImportCancelView.as_view(), name="dataset-import-cancel"),
]
