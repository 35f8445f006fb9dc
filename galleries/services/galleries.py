"""Writes for galleries: create, edit, publish, codes and PINs, cover, delete;
and the staff bin for photos (delete, restore, purge). Each records its audit event in the same transaction."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils import timezone

from galleries.models import Asset, AssetStatus, Gallery, GalleryStatus, Visibility
from galleries.services.effects import asset_keys, delete_objects_on_commit
from studio import context
from studio.auditing import Action, audit_record, snapshot
from studio.errors import Conflict, DomainError, save_or_conflict
from studio.models import Membership
from studio.roles import require_scope
from studio.tenancy import current_studio
from studio.validation import validate

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read over the phone
CODE_RE = re.compile(r"[A-Z0-9]{4,32}")
PIN_RE = re.compile(r"\d{4,8}")


def normalise_code(code: str) -> str:
    return re.sub(r"[\s-]", "", code or "").upper()


def generate_access_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))


def validate_access_code(code: str) -> str:
    """The normalised code, or a DomainError saying what a code looks like."""
    code = normalise_code(code)
    if not CODE_RE.fullmatch(code):
        raise DomainError(
            "Access codes are 4 to 32 letters and digits.",
            code="INVALID_ACCESS_CODE",
            fields={"access_code": ["Use 4 to 32 letters and digits, e.g. SMITH2025."]},
        )
    return code


def _pin_hash(pin: str | None) -> str:
    if not pin:
        return ""
    if not PIN_RE.fullmatch(pin):
        raise DomainError("A PIN is 4 to 8 digits.", code="INVALID_PIN", fields={"pin": ["Use 4 to 8 digits."]})
    return make_password(pin)


def _gallery_snapshot(gallery: Gallery) -> dict[str, Any]:
    data = snapshot(gallery, [*Gallery.EDITABLE_FIELDS, "status", "access_code"])
    data["has_pin"] = gallery.has_pin
    data["assigned_members"] = sorted(str(pk) for pk in gallery.assigned_members.values_list("pk", flat=True))
    return data


def _save_gallery(gallery: Gallery) -> None:
    validate(gallery, exclude=["access_code", "pin_hash"])  # both checked above, and the code's uniqueness below
    conflict = Conflict(
        f"Another gallery uses the code {gallery.access_code}.",
        code="ACCESS_CODE_TAKEN",
        fields={"access_code": [f"{gallery.access_code} is already used by another gallery of this studio."]},
    )
    save_or_conflict(gallery, conflict)


def _require_gallery_admin(actor: Membership | None, what: str) -> None:
    """The code and the PIN sign every client out when they change, and the
    visibility opens a gallery to people without its code: they need
    gallery:admin, like rotate-code and publishing."""
    require_scope(actor, "gallery:admin", f"{what} needs the gallery:admin scope.")


def _editable(fields: dict[str, Any]) -> None:
    unknown = set(fields) - set(Gallery.EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"Not editable here: {sorted(unknown)}")


@transaction.atomic
def gallery_create(
    *,
    actor: Membership | None,
    title: str,
    access_code: str = "",
    pin: str = "",
    assigned_members: list[Any] | None = None,
    **fields: Any,
) -> Gallery:
    """A new draft gallery. ``actor`` is the acting member (None: a platform
    operator or the system); creating needs only what the caller's endpoint
    asked for (gallery:write): a draft is open to nobody."""
    _editable(fields)
    gallery = Gallery(studio=current_studio(), title=title, **fields)
    gallery.access_code = validate_access_code(access_code) if access_code else generate_access_code()
    gallery.pin_hash = _pin_hash(pin)
    _save_gallery(gallery)
    if assigned_members:
        gallery.assigned_members.set(assigned_members)
    audit_record(action=Action.GALLERY_CREATED, target=gallery, after=_gallery_snapshot(gallery))
    return gallery


_UNSET: Any = object()


@transaction.atomic
def gallery_update(
    *,
    actor: Membership | None,
    gallery: Gallery,
    access_code: Any = _UNSET,
    pin: Any = _UNSET,
    assigned_members: list[Any] | None = None,
    **fields: Any,
) -> Gallery:
    """Edit a gallery. ``access_code`` (empty: generate a new one) rotates the
    code; ``pin`` sets it (empty: removes it). Changing the code, the PIN or
    the visibility needs gallery:admin, checked here against ``actor`` for
    every caller (API, admin, commands)."""
    _editable(fields)
    if access_code is not _UNSET and (not access_code or normalise_code(access_code) != gallery.access_code):
        gallery = gallery_rotate_code(actor=actor, gallery=gallery, access_code=access_code)
    before = _gallery_snapshot(gallery)
    pin_changes = pin is not _UNSET and (bool(pin) or gallery.has_pin)
    if pin_changes:
        _require_gallery_admin(actor, "Changing the PIN")
    if "visibility" in fields and fields["visibility"] != gallery.visibility:
        _require_gallery_admin(actor, "Changing who can open the gallery")
    for name, value in fields.items():
        setattr(gallery, name, value)
    if pin_changes:
        gallery.pin_hash = _pin_hash(pin)
        gallery.access_version += 1  # a new PIN signs everyone out
    if before["visibility"] != Visibility.PRIVATE and gallery.visibility == Visibility.PRIVATE:
        gallery.access_version += 1  # sessions opened by link alone end
    _save_gallery(gallery)
    if assigned_members is not None:
        gallery.assigned_members.set(assigned_members)
    after = _gallery_snapshot(gallery)
    if after != before:
        audit_record(action=Action.GALLERY_UPDATED, target=gallery, before=before, after=after)
    return gallery


def _set_status(gallery: Gallery, status: str, action: Action, *, cut_access: bool) -> Gallery:
    if gallery.status == status:
        return gallery
    before = {"status": gallery.status}
    gallery.status = status
    if cut_access:
        gallery.access_version += 1
    gallery.save(update_fields=["status", "access_version", "updated_at"])
    audit_record(action=action, target=gallery, before=before, after={"status": status})
    return gallery


@transaction.atomic
def gallery_publish(*, gallery: Gallery) -> Gallery:
    return _set_status(gallery, GalleryStatus.PUBLISHED, Action.GALLERY_PUBLISHED, cut_access=False)


@transaction.atomic
def gallery_unpublish(*, gallery: Gallery, archive: bool = False) -> Gallery:
    """Back to draft (or archived). Every visitor session and media link dies."""
    status = GalleryStatus.ARCHIVED if archive else GalleryStatus.DRAFT
    return _set_status(gallery, status, Action.GALLERY_UNPUBLISHED, cut_access=True)


@transaction.atomic
def gallery_rotate_code(*, actor: Membership | None, gallery: Gallery, access_code: str = "") -> Gallery:
    """A new code (``access_code``, or a generated one): every client is signed out."""
    _require_gallery_admin(actor, "Changing the access code")
    before = {"access_code": gallery.access_code}
    gallery.access_code = validate_access_code(access_code) if access_code else generate_access_code()
    gallery.access_version += 1
    _save_gallery(gallery)
    audit_record(
        action=Action.GALLERY_CODE_ROTATED, target=gallery, before=before, after={"access_code": gallery.access_code}
    )
    return gallery


@transaction.atomic
def gallery_set_cover(*, gallery: Gallery, asset: Asset | None) -> Gallery:
    if asset is not None and (asset.gallery_id != gallery.pk or asset.status != AssetStatus.READY):
        raise DomainError("The cover must be a ready photo of this gallery.", code="INVALID_COVER")
    before = {"cover": str(gallery.cover_id) if gallery.cover_id else None}
    gallery.cover = asset
    gallery.save(update_fields=["cover", "updated_at"])
    audit_record(
        action=Action.GALLERY_COVER_SET,
        target=gallery,
        before=before,
        after={"cover": str(asset.pk) if asset else None},
    )
    return gallery


@transaction.atomic
def gallery_delete(*, gallery: Gallery) -> None:
    # Photos in the bin too: their bytes go with the gallery.
    keys = asset_keys(Asset.with_deleted.filter(gallery=gallery).only("storage_key", "upload_key", "derivatives"))
    audit_record(action=Action.GALLERY_DELETED, target=gallery, before=_gallery_snapshot(gallery))
    Gallery.objects.filter(pk=gallery.pk).update(cover=None)
    gallery.delete()
    delete_objects_on_commit(keys)


def bin_retention() -> timedelta:
    return timedelta(days=settings.STAFF_BIN_RETENTION_DAYS)


@transaction.atomic
def asset_delete(*, asset: Asset) -> Asset:
    """Staff delete a photo: it goes to the bin. It leaves every list, count,
    export and the client's portal at once (Asset.objects hides it) and is
    no longer the cover; its row, ratings, folders and bytes stay until it
    is restored, purged by staff, or purged by cleanup_galleries after
    STAFF_BIN_RETENTION_DAYS."""
    asset = Asset.with_deleted.select_for_update().get(pk=asset.pk)
    if asset.deleted_at is not None:
        return asset  # a second click: already in the bin
    now = timezone.now()
    actor = context.current().resolved_actor()
    asset.deleted_at = now
    asset.deleted_by = getattr(actor, "user", None)
    asset.save(update_fields=["deleted_at", "deleted_by", "updated_at"])
    Gallery.objects.filter(cover=asset).update(cover=None)
    audit_record(
        action=Action.ASSET_DELETED,
        target=asset,
        before=snapshot(asset, ["original_filename", "size", "status"]),
        after={"in_bin_until": (now + bin_retention()).isoformat()},
    )
    return asset


@transaction.atomic
def asset_restore(*, asset: Asset) -> Asset:
    """Take a photo out of the bin, as it was (ratings, folders, trash state)."""
    asset = Asset.with_deleted.select_for_update().get(pk=asset.pk)
    if asset.deleted_at is None:
        raise Conflict("This photo is not in the bin.", code="NOT_IN_BIN")
    if asset.sha256 and Asset.objects.filter(gallery_id=asset.gallery_id, sha256=asset.sha256).exists():
        raise Conflict(
            "The same photo was uploaded to this gallery again since it was deleted; "
            "delete that copy first or leave this one in the bin.",
            code="DUPLICATE_CONTENT",
        )
    before = {"deleted_at": asset.deleted_at.isoformat()}
    asset.deleted_at = None
    asset.deleted_by = None
    asset.save(update_fields=["deleted_at", "deleted_by", "updated_at"])
    audit_record(action=Action.ASSET_RESTORED_FROM_BIN, target=asset, before=before, after={"deleted_at": None})
    return asset


@transaction.atomic
def asset_purge(*, asset: Asset) -> None:
    """Delete a photo in the bin for good: its row, and its bytes once the
    transaction commits (through the deletion outbox, so a storage outage
    delays it and loses nothing). Only from the bin: two steps, so one click
    can never destroy a delivered photo."""
    asset = Asset.with_deleted.select_for_update().filter(pk=asset.pk).first()
    if asset is None:
        return  # purged by a concurrent request or the cleanup
    if asset.deleted_at is None:
        raise Conflict("Only photos in the bin can be deleted for good.", code="NOT_IN_BIN")
    audit_record(
        action=Action.ASSET_PURGED,
        target=asset,
        before=snapshot(asset, ["original_filename", "size", "status", "deleted_at"]),
    )
    keys = asset_keys([asset])
    asset.delete()
    delete_objects_on_commit(keys)


def binned_assets_due(*, now: datetime | None = None) -> Any:
    """Photos in the bin longer than the retention, oldest first."""
    cutoff = (now or timezone.now()) - bin_retention()
    return Asset.with_deleted.filter(deleted_at__lt=cutoff).order_by("deleted_at")


def assets_purge_binned(*, now: datetime | None = None) -> int:
    """cleanup_galleries: purge every photo in the bin past the retention,
    one transaction each, so an interruption keeps what was done."""
    purged = 0
    for asset in binned_assets_due(now=now).only("pk"):
        asset_purge(asset=asset)
        purged += 1
    return purged
