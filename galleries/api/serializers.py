from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import ISO_8601, serializers
from rest_framework.settings import api_settings

from galleries import selectors
from galleries.models import (
    Asset,
    AssetStatus,
    DownloadPermission,
    Export,
    ExportKind,
    ExportScope,
    ExportSize,
    ExportStatus,
    Folder,
    Gallery,
    Selection,
    UploadBatch,
    Visitor,
)
from studio.api.fields import StudioObjectField, StudioObjectsField
from studio.models import Membership
from studio.roles import scopes_for
from teams.models import Team

VARIANTS = ("thumb", "medium", "large", "original")


_PLACEHOLDER = uuid.UUID(int=0)


def _instants() -> Callable[[Any], Any]:
    """How the lean lists format instants: DRF's own field (the active
    zone, "Z" for UTC), so they cannot drift from the serializers' output;
    the zone is looked up once a page, not once a value (a tenth of the
    staff list's page). An aware datetime, as every one the database gives,
    takes DRF's ISO 8601 steps inline (convert, isoformat, "Z"): the field's
    per-value attribute lookups and checks were half the cost of a value.
    Anything else (naive, a string, another output format) is DRF's."""
    zone = timezone.get_current_timezone() if settings.USE_TZ else None
    represent = serializers.DateTimeField(default_timezone=zone).to_representation
    if zone is None or (api_settings.DATETIME_FORMAT or "").lower() != ISO_8601:
        return represent

    def instant(value: Any) -> Any:
        if value.__class__ is not datetime or value.utcoffset() is None:
            return represent(value)
        try:
            text = value.astimezone(zone).isoformat()
        except OverflowError:  # DRF's own error for it
            return represent(value)
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    return instant


# A photo whose original cannot be offered: the upload failed or never came.
NO_ORIGINAL = (AssetStatus.FAILED, AssetStatus.AWAITING_UPLOAD)


def derivative_sizes(derivatives: dict[str, Any] | None) -> dict[str, dict[str, int]]:
    """Pixel sizes of the derivatives: srcset widths and the viewer's layout
    before a byte of the image arrives."""
    return {
        variant: {"width": d.get("width") or 0, "height": d.get("height") or 0}
        for variant, d in (derivatives or {}).items()
        if variant in VARIANTS
    }


@functools.lru_cache(maxsize=1024)
def _media_url_parts(
    route: str, kwargs: tuple[tuple[str, Any], ...], prefix: str, urlconf: Any
) -> dict[str, tuple[str, ...]]:
    # Split each variant's link around the placeholder id, so a photo's link
    # is head + id + tail, whatever else the path holds. Per gallery (and
    # script prefix and URLconf): four reverse() calls were a tenth of a
    # small list page.
    placeholder = str(_PLACEHOLDER)
    return {
        variant: tuple(
            reverse(route, kwargs={**dict(kwargs), "pk": _PLACEHOLDER, "variant": variant}, urlconf=urlconf).split(
                placeholder
            )
        )
        for variant in VARIANTS
    }


class MediaUrls:
    """Media links for many assets: one reverse() per variant per gallery and
    process, then string joins per photo (reverse() per link dominated a
    100-photo page)."""

    def __init__(self, route: str, kwargs: dict[str, Any]) -> None:
        self.parts = _media_url_parts(route, tuple(sorted(kwargs.items())), get_script_prefix(), get_urlconf())
        self.flags = [
            (variant, None if variant == "original" else f"has_{variant}", head, tail)
            for variant, (head, tail) in self.parts.items()
        ]

    def __call__(self, asset: Asset, *, originals: bool) -> dict[str, str | None]:
        return self.row(asset.pk, asset.derivatives, originals=originals)

    def row(self, pk: Any, derivatives: dict[str, Any] | None, *, originals: bool) -> dict[str, str | None]:
        """The links of one photo from its id and derivatives (a ``.values()`` row)."""
        pk = str(pk)
        derivatives = derivatives or {}
        return {
            variant: f"{head}{pk}{tail}" if (originals if variant == "original" else variant in derivatives) else None
            for variant, (head, tail) in self.parts.items()
        }

    def flagged(self, pk: Any, row: dict[str, Any], *, originals: bool) -> dict[str, str | None]:
        """As ``row``, from selectors.DERIVATIVE_FLAGS (``has_thumb``...) in
        ``row`` instead of the derivatives."""
        pk = str(pk)
        return {
            variant: f"{head}{pk}{tail}" if (originals if flag is None else row[flag]) else None
            for variant, flag, head, tail in self.flags
        }


