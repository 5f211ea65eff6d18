from django.contrib import admin
from django.urls import path, re_path

from linnet_site import pages
from linnet_site.api import api, api_not_found
from sessions_app import console, views

urlpatterns = [
    path("", pages.live_client, name="live-client"),
    path("sessions/<str:session_id>/", pages.session_page, name="session-page"),
    path("favicon.ico", pages.FaviconRedirect.as_view()),
    path("admin/live/", admin.site.admin_view(console.live_dashboard), name="admin-live"),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    re_path(r"^api/(?P<rest>.*)$", api_not_found),
    path("healthz", views.healthz),
    path("readyz", views.readyz),
    path("metrics", views.metrics_view),
]
