"""Writes for galleries: lifecycle, uploads, processing, and the client's
ratings, folders, trash and selection. Each records its audit event in the
same transaction; storage deletions and derivative jobs run on commit.

Bulk operations take hundreds of ids and run a constant number of queries:
they read what exists in one query, then bulk_create / bulk_update / one
DELETE, and record one audit event for the call.
"""

from __future__ import annotations

import re
import secrets
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Max, Q, Sum
from django.db.models.functions import Coalesce
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from galleries import imaging
from galleries.models import (
    Asset,
    AssetStatus,
    Folder,
    Gallery,
    GalleryStatus,
    Placement,
    Rating,
    Selection,
    SelectionStatus,
    UploadBatch,
    Visibility,
    Visitor,
)
from galleries.storage import derivative_key, media_store, original_key
from studio.auditing import Action, audit_record, snapshot
from studio.errors import Conflict, DomainError, save_or_conflict
from studio.models import Studio
from studio.tenancy import current_studio

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read over the phone
CODE_RE = re.compile(r"[A-Z0-9]{4,32}")
PIN_RE = re.compile(r"\d{4,8}")
GALLERY_FIELDS = [
    "title",
    "client_name",
    "client_email",
    "event_date",
    "expires_at",
    "visibility",
    "download_permission",
    "selection_limit",
    "ask_visitor_identity",
    "assigned_team",
]


class SelectionLocked(Conflict):
    code = "SELECTION_FINALIZED"
    default_message = "The selection is finalised: ratings and folders are read-only until the studio reopens it."


# --- galleries -------------------------------------------------------------------------------


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
    data = snapshot(gallery, [*GALLERY_FIELDS, "status", "access_code"])
    data["has_pin"] = gallery.has_pin
    data["assigned_members"] = sorted(str(pk) for pk in gallery.assigned_members.values_list("pk", flat=True))
    return data


def _save_gallery(gallery: Gallery) -> None:
    conflict = Conflict(
        f"Another gallery uses the code {gallery.access_code}.",
        code="ACCESS_CODE_TAKEN",
        fields={"access_code": ["Already in use in this studio."]},
    )
    save_or_conflict(gallery, conflict)


@transaction.atomic
def gallery_create(
    *, title: str, access_code: str = "", pin: str = "", assigned_members: list[Any] | None = None, **fields: Any
) -> Gallery:
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
    *, gallery: Gallery, pin: Any = _UNSET, assigned_members: list[Any] | None = None, **fields: Any
) -> Gallery:
    unknown = set(fields) - set(GALLERY_FIELDS)
    if unknown:
        raise ValueError(f"Not editable here: {sorted(unknown)}")
    before = _gallery_snapshot(gallery)
    for name, value in fields.items():
        setattr(gallery, name, value)
    if pin is not _UNSET:
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
def gallery_rotate_code(*, gallery: Gallery, access_code: str = "") -> Gallery:
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


def _asset_keys(assets: Iterable[Asset]) -> list[str]:
    keys = []
    for asset in assets:
        keys.append(asset.storage_key)
        keys.extend(d["key"] for d in (asset.derivatives or {}).values())
    return keys


def _delete_objects_on_commit(keys: list[str]) -> None:
    if keys:
        from galleries.tasks import delete_objects

        studio_id = str(current_studio().pk)
        transaction.on_commit(lambda: delete_objects.delay(studio_id, keys))


@transaction.atomic
def gallery_delete(*, gallery: Gallery) -> None:
    keys = _asset_keys(Asset.objects.filter(gallery=gallery).only("storage_key", "derivatives"))
    audit_record(action=Action.GALLERY_DELETED, target=gallery, before=_gallery_snapshot(gallery))
    Gallery.objects.filter(pk=gallery.pk).update(cover=None)
    gallery.delete()
    _delete_objects_on_commit(keys)


# --- storage use and uploads ---------------------------------------------------------------------


def storage_usage(studio: Studio) -> int:
    """Bytes held for the studio: originals and derivatives of every asset that
    is not failed (failed uploads are deleted from storage)."""
    totals = (
        Asset.objects.filter(studio=studio)
        .exclude(status=AssetStatus.FAILED)
        .aggregate(total=Coalesce(Sum(F("size") + F("derivative_bytes")), 0))
    )
    return int(totals["total"])


