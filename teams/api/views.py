from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from studio import services as studio_services
from studio.api.base import StudioViewSet
from studio.models import Membership
from teams import selectors, services
from teams.api.serializers import (
    InvitationAcceptedSerializer,
    InvitationAcceptSerializer,
    InvitationSerializer,
    MembershipSerializer,
    MembershipUpdateSerializer,
    TeamSerializer,
)
from teams.filtersets import InvitationFilterSet, MembershipFilterSet, TeamFilterSet
from teams.models import Invitation, Team


@extend_schema(tags=["members"])
class MembershipViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, StudioViewSet):
    """Members of the studio. PATCH changes a role (never above your own);
    DELETE removes a member. The last owner can be neither demoted nor removed."""

    model = Membership
    serializer_class = MembershipSerializer
    filterset_class = MembershipFilterSet
    scope_map = {"GET": "member:read", "PATCH": "member:admin", "DELETE": "member:admin"}
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        return selectors.members_with_teams(queryset)

    @extend_schema(request=MembershipUpdateSerializer, responses=MembershipSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        membership = self.get_object()
        # PATCH is partial, as the schema says: {} changes nothing.
        serializer = MembershipUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        if "role" in serializer.validated_data:
            studio_services.membership_change_role(
                actor=self.membership, membership=membership, role=serializer.validated_data["role"]
            )
        return Response(self.get_serializer(membership).data)

    def perform_destroy(self, instance: Membership) -> None:
        studio_services.membership_remove(actor=self.membership, membership=instance)


@extend_schema(tags=["teams"])
class TeamViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    StudioViewSet,
):
    """Teams inside the studio, e.g. "Second shooters"."""

    model = Team
    serializer_class = TeamSerializer
    filterset_class = TeamFilterSet
    scope_map = {
        "GET": "member:read",
        "POST": "member:admin",
        "PUT": "member:admin",
        "PATCH": "member:admin",
        "DELETE": "member:admin",
    }

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        return selectors.teams_with_members(queryset)

    def perform_create(self, serializer: TeamSerializer) -> None:
        serializer.instance = services.team_create(**serializer.validated_data)

    def perform_update(self, serializer: TeamSerializer) -> None:
        serializer.instance = services.team_update(team=serializer.instance, **serializer.validated_data)
        # Drop the stale prefetch so the response shows the new members.
        serializer.instance._prefetched_objects_cache = {}

    def perform_destroy(self, instance: Team) -> None:
        services.team_delete(team=instance)


@extend_schema(tags=["invitations"])
class InvitationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin, StudioViewSet
):
    """Email invitations. DELETE revokes a pending invitation."""

    model = Invitation
    serializer_class = InvitationSerializer
    filterset_class = InvitationFilterSet
    scope_map = {"GET": "member:admin", "POST": "member:admin", "DELETE": "member:admin"}

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        return queryset.select_related("invited_by")

    def perform_create(self, serializer: InvitationSerializer) -> None:
        data = serializer.validated_data
        serializer.instance, _ = services.invitation_create(
            actor=self.membership, email=data["email"], role=data["role"]
        )

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.invitation_revoke(invitation=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationAcceptThrottle(ScopedRateThrottle):
    scope = "invitation_accept"

    def get_cache_key(self, request: Request, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


@extend_schema(tags=["invitations"])
class InvitationAcceptView(APIView):
    """Accept an invitation as the signed-in user. The invitation must have
    been sent to your email address."""

    permission_classes = [IsAuthenticated]
    throttle_classes = [InvitationAcceptThrottle]
    throttle_scope = "invitation_accept"

    @extend_schema(request=InvitationAcceptSerializer, responses={201: InvitationAcceptedSerializer})
    def post(self, request: Request) -> Response:
        serializer = InvitationAcceptSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.invitation_accept(user=request.user, raw_token=serializer.validated_data["token"])
        return Response(InvitationAcceptedSerializer(membership).data, status=status.HTTP_201_CREATED)