def _media_urls(serializer: serializers.Serializer, route: str, kwargs: dict[str, Any]) -> MediaUrls:
    # Kept on the (list) serializer's context: built once per response.
    key = f"media_urls:{route}:{sorted(kwargs.items())}"
    cache = serializer.context.setdefault("_media_urls", {})
    if key not in cache:
        cache[key] = MediaUrls(route, kwargs)
    return cache[key]


_URLS_SCHEMA = {
    "type": "object",
    "properties": {v: {"type": "string", "nullable": True} for v in VARIANTS},
    "description": "Links that check access, then redirect to a short-lived URL of the file.",
}


_SIZES_SCHEMA = {
    "type": "object",
    "properties": {
        v: {
            "type": "object",
            "properties": {"width": {"type": "integer"}, "height": {"type": "integer"}},
            "required": ["width", "height"],
        }
        for v in ("thumb", "medium", "large")
    },
    "description": "Pixel size of each derivative (for srcset and layout).",
}


# --- staff ---------------------------------------------------------------------------------------


class GallerySerializer(serializers.ModelSerializer):
    pin = serializers.RegexField(
        r"^\d{4,8}$", write_only=True, required=False, allow_blank=True, help_text="4-8 digits; empty removes it."
    )
    has_pin = serializers.BooleanField(
        read_only=True, allow_null=True, help_text="Null for roles that may not share the gallery (viewers)."
    )
    access_code = serializers.CharField(
        max_length=32,
        required=False,
        allow_null=True,
        help_text="Generated if omitted. Null for roles that may not share the gallery (viewers).",
    )
    assigned_members = StudioObjectsField(model=Membership, required=False)
    assigned_team = StudioObjectField(model=Team, required=False, allow_null=True)
    cover = serializers.UUIDField(source="cover_id", read_only=True, allow_null=True)
    asset_count = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = Gallery
        fields = [
            "id",
            *Gallery.EDITABLE_FIELDS,
            "status",
            "access_code",
            "pin",
            "has_pin",
            "cover",
            "assigned_members",
            "asset_count",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "status", "has_pin", "cover", "asset_count", "created_at", "updated_at"]

    def validate_access_code(self, value: str | None) -> str:
        if value is None:
            raise serializers.ValidationError("Send a code, or leave the field out.", code="null")
        return value

    def to_representation(self, gallery: Gallery) -> dict[str, Any]:
        """The client's code (and whether a PIN guards it) is for the roles
        that may share a gallery (gallery:write), not for viewers."""
        data = super().to_representation(gallery)
        membership = self.context.get("membership")
        if membership is not None and "gallery:write" not in scopes_for(membership.role):
            data["access_code"] = data["has_pin"] = None
        return data


class RotateCodeSerializer(serializers.Serializer):
    access_code = serializers.CharField(
        max_length=32, required=False, allow_blank=True, help_text="Generated if empty."
    )


class SetCoverSerializer(serializers.Serializer):
    asset = StudioObjectField(model=Asset, allow_null=True)


class AssetIdsSerializer(serializers.Serializer):
    assets = StudioObjectsField(model=Asset, max_length=1000, help_text="Asset ids of this gallery.")

    def validate_assets(self, assets: list[Asset]) -> list[Asset]:
        gallery = self.context["gallery"]
        foreign = [str(a.pk) for a in assets if a.gallery_id != gallery.pk]
        if foreign:
            raise serializers.ValidationError(f"Unknown ids: {', '.join(foreign)}.")
        return assets


class OptionalAssetIdsSerializer(AssetIdsSerializer):
    assets = StudioObjectsField(model=Asset, max_length=1000, required=False, help_text="Default: every ready asset.")