class QuotaExceeded(DomainError):
    code = "STORAGE_QUOTA_EXCEEDED"
    status_code = 413
    default_message = "This upload would exceed the studio's storage quota."


@dataclass
class FileRequest:
    filename: str
    size: int
    content_type: str
    sha256: str = ""


@dataclass
class PresignResult:
    batch: UploadBatch
    accepted: list[tuple[Asset, Any]] = field(default_factory=list)  # (asset, UploadTarget)
    rejected: list[dict[str, Any]] = field(default_factory=list)  # {"filename", "reason"}


def _reject_reason(file: FileRequest) -> str | None:
    fmt = imaging.MIME_TO_FORMAT.get(file.content_type)
    if fmt is None:
        return f"{file.content_type or 'This type'} is not accepted: upload JPEG, PNG, WebP or TIFF images."
    ext = file.filename.rsplit(".", 1)[-1].lower() if "." in file.filename else ""
    if ext not in imaging.FORMATS[fmt][1]:
        return f"The name ends in .{ext or '(nothing)'} but the type is {file.content_type}."
    if file.size <= 0:
        return "The file is empty."
    if file.size > settings.UPLOAD_MAX_BYTES:
        return f"The file is larger than {filesizeformat(settings.UPLOAD_MAX_BYTES)}."
    return None


@transaction.atomic
def upload_presign(*, gallery: Gallery, files: list[FileRequest], user: Any) -> PresignResult:
    """Upload targets for a batch of files, straight to storage.

    The studio row is locked while the quota is checked, so two batches
    cannot both squeeze under it."""
    studio = Studio.objects.select_for_update().get(pk=gallery.studio_id)
    known = dict(
        Asset.objects.filter(gallery=gallery)
        .exclude(sha256="")
        .exclude(status=AssetStatus.FAILED)
        .values_list("sha256", "original_filename")
    )
    wanted: list[FileRequest] = []
    rejected: list[dict[str, Any]] = []
    for file in files:
        reason = _reject_reason(file)
        if reason is None and file.sha256 and file.sha256 in known:
            reason = f"Already in this gallery as {known[file.sha256]}."
        if reason:
            rejected.append({"filename": file.filename, "reason": reason})
        else:
            if file.sha256:
                known[file.sha256] = file.filename
            wanted.append(file)
    requested = sum(f.size for f in wanted)
    usage = storage_usage(studio)
    if usage + requested > studio.storage_quota_bytes:
        raise QuotaExceeded(
            details={"usage_bytes": usage, "quota_bytes": studio.storage_quota_bytes, "requested_bytes": requested}
        )
    batch = UploadBatch.objects.create(studio=studio, gallery=gallery, created_by=user)
    next_order = (Asset.objects.filter(gallery=gallery).aggregate(m=Max("sort_order"))["m"] or 0) + 1
    assets = []
    for index, file in enumerate(wanted):
        asset = Asset(
            studio=studio,
            gallery=gallery,
            batch=batch,
            original_filename=file.filename[:255],
            content_type=file.content_type,
            size=file.size,
            sort_order=next_order + index,
        )
        asset.storage_key = original_key(asset, imaging.FORMATS[imaging.MIME_TO_FORMAT[file.content_type]][1][0])
        assets.append(asset)
    Asset.objects.bulk_create(assets)
    store = media_store()
    ttl = settings.UPLOAD_URL_TTL_SECONDS
    result = PresignResult(batch=batch, rejected=rejected)
    for asset in assets:
        target = store.presigned_upload(asset.storage_key, size=asset.size, content_type=asset.content_type, ttl=ttl)
        result.accepted.append((asset, target))
    audit_record(
        action=Action.UPLOAD_REQUESTED,
        target=gallery,
        after={"batch": str(batch.pk), "files": len(assets), "bytes": requested, "rejected": len(rejected)},
    )
    return result


@dataclass
class CompleteResult:
    processing: list[Asset] = field(default_factory=list)
    failed: list[tuple[Asset, str]] = field(default_factory=list)
    missing: list[Asset] = field(default_factory=list)


