"""URL routes: the admin is the application; /health/ for monitors."""

from django.contrib import admin
from django.urls import path

from metrics import views as metric_views
from ops.health import HealthView

urlpatterns = [
    # Metric overview lives under /admin/ (staff who may view tickets) but outside any ModelAdmin.
    path(
        "admin/metrics/overview/",
        admin.site.admin_view(metric_views.overview),
        name="metrics_overview",
    ),
    path(
        "admin/metrics/definition/<str:key>/",
        admin.site.admin_view(metric_views.definition),
        name="metrics_definition",
    ),
    path("admin/", admin.site.urls),
    path("health/", HealthView.as_view(), name="health"),
]
