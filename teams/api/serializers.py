from __future__ import annotations

from rest_framework import serializers

from studio.api.fields import StudioObjectsField
from studio.api.serializers import UserSummarySerializer
from studio.models import Membership
from studio.roles import Role
from teams.models import Invitation, InvitationStatus, Team


class MembershipSerializer(serializers.ModelSerializer):
    user = UserSummarySerializer(read_only=True)
    teams = serializers.SerializerMethodField()

    class Meta:
        model = Membership
        fields = ["id", "user", "role", "teams", "created_at"]
        read_only_fields = ["id", "user", "teams", "created_at"]

    def get_teams(self, membership: Membership) -> list[str]:
        return [str(tm.team_id) for tm in membership.team_members.all()]


class MembershipUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class TeamSerializer(serializers.ModelSerializer):
    members = StudioObjectsField(model=Membership, required=False, help_text="Membership ids of the team's members.")

    class Meta:
        model = Team
        fields = ["id", *Team.EDITABLE_FIELDS, "members", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]


class InvitationSerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(choices=InvitationStatus.choices, read_only=True)
    invited_by = serializers.EmailField(source="invited_by.email", read_only=True, allow_null=True)

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "status", "expires_at", "invited_by", "created_at", "accepted_at"]
        read_only_fields = ["id", "status", "expires_at", "invited_by", "created_at", "accepted_at"]


class InvitationAcceptSerializer(serializers.Serializer):
    token = serializers.CharField(max_length=200, help_text="The token from the invitation email.")


class InvitationAcceptedSerializer(serializers.Serializer):
    studio = serializers.SlugField(source="studio.slug", read_only=True)
    membership = serializers.UUIDField(source="pk", read_only=True)
    role = serializers.ChoiceField(choices=Role.choices, read_only=True)