def _check_uploaded(store: Any, asset: Asset) -> str | None:
    """None when the object is there and keeps the rules; else why not."""
    info = store.head(asset.storage_key)
    if info is None:
        return "missing"
    if info.size != asset.size:
        return f"The file is {info.size} bytes, not the {asset.size} bytes announced."
    if info.content_type and info.content_type != asset.content_type:
        return f"The file was stored as {info.content_type}, not {asset.content_type}."
    sniffed = imaging.sniff_format(store.read_head(asset.storage_key, 16))
    if sniffed is None:
        return "This is not a JPEG, PNG, WebP or TIFF image."
    if imaging.FORMATS[sniffed][0] != asset.content_type:
        return f"The file is a {sniffed} image, not {asset.content_type}."
    return None


@transaction.atomic
def upload_complete(*, batch: UploadBatch, asset_ids: list[Any] | None = None) -> CompleteResult:
    """Check each uploaded object (HEAD, then its first bytes); delete the ones
    that break the rules; queue derivatives for the rest."""
    assets = Asset.objects.select_for_update().filter(batch=batch, status=AssetStatus.AWAITING_UPLOAD)
    if asset_ids is not None:
        assets = assets.filter(pk__in=asset_ids)
    store = media_store()
    result = CompleteResult()
    for asset in assets:
        problem = _check_uploaded(store, asset)
        if problem == "missing":
            result.missing.append(asset)
        elif problem:
            asset.status, asset.failure_reason = AssetStatus.FAILED, problem[:300]
            result.failed.append((asset, problem))
        else:
            asset.status = AssetStatus.PROCESSING
            result.processing.append(asset)
    changed = [*result.processing, *(a for a, _ in result.failed)]
    Asset.objects.bulk_update(changed, ["status", "failure_reason", "updated_at"])
    _delete_objects_on_commit([a.storage_key for a, _ in result.failed])
    audit_record(
        action=Action.UPLOAD_COMPLETED,
        target=batch.gallery,
        after={
            "batch": str(batch.pk),
            "processing": [str(a.pk) for a in result.processing],
            "failed": {str(a.pk): reason for a, reason in result.failed},
            "missing": [str(a.pk) for a in result.missing],
        },
    )
    _queue_derivatives([a.pk for a in result.processing])
    return result


def _queue_derivatives(asset_ids: list[Any], *, force: bool = False) -> None:
    if not asset_ids:
        return
    from galleries.tasks import make_derivatives

    studio_id = str(current_studio().pk)
    ids = [str(pk) for pk in asset_ids]
    transaction.on_commit(lambda: [make_derivatives.delay(studio_id, pk, force=force) for pk in ids])


def batch_progress(batch: UploadBatch) -> dict[str, int]:
    counts = dict.fromkeys(AssetStatus.values, 0)
    for row in Asset.objects.filter(batch=batch).values("status").annotate(n=Count("pk")):
        counts[row["status"]] = row["n"]
    return counts


# --- derivatives (the Celery task's body) ---------------------------------------------------------


def _fail(asset: Asset, reason: str) -> None:
    asset.status, asset.failure_reason = AssetStatus.FAILED, reason[:300]
    asset.save(update_fields=["status", "failure_reason", "updated_at"])
    audit_record(action=Action.ASSET_FAILED, target=asset, after={"reason": asset.failure_reason})
    _delete_objects_on_commit(_asset_keys([asset]))


