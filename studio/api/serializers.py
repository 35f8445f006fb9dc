from __future__ import annotations

from typing import Any

from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from studio.models import ApiToken, Studio, User
from studio.roles import Role, scopes_for


class UserSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "full_name"]
        read_only_fields = fields


# The logo is a file: the admin uploads it; this JSON-only API shows where it
# is served and edits everything else.
JSON_EDITABLE_FIELDS = [name for name in Studio.EDITABLE_FIELDS if name != "logo"]


class StudioSerializer(serializers.ModelSerializer):
    logo = serializers.SerializerMethodField(help_text="Where the studio's logo is served (null: none).")
    role = serializers.SerializerMethodField(help_text="Your role in this studio.")
    scopes = serializers.SerializerMethodField(help_text="What your role allows here.")

    class Meta:
        model = Studio
        fields = ["id", "slug", *Studio.EDITABLE_FIELDS, "created_at", "role", "scopes"]
        read_only_fields = ["id", "created_at", "logo", "role", "scopes"]

    def get_logo(self, studio: Studio) -> str | None:
        return reverse("portal:logo", kwargs={"slug": studio.slug}) if studio.logo else None

    def _role(self, studio: Studio) -> str | None:
        roles = self.context.get("roles_by_studio")
        if roles is not None:
            return roles.get(studio.pk)
        membership = self.context.get("membership")
        return membership.role if membership is not None and membership.studio_id == studio.pk else None

    def get_role(self, studio: Studio) -> str | None:
        return self._role(studio)

    def get_scopes(self, studio: Studio) -> list[str]:
        role = self._role(studio)
        return sorted(scopes_for(role)) if role else []


class StudioCreateSerializer(serializers.ModelSerializer):
    slug = serializers.SlugField(max_length=50, required=False, help_text="Derived from the name if omitted.")

    class Meta:
        model = Studio
        fields = ["slug", *JSON_EDITABLE_FIELDS]


class StudioUpdateSerializer(serializers.ModelSerializer):
    class Meta:
        model = Studio
        fields = JSON_EDITABLE_FIELDS


class MembershipSummarySerializer(serializers.Serializer):
    studio = serializers.SlugField(source="studio.slug")
    studio_name = serializers.CharField(source="studio.name")
    role = serializers.ChoiceField(choices=Role.choices)


class MeSerializer(serializers.ModelSerializer):
    memberships = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "email", "full_name", "memberships"]
        read_only_fields = fields

    @extend_schema_field(MembershipSummarySerializer(many=True))
    def get_memberships(self, user: User) -> list[dict[str, Any]]:
        return MembershipSummarySerializer(self.context["memberships"], many=True).data


class ApiTokenSerializer(serializers.ModelSerializer):
    is_live = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at", "is_live"]
        read_only_fields = ["id", "prefix", "created_at", "last_used_at", "revoked_at", "is_live"]

    def validate_expires_at(self, value: Any) -> Any:
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("Must be in the future.")
        return value


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="The token itself. Shown only in this response.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]
