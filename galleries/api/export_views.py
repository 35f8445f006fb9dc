"""Exports over the API: ask for one, list, poll, cancel, download.

- staff: /api/v1/studios/{studio_slug}/galleries/{gallery_pk}/exports/...
  (gallery:read to list, poll and download; gallery:write to ask and cancel),
  and /api/v1/studios/{studio_slug}/exports/, every export of the studio;
- clients: /api/v1/portal/galleries/{gallery_pk}/exports/..., their own
  exports only, ZIPs only, in the sizes the gallery allows.

The work is galleries.services.exports'; these views only translate.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from galleries.api.portal_base import PortalViewSet
from galleries.api.serializers import ExportRequestSerializer, ExportSerializer, PortalExportRequestSerializer
from galleries.media import stored_file_response
from galleries.models import Export, Folder, Gallery
from galleries.selectors import visible_folders
from galleries.services.exports import export_cancel, export_download, export_request
from studio.api.base import StudioViewSet
from studio.api.schema import ErrorSerializer

_DOWNLOAD_RESPONSES = {
    (302, "*/*"): OpenApiResponse(description="Redirect to a short-lived link to the file"),
    # The file itself on the embedded default, typed by its kind.
    **{
        (200, media_type): OpenApiResponse(OpenApiTypes.BINARY, description="The file (embedded default)")
        for media_type in ("application/zip", "text/csv", "application/pdf", "text/plain", "application/octet-stream")
    },
    409: OpenApiResponse(ErrorSerializer, description="EXPORT_NOT_READY: not done (yet)."),
    410: OpenApiResponse(ErrorSerializer, description="EXPORT_EXPIRED: the file was deleted after its expiry."),
}
_CREATE_RESPONSES = {
    201: OpenApiResponse(ExportSerializer, description="A new export, queued."),
    200: OpenApiResponse(ExportSerializer, description="The identical export already queued or running."),
}
_CANCEL_RESPONSES = {
    200: ExportSerializer,
    409: OpenApiResponse(ErrorSerializer, description="EXPORT_FINISHED: it already ended."),
}


def file_response(export: Export) -> HttpResponse:
    """The finished file: on S3 a redirect to a presigned GET that names the
    file (EXPORT_URL_TTL_SECONDS); on the embedded default the file itself."""
    response = stored_file_response(export.file_key, ttl=settings.EXPORT_URL_TTL_SECONDS, filename=export.filename)
    # Each download is checked and audited: never answered from a cache.
    response["Cache-Control"] = "private, no-store"
    return response


class _ExportActions:
    """What the staff and portal viewsets share; each says who asks."""

    request_serializer: type[ExportRequestSerializer] = ExportRequestSerializer
    ordering = "-created_at"

    def _requester(self) -> dict[str, Any]:
        raise NotImplementedError

    def _folders(self) -> QuerySet[Folder]:
        raise NotImplementedError

    def _answer(self, export: Export, code: int = status.HTTP_200_OK) -> Response:
        # Read again: on the embedded default (eager tasks) the export may
        # have run to the end inside the request that asked for it.
        fresh = self.get_queryset().get(pk=export.pk)  # type: ignore[attr-defined]
        return Response(self.get_serializer(fresh).data, status=code)  # type: ignore[attr-defined]

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        context = {**self.get_serializer_context(), "folders": self._folders()}  # type: ignore[attr-defined]
        serializer = self.request_serializer(data=request.data, context=context)
        serializer.is_valid(raise_exception=True)
        export, created = export_request(gallery=self.gallery, **serializer.validated_data, **self._requester())  # type: ignore[attr-defined]
        return self._answer(export, status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    def cancel(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._answer(export_cancel(export=self.get_object()))  # type: ignore[attr-defined]

    def download(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        export = export_download(export=self.get_object(), visitor=self._requester().get("visitor"))  # type: ignore[attr-defined]
        return file_response(export)


@extend_schema(tags=["exports"])
class ExportViewSet(_ExportActions, mixins.ListModelMixin, mixins.RetrieveModelMixin, StudioViewSet):
    """Exports of a gallery (CSV, Lightroom list, PDF contact sheet, ZIP),
    newest first, whoever asked. POST asks for one; poll it until ``status``
    is done, then follow ``download_url``."""

    model = Export
    parent_lookup = ("gallery", Gallery)
    serializer_class = ExportSerializer
    scope_map = {"GET": "gallery:read", "POST": "gallery:write"}
    action_scopes = {"cancel": "gallery:write", "download": "gallery:read"}

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        return queryset.select_related("gallery")

    def _requester(self) -> dict[str, Any]:
        return {"user": self.request.user}

    def _folders(self) -> QuerySet[Folder]:
        return Folder.objects.filter(gallery=self.gallery)

    @extend_schema(request=ExportRequestSerializer, responses=_CREATE_RESPONSES)
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    @extend_schema(request=None, responses=_CANCEL_RESPONSES)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Queued: cancelled at once. Running: stops at the next photo (poll for cancelled)."""
        return super().cancel(request, *args, **kwargs)

    @extend_schema(responses=_DOWNLOAD_RESPONSES)
    @action(detail=True, methods=["get"])
    def download(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        """The file, once done (audited)."""
        return super().download(request, *args, **kwargs)


@extend_schema(tags=["exports"])
class StudioExportViewSet(mixins.ListModelMixin, StudioViewSet):
    """Every export of the studio, newest first, whoever asked (staff or clients)."""

    model = Export
    serializer_class = ExportSerializer
    scope_map = {"GET": "gallery:read"}
    ordering = "-created_at"


@extend_schema(tags=["portal"])
class PortalExportViewSet(_ExportActions, mixins.ListModelMixin, mixins.RetrieveModelMixin, PortalViewSet):
    """Your downloads of this gallery: ZIPs of the whole gallery, a folder
    you see, or the finalised selection, in the sizes the studio allows.
    Only your own are listed; poll until ``status`` is done."""

    model = Export
    serializer_class = ExportSerializer
    request_serializer = PortalExportRequestSerializer

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        # Another visitor's export is not there for you: 404.
        return queryset.filter(requested_by_visitor=self.visitor).select_related("gallery")

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "portal": True}

    def _requester(self) -> dict[str, Any]:
        return {"visitor": self.visitor}

    def _folders(self) -> QuerySet[Folder]:
        return visible_folders(Folder.objects.filter(gallery=self.gallery), gallery=self.gallery, visitor=self.visitor)

    @extend_schema(request=PortalExportRequestSerializer, responses=_CREATE_RESPONSES)
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    @extend_schema(request=None, responses=_CANCEL_RESPONSES)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().cancel(request, *args, **kwargs)

    @extend_schema(responses=_DOWNLOAD_RESPONSES)
    @action(detail=True, methods=["get"])
    def download(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        return super().download(request, *args, **kwargs)