def asset_process(*, asset_id: Any, force: bool = False) -> Asset | None:
    """Make the derivatives of one asset. Idempotent: a ready asset is left
    alone unless ``force``; keys are fixed, so a rerun overwrites, never adds.
    Storage errors propagate (StorageError) for the task to retry; bad
    input marks the asset failed with a reason a person understands."""
    asset = Asset.objects.filter(pk=asset_id).select_related("gallery").first()
    if asset is None or asset.status not in (AssetStatus.PROCESSING, AssetStatus.READY):
        return asset
    if asset.status == AssetStatus.READY and not force:
        return asset
    store = media_store()
    with tempfile.NamedTemporaryFile(suffix="." + asset.storage_key.rsplit(".", 1)[-1]) as tmp:
        try:
            digest = store.download(asset.storage_key, tmp)
        except FileNotFoundError:
            with transaction.atomic():
                _fail(asset, "The uploaded file is missing from storage. Upload it again.")
            return asset
        tmp.flush()
        duplicate = (
            Asset.objects.filter(gallery_id=asset.gallery_id, sha256=digest)
            .exclude(pk=asset.pk)
            .exclude(status=AssetStatus.FAILED)
            .first()
        )
        if duplicate is not None:
            with transaction.atomic():
                _fail(asset, f"Duplicate of {duplicate.original_filename}, already in this gallery.")
            return asset
        try:
            info, derivatives = imaging.make_derivatives(
                tmp.name,
                filename=asset.original_filename,
                max_pixels=settings.DERIVATIVE_MAX_PIXELS,
                quality=settings.DERIVATIVE_WEBP_QUALITY,
                method=settings.DERIVATIVE_WEBP_METHOD,
            )
        except imaging.ImageRejected as exc:
            asset.sha256 = ""
            with transaction.atomic():
                _fail(asset, exc.reason)
            return asset
    stored = {}
    for derivative in derivatives:
        key = derivative_key(asset, derivative.name)
        store.put(key, derivative.data, "image/webp")
        stored[derivative.name] = {
            "key": key,
            "width": derivative.width,
            "height": derivative.height,
            "bytes": len(derivative.data),
        }
    asset.sha256 = digest
    asset.width, asset.height = info.width, info.height
    asset.orientation = info.orientation
    asset.captured_at = info.captured_at.replace(tzinfo=UTC) if info.captured_at else None
    asset.derivatives = stored
    asset.derivative_bytes = sum(d["bytes"] for d in stored.values())
    asset.status, asset.failure_reason = AssetStatus.READY, ""
    try:
        with transaction.atomic():
            asset.save()
            audit_record(
                action=Action.ASSET_PROCESSED,
                target=asset,
                after={"width": asset.width, "height": asset.height, "derivative_bytes": asset.derivative_bytes},
            )
    except IntegrityError:  # a twin finished first (unique sha256 per gallery)
        with transaction.atomic():
            asset.refresh_from_db()
            asset.derivatives = stored  # so _fail deletes what we just wrote too
            _fail(asset, "Duplicate of a photo already in this gallery.")
    return asset


@transaction.atomic
def assets_regenerate(*, gallery: Gallery, assets: list[Asset] | None = None) -> list[Asset]:
    # PROCESSING too: a photo whose task gave up (storage down past its
    # retries) is otherwise stuck; re-running it is harmless (same keys).
    queryset = Asset.objects.filter(gallery=gallery, status__in=[AssetStatus.READY, AssetStatus.PROCESSING])
    if assets is not None:
        queryset = queryset.filter(pk__in=[a.pk for a in assets])
    chosen = list(queryset)
    if chosen:
        audit_record(
            action=Action.ASSET_REGENERATE_REQUESTED, target=gallery, after={"assets": [str(a.pk) for a in chosen]}
        )
        _queue_derivatives([a.pk for a in chosen], force=True)
    return chosen


@transaction.atomic
def asset_delete(*, asset: Asset) -> None:
    audit_record(
        action=Action.ASSET_DELETED, target=asset, before=snapshot(asset, ["original_filename", "size", "status"])
    )
    Gallery.objects.filter(cover=asset).update(cover=None)
    keys = _asset_keys([asset])
    asset.delete()
    _delete_objects_on_commit(keys)


# --- the client's work: ratings, folders, trash, selection ---------------------------------------


def live_selection(gallery: Gallery) -> Selection | None:
    return Selection.objects.filter(gallery=gallery, status=SelectionStatus.FINALIZED).first()


def _ensure_open(gallery: Gallery) -> None:
    if live_selection(gallery) is not None:
        raise SelectionLocked()


def _ids(objects: Iterable[Any]) -> list[str]:
    return [str(o.pk) for o in objects]


