"""People in photos over the API (issue 13).

Staff, under /api/v1/studios/{slug}/galleries/{gallery_pk}/: ``persons/``
(list, rename/hide/cover, merge, split), ``assets/{id}/faces/`` and each
face's crop. The portal, under /api/v1/portal/galleries/{gallery_pk}/:
``find-me/`` (the consent text; POST a selfie) and ``find-me/not-me/``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from django.conf import settings
from django.core.files.uploadhandler import MemoryFileUploadHandler
from django.db.models import Count, Q, QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.metadata import SimpleMetadata
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from galleries import services
from galleries.api.face_serializers import (
    FaceSerializer,
    FindMeInfoSerializer,
    FindMeRequestSerializer,
    FindMeResultSerializer,
    GalleryFacesSerializer,
    NotMeSerializer,
    PersonMergeSerializer,
    PersonSerializer,
    PersonSplitSerializer,
    StudioFacesSerializer,
)
from galleries.api.portal_base import PortalAPIView
from galleries.face_search import find_me_session_key
from galleries.media import stored_file_response
from galleries.models import Asset, AssetStatus, Face, Gallery, Person
from studio.api.base import StudioAPIView, StudioViewSet
from studio.api.parsers import JSONParser
from studio.errors import DomainError
from studio.throttling import SimpleRateThrottle

GALLERY = ("gallery", Gallery)


def _person_in(gallery: Gallery, person_id: Any, field: str) -> Person:
    person = Person.objects.filter(gallery=gallery, pk=person_id).first()
    if person is None:
        raise services.InvalidPerson(fields={field: ["Not a person of this gallery."]})
    return person


@extend_schema(tags=["people"])
class PersonViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin, StudioViewSet):
    """The people found in a gallery's photos, most photographed first,
    hidden ones last. The whole list, not paged: a gallery has tens to a few
    hundred. Filter the asset list with ?person=<id> for their photos."""

    model = Person
    parent_lookup = GALLERY
    serializer_class = PersonSerializer
    pagination_class = None
    scope_map: ClassVar[dict[str, str]] = {"GET": "gallery:read", "PATCH": "gallery:write"}
    action_scopes: ClassVar[dict[str, str]] = {"merge": "gallery:write", "split": "gallery:write"}
    http_method_names = ["get", "patch", "post", "head", "options"]

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        live = Q(faces__asset__deleted_at=None)
        return queryset.annotate(
            photo_count=Count("faces__asset", filter=live, distinct=True),
            live_face_count=Count("faces", filter=live, distinct=True),
        ).order_by("hidden", "-face_count", "created_at")

    def perform_update(self, serializer: PersonSerializer) -> None:
        data = dict(serializer.validated_data)
        if "cover_id" in data:
            data["cover"] = Face.objects.filter(gallery=self.gallery, pk=data.pop("cover_id")).first()
        serializer.instance = services.person_update(person=serializer.instance, **data)

    @extend_schema(request=PersonMergeSerializer, responses=PersonSerializer)
    @action(detail=True, methods=["post"])
    def merge(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Move all of this person's faces to ``into``; this person is gone."""
        serializer = PersonMergeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        into = _person_in(self.gallery, serializer.validated_data["into"], "into")
        merged = services.person_merge(person=self.get_object(), into=into)
        return Response(self.get_serializer(self.get_queryset().get(pk=merged.pk)).data)

    @extend_schema(request=PersonSplitSerializer, responses=PersonSerializer(many=True))
    @action(detail=True, methods=["post"])
    def split(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Split a person who is two: the named faces become a new person,
        or, with none named, the faces are regrouped at a tighter threshold."""
        serializer = PersonSplitSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        persons = services.person_split(person=self.get_object(), face_ids=serializer.validated_data.get("faces"))
        rows = self.get_queryset().filter(pk__in=[p.pk for p in persons])
        return Response(self.get_serializer(rows, many=True).data)


@extend_schema(tags=["people"])
class AssetFacesView(StudioAPIView):
    """The faces found in one photo, largest first, with their person."""

    model = Asset
    parent_lookup = GALLERY
    scope_map: ClassVar[dict[str, str]] = {"GET": "gallery:read"}

    @extend_schema(responses=FaceSerializer(many=True))
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        asset = self.get_object()
        rows = Face.objects.filter(asset=asset).order_by("index")
        return Response(FaceSerializer(rows, many=True, context=self.get_serializer_context()).data)


@extend_schema(tags=["people"])
class FaceThumbView(StudioAPIView):
    """A face's 160 px crop (WebP): a redirect to storage, or the file."""

    model = Face
    parent_lookup = GALLERY
    scope_map: ClassVar[dict[str, str]] = {"GET": "gallery:read"}

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        return queryset.filter(asset__deleted_at=None)

    @extend_schema(
        responses={
            (302, "*/*"): OpenApiResponse(description="Redirect to the file"),
            (200, "image/webp"): OpenApiResponse(OpenApiTypes.BINARY),
        }
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        face = self.get_object()
        ttl = settings.MEDIA_URL_TTL_SECONDS
        response = stored_file_response(face.thumb_key, ttl=ttl, filename=None)
        response["Cache-Control"] = f"private, max-age={max(ttl - 10, 0)}"
        return response


# --- the switches --------------------------------------------------------------------------------


def _studio_state(studio: Any) -> dict[str, Any]:
    return {"enabled": studio.faces_enabled, "consent_text": studio.faces_consent_text}


class _SettingsMetadata(SimpleMetadata):
    """OPTIONS on a settings endpoint: there is no object to look up (DRF's
    own metadata calls get_object() for PUT), only the fields to describe."""

    def determine_actions(self, request: Any, view: Any) -> dict[str, Any]:
        return {"PUT": self.get_serializer_info(view.get_serializer())}


@extend_schema(tags=["people"])
class StudioFacesView(StudioAPIView):
    """The studio's switch for people in photos, with the consent text
    clients read before a selfie search. PUT ``enabled: false`` deletes every
    face, descriptor, crop and person of the studio and turns every gallery's
    switches off (audited with counts). Owners only."""

    model = Face
    serializer_class = StudioFacesSerializer
    metadata_class = _SettingsMetadata
    scope_map: ClassVar[dict[str, str]] = {"GET": "studio:read", "PUT": "studio:admin"}

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(StudioFacesSerializer(_studio_state(self.studio)).data)

    def put(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = StudioFacesSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data["enabled"]:
            services.studio_faces_enable(studio=self.studio, consent_text=data["consent_text"])
        elif self.studio.faces_enabled:
            services.studio_faces_disable(studio=self.studio)
        return Response(StudioFacesSerializer(_studio_state(self.studio)).data)


def _gallery_state(gallery: Gallery) -> dict[str, Any]:
    return {"faces_enabled": gallery.faces_enabled, "find_me_enabled": gallery.find_me_enabled}


@extend_schema(tags=["people"])
class GalleryFacesView(StudioAPIView):
    """A gallery's switches: faces (on: its ready photos are scanned; off:
    its faces and persons are deleted) and "find me" for its clients (needs
    faces on). 409 FACES_DISABLED while the studio's switch is off."""

    model = Gallery
    serializer_class = GalleryFacesSerializer
    scope_map: ClassVar[dict[str, str]] = {"GET": "gallery:read", "PUT": "gallery:admin"}

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(GalleryFacesSerializer(_gallery_state(self.get_object())).data)

    def put(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = GalleryFacesSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        gallery = services.gallery_faces_set(gallery=self.get_object(), **serializer.validated_data)
        return Response(GalleryFacesSerializer(_gallery_state(gallery)).data)


# --- the portal ---------------------------------------------------------------------------------


class FindMeThrottle(SimpleRateThrottle):
    """Per visitor: each search is a second or two of CPU on the web tier."""

    scope = "find_me"

    def get_rate(self) -> str:
        return f"{settings.FACES_FIND_ME_PER_HOUR}/hour"

    def get_cache_key(self, request: Any, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": view.visitor.pk}


class TooManySearches(DomainError):
    code = "TOO_MANY_SEARCHES"
    status_code = 429
    default_message = 'Too many "find me" searches: try again later.'


class SelfieInMemory(MemoryFileUploadHandler):
    """A selfie stays in memory whatever its size: Django's default handlers
    write an upload above FILE_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) to a temporary
    file, which "never stored" rules out. Bounded instead by
    FACES_SELFIE_MAX_BYTES per file, refused as soon as a file passes it."""

    def handle_raw_input(self, input_data: Any, META: Any, content_length: int, boundary: Any, encoding=None) -> None:
        self.activated = True

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        limit = settings.FACES_SELFIE_MAX_BYTES
        if start + len(raw_data) > limit:
            raise ValidationError({"selfie": [f"The image is larger than {limit // (1024 * 1024)} MB."]})
        return super().receive_data_chunk(raw_data, start)


@extend_schema(tags=["portal"])
class FindMeView(PortalAPIView):
    """ "Find me": GET says whether the gallery offers it, with the studio's
    consent text to show first. POST a selfie (multipart ``selfie``, or
    base64 in JSON): the photos you appear in, closest first. The selfie is
    processed in memory and never stored. Throttled per visitor (429
    TOO_MANY_SEARCHES). 403 FIND_ME_DISABLED when the gallery does not offer it."""

    model = Asset
    parser_classes: ClassVar[list[Any]] = [MultiPartParser, FormParser, JSONParser]

    def initialize_request(self, request: Any, *args: Any, **kwargs: Any) -> Request:
        # Before anything reads the body (the portal's CSRF check reads the form).
        request.upload_handlers = [SelfieInMemory(request)]
        return super().initialize_request(request, *args, **kwargs)

    @extend_schema(responses=FindMeInfoSerializer)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        gallery = self.gallery
        enabled = services.find_me_active(gallery)
        consent = gallery.studio.faces_consent_text if enabled else ""
        return Response(FindMeInfoSerializer({"enabled": enabled, "consent_text": consent}).data)

    @extend_schema(
        request={"multipart/form-data": FindMeRequestSerializer, "application/json": FindMeRequestSerializer},
        responses=FindMeResultSerializer,
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if not services.find_me_active(self.gallery):
            raise services.FindMeDisabled()  # before the throttle: no search, nothing counted
        throttle = FindMeThrottle()
        if not throttle.allow_request(request, self):
            raise TooManySearches(details={"retry_after_seconds": math.ceil(throttle.wait() or 1)})
        serializer = FindMeRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        session = request._request.session
        state = session.get(find_me_session_key(self.gallery)) or {}
        excluded = set(state.get("excluded", []))
        result = services.find_me_search(
            gallery=self.gallery, visitor=self.visitor, image=serializer.validated_data["selfie"], excluded=excluded
        )
        sure = settings.FACES_FIND_ME_SURE
        matches = [
            {"id": m.id, "distance": round(m.distance, 4), "confidence": "sure" if m.distance < sure else "likely"}
            for m in result.matches
        ]
        # Photo ids only (no image, no descriptor): what ?find_me= filters on.
        session[find_me_session_key(self.gallery)] = {
            "key": result.key,
            "assets": [str(m.id) for m in result.matches],
            "excluded": sorted(excluded),
        }
        return Response(FindMeResultSerializer({"key": result.key, "matches": matches}).data)


@extend_schema(tags=["portal"])
class FindMeNotMeView(PortalAPIView):
    """ "Not me": leave a wrongly matched photo out of your find-me results
    for the rest of this session."""

    model = Asset

    @extend_schema(request=NotMeSerializer, responses={204: None})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = NotMeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        asset = Asset.objects.filter(
            gallery=self.gallery, status=AssetStatus.READY, pk=serializer.validated_data["asset"]
        ).first()
        if asset is None:
            raise DomainError("Not a photo of this gallery.", code="VALIDATION_ERROR", fields={"asset": ["Unknown."]})
        session = request._request.session
        state = dict(session.get(find_me_session_key(self.gallery)) or {})
        state["excluded"] = sorted({*state.get("excluded", []), str(asset.pk)})
        state["assets"] = [a for a in state.get("assets", []) if a != str(asset.pk)]
        session[find_me_session_key(self.gallery)] = state
        services.find_me_not_me(gallery=self.gallery, asset=asset)
        return Response(status=204)