class StaffAssetSerializer(serializers.ModelSerializer):
    urls = serializers.SerializerMethodField()
    average_stars = serializers.FloatField(read_only=True, allow_null=True, default=None, help_text="Null: no ratings.")
    rating_count = serializers.IntegerField(read_only=True, default=0)
    trashed = serializers.SerializerMethodField()

    class Meta:
        model = Asset
        fields = [
            "id",
            "original_filename",
            "status",
            "failure_reason",
            "size",
            "content_type",
            "sha256",
            "width",
            "height",
            "captured_at",
            "sort_order",
            "trashed",
            "average_stars",
            "rating_count",
            "urls",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(_URLS_SCHEMA)
    def get_urls(self, asset: Asset) -> dict[str, str | None]:
        kwargs = {"studio_slug": self.context["studio"].slug, "gallery_pk": asset.gallery_id}
        urls = _media_urls(self, "api:gallery-asset-media", kwargs)
        return urls(asset, originals=asset.status not in NO_ORIGINAL)

    def get_trashed(self, asset: Asset) -> bool:
        return asset.trashed_at is not None


def staff_asset_dicts(rows: Iterable[dict[str, Any]], *, urls: MediaUrls) -> list[dict[str, Any]]:
    """StaffAssetSerializer's output for a page of ``selectors.staff_asset_rows``
    dicts, built directly: its per-field machinery on model instances cost
    about 30x the SQL of the page (bench/gallery_list.py). The serializer
    stays the schema and the detail's shape; tests/test_lean_lists.py holds
    the two equal field by field."""
    instant = _instants()
    return [
        {
            "id": pk,
            "original_filename": row["original_filename"],
            "status": row["status"],
            "failure_reason": row["failure_reason"],
            "size": row["size"],
            "content_type": row["content_type"],
            "sha256": row["sha256"],
            "width": row["width"],
            "height": row["height"],
            "captured_at": None if row["captured_at"] is None else instant(row["captured_at"]),
            "sort_order": row["sort_order"],
            "trashed": row["trashed_at"] is not None,
            "average_stars": None if row["average_stars"] is None else float(row["average_stars"]),
            "rating_count": row["rating_count"],
            "urls": urls.flagged(pk, row, originals=row["status"] not in NO_ORIGINAL),
            "created_at": instant(row["created_at"]),
        }
        for row in rows
        for pk in (str(row["id"]),)
    ]


class FileRequestSerializer(serializers.Serializer):
    filename = serializers.CharField(max_length=255)
    size = serializers.IntegerField(min_value=0, help_text="Bytes. An empty file is rejected on its own.")
    content_type = serializers.CharField(max_length=100)
    sha256 = serializers.RegexField(r"^[0-9a-f]{64}$", required=False, allow_blank=True, help_text="Lower-case hex.")


class PresignRequestSerializer(serializers.Serializer):
    files = FileRequestSerializer(many=True, allow_empty=False)

    def validate_files(self, files: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(files) > settings.UPLOAD_BATCH_MAX_FILES:
            raise serializers.ValidationError(f"At most {settings.UPLOAD_BATCH_MAX_FILES} files per batch.")
        return files


class UploadTargetSerializer(serializers.Serializer):
    asset = serializers.UUIDField()
    filename = serializers.CharField()
    method = serializers.CharField(default="POST")
    url = serializers.CharField()
    fields = serializers.DictField(
        child=serializers.CharField(), help_text="Send as form fields, then the file as 'file'."
    )
    expires_at = serializers.DateTimeField()


class RejectedFileSerializer(serializers.Serializer):
    filename = serializers.CharField()
    reason = serializers.CharField()


class PresignResponseSerializer(serializers.Serializer):
    batch = serializers.UUIDField()
    targets = UploadTargetSerializer(many=True)
    rejected = RejectedFileSerializer(many=True)


class CompleteRequestSerializer(serializers.Serializer):
    assets = serializers.ListField(child=serializers.UUIDField(), required=False, max_length=1000)


class FailedAssetSerializer(serializers.Serializer):
    asset = serializers.UUIDField()
    filename = serializers.CharField()
    reason = serializers.CharField()


class CompleteResponseSerializer(serializers.Serializer):
    processing = serializers.ListField(child=serializers.UUIDField())
    failed = FailedAssetSerializer(many=True)
    missing = serializers.ListField(child=serializers.UUIDField(), help_text="Not uploaded (yet).")


class UploadBatchSerializer(serializers.ModelSerializer):
    counts = serializers.DictField(child=serializers.IntegerField(), read_only=True)
    failed = FailedAssetSerializer(many=True, read_only=True)
    done = serializers.BooleanField(read_only=True)

    class Meta:
        model = UploadBatch
        fields = ["id", "created_at", "counts", "failed", "done"]
        read_only_fields = fields


class VisitorSerializer(serializers.ModelSerializer):
    class Meta:
        model = Visitor
        fields = ["id", "name", "email", "created_at", "last_seen_at"]
        read_only_fields = fields


class VisitorStarsSerializer(serializers.Serializer):
    visitor = serializers.UUIDField()
    label = serializers.CharField()
    stars = serializers.IntegerField()


class AssetRatingsSerializer(serializers.ModelSerializer):
    average_stars = serializers.FloatField(read_only=True, allow_null=True)
    rating_count = serializers.IntegerField(read_only=True)
    ratings = serializers.SerializerMethodField()

    class Meta:
        model = Asset
        fields = ["id", "original_filename", "average_stars", "rating_count", "ratings"]
        read_only_fields = fields

    @extend_schema_field(VisitorStarsSerializer(many=True))
    def get_ratings(self, asset: Asset) -> list[dict[str, Any]]:
        return [{"visitor": r.visitor_id, "label": str(r.visitor), "stars": r.stars} for r in asset.ratings.all()]


class SelectionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Selection
        fields = [
            "id",
            "status",
            "finalized_by_label",
            "finalized_at",
            "reopened_at",
            "asset_count",
            "snapshot",
        ]
        read_only_fields = fields


class FolderSerializer(serializers.ModelSerializer):
    asset_count = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = Folder
        fields = ["id", "name", "sort_order", "asset_count", "created_at"]
        read_only_fields = ["id", "sort_order", "asset_count", "created_at"]


# --- portal (clients) -------------------------------------------------------------------------------


class PortalAccessSerializer(serializers.Serializer):
    studio = serializers.SlugField(help_text="The studio's slug, from the portal link.")
    code = serializers.CharField(max_length=64)
    pin = serializers.CharField(max_length=16, required=False, allow_blank=True)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    email = serializers.EmailField(required=False, allow_blank=True)


class PortalOpenSerializer(serializers.Serializer):
    pin = serializers.CharField(max_length=16, required=False, allow_blank=True, help_text="When the gallery has one.")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    email = serializers.EmailField(required=False, allow_blank=True)


class PortalCountsSerializer(serializers.Serializer):
    photos = serializers.IntegerField(help_text="Ready photos, not in your trash.")
    rated = serializers.IntegerField(help_text="Of those, the ones you rated.")
    in_folders = serializers.IntegerField(help_text="Of those, the ones in a folder you see.")
    selected = serializers.IntegerField(help_text="What finalising would send: rated or filed by a client.")
    trashed = serializers.IntegerField(help_text="Photos in your trash.")


class PortalFolderSerializer(FolderSerializer):
    editable = serializers.SerializerMethodField(help_text="False for the studio's folders, which clients only view.")

    class Meta(FolderSerializer.Meta):
        fields = [*FolderSerializer.Meta.fields, "editable"]
        read_only_fields = [*FolderSerializer.Meta.read_only_fields, "editable"]

    def get_editable(self, folder: Folder) -> bool:
        if folder.created_by_visitor_id is None:
            return False
        visitor = self.context.get("visitor")
        gallery = self.context.get("gallery")
        return (visitor is not None and folder.created_by_visitor_id == visitor.pk) or bool(
            gallery is not None and gallery.shared_selection
        )


class PortalGallerySerializer(serializers.ModelSerializer):
    studio = serializers.CharField(source="studio.name")
    cover = serializers.SerializerMethodField()
    selection = serializers.SerializerMethodField()
    can_download = serializers.SerializerMethodField()
    finalized_at = serializers.SerializerMethodField()
    counts = serializers.SerializerMethodField()

    class Meta:
        model = Gallery
        fields = [
            "id",
            "title",
            "studio",
            "client_name",
            "event_date",
            "expires_at",
            "cover",
            "download_permission",
            "can_download",
            "selection_limit",
            "selection",
            "finalized_at",
            "counts",
        ]
        read_only_fields = fields

    @extend_schema_field({"type": "string", "format": "date-time", "nullable": True})
    def get_finalized_at(self, gallery: Gallery) -> str | None:
        selection = self.context.get("live_selection")
        return selection.finalized_at.isoformat() if selection is not None else None

    @extend_schema_field(PortalCountsSerializer(allow_null=True))
    def get_counts(self, gallery: Gallery) -> dict[str, int] | None:
        # Per visitor ("rated" is theirs): null where the caller passed none.
        return self.context.get("counts")

    @extend_schema_field({"type": "string", "nullable": True})
    def get_cover(self, gallery: Gallery) -> str | None:
        if not gallery.cover_id:
            return None
        return reverse(
            "api:portal-asset-media", kwargs={"gallery_pk": gallery.pk, "pk": gallery.cover_id, "variant": "large"}
        )

    @extend_schema_field({"type": "string", "enum": ["open", "finalized"]})
    def get_selection(self, gallery: Gallery) -> str:
        return "finalized" if self.context.get("finalized") else "open"

    def get_can_download(self, gallery: Gallery) -> bool:
        return gallery.download_permission != DownloadPermission.NONE


class PortalAssetSerializer(serializers.ModelSerializer):
    filename = serializers.CharField(source="original_filename")
    stars = serializers.IntegerField(source="my_stars", read_only=True, allow_null=True, help_text="Your rating.")
    folders = serializers.SerializerMethodField()
    trashed = serializers.SerializerMethodField()
    urls = serializers.SerializerMethodField()
    sizes = serializers.SerializerMethodField()

    class Meta:
        model = Asset
        fields = ["id", "filename", "width", "height", "captured_at", "stars", "folders", "trashed", "urls", "sizes"]
        read_only_fields = fields

    @extend_schema_field(_SIZES_SCHEMA)
    def get_sizes(self, asset: Asset) -> dict[str, dict[str, int]]:
        return derivative_sizes(asset.derivatives)

    def get_folders(self, asset: Asset) -> list[str]:
        # One photo (the detail): a list page builds its rows in portal_asset_dicts.
        gallery, visitor = self.context.get("gallery"), self.context.get("visitor")
        visible = None
        if gallery is not None and visitor is not None:
            folders = Folder.objects.filter(gallery=gallery)
            visible = selectors.visible_folders(folders, gallery=gallery, visitor=visitor)
        return selectors.folder_ids_by_asset(selectors.folder_placements([asset], visible=visible)).get(asset.pk, [])

    def get_trashed(self, asset: Asset) -> bool:
        return asset.trashed_at is not None

    @extend_schema_field(_URLS_SCHEMA)
    def get_urls(self, asset: Asset) -> dict[str, str | None]:
        gallery = self.context["gallery"]
        originals = gallery.download_permission == DownloadPermission.ORIGINALS
        return _media_urls(self, "api:portal-asset-media", {"gallery_pk": gallery.pk})(asset, originals=originals)


def portal_asset_dicts(
    rows: Iterable[dict[str, Any]], *, urls: MediaUrls, originals: bool, folders_by_asset: dict[Any, list[str]]
) -> list[dict[str, Any]]:
    """PortalAssetSerializer's output for a page of ``selectors.portal_asset_rows``
    dicts, built directly (see staff_asset_dicts for why)."""
    instant = _instants()
    return [
        {
            "id": pk,
            "filename": row["original_filename"],
            "width": row["width"],
            "height": row["height"],
            "captured_at": None if row["captured_at"] is None else instant(row["captured_at"]),
            "stars": row["my_stars"],
            "folders": folders_by_asset.get(row["id"], []),
            "trashed": row["trashed_at"] is not None,
            "urls": urls.row(pk, row["derivatives"], originals=originals),
            "sizes": derivative_sizes(row["derivatives"]),
        }
        for row in rows
        for pk in (str(row["id"]),)
    ]


class RatingSerializer(serializers.Serializer):
    stars = serializers.IntegerField(min_value=1, max_value=5)


class BulkRatingItemSerializer(serializers.Serializer):
    asset = serializers.UUIDField()
    stars = serializers.IntegerField(min_value=1, max_value=5, allow_null=True, help_text="null clears.")


class BulkRatingSerializer(serializers.Serializer):
    ratings = BulkRatingItemSerializer(many=True, allow_empty=False, max_length=1000)


class FolderOrderSerializer(serializers.Serializer):
    folders = StudioObjectsField(model=Folder, help_text="Every folder id of the gallery, in the new order.")


class MoveSerializer(AssetIdsSerializer):
    to = StudioObjectField(model=Folder, help_text="The folder to move the assets into.")


class StorageSerializer(serializers.Serializer):
    quota_bytes = serializers.IntegerField()
    used_bytes = serializers.IntegerField(help_text="Originals + derivatives + reserved: what uploads count against.")
    free_bytes = serializers.IntegerField()
    used_fraction = serializers.FloatField(help_text="used_bytes / quota_bytes (may exceed 1).")
    originals_bytes = serializers.IntegerField(help_text="Originals of ready, processing and failed photos.")
    derivatives_bytes = serializers.IntegerField(help_text="Derivatives as stored.")
    reserved_bytes = serializers.IntegerField(
        help_text="Upload targets handed out and not yet used, and derivative estimates of photos processing."
    )
    photos = serializers.IntegerField(help_text="Photos stored (ready, processing or failed).")
    photos_ready = serializers.IntegerField()
    photos_in_bin = serializers.IntegerField(
        help_text="Photos staff deleted, kept until purged (counted in used_bytes)."
    )
    bin_bytes = serializers.IntegerField(help_text="Bytes of the photos in the bin (originals and derivatives).")
    level = serializers.ChoiceField(
        choices=["ok", "warning", "critical"], help_text="warning from 80%, critical from 95%."
    )


# --- exports ----------------------------------------------------------------------------------------


class ExportSerializer(serializers.ModelSerializer):
    """An export as it stands. ``download_url`` is set once it is done."""

    size = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Export
        fields = [
            "id",
            "kind",
            "scope",
            "folder",
            "size",
            "status",
            "progress",
            "filename",
            "file_size",
            "failure_reason",
            "created_at",
            "finished_at",
            "expires_at",
            "download_url",
        ]
        read_only_fields = fields

    @extend_schema_field({"type": "string", "enum": ["web", "original"], "nullable": True})
    def get_size(self, export: Export) -> str | None:
        return export.size or None

    @extend_schema_field({"type": "string", "nullable": True, "description": "The download endpoint, when done."})
    def get_download_url(self, export: Export) -> str | None:
        if export.status != ExportStatus.DONE:
            return None
        if self.context.get("portal"):
            return reverse("api:portal-export-download", kwargs={"gallery_pk": export.gallery_id, "pk": export.pk})
        studio = self.context["studio"]
        return reverse(
            "api:gallery-export-download",
            kwargs={"studio_slug": studio.slug, "gallery_pk": export.gallery_id, "pk": export.pk},
        )


class ExportRequestSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ExportKind.choices)
    scope = serializers.ChoiceField(choices=ExportScope.choices, default=ExportScope.GALLERY)
    folder = serializers.UUIDField(
        required=False, allow_null=True, default=None, help_text="A folder of this gallery, with scope folder."
    )
    size = serializers.ChoiceField(
        choices=ExportSize.choices, default=ExportSize.WEB, help_text="ZIP only: web size (2048 px) or originals."
    )

    def validate_folder(self, value: uuid.UUID | None) -> Folder | None:
        if value is None:
            return None
        # The view's folders: the gallery's (staff), or those the visitor sees.
        folder = self.context["folders"].filter(pk=value).first()
        if folder is None:
            raise serializers.ValidationError("Unknown folder.", code="unknown")
        return folder


class PortalExportRequestSerializer(ExportRequestSerializer):
    kind = serializers.ChoiceField(choices=[ExportKind.ZIP], help_text="Clients download photos: zip only.")