@transaction.atomic
def ratings_set(*, gallery: Gallery, visitor: Visitor, ratings: list[tuple[Asset, int | None]]) -> None:
    """Set (1-5) or clear (None) the visitor's stars on many assets at once."""
    _ensure_open(gallery)
    wanted = {asset.pk: stars for asset, stars in ratings}
    for stars in wanted.values():
        if stars is not None and not 1 <= stars <= 5:
            raise DomainError("Stars go from 1 to 5.", code="INVALID_STARS", fields={"stars": ["Use 1 to 5."]})
    existing = {r.asset_id: r for r in Rating.objects.filter(visitor=visitor, asset_id__in=list(wanted))}
    now = timezone.now()
    to_create, to_update, to_clear = [], [], []
    for asset_id, stars in wanted.items():
        current = existing.get(asset_id)
        if stars is None:
            if current is not None:
                to_clear.append(current.pk)
        elif current is None:
            to_create.append(Rating(studio=gallery.studio, asset_id=asset_id, visitor=visitor, stars=stars))
        elif current.stars != stars:
            current.stars, current.updated_at = stars, now
            to_update.append(current)
    Rating.objects.bulk_create(to_create)
    Rating.objects.bulk_update(to_update, ["stars", "updated_at"])
    if to_clear:
        Rating.objects.filter(pk__in=to_clear).delete()
    set_ = {str(k): v for k, v in wanted.items() if v is not None}
    cleared = [str(k) for k, v in wanted.items() if v is None]
    if set_:
        audit_record(action=Action.RATINGS_SET, target=gallery, after={"visitor": str(visitor.pk), "stars": set_})
    if cleared:
        audit_record(
            action=Action.RATINGS_CLEARED, target=gallery, after={"visitor": str(visitor.pk), "assets": cleared}
        )


def _save_folder(folder: Folder) -> None:
    conflict = Conflict(
        f"There is already a folder named '{folder.name}'.", code="DUPLICATE_NAME", fields={"name": ["Already in use."]}
    )
    save_or_conflict(folder, conflict)


@transaction.atomic
def folder_create(*, gallery: Gallery, name: str, visitor: Visitor | None = None) -> Folder:
    if visitor is not None:
        _ensure_open(gallery)
    last = Folder.objects.filter(gallery=gallery).aggregate(m=Max("sort_order"))["m"]
    folder = Folder(
        studio=gallery.studio, gallery=gallery, name=name, created_by_visitor=visitor, sort_order=(last or 0) + 1
    )
    _save_folder(folder)
    audit_record(action=Action.FOLDER_CREATED, target=folder, after={"name": name, "gallery": str(gallery.pk)})
    return folder


@transaction.atomic
def folder_rename(*, folder: Folder, name: str, by_visitor: bool = False) -> Folder:
    if by_visitor:
        _ensure_open(folder.gallery)
    before = {"name": folder.name}
    folder.name = name
    _save_folder(folder)
    audit_record(action=Action.FOLDER_UPDATED, target=folder, before=before, after={"name": name})
    return folder


@transaction.atomic
def folder_delete(*, folder: Folder, by_visitor: bool = False) -> None:
    if by_visitor:
        _ensure_open(folder.gallery)
    audit_record(
        action=Action.FOLDER_DELETED,
        target=folder,
        before={
            "name": folder.name,
            "assets": [str(pk) for pk in folder.placements.values_list("asset_id", flat=True)],
        },
    )
    folder.delete()


@transaction.atomic
def folders_reorder(*, gallery: Gallery, folders: list[Folder], by_visitor: bool = False) -> None:
    if by_visitor:
        _ensure_open(gallery)
    all_ids = set(Folder.objects.filter(gallery=gallery).values_list("pk", flat=True))
    if {f.pk for f in folders} != all_ids:
        raise DomainError(
            "List every folder of the gallery exactly once.",
            code="INCOMPLETE_ORDER",
            fields={"folders": ["Must list every folder once."]},
        )
    for index, folder in enumerate(folders, start=1):
        folder.sort_order = index
    Folder.objects.bulk_update(folders, ["sort_order"])
    audit_record(action=Action.FOLDERS_REORDERED, target=gallery, after={"folders": _ids(folders)})


