"""Client (portal) API: /api/v1/portal/...

Opening a gallery gives a session bound to it; everything under
portal/galleries/{gallery_pk}/ then acts as that gallery's visitor.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from galleries import access, selectors, services
from galleries.api.portal_base import PortalAPIView, PortalViewSet
from galleries.api.serializers import (
    AssetIdsSerializer,
    BulkRatingSerializer,
    FolderOrderSerializer,
    MediaUrls,
    MoveSerializer,
    PortalAccessSerializer,
    PortalAssetSerializer,
    PortalFolderSerializer,
    PortalGallerySerializer,
    PortalOpenSerializer,
    RatingSerializer,
    SelectionSerializer,
    portal_asset_dicts,
)
from galleries.filtersets import PortalAssetFilterSet
from galleries.media import media_response
from galleries.models import Asset, AssetStatus, DownloadPermission, Folder, Gallery, Selection, Visitor
from studio.api.pagination import cursor_int
from studio.errors import DomainError
from studio.sql_templates import TemplatedRows
from studio.tenancy import studio_scope
from studio.throttling import AnonRateThrottle


class _CSRF(SessionAuthentication):
    pass


def _gallery_payload(gallery: Gallery, visitor: Visitor | None = None) -> dict[str, Any]:
    with studio_scope(gallery.studio):
        selection = selectors.live_selection(gallery)
        context: dict[str, Any] = {"finalized": selection is not None, "live_selection": selection}
        if visitor is not None:
            context["counts"] = selectors.portal_counts(gallery, visitor)
        return PortalGallerySerializer(gallery, context=context).data


@extend_schema(tags=["portal"])
class PortalAccessView(APIView):
    """Open a gallery with its code (and PIN when it has one). Starts a portal
    session bound to that gallery. Wrong guesses are throttled."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes = [AnonRateThrottle]

    @extend_schema(request=PortalAccessSerializer, responses=PortalGallerySerializer)
    def post(self, request: Request) -> Response:
        _CSRF().enforce_csrf(request)
        serializer = PortalAccessSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        gallery, visitor = access.open_with_code(
            request._request,
            studio_slug=data["studio"],
            code=data["code"],
            pin=data.get("pin", ""),
            name=data.get("name", ""),
            email=data.get("email", ""),
        )
        return Response(_gallery_payload(gallery, visitor))

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request) -> Response:
        """Leave: end the portal session."""
        access.leave(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["portal"])
class PortalOpenView(APIView):
    """Open an unlisted or public gallery from its link, without a code."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes = [AnonRateThrottle]

    @extend_schema(request=PortalOpenSerializer, responses=PortalGallerySerializer)
    def post(self, request: Request, gallery_pk: Any) -> Response:
        _CSRF().enforce_csrf(request)
        serializer = PortalOpenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        gallery, visitor = access.open_by_link(request._request, gallery_id=gallery_pk, **serializer.validated_data)
        return Response(_gallery_payload(gallery, visitor))


@extend_schema(tags=["portal"])
class PortalGalleryView(PortalAPIView):
    model = Gallery

    @extend_schema(responses=PortalGallerySerializer)
    def get(self, request: Request, gallery_pk: Any) -> Response:
        """The gallery, with the header's counts for you."""
        return Response(_gallery_payload(self.gallery, self.visitor))


