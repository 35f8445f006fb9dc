"""Bodies of the people-in-photos endpoints (galleries.api.face_views)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from django.conf import settings
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from galleries.models import Face, Person


def face_thumb_url(request: Any, face_id: Any, *, studio_slug: str, gallery_id: Any) -> str | None:
    if face_id is None:
        return None
    url = reverse(
        "api:gallery-face-thumb", kwargs={"studio_slug": studio_slug, "gallery_pk": gallery_id, "pk": face_id}
    )
    return request.build_absolute_uri(url) if request is not None else url


class PersonSerializer(serializers.ModelSerializer):
    photo_count = serializers.IntegerField(read_only=True, help_text="Photos (not in the bin) they appear in.")
    face_count = serializers.IntegerField(
        source="live_face_count", read_only=True, help_text="Their faces in photos not in the bin."
    )
    cover = serializers.UUIDField(
        source="cover_id", required=False, help_text="The face shown for them: one of their own (PATCH to choose)."
    )
    cover_url = serializers.SerializerMethodField()

    class Meta:
        model = Person
        fields = ["id", "name", "hidden", "cover", "cover_url", "face_count", "photo_count", "created_at"]
        read_only_fields = ["id", "face_count", "photo_count", "created_at"]

    def get_cover_url(self, person: Person) -> str | None:
        studio = self.context.get("studio")
        return face_thumb_url(
            self.context.get("request"), person.cover_id, studio_slug=studio.slug, gallery_id=person.gallery_id
        )


class PersonMergeSerializer(serializers.Serializer):
    into = serializers.UUIDField(help_text="The person of the same gallery who keeps the faces.")


class PersonSplitSerializer(serializers.Serializer):
    faces = serializers.ListField(
        child=serializers.UUIDField(),
        required=False,
        max_length=10_000,
        help_text="Faces to move to a new person. Omitted: regroup the faces at the tighter split threshold.",
    )


class BoxSerializer(serializers.Serializer):
    left = serializers.IntegerField()
    top = serializers.IntegerField()
    right = serializers.IntegerField()
    bottom = serializers.IntegerField()


class FaceSerializer(serializers.ModelSerializer):
    box = serializers.SerializerMethodField(help_text="In the 2048 px preview's pixels.")
    thumb_url = serializers.SerializerMethodField()

    class Meta:
        model = Face
        fields = ["id", "index", "person", "box", "score", "quality", "thumb_url"]

    @extend_schema_field(BoxSerializer)
    def get_box(self, face: Face) -> dict[str, int]:
        return {"left": face.left, "top": face.top, "right": face.right, "bottom": face.bottom}

    def get_thumb_url(self, face: Face) -> str | None:
        studio = self.context["studio"]
        return face_thumb_url(self.context.get("request"), face.pk, studio_slug=studio.slug, gallery_id=face.gallery_id)


@extend_schema_field(OpenApiTypes.BINARY)
class SelfieField(serializers.Field):
    """A multipart file, or (from a camera canvas) a base64 string or data
    URL in JSON. Read into memory, bounded; never written anywhere."""

    default_error_messages = {
        "invalid": "Send an image file, or its base64 (a data URL is fine).",
        "too_large": "The image is larger than {limit} MB.",
    }

    def to_internal_value(self, data: Any) -> bytes:
        limit = settings.FACES_SELFIE_MAX_BYTES
        if hasattr(data, "read"):
            if getattr(data, "size", 0) > limit:
                self.fail("too_large", limit=limit // (1024 * 1024))
            return data.read()
        if not isinstance(data, str) or len(data) > limit * 4 // 3 + 100:
            self.fail("invalid" if not isinstance(data, str) else "too_large", limit=limit // (1024 * 1024))
        payload = data.split(",", 1)[1] if data.startswith("data:") else data
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            self.fail("invalid")

    def to_representation(self, value: Any) -> None:
        return None


class FindMeRequestSerializer(serializers.Serializer):
    selfie = SelfieField(help_text="A photo of you alone, facing the camera.")


class FindMeInfoSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()
    consent_text = serializers.CharField(help_text="The studio's words on what happens to your photo: show them first.")


class FindMeMatchSerializer(serializers.Serializer):
    asset = serializers.UUIDField(source="id")
    distance = serializers.FloatField(help_text="0 is the same face; lower is closer.")
    confidence = serializers.ChoiceField(choices=["sure", "likely"])


class FindMeResultSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="Pass as ?find_me=<key> to the asset list to show only these photos.")
    matches = FindMeMatchSerializer(many=True)


class NotMeSerializer(serializers.Serializer):
    asset = serializers.UUIDField(help_text="A photo the search found that is not you: left out from now on.")


class StudioFacesSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(help_text="People in photos for the studio. Off deletes every face and person.")
    consent_text = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=2000,
        help_text="What clients read before a selfie search. Required to turn it on.",
    )

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if data["enabled"] and not (data.get("consent_text") or "").strip():
            raise serializers.ValidationError({"consent_text": ["Write what clients agree to before turning it on."]})
        return data


class GalleryFacesSerializer(serializers.Serializer):
    faces_enabled = serializers.BooleanField(
        required=False, help_text="Find and group faces in this gallery (needs the studio's switch). Off deletes them."
    )
    find_me_enabled = serializers.BooleanField(
        required=False, help_text="Offer clients the selfie search (needs faces on)."
    )