def _append(folder: Folder, assets: list[Asset]) -> list[Asset]:
    present = set(Placement.objects.filter(folder=folder, asset__in=assets).values_list("asset_id", flat=True))
    last = Placement.objects.filter(folder=folder).aggregate(m=Max("sort_order"))["m"] or 0
    new = [a for a in assets if a.pk not in present]
    Placement.objects.bulk_create(
        [
            Placement(studio=folder.studio, folder=folder, asset=a, sort_order=last + i)
            for i, a in enumerate(new, start=1)
        ]
    )
    return new


@transaction.atomic
def placements_add(*, folder: Folder, assets: list[Asset], by_visitor: bool = False) -> None:
    if by_visitor:
        _ensure_open(folder.gallery)
    added = _append(folder, assets)
    audit_record(action=Action.PLACEMENTS_ADDED, target=folder, after={"assets": _ids(added)})


@transaction.atomic
def placements_remove(*, folder: Folder, assets: list[Asset], by_visitor: bool = False) -> None:
    if by_visitor:
        _ensure_open(folder.gallery)
    Placement.objects.filter(folder=folder, asset__in=assets).delete()
    audit_record(action=Action.PLACEMENTS_REMOVED, target=folder, after={"assets": _ids(assets)})


@transaction.atomic
def placements_move(*, source: Folder, target: Folder, assets: list[Asset], by_visitor: bool = False) -> None:
    if by_visitor:
        _ensure_open(source.gallery)
    if source.gallery_id != target.gallery_id:
        raise DomainError("Both folders must be in the same gallery.", code="INVALID_FOLDER")
    present = set(Placement.objects.filter(folder=source, asset__in=assets).values_list("asset_id", flat=True))
    outside = [a for a in assets if a.pk not in present]
    if outside:
        raise DomainError(
            "Some photos are not in the folder they would move from.",
            code="NOT_IN_FOLDER",
            fields={"assets": [f"Not in this folder: {a.pk}." for a in outside]},
        )
    Placement.objects.filter(folder=source, asset__in=assets).delete()
    _append(target, assets)
    audit_record(action=Action.PLACEMENTS_MOVED, target=source, after={"to": str(target.pk), "assets": _ids(assets)})


@transaction.atomic
def placements_reorder(*, folder: Folder, assets: list[Asset], by_visitor: bool = False) -> None:
    """Put the listed assets first, in this order; the others keep theirs after."""
    if by_visitor:
        _ensure_open(folder.gallery)
    placements = {p.asset_id: p for p in Placement.objects.filter(folder=folder)}
    unknown = [a for a in assets if a.pk not in placements]
    if unknown:
        raise DomainError("Some photos are not in this folder.", code="NOT_IN_FOLDER", fields={"assets": _ids(unknown)})
    listed = [placements[a.pk] for a in assets]
    rest = sorted((p for pk, p in placements.items() if pk not in {a.pk for a in assets}), key=lambda p: p.sort_order)
    for index, placement in enumerate([*listed, *rest], start=1):
        placement.sort_order = index
    Placement.objects.bulk_update(list(placements.values()), ["sort_order"])
    audit_record(action=Action.PLACEMENTS_REORDERED, target=folder, after={"assets": _ids(assets)})


@transaction.atomic
def assets_trash(*, gallery: Gallery, assets: list[Asset], restore: bool = False) -> int:
    """The client's trash: hidden from the default view, kept, restorable."""
    _ensure_open(gallery)
    ids = [a.pk for a in assets]
    queryset = Asset.objects.filter(gallery=gallery, pk__in=ids)
    if restore:
        changed = queryset.exclude(trashed_at=None).update(trashed_at=None)
        action = Action.ASSETS_RESTORED
    else:
        changed = queryset.filter(trashed_at=None).update(trashed_at=timezone.now())
        action = Action.ASSETS_TRASHED
    audit_record(action=action, target=gallery, after={"assets": [str(pk) for pk in ids]})
    return changed


def chosen_assets(gallery: Gallery) -> Any:
    """What a selection contains: ready photos, not in the trash, that were
    rated or put in a folder."""
    return (
        Asset.objects.filter(gallery=gallery, status=AssetStatus.READY, trashed_at=None)
        .filter(Q(ratings__isnull=False) | Q(placements__isnull=False))
        .distinct()
        .order_by("sort_order", "created_at")
    )


