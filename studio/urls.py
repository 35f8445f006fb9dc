from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from studio import metrics, views

handler400 = "studio.errors.handler400"
handler403 = "studio.errors.handler403"
handler404 = "studio.errors.handler404"
handler500 = "studio.errors.handler500"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("invitations/", include("teams.urls")),
    path("uploads/", include("galleries.urls")),
    path("", include("galleries.page_urls")),
    path("", include("bookings.urls")),
    path("api/v1/", include(("studio.api.urls", "api"), namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its bootstrap as a script file: no inline script under our CSP.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
]
