"""/api/v1/: platform endpoints, and every app's studio-owned endpoints under
studios/<studio_slug>/."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from studio.api import views

router = SimpleRouter(use_regex_path=False)
router.register("me/tokens", views.ApiTokenViewSet, basename="api-token")
router.register("studios", views.StudioListView, basename="studio")

studio_patterns = [
    path("", views.StudioDetailView.as_view(), name="studio-detail"),
    path("", include("teams.api.urls")),
    path("", include("audit.api.urls")),
    path("", include("galleries.api.urls")),
    path("", include("bookings.api.urls")),
]

urlpatterns = [
    path("me/", views.MeView.as_view(), name="me"),
    path("", include("teams.api.public_urls")),
    path("studios/<slug:studio_slug>/", include(studio_patterns)),
    path("portal/", include("galleries.api.portal_urls")),
    path("public/", include("bookings.api.public_urls")),
    *router.urls,
]