def _selection_snapshot(gallery: Gallery, assets: list[Asset]) -> list[dict[str, Any]]:
    ids = [a.pk for a in assets]
    # Keyed by visitor id: labels repeat ("Anonymous visitor", same names).
    stars: dict[Any, list[dict[str, Any]]] = {}
    for rating in Rating.objects.filter(asset_id__in=ids).select_related("visitor").order_by("created_at"):
        stars.setdefault(rating.asset_id, []).append(
            {"visitor": str(rating.visitor_id), "label": str(rating.visitor), "stars": rating.stars}
        )
    folders: dict[Any, list[str]] = {}
    for placement in Placement.objects.filter(asset_id__in=ids).select_related("folder").order_by("folder__sort_order"):
        folders.setdefault(placement.asset_id, []).append(placement.folder.name)
    rows = []
    for asset in assets:
        given = stars.get(asset.pk, [])
        rows.append(
            {
                "asset": str(asset.pk),
                "filename": asset.original_filename,
                "stars": given,
                "average": round(sum(r["stars"] for r in given) / len(given), 2) if given else None,
                "folders": folders.get(asset.pk, []),
            }
        )
    return rows


@transaction.atomic
def selection_finalize(*, gallery: Gallery, visitor: Visitor) -> Selection:
    """Freeze the choice. Finalising again returns the same selection."""
    Gallery.objects.select_for_update().filter(pk=gallery.pk).first()  # one finaliser at a time
    existing = live_selection(gallery)
    if existing is not None:
        return existing
    assets = list(chosen_assets(gallery))
    if not assets:
        raise DomainError("Rate or file at least one photo before finalising.", code="EMPTY_SELECTION")
    if gallery.selection_limit and len(assets) > gallery.selection_limit:
        raise DomainError(
            f"You chose {len(assets)} photos; this gallery allows up to {gallery.selection_limit}. "
            f"Remove {len(assets) - gallery.selection_limit} and finalise again.",
            code="SELECTION_LIMIT_EXCEEDED",
            details={"limit": gallery.selection_limit, "chosen": len(assets)},
        )
    selection = Selection.objects.create(
        studio=gallery.studio,
        gallery=gallery,
        finalized_by=visitor,
        finalized_by_label=str(visitor),
        asset_count=len(assets),
        snapshot=_selection_snapshot(gallery, assets),
    )
    audit_record(
        action=Action.SELECTION_FINALIZED, target=selection, after={"gallery": str(gallery.pk), "assets": len(assets)}
    )
    return selection


@transaction.atomic
def selection_reopen(*, gallery: Gallery, user: Any) -> Selection:
    selection = Selection.objects.select_for_update().filter(gallery=gallery, status=SelectionStatus.FINALIZED).first()
    if selection is None:
        raise Conflict("There is no finalised selection to reopen.", code="NO_FINALIZED_SELECTION")
    selection.status = SelectionStatus.REOPENED
    selection.reopened_at = timezone.now()
    selection.reopened_by = user
    selection.save(update_fields=["status", "reopened_at", "reopened_by", "updated_at"])
    audit_record(
        action=Action.SELECTION_REOPENED, target=selection, before={"status": "finalized"}, after={"status": "reopened"}
    )
    return selection


@transaction.atomic
def uploads_cleanup(*, older_than: Any) -> int:
    """Forget uploads that never completed (and failed ones) older than
    ``older_than``: their rows go, and any bytes a client did send are
    deleted. Runs in the current studio's scope."""
    stale = list(
        Asset.objects.filter(created_at__lt=older_than)
        .filter(Q(status=AssetStatus.AWAITING_UPLOAD) | Q(status=AssetStatus.FAILED))
        .only("pk", "storage_key", "derivatives", "gallery_id")
    )
    if not stale:
        return 0
    Gallery.objects.filter(cover__in=stale).update(cover=None)
    Asset.objects.filter(pk__in=[a.pk for a in stale]).delete()
    audit_record(
        action=Action.UPLOADS_CLEANED_UP,
        target_type="galleries.asset",
        after={"assets": len(stale), "older_than": older_than.isoformat()},
    )
    _delete_objects_on_commit(_asset_keys(stale))
    return len(stale)
