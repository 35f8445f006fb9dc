"""Endpoints of the platform core: who am I, my API tokens, my studios."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from studio import selectors, services
from studio.api.base import StudioAPIView
from studio.api.serializers import (
    ApiTokenCreatedSerializer,
    ApiTokenSerializer,
    MeSerializer,
    StudioCreateSerializer,
    StudioSerializer,
    StudioUpdateSerializer,
)
from studio.models import ApiToken, Studio


class MeView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=MeSerializer, tags=["me"])
    def get(self, request: Request) -> Response:
        memberships = list(selectors.memberships_of(request.user))
        return Response(MeSerializer(request.user, context={"memberships": memberships}).data)


@extend_schema(tags=["me"])
class ApiTokenViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Your personal API tokens. The token value is shown once, on creation;
    DELETE revokes (the record stays for the audit trail)."""

    permission_classes = [IsAuthenticated]
    serializer_class = ApiTokenSerializer
    lookup_value_converter = "uuid"
    queryset = ApiToken.objects.none()

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):
            return ApiToken.objects.none()
        return ApiToken.objects.filter(user=self.request.user)

    @extend_schema(responses={201: ApiTokenCreatedSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token, raw = services.api_token_create(user=request.user, **serializer.validated_data)
        token.token = raw
        return Response(ApiTokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: ApiToken) -> None:
        services.api_token_revoke(token=instance)


@extend_schema(tags=["studios"])
class StudioListView(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The studios you belong to; POST creates a studio with you as its owner."""

    permission_classes = [IsAuthenticated]
    serializer_class = StudioSerializer
    queryset = Studio.objects.none()
    pagination_class = None

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):
            return Studio.objects.none()
        return selectors.studios_of(self.request.user)

    def get_serializer_context(self) -> dict[str, Any]:
        ctx = super().get_serializer_context()
        if not getattr(self, "swagger_fake_view", False):
            ctx["roles_by_studio"] = {m.studio_id: m.role for m in selectors.memberships_of(self.request.user)}
        return ctx

    @extend_schema(request=StudioCreateSerializer, responses={201: StudioSerializer})
    def create(self, request: Request) -> Response:
        serializer = StudioCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        studio = services.studio_create(
            owner=request.user,
            name=data["name"],
            slug=data.get("slug", ""),
            timezone_name=data.get("timezone", "UTC"),
            contact_email=data.get("contact_email", ""),
        )
        ctx = {"roles_by_studio": {studio.pk: "owner"}}
        return Response(StudioSerializer(studio, context=ctx).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["studios"])
class StudioDetailView(StudioAPIView):
    """One studio. Members read it; owners (studio:admin) change it."""

    model = Studio
    serializer_class = StudioSerializer
    scope_map = {"GET": "studio:read", "PATCH": "studio:admin"}

    def get(self, request: Request, studio_slug: str) -> Response:
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(request=StudioUpdateSerializer, responses=StudioSerializer)
    def patch(self, request: Request, studio_slug: str) -> Response:
        studio = self.get_object()
        serializer = StudioUpdateSerializer(studio, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        services.studio_update(studio=studio, **serializer.validated_data)
        return Response(self.get_serializer(studio).data)
