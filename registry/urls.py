from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("registry.clinical.urls")),
    path("accounts/", include("registry.accounts.urls")),
    path("dashboards/", include("endpoints.urls")),
    path("datasets/", include("registry.datasets.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
]
