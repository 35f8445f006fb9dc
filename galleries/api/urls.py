"""Staff routes, under /api/v1/studios/<studio_slug>/."""

from django.urls import include, path, register_converter
from rest_framework.routers import SimpleRouter

from galleries.api import export_views, face_views, views


class VariantConverter:
    regex = "thumb|medium|large|original"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(VariantConverter, "variant")

router = SimpleRouter(use_regex_path=False)
router.register("galleries", views.GalleryViewSet, basename="gallery")
# Every export of the studio; each gallery's are under galleries/<gallery_pk>/exports/.
router.register("exports", export_views.StudioExportViewSet, basename="export")

nested = SimpleRouter(use_regex_path=False)
nested.register("assets", views.AssetViewSet, basename="gallery-asset")
nested.register("uploads", views.UploadBatchViewSet, basename="gallery-upload")
nested.register("ratings", views.RatingSummaryViewSet, basename="gallery-rating")
nested.register("selections", views.SelectionViewSet, basename="gallery-selection")
nested.register("visitors", views.VisitorViewSet, basename="gallery-visitor")
nested.register("folders", views.FolderViewSet, basename="gallery-folder")
nested.register("exports", export_views.ExportViewSet, basename="gallery-export")
nested.register("persons", face_views.PersonViewSet, basename="gallery-person")

urlpatterns = [
    *router.urls,
    path("storage/", views.StorageView.as_view(), name="storage"),
    path(
        "galleries/<uuid:gallery_pk>/assets/<uuid:pk>/media/<variant:variant>/",
        views.AssetMediaView.as_view(),
        name="gallery-asset-media",
    ),
    path(
        "galleries/<uuid:gallery_pk>/assets/<uuid:pk>/faces/",
        face_views.AssetFacesView.as_view(),
        name="gallery-asset-faces",
    ),
    path("face-settings/", face_views.StudioFacesView.as_view(), name="studio-face-settings"),
    path("galleries/<uuid:pk>/face-settings/", face_views.GalleryFacesView.as_view(), name="gallery-face-settings"),
    path(
        "galleries/<uuid:gallery_pk>/faces/<uuid:pk>/thumb/",
        face_views.FaceThumbView.as_view(),
        name="gallery-face-thumb",
    ),
    path("galleries/<uuid:gallery_pk>/", include(nested.urls)),
]