@extend_schema(tags=["portal"])
class PortalAssetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PortalViewSet):
    """The gallery's photos, in the studio's order. Filters: min_stars (your
    rating at least N), unrated, folder, trashed (default: not trashed)."""

    model = Asset
    serializer_class = PortalAssetSerializer
    filterset_class = PortalAssetFilterSet
    ordering = ("sort_order", "created_at")

    # The folder order is an annotation: its cursor positions are checked here.
    cursor_positions = {"folder_position": cursor_int}

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        return selectors.portal_assets(queryset, visitor=self.visitor)

    # The lean read path: plain rows in, plain dicts out, the body
    # PortalAssetSerializer (the schema's) would give; tests/test_lean_lists.py
    # holds the two equal. The serializer on model instances cost about 30x
    # the page's SQL, and building and compiling the same queries on every
    # request about 10x (bench/gallery_list.py): the page's two queries run
    # from compiled templates (studio.sql_templates) unless a person or
    # find-me filter is on. A comment, not a docstring: the schema takes an
    # action's docstring as its description.
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        cleaned = PortalAssetFilterSet.cleaned(request.query_params)
        filters = PortalAssetFilterSet.portal_filters(cleaned)
        if filters["folder"] is not None:
            # A folder lists its photos in the folder's own order (what
            # reorder-assets sets), not the gallery's.
            self.ordering = ("folder_position", "sort_order", "created_at")
        ids = {"studio": self.studio.pk, "gallery": self.gallery.pk, "visitor": self.visitor.pk}
        shared = self.gallery.shared_selection
        rows: Any
        if not PortalAssetFilterSet.templated(cleaned):
            filterset = PortalAssetFilterSet(request.query_params, queryset=self.get_queryset(), request=request)
            rows = selectors.portal_asset_rows(filterset.qs)
        else:
            values = {**ids, **{name: filters[name] for name in ("min_stars", "folder") if filters[name] is not None}}
            rows = TemplatedRows(
                selectors.LIST_TEMPLATES,
                selectors.portal_asset_list,
                values,
                shape={"shared_selection": shared, "unrated": filters["unrated"], "trashed": filters["trashed"]},
                model=Asset,
                positions=self.cursor_positions,
            )
        page = self.paginate_queryset(rows)
        assert page is not None  # the API always pages
        placements = page and selectors.LIST_TEMPLATES.rows(
            selectors.portal_folder_placements, {**ids, "assets": [row["id"] for row in page]}, shared_selection=shared
        )
        data = portal_asset_dicts(
            page,
            urls=MediaUrls("api:portal-asset-media", {"gallery_pk": self.gallery.pk}),
            originals=self.gallery.download_permission == DownloadPermission.ORIGINALS,
            folders_by_asset=selectors.folder_ids_by_asset(placements),
        )
        return self.get_paginated_response(data)

    def _assets(self, request: Request, serializer_class: type = AssetIdsSerializer) -> dict[str, Any]:
        serializer = serializer_class(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    @extend_schema(request=RatingSerializer, responses={204: None}, methods=["PUT"])
    @extend_schema(request=None, responses={204: None}, methods=["DELETE"])
    @action(detail=True, methods=["put", "delete"])
    def rating(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """PUT {stars: 1-5} rates the photo; DELETE clears your rating."""
        asset = self.get_object()
        stars = None
        if request.method == "PUT":
            serializer = RatingSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            stars = serializer.validated_data["stars"]
        services.ratings_set(gallery=self.gallery, visitor=self.visitor, ratings=[(asset, stars)])
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=BulkRatingSerializer, responses={204: None})
    @action(detail=False, methods=["post"])
    def ratings(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Rate (or clear, with null) many photos in one call."""
        serializer = BulkRatingSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        items = serializer.validated_data["ratings"]
        ids = {item["asset"] for item in items}
        found = selectors.ready_assets_by_id(self.gallery, ids)
        missing = sorted(str(i) for i in ids - set(found))
        if missing:
            raise DomainError(
                "Some photos are not in this gallery.",
                code="VALIDATION_ERROR",
                fields={"ratings": [f"Unknown ids: {', '.join(missing)}."]},
            )
        services.ratings_set(
            gallery=self.gallery, visitor=self.visitor, ratings=[(found[i["asset"]], i["stars"]) for i in items]
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=AssetIdsSerializer, responses={204: None})
    @action(detail=False, methods=["post"])
    def trash(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.assets_trash(gallery=self.gallery, assets=self._assets(request)["assets"])
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=AssetIdsSerializer, responses={204: None})
    @action(detail=False, methods=["post"])
    def restore(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.assets_trash(gallery=self.gallery, assets=self._assets(request)["assets"], restore=True)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["portal"])
class PortalMediaView(PortalAPIView):
    """A photo's file for the client: thumb, medium and large to view;
    ?download=1 as the studio allows (web size, or originals)."""

    model = Asset

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        return queryset.filter(status=AssetStatus.READY)  # unchecked uploads are not the client's to see

    @extend_schema(
        responses={
            (302, "*/*"): OpenApiResponse(description="Redirect to the file"),
            (200, "image/*"): OpenApiResponse(OpenApiTypes.BINARY),
        }
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        asset = self.get_object()
        variant = kwargs["variant"]
        download = request.query_params.get("download") == "1"
        allowed = self.gallery.download_permission
        if variant == "original" and allowed != DownloadPermission.ORIGINALS:
            raise DomainError(
                "The studio has not made originals available.", code="DOWNLOAD_NOT_ALLOWED", status_code=403
            )
        if download and allowed == DownloadPermission.NONE:
            raise DomainError("The studio has not allowed downloads.", code="DOWNLOAD_NOT_ALLOWED", status_code=403)
        if asset.trashed_at is not None and download:
            raise DomainError("This photo is in your trash.", code="DOWNLOAD_NOT_ALLOWED", status_code=403)
        return media_response(asset, variant, download=download)


@extend_schema(tags=["portal"])
class PortalFolderViewSet(
    mixins.ListModelMixin, mixins.CreateModelMixin, mixins.UpdateModelMixin, mixins.DestroyModelMixin, PortalViewSet
):
    """The folders you see: the studio's (read-only to you), yours, and, when
    the studio shares the selection, the other visitors'. Writes are refused
    (409) once the selection is finalised."""

    model = Folder
    serializer_class = PortalFolderSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    ordering = ("sort_order", "created_at")

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        # Another visitor's private folder is not there for you: 404, like
        # another studio's object.
        visible = selectors.visible_folders(queryset, gallery=self.gallery, visitor=self.visitor)
        return selectors.folders_with_counts(visible)

    def perform_create(self, serializer: PortalFolderSerializer) -> None:
        serializer.instance = services.folder_create(
            gallery=self.gallery, name=serializer.validated_data["name"], visitor=self.visitor
        )

    def perform_update(self, serializer: PortalFolderSerializer) -> None:
        name = serializer.validated_data.get("name")
        if name is not None:
            serializer.instance = services.folder_rename(folder=serializer.instance, name=name, visitor=self.visitor)

    def perform_destroy(self, instance: Folder) -> None:
        services.folder_delete(folder=instance, visitor=self.visitor)

    def _assets(self, request: Request, serializer_class: type = AssetIdsSerializer) -> dict[str, Any]:
        serializer = serializer_class(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    @extend_schema(request=FolderOrderSerializer, responses={204: None})
    @action(detail=False, methods=["post"])
    def reorder(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = self._assets(request, FolderOrderSerializer)
        services.folders_reorder(gallery=self.gallery, folders=data["folders"], visitor=self.visitor)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=AssetIdsSerializer, responses={204: None})
    @action(detail=True, methods=["post"], url_path="add")
    def add_assets(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.placements_add(folder=self.get_object(), assets=self._assets(request)["assets"], visitor=self.visitor)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=AssetIdsSerializer, responses={204: None})
    @action(detail=True, methods=["post"], url_path="remove")
    def remove_assets(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.placements_remove(
            folder=self.get_object(), assets=self._assets(request)["assets"], visitor=self.visitor
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=MoveSerializer, responses={204: None})
    @action(detail=True, methods=["post"], url_path="move")
    def move_assets(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = self._assets(request, MoveSerializer)
        services.placements_move(
            source=self.get_object(), target=data["to"], assets=data["assets"], visitor=self.visitor
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=AssetIdsSerializer, responses={204: None})
    @action(detail=True, methods=["post"], url_path="reorder-assets")
    def reorder_assets(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The listed photos go first, in this order."""
        services.placements_reorder(
            folder=self.get_object(), assets=self._assets(request)["assets"], visitor=self.visitor
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["portal"])
class PortalSelectionView(PortalAPIView):
    """GET: the live (finalised) selection, or 404 while it is open.
    POST finalise: freeze your choice (rated or filed photos, not trashed)."""

    model = Selection

    @extend_schema(responses=SelectionSerializer)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        selection = selectors.live_selection(self.gallery)
        if selection is None:
            raise DomainError("Nothing is finalised yet.", code="NOT_FINALIZED", status_code=404)
        return Response(SelectionSerializer(selection).data)

    @extend_schema(request=None, responses={201: SelectionSerializer})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        selection = services.selection_finalize(gallery=self.gallery, visitor=self.visitor)
        return Response(SelectionSerializer(selection).data, status=status.HTTP_201_CREATED)
