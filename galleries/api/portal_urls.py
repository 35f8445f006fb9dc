"""Client routes, under /api/v1/portal/."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from galleries.api import export_views, face_views
from galleries.api import portal_views as views
from galleries.api import urls as _staff_urls  # noqa: F401 - registers the <variant:> converter

router = SimpleRouter(use_regex_path=False)
router.register("assets", views.PortalAssetViewSet, basename="portal-asset")
router.register("folders", views.PortalFolderViewSet, basename="portal-folder")
router.register("exports", export_views.PortalExportViewSet, basename="portal-export")

urlpatterns = [
    path("access/", views.PortalAccessView.as_view(), name="portal-access"),
    path("galleries/<uuid:gallery_pk>/open/", views.PortalOpenView.as_view(), name="portal-open"),
    path("galleries/<uuid:gallery_pk>/", views.PortalGalleryView.as_view(), name="portal-gallery"),
    path(
        "galleries/<uuid:gallery_pk>/assets/<uuid:pk>/media/<variant:variant>/",
        views.PortalMediaView.as_view(),
        name="portal-asset-media",
    ),
    path("galleries/<uuid:gallery_pk>/selection/", views.PortalSelectionView.as_view(), name="portal-selection"),
    path("galleries/<uuid:gallery_pk>/find-me/", face_views.FindMeView.as_view(), name="portal-find-me"),
    path(
        "galleries/<uuid:gallery_pk>/find-me/not-me/",
        face_views.FindMeNotMeView.as_view(),
        name="portal-find-me-not-me",
    ),
    path("galleries/<uuid:gallery_pk>/", include(router.urls)),
]
