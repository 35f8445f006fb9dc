"""Bulk import from a folder on the server (import_photos): each file takes
the uploads' way in (the same rules, the studio's quota, the original
stored under its key, derivatives queued), minus the browser's round trip."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Max

from galleries import imaging
from galleries.models import Asset, AssetStatus, Gallery, UploadBatch
from galleries.selectors import derivative_estimate, storage_usage
from galleries.services.effects import queue_derivatives
from galleries.services.uploads import FileRequest, QuotaExceeded, _reject_reason
from galleries.storage import media_store, original_key
from studio.auditing import Action, audit_record
from studio.models import Studio

EXTENSION_TO_MIME = {ext: mimes[0] for mimes, exts in imaging.FORMATS.values() for ext in exts}


@dataclass
class Imported:
    asset: Asset | None = None
    skipped: str = ""  # why not, for people


def known_checksums(gallery: Gallery) -> set[str]:
    """What the gallery already holds (as upload_presign counts it: failed
    photos are no reason to skip a file)."""
    rows = Asset.objects.filter(gallery=gallery).exclude(status=AssetStatus.FAILED)
    return {*rows.exclude(sha256="").values_list("sha256", flat=True)} | {
        *rows.exclude(expected_sha256="").values_list("expected_sha256", flat=True)
    }


@transaction.atomic
def import_batch_start(*, gallery: Gallery, files: int) -> UploadBatch:
    batch = UploadBatch.objects.create(studio_id=gallery.studio_id, gallery=gallery)
    audit_record(
        action=Action.UPLOAD_REQUESTED,
        target=gallery,
        after={"batch": str(batch.pk), "files": files, "source": "import"},
    )
    return batch


@transaction.atomic
def asset_import(*, batch: UploadBatch, filename: str, data: bytes) -> Imported:
    """One file into ``batch``'s gallery. The studio row is locked while the
    quota is checked, like upload_presign. The original is stored inside the
    transaction: if it rolls back, the object is left without a row, which
    cleanup_galleries reports as an orphan."""
    gallery = batch.gallery
    digest = hashlib.sha256(data).hexdigest()
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    content_type = EXTENSION_TO_MIME.get(extension, "")
    reason = _reject_reason(FileRequest(filename=filename, size=len(data), content_type=content_type))
    if reason is None:
        sniffed = imaging.sniff_format(data[:16])
        if sniffed is None or content_type not in imaging.FORMATS[sniffed][0]:
            reason = "The content is not the image its name says."
    if reason is None and digest in known_checksums(gallery):
        reason = "Already in this gallery (same checksum)."
    if reason:
        return Imported(skipped=reason)
    studio = Studio.objects.select_for_update().get(pk=gallery.studio_id)
    usage = storage_usage(studio)
    requested = len(data) + derivative_estimate(len(data))
    if usage + requested > studio.storage_quota_bytes:
        raise QuotaExceeded(
            details={"usage_bytes": usage, "quota_bytes": studio.storage_quota_bytes, "requested_bytes": requested}
        )
    next_order = (Asset.objects.filter(gallery=gallery).aggregate(m=Max("sort_order"))["m"] or 0) + 1
    asset = Asset(
        studio=studio,
        gallery=gallery,
        batch=batch,
        original_filename=filename[:255],
        content_type=content_type,
        size=len(data),
        expected_sha256=digest,
        sort_order=next_order,
        status=AssetStatus.PROCESSING,
    )
    asset.storage_key = original_key(asset, imaging.FORMATS[imaging.MIME_TO_FORMAT[content_type]][1][0])
    asset.save()
    media_store().put(asset.storage_key, data, content_type)
    audit_record(
        action=Action.UPLOAD_COMPLETED,
        target=gallery,
        after={"batch": str(batch.pk), "processing": [str(asset.pk)], "source": "import"},
    )
    queue_derivatives([asset.pk])
    return Imported(asset=asset)
