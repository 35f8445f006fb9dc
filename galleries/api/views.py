"""Staff API for galleries: /api/v1/studios/{studio_slug}/galleries/..."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import FileResponse, HttpResponse, HttpResponseRedirect
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from galleries import selectors, services
from galleries.api.serializers import (
    AssetIdsSerializer,
    AssetRatingsSerializer,
    CompleteRequestSerializer,
    CompleteResponseSerializer,
    FolderSerializer,
    GallerySerializer,
    MediaUrls,
    MoveSerializer,
    OptionalAssetIdsSerializer,
    PresignRequestSerializer,
    PresignResponseSerializer,
    RotateCodeSerializer,
    SelectionSerializer,
    SetCoverSerializer,
    StaffAssetSerializer,
    StorageSerializer,
    UploadBatchSerializer,
    VisitorSerializer,
    staff_asset_dicts,
)
from galleries.filtersets import GalleryFilterSet, StaffAssetFilterSet
from galleries.media import media_response
from galleries.models import Asset, Folder, Gallery, Selection, UploadBatch, Visitor
from galleries.services.sharing import gallery_send
from studio.api.base import StudioAPIView, StudioViewSet
from studio.sql_templates import TemplatedRows

GALLERY = ("gallery", Gallery)

_WRITE = {"POST": "gallery:write", "PUT": "gallery:write", "PATCH": "gallery:write", "DELETE": "gallery:write"}


# The send action's body and answer, used by that action only.


class GallerySendSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000, trim_whitespace=True)


class GallerySentSerializer(serializers.Serializer):
    sent_to = serializers.ListField(child=serializers.EmailField(), help_text="The addresses the email went to.")


@extend_schema(tags=["galleries"])
class GalleryViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    StudioViewSet,
):
    """Galleries of the studio. Publishing, unpublishing, rotating the code and
    deleting need gallery:admin; editing needs gallery:write."""

    model = Gallery
    serializer_class = GallerySerializer
    filterset_class = GalleryFilterSet
    scope_map = {"GET": "gallery:read", **_WRITE, "DELETE": "gallery:admin"}
    action_scopes = {
        "publish": "gallery:admin",
        "unpublish": "gallery:admin",
        "rotate_code": "gallery:admin",
        "set_cover": "gallery:write",
        "reopen_selection": "gallery:admin",
        "regenerate": "gallery:write",
        "send": "gallery:write",
    }

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        return selectors.galleries_with_counts(queryset)

    def _fields(self, data: dict[str, Any]) -> dict[str, Any]:
        data = dict(data)
        if "pin" in data:
            data["pin"] = data["pin"] or ""
        return data

    def perform_create(self, serializer: GallerySerializer) -> None:
        serializer.instance = services.gallery_create(actor=self.membership, **self._fields(serializer.validated_data))

    def perform_update(self, serializer: GallerySerializer) -> None:
        # The code, PIN and visibility rule (gallery:admin) is the service's.
        serializer.instance = services.gallery_update(
            actor=self.membership, gallery=serializer.instance, **self._fields(serializer.validated_data)
        )

    def perform_destroy(self, instance: Gallery) -> None:
        services.gallery_delete(gallery=instance)

    def _respond(self, gallery: Gallery) -> Response:
        return Response(self.get_serializer(self.get_queryset().get(pk=gallery.pk)).data)

    @extend_schema(request=None, responses=GallerySerializer)
    @action(detail=True, methods=["post"])
    def publish(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._respond(services.gallery_publish(gallery=self.get_object()))

    @extend_schema(request=None, responses=GallerySerializer)
    @action(detail=True, methods=["post"])
    def unpublish(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Back to draft: every client session and media link stops working."""
        return self._respond(services.gallery_unpublish(gallery=self.get_object()))

    @extend_schema(request=RotateCodeSerializer, responses=GallerySerializer)
    @action(detail=True, methods=["post"], url_path="rotate-code")
    def rotate_code(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = RotateCodeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        gallery = services.gallery_rotate_code(
            actor=self.membership,
            gallery=self.get_object(),
            access_code=serializer.validated_data.get("access_code", ""),
        )
        return self._respond(gallery)

    @extend_schema(request=SetCoverSerializer, responses=GallerySerializer)
    @action(detail=True, methods=["post"], url_path="set-cover")
    def set_cover(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        gallery = self.get_object()
        serializer = SetCoverSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        return self._respond(services.gallery_set_cover(gallery=gallery, asset=serializer.validated_data["asset"]))

    @extend_schema(request=None, responses=SelectionSerializer)
    @action(detail=True, methods=["post"], url_path="reopen-selection")
    def reopen_selection(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Reopen the finalised selection: the client may change ratings and folders again."""
        selection = services.selection_reopen(gallery=self.get_object(), user=request.user)
        return Response(SelectionSerializer(selection).data)

    @extend_schema(request=OptionalAssetIdsSerializer, responses={202: StaffAssetSerializer(many=True)})
    # The whole list, never a page: say so, or the schema documents a page.
    @action(detail=True, methods=["post"], url_path="regenerate-derivatives", pagination_class=None)
    def regenerate(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        gallery = self.get_object()
        ctx = {**self.get_serializer_context(), "gallery": gallery}
        serializer = OptionalAssetIdsSerializer(data=request.data, context=ctx)
        serializer.is_valid(raise_exception=True)
        assets = services.assets_regenerate(gallery=gallery, assets=serializer.validated_data.get("assets"))
        return Response(StaffAssetSerializer(assets, many=True, context=ctx).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=GallerySendSerializer, responses={202: GallerySentSerializer})
    @action(detail=True, methods=["post"])
    def send(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Email the gallery's link, code and expiry (and the note) to its client.
        The gallery must be published and have a client email. A second send
        within seconds (a double click) sends nothing new."""
        serializer = GallerySendSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rows = gallery_send(gallery=self.get_object(), actor=self.membership, **serializer.validated_data)
        return Response({"sent_to": [row.recipient for row in rows]}, status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=["galleries"])
class AssetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, StudioViewSet):
    """A gallery's photos with their processing status and rating summary."""

    model = Asset
    parent_lookup = GALLERY
    serializer_class = StaffAssetSerializer
    filterset_class = StaffAssetFilterSet
    scope_map = {"GET": "gallery:read", "DELETE": "gallery:write"}
    action_scopes = {"restore": "gallery:write", "purge": "gallery:write"}
    ordering = ("sort_order", "created_at")

    def _lists_bin(self) -> bool:
        value = self.request.query_params.get("in_bin", "") if getattr(self, "request", None) else ""
        return value.lower() in ("true", "1")

    def tenant_manager(self) -> Any:
        # restore and purge find the photo wherever it is, so one not in the
        # bin answers 409 NOT_IN_BIN (it exists), not 404.
        if getattr(self, "action", None) in ("restore", "purge") or self._lists_bin():
            return Asset.with_deleted
        return Asset.objects

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        return selectors.staff_assets(queryset, in_bin=self._lists_bin())

    # The lean read path, as the portal's (PortalAssetViewSet.list): the body
    # StaffAssetSerializer (the schema's) would give, without a serializer per
    # photo, from a compiled template unless a person is filtered on;
    # tests/test_lean_lists.py holds the two equal. A comment, not a
    # docstring: the schema takes an action's docstring as its description.
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        cleaned = StaffAssetFilterSet.cleaned(request.query_params)
        rows: Any
        if not StaffAssetFilterSet.templated(cleaned):
            filterset = StaffAssetFilterSet(request.query_params, queryset=self.get_queryset(), request=request)
            rows = selectors.staff_asset_rows(filterset.qs)
        else:
            values = {"studio": self.studio.pk, "gallery": self.gallery.pk}
            if cleaned.get("status"):
                # Sorted: one template whatever order they came in.
                values["status"] = sorted(set(cleaned["status"]))
            rows = TemplatedRows(
                selectors.LIST_TEMPLATES,
                selectors.staff_asset_list,
                values,
                shape={"in_bin": self._lists_bin(), "trashed": cleaned.get("trashed")},
                model=Asset,
            )
        page = self.paginate_queryset(rows)
        assert page is not None  # the API always pages
        urls = MediaUrls("api:gallery-asset-media", {"studio_slug": self.studio.slug, "gallery_pk": self.gallery.pk})
        return self.get_paginated_response(staff_asset_dicts(page, urls=urls))

    def perform_destroy(self, instance: Asset) -> None:
        """To the bin: restorable for STAFF_BIN_RETENTION_DAYS, then purged."""
        services.asset_delete(asset=instance)

    @extend_schema(request=None, responses={200: StaffAssetSerializer})
    @action(detail=True, methods=["post"])
    def restore(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Take a photo out of the bin. 409 NOT_IN_BIN if it is not there;
        409 DUPLICATE_CONTENT if the same file was uploaded again since."""
        asset = services.asset_restore(asset=self.get_object())
        restored = selectors.assets_with_rating_summary(Asset.objects.filter(pk=asset.pk)).get()
        return Response(self.get_serializer(restored).data)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["post"])
    def purge(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Delete a photo in the bin for good, with its files. 409 NOT_IN_BIN
        for a photo not in the bin (delete it first)."""
        services.asset_purge(asset=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["galleries"])
class AssetMediaView(StudioAPIView):
    """A photo's file: thumb, medium, large (WebP) or the original. Redirects
    to a short-lived storage URL (or streams it on the embedded default)."""

    model = Asset
    parent_lookup = GALLERY
    scope_map = {"GET": "gallery:read"}

    @extend_schema(
        responses={
            (302, "*/*"): OpenApiResponse(description="Redirect to the file"),
            (200, "image/*"): OpenApiResponse(OpenApiTypes.BINARY),
        }
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse | FileResponse | HttpResponseRedirect:
        asset = self.get_object()
        return media_response(asset, kwargs["variant"], download=request.query_params.get("download") == "1")


@extend_schema(tags=["galleries"])
class StorageView(StudioAPIView):
    """The studio's storage: bytes of originals and derivatives, bytes
    reserved for uploads on their way, photos, the quota and how full it is
    (``level``: ok, warning from 80%, critical from 95%). ``used_bytes`` is
    the figure uploads are checked against."""

    model = Asset
    serializer_class = StorageSerializer
    scope_map = {"GET": "gallery:read"}

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(StorageSerializer(selectors.storage_report(self.studio)).data)


@extend_schema(tags=["uploads"])
class UploadBatchViewSet(mixins.RetrieveModelMixin, StudioViewSet):
    """Uploads go straight to storage. POST asks for targets (up to 500 files),
    the client POSTs each file to its target, then calls complete; GET shows
    the batch's progress."""

    model = UploadBatch
    parent_lookup = GALLERY
    serializer_class = UploadBatchSerializer
    scope_map = {"GET": "gallery:read", "POST": "gallery:write"}

    @extend_schema(request=PresignRequestSerializer, responses={201: PresignResponseSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = PresignRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        files = [services.FileRequest(**f) for f in serializer.validated_data["files"]]
        result = services.upload_presign(gallery=self.gallery, files=files, user=request.user)
        body = {
            "batch": result.batch.pk,
            "targets": [
                {
                    "asset": asset.pk,
                    "filename": asset.original_filename,
                    "method": "POST",
                    "url": request.build_absolute_uri(target.url),  # S3's are absolute already
                    "fields": target.fields,
                    "expires_at": target.expires_at,
                }
                for asset, target in result.accepted
            ],
            "rejected": result.rejected,
        }
        return Response(PresignResponseSerializer(body).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        batch = self.get_object()
        for name, value in selectors.upload_batch_progress(batch).items():
            setattr(batch, name, value)
        return Response(UploadBatchSerializer(batch).data)

    @extend_schema(request=CompleteRequestSerializer, responses=CompleteResponseSerializer)
    @action(detail=True, methods=["post"])
    def complete(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Check the uploaded files; broken ones are deleted and reported."""
        serializer = CompleteRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.upload_complete(batch=self.get_object(), asset_ids=serializer.validated_data.get("assets"))
        body = {
            "processing": [a.pk for a in result.processing],
            "failed": [
                {"asset": a.pk, "filename": a.original_filename, "reason": reason} for a, reason in result.failed
            ],
            "missing": [a.pk for a in result.missing],
        }
        return Response(CompleteResponseSerializer(body).data)


@extend_schema(tags=["galleries"])
class RatingSummaryViewSet(mixins.ListModelMixin, StudioViewSet):
    """Each photo's ratings by every visitor, and the average."""

    model = Asset
    parent_lookup = GALLERY
    serializer_class = AssetRatingsSerializer
    scope_map = {"GET": "gallery:read"}
    ordering = ("sort_order", "created_at")

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        return selectors.assets_with_ratings(queryset)


@extend_schema(tags=["galleries"])
class SelectionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, StudioViewSet):
    model = Selection
    parent_lookup = GALLERY
    serializer_class = SelectionSerializer
    scope_map = {"GET": "gallery:read"}
    ordering = "-finalized_at"


@extend_schema(tags=["galleries"])
class VisitorViewSet(mixins.ListModelMixin, StudioViewSet):
    model = Visitor
    parent_lookup = GALLERY
    serializer_class = VisitorSerializer
    scope_map = {"GET": "gallery:read"}


@extend_schema(tags=["galleries"])
class FolderViewSet(
    mixins.ListModelMixin, mixins.CreateModelMixin, mixins.UpdateModelMixin, mixins.DestroyModelMixin, StudioViewSet
):
    """Folders of a gallery, made by staff (clients make theirs in the portal)."""

    model = Folder
    parent_lookup = GALLERY
    serializer_class = FolderSerializer
    scope_map = {"GET": "gallery:read", **_WRITE}
    action_scopes = {"add_assets": "gallery:write", "remove_assets": "gallery:write", "move_assets": "gallery:write"}
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    ordering = ("sort_order", "created_at")

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        return selectors.folders_with_counts(queryset)

    def perform_create(self, serializer: FolderSerializer) -> None:
        serializer.instance = services.folder_create(gallery=self.gallery, name=serializer.validated_data["name"])

    def perform_update(self, serializer: FolderSerializer) -> None:
        name = serializer.validated_data.get("name")
        if name is not None:
            serializer.instance = services.folder_rename(folder=serializer.instance, name=name)

    def perform_destroy(self, instance: Folder) -> None:
        services.folder_delete(folder=instance)

    def _assets(self, request: Request, serializer_class: type = AssetIdsSerializer) -> dict[str, Any]:
        serializer = serializer_class(
            data=request.data, context={**self.get_serializer_context(), "gallery": self.gallery}
        )
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    @extend_schema(request=AssetIdsSerializer, responses={204: None})
    @action(detail=True, methods=["post"], url_path="add")
    def add_assets(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.placements_add(folder=self.get_object(), assets=self._assets(request)["assets"])
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=AssetIdsSerializer, responses={204: None})
    @action(detail=True, methods=["post"], url_path="remove")
    def remove_assets(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.placements_remove(folder=self.get_object(), assets=self._assets(request)["assets"])
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=MoveSerializer, responses={204: None})
    @action(detail=True, methods=["post"], url_path="move")
    def move_assets(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = self._assets(request, MoveSerializer)
        services.placements_move(source=self.get_object(), target=data["to"], assets=data["assets"])
        return Response(status=status.HTTP_204_NO_CONTENT)
